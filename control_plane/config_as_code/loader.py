"""Reading traxo.yaml: YAML with each value's line, ${ENV_VAR} interpolation, and validation that
reports every problem of a file at once as `traxo.yaml:12: monitors[1].interval: must be ...`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from control_plane.config_as_code.model import SLUG_PATTERN, TraxoFile

Path_ = tuple[str | int, ...]
_MERGE = "tag:yaml.org,2002:merge"
_VARIABLE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def format_path(path: Path_) -> str:
    """('monitors', 1, 'interval') -> monitors[1].interval"""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True)
class Problem:
    line: int
    path: Path_
    message: str

    def describe(self, filename: str) -> str:
        where = f"{format_path(self.path)}: " if self.path else ""
        return f"{filename}:{self.line}: {where}{self.message}"


class InvalidFile(Exception):
    """The file's problems, each with its line and field."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = sorted(problems, key=lambda problem: problem.line)
        super().__init__("\n".join(problem.describe(filename) for problem in self.problems))


@dataclass
class Positions:
    """Each value's line, and which strings came from environment variables (never printed)."""

    lines: dict[Path_, int] = field(default_factory=dict)
    interpolated: dict[Path_, list[str]] = field(default_factory=dict)

    def line(self, path: Path_) -> int:
        """The line of `path`, or of its nearest ancestor in the file (a missing field's object)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def secret_under(self, path: Path_) -> list[str]:
        """The environment variables whose values are in `path` or below it."""
        return [
            name for where, names in self.interpolated.items() if where[: len(path)] == path for name in names
        ]


@dataclass(frozen=True)
class LoadedFile:
    filename: str
    spec: TraxoFile
    positions: Positions

    def line(self, *path: str | int) -> int:
        return self.positions.line(path)


def load_file(path: Path, environ: Mapping[str, str]) -> LoadedFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidFile(path.name, [Problem(1, (), f"cannot read it ({exc.strerror})")]) from None
    return load_text(text, path.name, environ)


def load_text(text: str, filename: str, environ: Mapping[str, str]) -> LoadedFile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidFile(filename, [Problem(line, (), f"not valid YAML: {problem}")]) from None
    if root is None:
        raise InvalidFile(filename, [Problem(1, (), "the file is empty (it needs at least `version: 1`)")])
    reader = _Reader(environ)
    document = reader.value(root, ())
    problems = list(reader.problems)
    try:
        spec = TraxoFile.model_validate(document)
    except ValidationError as exc:
        # A value whose variable is unset is reported once, as that.
        known = {problem.path for problem in problems}
        problems += [
            problem
            for problem in _problems(exc.errors(), document, reader.positions)
            if problem.path not in known
        ]
    else:
        problems += _duplicates(spec, reader.positions)
        if not problems:
            return LoadedFile(filename, spec, reader.positions)
    raise InvalidFile(filename, problems)


class _Reader:
    """Plain values from YAML nodes, noting where each came from."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.positions = Positions()
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")  # only its constructors, for ints, floats, booleans, nulls
        self._within: set[int] = set()  # the collections being read, to refuse one inside itself

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.positions.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self._within:
                line = self.positions.line(path)
                self.problems.append(Problem(line, path, "an alias of an object or list inside itself"))
                return None
            self._within.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._within.discard(id(node))
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # kept as written: the API reads ISO 8601 strings
        if node.tag == "tag:yaml.org,2002:str":
            return self._interpolate(node.value, path, node.start_mark.line + 1)
        try:
            return self._scalars.construct_object(node)
        except yaml.YAMLError as exc:
            self.problems.append(Problem(node.start_mark.line + 1, path, f"not a valid value ({exc})"))
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        own = {id(key_node) for key_node, _ in node.value}
        own_keys = {str(key_node.value) for key_node, _ in node.value if key_node.tag != _MERGE}
        try:
            self._scalars.flatten_mapping(node)  # `<<: *defaults` merges, as YAML loaders do
        except yaml.YAMLError as exc:
            self.problems.append(Problem(node.start_mark.line + 1, path, f"cannot merge: {exc}"))
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem(line, path, "keys must be plain names"))
                continue
            key = str(key_node.value)
            merged = id(key_node) not in own
            if merged and (key in own_keys or key in result):
                continue  # the mapping's own value wins, then the first merged one
            if key in result:
                self.problems.append(Problem(line, (*path, key), "given twice in the same object"))
                continue
            self.positions.lines[(*path, key)] = line
            result[key] = self.value(value_node, (*path, key))
        return result

    def _interpolate(self, text: str, path: Path_, line: int) -> str:
        names: list[str] = []

        def replace(match: re.Match[str]) -> str:
            if match[1] == "$":
                return "$"  # $$ writes a literal $
            name = match[2]
            if name not in self.environ:
                self.problems.append(Problem(line, path, f"environment variable {name} is not set"))
                return ""
            names.append(name)
            return self.environ[name]

        result = _VARIABLE.sub(replace, text)
        if names:
            self.positions.interpolated[path] = names
        return result


