"""Background work that every replica runs; leases make each periodic job run once at a time."""
