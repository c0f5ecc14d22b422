"""The plan: what to create, update and delete so the organization matches the file, in an order
where every reference exists before it is used (creates and updates: channels, monitors by their
dependencies, windows, pages; deletes the other way round, except pages', which nothing refers to:
before the file's pages are written)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from control_plane.config_as_code import secrets
from control_plane.config_as_code.loader import InvalidFile, LoadedFile, Problem, format_path
from control_plane.config_as_code.model import FileModel, Monitor
from control_plane.config_as_code.resources import (
    CHANNELS,
    KINDS,
    MONITORS,
    PAGES,
    Kind,
    Remote,
    config_changes,
    desired_fields,
    references,
    same,
)
from control_plane.config_as_code.state import ServerState

Action = Literal["create", "update", "delete", "keep"]
_SYMBOLS = {"create": "+", "update": "~", "delete": "-", "keep": " "}


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    key: str
    fields: dict[str, Any] = field(default_factory=dict)  # create: all; update: those that change
    remote: Remote | None = None
    line: int | None = None  # in the file
    details: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f'{self.kind} "{self.key}"'

    def describe(self) -> str:
        if self.action == "keep":
            return f"  {self.name}: not in the file, kept (--prune deletes it)"
        text = f"{_SYMBOLS[self.action]} {self.action} {self.name}"
        return f"{text}: {', '.join(self.details)}" if self.details else text


@dataclass(frozen=True)
class Plan:
    changes: list[Change]

    @property
    def writes(self) -> list[Change]:
        return [change for change in self.changes if change.action != "keep"]

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def summary(self) -> str:
        kept = f", {self.count('keep')} not in the file and kept" if self.count("keep") else ""
        if not self.writes:
            return f"No changes: the organization matches the file{kept}."
        return (
            f"Plan: {self.count('create')} to create, {self.count('update')} to update, "
            f"{self.count('delete')} to delete{kept}."
        )


def make_plan(
    loaded: LoadedFile, state: ServerState, *, prune: bool = False, replace_secrets: bool = False
) -> Plan:
    """The plan, or InvalidFile naming every reference, name or type the server makes impossible."""
    problems = _problems(loaded, state, prune=prune)
    ordered_monitors = _by_dependencies(loaded, problems)
    if problems:
        raise InvalidFile(loaded.filename, problems)
    changes: list[Change] = []
    removed = {kind: _removed(loaded, state, kind, prune) for kind in KINDS}
    for kind in KINDS:
        if kind is PAGES and prune:
            # Nothing refers to a page, so pages go before the file's are written: a page whose slug
            # changed (a delete and a create) then leaves its custom domain free for the new one.
            changes += removed.pop(kind)
        resources = ordered_monitors if kind is MONITORS else list(enumerate(_section(loaded, kind)))
        named = state.named(kind)
        for i, resource in resources:
            key = getattr(resource, kind.key)
            remote = named[key][0] if key in named else None
            change = _change(loaded, kind, i, resource, remote, replace_secrets=replace_secrets)
            if change is not None:
                changes.append(change)
    for kind in reversed(KINDS):
        changes += removed.get(kind, [])
    return Plan(changes)


def _removed(loaded: LoadedFile, state: ServerState, kind: Kind, prune: bool) -> list[Change]:
    """What the organization has of `kind` and the file does not: deleted with --prune, else kept."""
    in_file = {getattr(resource, kind.key) for resource in _section(loaded, kind)}
    return [
        Change("delete" if prune else "keep", kind, remote.key, remote=remote)
        for remote in state.resources[kind]
        if remote.key not in in_file
    ]


def _section(loaded: LoadedFile, kind: Kind) -> list[FileModel]:
    return list(getattr(loaded.spec, kind.section))


def _change(
    loaded: LoadedFile,
    kind: Kind,
    i: int,
    resource: FileModel,
    remote: Remote | None,
    *,
    replace_secrets: bool,
) -> Change | None:
    key = getattr(resource, kind.key)
    wanted = desired_fields(kind, resource)
    line = loaded.line(kind.section, i)
    if remote is None:
        return Change("create", kind, key, wanted, line=line)
    channel_type = wanted.get("type") if kind is CHANNELS else None
    changed: dict[str, Any] = {}
    details: list[str] = []
    for name, value in wanted.items():
        current = remote.fields.get(name)
        if same(kind, name, value, current, channel_type):
            if not (replace_secrets and kind is CHANNELS and name == "config" and _has_secrets(wanted)):
                continue
            details.append("config (secrets sent again)")
        else:
            details += _details(loaded, kind, i, name, value, current, channel_type)
        changed[name] = value
    if not changed:
        return None
    return Change("update", kind, key, changed, remote=remote, line=line, details=tuple(details))


def _has_secrets(channel: dict[str, Any]) -> bool:
    return any(secrets.is_secret(channel["type"], key) for key in channel["config"])


def _details(
    loaded: LoadedFile, kind: Kind, i: int, name: str, wanted: Any, current: Any, channel_type: str | None
) -> list[str]:
    """How one field changes, `field old -> new`, secrets and values from ${VAR}s not shown."""
    base = (kind.section, i, name)
    if kind is CHANNELS and name == "config" and channel_type is not None:
        found = []
        for key in config_changes(channel_type, wanted, current):
            variables = loaded.positions.secret_under((*base, key))
            if secrets.is_secret(channel_type, key) or variables:
                found.append(f"config.{key} changed{_hidden(variables)}")
            else:
                found.append(f"config.{key} {_show(current.get(key))} -> {_show(wanted.get(key))}")
        return found
    found = []
    for path, old, new in _leaves((name,), wanted, current):
        variables = loaded.positions.secret_under((kind.section, i, *path))
        if variables:
            found.append(f"{format_path(path)} changed{_hidden(variables)}")
        elif kind is MONITORS and _credential_header(path):
            found.append(f"{format_path(path)} changed (a credential header; not shown)")
        else:
            old, new = (_without_credentials(kind, path, value) for value in (old, new))
            found.append(f"{format_path(path)} {_show(old)} -> {_show(new)}")
    return found


def _credential_header(path: tuple[str | int, ...]) -> bool:
    return (
        len(path) >= 3
        and path[:2] == ("config", "headers")
        and isinstance(path[2], str)
        and secrets.is_credential_header(path[2])
    )


def _without_credentials(kind: Kind, path: tuple[str | int, ...], value: Any) -> Any:
    """A monitor's config or headers with the values of credential headers (which the API shows
    unmasked: an Authorization, a token) replaced, for printing."""
    if kind is not MONITORS or not isinstance(value, dict):
        return value
    if path == ("config",) and isinstance(value.get("headers"), dict):
        return {**value, "headers": _without_credentials(kind, ("config", "headers"), value["headers"])}
    if path == ("config", "headers"):
        return {
            header: "(not shown)" if secrets.is_credential_header(str(header)) else text
            for header, text in value.items()
        }
    return value


def _hidden(variables: list[str]) -> str:
    names = ", ".join(f"${{{name}}}" for name in variables)
    return f" (secret{f', from {names}' if names else ''}; not shown)"


def _leaves(
    path: tuple[str | int, ...], wanted: Any, current: Any
) -> list[tuple[tuple[str | int, ...], Any, Any]]:
    """Where two values differ, down to the keys of objects and the items of lists."""
    pairs: list[tuple[str | int, Any, Any]]
    if isinstance(wanted, dict) and isinstance(current, dict):
        keys: list[Any] = sorted(set(wanted) | set(current), key=str)
        pairs = [(str(key), wanted.get(key), current.get(key)) for key in keys]
    elif (
        isinstance(wanted, list)
        and isinstance(current, list)
        and (len(wanted) == len(current) or not (_fits(wanted) and _fits(current)))
    ):
        # Item by item (an item one list lacks is none): lists of one length, and long lists, whose
        # whole values would be cut short before the difference.
        pairs = [
            (i, wanted[i] if i < len(wanted) else None, current[i] if i < len(current) else None)
            for i in range(max(len(wanted), len(current)))
        ]
    else:
        return [(path, current, wanted)]
    found = []
    for key, new, old in pairs:
        if new != old:
            found += _leaves((*path, key), new, old)
    return found or [(path, current, wanted)]


def _fits(value: Any) -> bool:
    return len(json.dumps(value, separators=(", ", ": "))) <= _SHOWN


_SHOWN = 120  # characters of a value in a plan


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return json.dumps(value)
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _problems(loaded: LoadedFile, state: ServerState, *, prune: bool) -> list[Problem]:
    problems: list[Problem] = []
    in_file = {kind: {getattr(r, kind.key) for r in _section(loaded, kind)} for kind in KINDS}
    named = {kind: state.named(kind) for kind in KINDS}
    for kind in KINDS:
        for i, resource in enumerate(_section(loaded, kind)):
            key = getattr(resource, kind.key)
            path = (kind.section, i, kind.key)
            if len(named[kind].get(key, [])) > 1:
                problems.append(Problem(loaded.line(*path), path, _repeated(kind, key, named[kind][key])))
            remote = named[kind].get(key)
            if kind is CHANNELS and remote and remote[0].fields["type"] != getattr(resource, "type", None):
                problems.append(
                    Problem(
                        loaded.line(kind.section, i, "type"),
                        (kind.section, i, "type"),
                        f"the channel is {remote[0].fields['type']} and its type cannot change "
                        "(rename it to create another, or delete it first)",
                    )
                )
            for target, name, subpath in references(kind, resource):
                where: tuple[str | int, ...] = (kind.section, i, *subpath)
                if name in in_file[target]:
                    continue
                if name not in named[target]:
                    message = f"no {target} named {name!r} in the file or the organization"
                    problems.append(Problem(loaded.line(*where), where, message))
                elif prune:
                    # Deleted after this resource is written, it would take the reference with it
                    # (a window or a page's component goes with its monitor).
                    message = (
                        f"{target} {name!r} is not in the file, so --prune would delete it: "
                        "add it to the file, or drop the reference"
                    )
                    problems.append(Problem(loaded.line(*where), where, message))
                elif len(named[target][name]) > 1:
                    problems.append(
                        Problem(loaded.line(*where), where, _repeated(target, name, named[target][name]))
                    )
    return problems


def _repeated(kind: Kind, key: str, remotes: list[Remote]) -> str:
    ids = ", ".join(remote.id for remote in remotes)
    return (
        f"the organization has {len(remotes)} {kind}s with {kind.key} {key!r} ({ids}); "
        "rename or delete all but one first"
    )


def _by_dependencies(loaded: LoadedFile, problems: list[Problem]) -> list[tuple[int, FileModel]]:
    """The file's monitors, each after the monitors of the file it depends on (file order otherwise)."""
    monitors: list[Monitor] = list(loaded.spec.monitors)
    index = {monitor.name: i for i, monitor in enumerate(monitors)}
    ordered: list[tuple[int, FileModel]] = []
    state: dict[int, str] = {}  # "visiting" or "done"

    def visit(i: int, trail: list[str]) -> None:
        if state.get(i) == "done":
            return
        if state.get(i) == "visiting":
            cycle = " -> ".join([*trail[trail.index(monitors[i].name) :], monitors[i].name])
            where = ("monitors", i, "config", "dependsOn")
            problems.append(Problem(loaded.line(*where), where, f"monitors depend on each other: {cycle}"))
            return
        state[i] = "visiting"
        depends = monitors[i].config.get("dependsOn")
        for name in depends if isinstance(depends, list) else []:
            if isinstance(name, str) and name in index:
                visit(index[name], [*trail, monitors[i].name])
        state[i] = "done"
        ordered.append((i, monitors[i]))

    for i in range(len(monitors)):
        visit(i, [])
    return ordered
