"""Clients of services outside Traxo (RevenueCat), each converting its errors once."""
