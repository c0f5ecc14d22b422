"""Cost alerts: a monitor's budgets, and the worker that mails when spend crosses them."""
