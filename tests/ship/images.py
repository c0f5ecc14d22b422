"""An image's install steps run on this machine: its build stage's pip steps in a fresh venv, from a
build context laid out as its COPY instructions and .dockerignore make it, and its runtime's
ENV, ENTRYPOINT, CMD and HEALTHCHECK with the image's paths mapped to folders of the test's."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.processes import command_env
from tests.ship.dockerfile import Dockerfile, Stage, build_context, parse

__all__ = ["REPOSITORY", "EmulatedImage", "emulate", "install"]

REPOSITORY = Path(__file__).resolve().parents[2]
_VENV = re.compile(r"^python3? -m venv (\S+)$")


@dataclass(frozen=True)
class EmulatedImage:
    dockerfile: Dockerfile
    stage: Stage  # the build target
    venv: Path  # stands for the image's venv
    workdir: Path  # stands for the runtime's WORKDIR
    replacements: dict[str, str]  # image path -> this machine's
    build: Stage  # the stage that makes the venv
    root: Path  # stands for the image's /

    def substitute(self, text: str) -> str:
        for image_path, here in sorted(self.replacements.items(), key=lambda item: -len(item[0])):
            text = text.replace(image_path, here)
        return text

    def env(self, stage: Stage | None = None, **extra: str) -> dict[str, str]:
        """The image's environment (ENV of the target's lineage) over this machine's, TRAXO_* left out."""
        # Nothing of this checkout's or of the test run's Python: only what the image would have.
        host = {k: v for k, v in command_env(None).items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        image_env = self.dockerfile.environment(stage or self.stage, host)
        return {**{name: self.substitute(value) for name, value in image_env.items()}, **extra}

    def exec_form(self, keyword: str) -> list[str]:
        instruction = self.dockerfile.effective(self.stage, keyword)
        where = f"{self.dockerfile.path.name}, stage {self.stage.name}"
        assert instruction is not None, f"{where}: no {keyword} in force"
        return [self.substitute(word) for word in instruction.exec_form()]

    def run(self, command: str, cwd: Path, timeout: float = 240) -> None:
        """A RUN step's shell command, the image's paths mapped to ours. pip compiles no bytecode
        here (an image's build would): on a 2-core machine compiling every installed module was a
        large part of the two installs' time, and the interpreter compiles what it imports anyway.
        (pip reads PIP_NO_COMPILE the other way round: "0" is --no-compile, "1" compiles.)"""
        result = subprocess.run(
            ["/bin/sh", "-c", self.substitute(command)],
            cwd=cwd,
            env=self.env(PIP_NO_COMPILE="0"),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"`{command}` failed:\n{result.stdout}\n{result.stderr}"


def emulate(dockerfile_path: Path, target: str, root: Path) -> EmulatedImage:
    """The image the target builds, its paths mapped under `root` (nothing is run yet: install())."""
    dockerfile = parse(dockerfile_path)
    stage = dockerfile.stage(target)
    build, venv_path = _build_stage(dockerfile, stage)
    runtime_workdir = dockerfile.effective(stage, "WORKDIR")
    replacements = {venv_path: str(root / "venv")}
    if runtime_workdir is not None:
        replacements[runtime_workdir.arguments] = str(root / "workdir")
    return EmulatedImage(dockerfile, stage, root / "venv", root / "workdir", replacements, build, root)


def install(image: EmulatedImage) -> None:
    """Run the build stage's steps: a fresh venv where it makes its venv, then its pip steps in a
    build context laid out as its COPY instructions and .dockerignore make it."""
    build = image.build
    image.workdir.mkdir(parents=True, exist_ok=True)
    context = build_context(REPOSITORY, build, image.root / "build")
    steps = [run.command for run in build.all("RUN")]
    venvs = [m.group(1) for step in steps if (m := _VENV.match(step))]
    expected = next(path for path, here in image.replacements.items() if here == str(image.venv))
    assert venvs == [expected], f"{build.name}: one `python -m venv {expected}` expected, got {venvs}"
    subprocess.run([sys.executable, "-m", "venv", str(image.venv)], check=True, timeout=60)
    for step in steps:
        if _VENV.match(step):
            continue
        assert re.search(r"\bpip install\b", step), (
            f"{build.name}: `{step}` is a step this test cannot run outside an engine "
            "(teach tests/ship/images.py)"
        )
        image.run(step, cwd=context)


def _build_stage(dockerfile: Dockerfile, stage: Stage) -> tuple[Stage, str]:
    """The stage whose venv the target copies (COPY --from), and the venv's path."""
    copies = [
        (flag.split("=", 1)[1], instruction)
        for s in dockerfile.lineage(stage)
        for instruction in s.all("COPY")
        for flag in instruction.flags
        if flag.startswith("--from=")
    ]
    name = dockerfile.path.name
    assert len(copies) == 1, f"{name}: {stage.name} should COPY --from one build stage"
    build_name, copy = copies[0]
    source, destination = copy.command.split()
    assert source == destination, f"line {copy.line}: the venv must keep its path (its scripts name it)"
    build = dockerfile.stage(build_name)
    assert dockerfile.lineage(stage)[0].base == build.base, (
        f"{name}: the build stage and the runtime must share the base image (the venv's interpreter)"
    )
    return build, source.rstrip("/")
