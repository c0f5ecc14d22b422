"""A channel's config per type: validated (InvalidInput naming `config.<field>`), masked for reading,
and merged with what is stored when a client sends back the masked values it read.

Masking (docs/alerts-channels.md): what is not secret is kept, the secret part becomes "..." and its
last 4 characters, like API keys. A URL keeps its scheme, its host (when it is a host name or an
address, not a token) and port; a webhook secret keeps "whsec_"; a routing key keeps nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import socket
from typing import Any

import apprise
from email_validator import EmailNotValidError, validate_email

from control_plane.alerts.guard import check_host, check_url
from control_plane.core.errors import InvalidInput
from control_plane.domain.secret_masks import WEBHOOK_SECRET_PREFIX, is_host_name, mask_tail, mask_url
from control_plane.settings import Settings

MAX_RECIPIENTS = 50
MAX_APPRISE_URLS = 20
MAX_URL_LENGTH = 2048
SECRET_PREFIX = WEBHOOK_SECRET_PREFIX
_ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")

FIELDS: dict[str, tuple[set[str], set[str]]] = {  # type: (required, optional)
    "EMAIL": ({"recipients"}, set()),
    "SLACK": ({"webhookUrl"}, set()),
    "WEBHOOK": ({"url"}, {"secret"}),
    "PAGERDUTY": ({"routingKey"}, set()),
    "APPRISE": ({"urls"}, set()),
}


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: whsec_ and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _string(config: dict[str, Any], key: str, max_length: int = MAX_URL_LENGTH) -> str:
    value = config[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"config.{key}: must be a non-empty string")
    if len(value) > max_length:
        raise InvalidInput(f"config.{key}: must be at most {max_length} characters")
    return value.strip()


def _list(config: dict[str, Any], key: str, most: int) -> list[str]:
    value = config[key]
    if not isinstance(value, list) or not 1 <= len(value) <= most:
        raise InvalidInput(f"config.{key}: must be a list of 1-{most} strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(f"config.{key}[{i}]: must be a non-empty string")
        if len(item) > MAX_URL_LENGTH:
            raise InvalidInput(f"config.{key}[{i}]: must be at most {MAX_URL_LENGTH} characters")
    return [item.strip() for item in value]


def _webhook_secret(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(SECRET_PREFIX):
        raise InvalidInput(f"config.secret: must be a Standard Webhooks secret ({SECRET_PREFIX}<base64>)")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"config.secret: what follows {SECRET_PREFIX} must be base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidInput(f"config.secret: the key must be 24-64 bytes (it is {len(key)})")
    return value


def _email(value: str, where: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"{where}: {value!r} is not a valid email address ({exc})") from None


def _numeric_address(host: str) -> bool:
    """2130706433, 0x7f000001, 0177.1: what getaddrinfo (inet_aton) reads as an IPv4 address."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def apprise_hosts(url: str) -> list[str]:
    """The hosts Apprise itself connects to for `url`: the host of a self-hosted service (json://,
    ntfy://, gotify://, mailto:// …), an address written as a bare number included, and the SMTP
    server a mailto URL names (?smtp=). A hosted service's URL holds a token where a host would be
    (tgram://<bot id>:<token>/, discord://<id>/<token>): Apprise sends those to the service's own
    API, so the token is not one, even when it reads as a number. Unparsable: []."""
    try:
        plugin = apprise.Apprise.instantiate(url)
    except Exception:  # Apprise's URL parsers are many; none may turn a bad URL into a 500
        plugin = None
    if plugin is None:
        return []
    hosts = []
    host = getattr(plugin, "host", None)
    # A plugin takes a host of the user's when one of its URL forms has one (json://{host}, and the
    # self-hosted forms of Notica, PushDeer, ntfy ...): a number there is an address, checked as one.
    # A hosted service's forms have none (tgram://{bot_token}): its "host" is a token.
    takes_host = any("{host}" in template for template in getattr(type(plugin), "templates", ()))
    if isinstance(host, str) and host and (is_host_name(host) or (_numeric_address(host) and takes_host)):
        hosts.append(host)
    smtp_host = getattr(plugin, "smtp_host", None)
    if isinstance(smtp_host, str) and smtp_host and smtp_host not in hosts:
        hosts.append(smtp_host)
    return hosts


