"""`traxo export`: the organization's resources as a traxo.yaml that `traxo apply` finds unchanged.

References are names; the secrets the API masks become ${ENV_VAR} placeholders, listed in the
header comment, since a read never shows them.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from control_plane.config_as_code import secrets
from control_plane.config_as_code.resources import CHANNELS, KINDS, MONITORS, PAGES, WINDOWS, Kind
from control_plane.config_as_code.state import ServerState

# Fields left out when they hold what the file's default means anyway.
_DEFAULTS: dict[Kind, dict[str, Any]] = {
    CHANNELS: {"isActive": True},
    MONITORS: {
        "url": None,
        "method": "GET",
        "expectedStatus": None,
        "expectedKeyword": None,
        "config": {},
        "alertChannels": None,
        "isActive": True,
    },
    WINDOWS: {
        "description": None,
        "monitor": None,
        "isActive": True,
        "recurrence": None,
        "durationMinutes": None,
        "timezone": None,
    },
    PAGES: {
        "description": None,
        "customDomain": None,
        "isPublic": True,
        "hideBranding": False,
        "customCss": None,
        "logoUrl": None,
        "faviconUrl": None,
    },
}


class ExportRefused(Exception):
    """The organization holds what a file cannot say (two resources of a kind with one name)."""


def export_document(state: ServerState) -> tuple[dict[str, Any], list[str]]:
    """The file's content, and the environment variables its secrets are to come from."""
    repeated = [
        f"{len(remotes)} {kind}s with {kind.key} {key!r} ({', '.join(r.id for r in remotes)})"
        for kind in KINDS
        for key, remotes in state.named(kind).items()
        if len(remotes) > 1
    ]
    if repeated:
        raise ExportRefused(
            "a file names each resource once, and the organization has "
            + "; ".join(repeated)
            + ": rename or delete all but one of each first"
        )
    variables: list[str] = []
    document: dict[str, Any] = {"version": 1}
    for kind in KINDS:
        resources = [_exported(kind, remote.fields, variables) for remote in state.resources[kind]]
        if resources:
            document[kind.section] = resources
    return document, variables


def export_text(state: ServerState, source: str) -> str:
    document, variables = export_document(state)
    header = [f"# Exported by `traxo export` from {source}; `traxo apply -f` this file to restore it."]
    if variables:
        header.append(
            "# Secrets are not in this file (the API masks alert channels', and monitors' credential"
        )
        header.append("# headers are left out): set these environment variables before applying it:")
        header += [f"#   {name}" for name in variables]
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(header) + "\n" + body


# What `apply` would read as a variable or an escape: `$$` and `${NAME}`, whose `$` is doubled.
_INTERPOLATED = re.compile(r"\$(?=\$|\{[A-Za-z_][A-Za-z0-9_]*\})")


def _escaped(value: Any) -> Any:
    """`value` with its strings written so that `apply`'s interpolation reads them back as they are."""
    if isinstance(value, str):
        return _INTERPOLATED.sub("$$", value)
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value


def _exported(kind: Kind, fields: dict[str, Any], variables: list[str]) -> dict[str, Any]:
    fields = _escaped(fields)  # before the ${VAR} placeholders go in
    exported = {
        name: value
        for name, value in fields.items()
        if name not in _DEFAULTS[kind] or value != _DEFAULTS[kind][name]
    }
    if kind is WINDOWS and exported.get("timezone") == "UTC" and fields["recurrence"] is not None:
        del exported["timezone"]
    if kind is PAGES:
        exported["monitors"] = [_component(component, i) for i, component in enumerate(fields["monitors"])]
    if kind is CHANNELS:
        exported["config"] = _placeholders(fields["name"], fields["type"], fields["config"], variables)
    if kind is MONITORS and isinstance(fields["config"].get("headers"), dict):
        # The API shows monitors' headers as they are; credentials among them stay out of the file.
        headers = {
            header: _variable(f"{_stem(fields['name'])}_{_stem(header)}", variables)
            if secrets.is_credential_header(header)
            else value
            for header, value in fields["config"]["headers"].items()
        }
        exported["config"] = {**fields["config"], "headers": headers}
    return exported


def _component(component: dict[str, Any], place: int) -> str | dict[str, Any]:
    """A component as short as it can be written: the monitor's name where all else is default."""
    short: dict[str, Any] = {"monitor": component["monitor"]}
    if component["displayName"] != component["monitor"]:
        short["displayName"] = component["displayName"]
    if component["order"] != place:
        short["order"] = component["order"]
    if component["group"] is not None:
        short["group"] = component["group"]
    return component["monitor"] if len(short) == 1 else short


def _placeholders(
    name: str, channel_type: str, config: dict[str, Any], variables: list[str]
) -> dict[str, Any]:
    stem = _stem(name)
    result = dict(config)
    if channel_type == "WEBHOOK":
        # Omitted, the secret the server holds is kept: a file need not carry it (it was shown once).
        result.pop("secret", None)
        return result
    for key in secrets.SECRET_KEYS.get(channel_type, ()):
        if key not in config:
            continue
        words = re.sub(r"(?<!^)([A-Z])", r"_\1", key).upper()
        base = f"{stem}_{words}"
        if isinstance(config[key], list):
            result[key] = [_variable(f"{base}_{i + 1}", variables) for i in range(len(config[key]))]
        else:
            result[key] = _variable(base, variables)
    return result


def _stem(name: str) -> str:
    """A name as part of an environment variable's: "Ops Slack" -> OPS_SLACK."""
    stem = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "VALUE"
    return f"_{stem}" if stem[0].isdigit() else stem


def _variable(name: str, variables: list[str]) -> str:
    unique, n = name, 2
    while unique in variables:
        unique, n = f"{name}_{n}", n + 1
    variables.append(unique)
    return f"${{{unique}}}"