def _data_path(loc: tuple[str | int, ...], document: Any, missing: bool) -> Path_ | None:
    """Pydantic's error location as a path into the document, its union branch tags dropped; None
    for an error of the branch that does not fit the value (a list item that is a name or an
    object: only the errors of the form it has are worth reading)."""
    path: list[str | int] = []
    current = document
    for i, part in enumerate(loc):
        if (
            isinstance(current, dict)
            and isinstance(part, str)
            and (part in current or (missing and i == len(loc) - 1))
        ):
            path.append(part)
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int):
            path.append(part)
            current = current[part] if part < len(current) else None
        elif isinstance(part, str):  # a union's branch: a model's name, or the type of another
            if part[:1].isupper() != isinstance(current, dict):
                return None
        else:
            break
    return tuple(path)


def _problems(errors: list[Any], document: Any, positions: Positions) -> list[Problem]:
    problems = []
    for error in errors:
        path = _data_path(tuple(error["loc"]), document, error["type"] == "missing")
        if path is not None:
            problems.append(Problem(positions.line(path), path, _message(error)))
    return problems


def _message(error: Any) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {context.get('ge', context.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {context.get('le', context.get('lt'))}"
    if kind == "string_too_long":
        return f"must be at most {context['max_length']} characters"
    if kind == "string_too_short":
        return "must not be empty" if context.get("min_length") == 1 else error["msg"].lower()
    if kind == "too_long":
        return f"must have at most {context['max_length']} items"
    if kind == "too_short":
        return f"must have at least {context['min_length']} item(s)"
    if kind == "literal_error":
        return f"must be one of {context['expected']}"
    if kind == "string_pattern_mismatch":
        if context.get("pattern") == SLUG_PATTERN:
            return "must be lowercase letters, digits and single hyphens (acme-status)"
        return f"must match {context['pattern']}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "string_type":
        return "must be a string"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object (key: value)"
    if kind == "list_type":
        return "must be a list"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    return str(error["msg"])


def _duplicates(spec: TraxoFile, positions: Positions) -> list[Problem]:
    problems: list[Problem] = []
    kinds: list[tuple[str, str, list[str]]] = [
        ("monitors", "name", [monitor.name for monitor in spec.monitors]),
        ("alertChannels", "name", [channel.name for channel in spec.alertChannels]),
        ("maintenanceWindows", "title", [window.title for window in spec.maintenanceWindows]),
        ("statusPages", "slug", [page.slug for page in spec.statusPages]),
    ]
    for section, key, names in kinds:
        first: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in first:
                path = (section, i, key)
                line = positions.line(path)
                earlier = positions.line((section, first[name], key))
                problems.append(Problem(line, path, f"{name!r} is already used on line {earlier}"))
            else:
                first[name] = i
    for i, page in enumerate(spec.statusPages):  # the API takes a monitor once per page
        places: dict[str, int] = {}
        for j, item in enumerate(page.monitors):
            name = item if isinstance(item, str) else item.monitor
            if name in places:
                where: Path_ = ("statusPages", i, "monitors", j)
                message = f"{name!r} is already on this page (monitors[{places[name]}])"
                problems.append(Problem(positions.line(where), where, message))
            else:
                places[name] = j
    return problems
