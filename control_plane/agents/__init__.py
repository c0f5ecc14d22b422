"""The control plane's side of the agent protocol: tokens, registrations, assignment, results."""