async def _apprise_url(url: str, settings: Settings, where: str) -> None:
    try:
        supported = apprise.Apprise().add(url)
    except Exception:  # Apprise's URL parsers are many; none may turn a bad URL into a 500
        supported = False
    if not supported:
        raise InvalidInput(f"{where}: not a URL Apprise supports (https://github.com/caronc/apprise/wiki)")
    for host in apprise_hosts(url):
        await check_host(host, settings, field=where)


async def validate_channel_config(
    channel_type: str, config: Any, settings: Settings, *, generate_secret: bool = False
) -> tuple[dict[str, Any], str | None]:
    """The config as stored (normalized), and the webhook secret when one was generated."""
    if not isinstance(config, dict):
        raise InvalidInput("config: must be an object")
    required, optional = FIELDS[channel_type]
    unknown = sorted(set(config) - required - optional)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise InvalidInput(f"config.{unknown[0]}: unknown for {channel_type} (allowed: {allowed})")
    missing = sorted(required - set(config))
    if missing:
        raise InvalidInput(f"config.{missing[0]}: required for {channel_type}")
    generated: str | None = None
    if channel_type == "EMAIL":
        recipients = _list(config, "recipients", MAX_RECIPIENTS)
        normalized = [_email(r, f"config.recipients[{i}]") for i, r in enumerate(recipients)]
        if len({r.lower() for r in normalized}) != len(normalized):
            raise InvalidInput("config.recipients: must not repeat an address")
        return {"recipients": normalized}, None
    if channel_type == "SLACK":
        url = _string(config, "webhookUrl")
        await check_url(url, settings, field="config.webhookUrl", schemes=("https",))
        return {"webhookUrl": url}, None
    if channel_type == "WEBHOOK":
        url = _string(config, "url")
        await check_url(url, settings, field="config.url")
        secret = config.get("secret")
        if secret is None:
            if not generate_secret:
                raise InvalidInput("config.secret: required (send the masked value back to keep it)")
            secret = generated = new_webhook_secret()
        return {"url": url, "secret": _webhook_secret(secret)}, generated
    if channel_type == "PAGERDUTY":
        key = config["routingKey"]
        if not isinstance(key, str) or not _ROUTING_KEY.match(key):
            raise InvalidInput("config.routingKey: must be 32 letters and digits (an Events API v2 key)")
        return {"routingKey": key}, None
    urls = _list(config, "urls", MAX_APPRISE_URLS)
    for i, url in enumerate(urls):
        await _apprise_url(url, settings, f"config.urls[{i}]")
    return {"urls": urls}, None


def masked_config(channel_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config as every read shows it."""
    if channel_type == "SLACK":
        return {"webhookUrl": mask_url(config["webhookUrl"])}
    if channel_type == "WEBHOOK":
        return {"url": config["url"], "secret": mask_tail(config["secret"], SECRET_PREFIX)}
    if channel_type == "PAGERDUTY":
        return {"routingKey": mask_tail(config["routingKey"])}
    if channel_type == "APPRISE":
        return {"urls": [mask_url(url) for url in config["urls"]]}
    return dict(config)


def unmask(channel_type: str, sent: Any, stored: dict[str, Any]) -> Any:
    """`sent` with every masked value that equals the stored value's mask replaced by that value
    (a client sending back what it read keeps the secret)."""
    if not isinstance(sent, dict):
        return sent
    merged = dict(sent)
    shown = masked_config(channel_type, stored)
    for key in ("webhookUrl", "secret", "routingKey"):
        if key in merged and key in stored and merged[key] == shown.get(key):
            merged[key] = stored[key]
    if channel_type == "WEBHOOK" and "secret" not in merged and "secret" in stored:
        merged["secret"] = stored["secret"]  # omitted on an update: kept
    if channel_type == "APPRISE" and isinstance(merged.get("urls"), list):
        old, old_masks = stored.get("urls", []), shown.get("urls", [])
        urls = []
        for i, url in enumerate(merged["urls"]):
            if i < len(old) and url == old_masks[i]:
                urls.append(old[i])
            elif url in old_masks:
                urls.append(old[old_masks.index(url)])
            else:
                urls.append(url)
        merged["urls"] = urls
    return merged
