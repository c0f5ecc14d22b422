"""The Dockerfiles read as the build reads them (stages, instructions, .dockerignore), so that the tests
can run an image's install steps and its entrypoint on this machine, which has no container engine."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Dockerfile", "Instruction", "Stage", "build_context", "ignored", "parse", "read_dockerignore"]

_FLAG = re.compile(r"--[a-z-]+(=\S+)?\s+")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ENV...
    arguments: str  # continuation lines joined, comments between them left out
    line: int

    @property
    def flags(self) -> list[str]:
        """Leading --flags (RUN --mount=..., COPY --from=..., HEALTHCHECK --interval=...)."""
        flags, rest = [], self.arguments
        while (match := _FLAG.match(rest)) is not None:
            flags.append(match.group(0).strip())
            rest = rest[match.end() :]
        return flags

    @property
    def command(self) -> str:
        """The arguments without their leading flags."""
        rest = self.arguments
        while (match := _FLAG.match(rest)) is not None:
            rest = rest[match.end() :]
        return rest

    def exec_form(self) -> list[str]:
        """A JSON-array argument (ENTRYPOINT, CMD, HEALTHCHECK's CMD), which must be one."""
        text = self.command
        if self.keyword == "HEALTHCHECK":
            assert text.startswith("CMD "), f"line {self.line}: HEALTHCHECK without CMD"
            text = text[len("CMD ") :]
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
            f"line {self.line}: {self.keyword} is not in exec form (a JSON array of strings)"
        )
        return value


@dataclass
class Stage:
    name: str | None
    base: str
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"stage {self.name}: {len(found)} {keyword} instructions, expected one"
        return found[0]


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise AssertionError(f"{self.path.name} has no stage named {name!r}")

    def lineage(self, stage: Stage) -> list[Stage]:
        """The stage and the stages of this file it is built FROM, the first ancestor first."""
        names = {s.name: s for s in self.stages if s.name}
        chain = [stage]
        while chain[0].base in names:
            chain.insert(0, names[chain[0].base])
        return chain

    def effective(self, stage: Stage, keyword: str) -> Instruction | None:
        """The instruction in force in the image a stage makes (the last one, ancestors included)."""
        found = [i for s in self.lineage(stage) for i in s.instructions if i.keyword == keyword]
        return found[-1] if found else None

    def environment(self, stage: Stage, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with the ENV instructions of the stage's lineage applied ($NAME expanded)."""
        env = dict(base)
        for s in self.lineage(stage):
            for instruction in s.all("ENV"):
                for pair in shlex.split(instruction.arguments):
                    name, sep, value = pair.partition("=")
                    assert sep, f"line {instruction.line}: ENV {pair!r} is not NAME=value"
                    env[name] = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), value)
        return env


def parse(path: Path) -> Dockerfile:
    """Stages and their instructions; comment lines (parser directives and hadolint's included) dropped."""
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit between continuation lines too
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if continued:
            continue
        keyword, _, arguments = " ".join(pending).partition(" ")
        pending = []
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=words[0], line=start))
            continue
        assert stages, f"{path.name}:{start}: {keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword, arguments.strip(), start))
    assert not pending, f"{path.name} ends inside a continued line"
    return Dockerfile(path, stages)


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    negated: bool


def read_dockerignore(path: Path) -> list[_Pattern]:
    """.dockerignore's patterns, in order: Go's filepath.Match plus `**`, `!` re-including."""
    patterns = []
    for raw in path.read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        negated = text.startswith("!")
        text = os.path.normpath(text.lstrip("!")).lstrip("/")
        regex = ""
        i = 0
        while i < len(text):
            if text.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif text.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif text[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif text[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif text[i] == "[":
                end = text.index("]", i)
                regex, i = regex + text[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(text[i]), i + 1
        patterns.append(_Pattern(re.compile(regex + r"\Z"), negated))
    return patterns


def ignored(relative: str, patterns: Iterable[_Pattern]) -> bool:
    """Whether .dockerignore keeps this path (relative to the context) out: as the builder decides,
    the last pattern matching the path or one of its parent folders wins."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        if any(pattern.regex.match(prefix) for prefix in prefixes):
            excluded = not pattern.negated
    return excluded


def build_context(repository: Path, stage: Stage, destination: Path) -> Path:
    """Lay out in `destination` the stage's WORKDIR as its COPY instructions fill it from the build
    context (the repository less what .dockerignore leaves out); returns that folder."""
    patterns = read_dockerignore(repository / ".dockerignore")
    workdir = destination
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = destination / instruction.arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        if instruction.keyword != "COPY" or any(f.startswith("--from") for f in instruction.flags):
            continue
        *sources, target = shlex.split(instruction.command)
        into = workdir / target if not target.startswith("/") else destination / target.lstrip("/")
        for source in sources:
            origin = repository / source
            assert origin.exists(), f"line {instruction.line}: COPY {source}: not in the repository"
            assert not ignored(os.path.normpath(source), patterns), (
                f"line {instruction.line}: COPY {source}, which .dockerignore keeps out of the context"
            )
            files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
            for file in files:
                relative = file.relative_to(repository).as_posix()
                if ignored(relative, patterns):
                    continue
                # COPY dir/ x/ copies the folder's contents into x/; COPY file ./ keeps the file's name.
                inside = file.relative_to(origin) if origin.is_dir() else Path(origin.name)
                copy_to = into / inside
                copy_to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, copy_to)
    return workdir
