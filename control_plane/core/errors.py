"""Domain errors. The API turns each kind into its status code; the message goes to the user as is."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """400: a value broke a rule; the message names the field."""


class NotFound(DomainError):
    """404: absent, or belongs to another organization (never say which)."""


class Forbidden(DomainError):
    """403: the role or the plan does not allow it."""


class Conflict(DomainError):
    """409: it already exists."""


class NotConfigured(DomainError):
    """501: this server was deployed without what the feature needs (e.g. billing without RevenueCat)."""


class UpstreamError(DomainError):
    """502: a service we depend on (RevenueCat) failed; the message names it and how."""
