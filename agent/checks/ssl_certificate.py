"""Reading a certificate for the SSL check: names, dates, hostname match, and OpenSSL's verdict in words."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from cryptography import x509

# OpenSSL X509_V_ERR_* codes that the SSL check words or reasons about.
NOT_YET_VALID = 9
EXPIRED = 10
SELF_SIGNED_LEAF = 18
SELF_SIGNED_IN_CHAIN = 19
ISSUER_UNKNOWN = 20
LEAF_UNVERIFIABLE = 21
HOSTNAME_MISMATCH = 62
IP_MISMATCH = 64


def chain_was_trusted(verify_code: int) -> bool:
    """Whether OpenSSL had already accepted the chain's trust when it failed with this code.

    OpenSSL builds the chain to a trust anchor first, then checks the hostname, then signatures and
    dates; a hostname or date failure therefore means the chain itself was trusted.
    """
    return verify_code in (HOSTNAME_MISMATCH, IP_MISMATCH, NOT_YET_VALID, EXPIRED)


def describe_certificate(cert: x509.Certificate, brief: bool = False) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
    }
    if brief:
        return summary
    return {
        **summary,
        "sans": subject_alt_names(cert),
        "serial_number": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def subject_alt_names(cert: x509.Certificate) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(extension.value.get_values_for_type(x509.DNSName))
    names += [str(address) for address in extension.value.get_values_for_type(x509.IPAddress)]
    return names


def hostname_matches(cert: x509.Certificate, server_name: str) -> bool:
    """RFC 6125 matching against the SANs: exact names, a wildcard for one left-most label, exact IPs.

    Computed here too, not only by OpenSSL, so the result shows it even when another failure came first.
    """
    try:
        wanted_ip = ipaddress.ip_address(server_name)
    except ValueError:
        wanted_ip = None
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    if wanted_ip is not None:
        return wanted_ip in extension.value.get_values_for_type(x509.IPAddress)
    name = server_name.rstrip(".").lower()
    for pattern in extension.value.get_values_for_type(x509.DNSName):
        pattern = pattern.rstrip(".").lower()
        if pattern.startswith("*."):
            label, _, rest = name.partition(".")
            if label and rest == pattern[2:]:
                return True
        elif pattern == name:
            return True
    return False


def verify_failure_message(
    verify_error: tuple[int, str], cert: x509.Certificate, server_name: str, now: datetime
) -> str:
    code, openssl_message = verify_error
    not_after, not_before = cert.not_valid_after_utc, cert.not_valid_before_utc
    if code == EXPIRED:
        days_ago = (now - not_after).days
        reason = f"certificate expired on {not_after:%Y-%m-%d %H:%M} UTC ({days_ago} days ago)"
    elif code == NOT_YET_VALID:
        reason = f"certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC"
    elif code in (HOSTNAME_MISMATCH, IP_MISMATCH):
        names = ", ".join(subject_alt_names(cert)) or "no subject alternative names"
        reason = f"certificate does not match the host name (it is for: {names})"
    elif code == SELF_SIGNED_LEAF:
        reason = "certificate is self-signed and not trusted"
    elif code == SELF_SIGNED_IN_CHAIN:
        reason = "certificate chain ends in a self-signed CA that is not trusted"
    elif code in (ISSUER_UNKNOWN, LEAF_UNVERIFIABLE):
        reason = (
            f"certificate is not trusted: its issuer ({cert.issuer.rfc4514_string()}) is not a trusted CA "
            "and the server did not send it (incomplete chain or unknown CA)"
        )
    else:
        reason = f"certificate rejected: {openssl_message}"
    return f"{server_name}: {reason}"
