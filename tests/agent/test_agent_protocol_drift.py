"""The committed generated code matches protos/; the protocol package, the agent and the control plane
each import without the others' code or dependencies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from agent.checks import CHECK_MODULES
from traxo_protocol.capabilities import CAPABILITY_FOR_TYPE, KNOWN_CAPABILITIES

ROOT = Path(__file__).resolve().parents[2]
# Only this part of traxo_protocol/ is generated; its __init__.py and capabilities.py are not.
GENERATED = ROOT / "traxo_protocol" / "traxo"
# Tool versions are stamped into the output; a newer grpcio-tools alone is not drift.
_VERSION_STAMPS = re.compile(
    r"^(# Protobuf Python Version: .*|GRPC_GENERATED_VERSION = .*|    \d+,)$", re.MULTILINE
)


def _normalized(path: Path) -> str:
    return _VERSION_STAMPS.sub("<version>", path.read_text())


def _files(root: Path) -> list[Path]:
    files = (p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(p.relative_to(root) for p in files)


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "traxo_protocol" / "traxo"
    fresh_files = _files(fresh)
    assert _files(GENERATED) == fresh_files, "run scripts/gen_protos.py and commit traxo_protocol/"
    for name in fresh_files:
        assert _normalized(GENERATED / name) == _normalized(fresh / name), (
            f"traxo_protocol/traxo/{name} drifted from protos/: run scripts/gen_protos.py"
        )


def test_the_protocol_imports_without_the_agent_or_the_control_plane() -> None:
    code = (
        "import sys\n"
        "from traxo_protocol.traxo.agent.v1 import agent_pb2, agent_pb2_grpc\n"
        "import traxo_protocol.capabilities\n"
        "others = {'agent', 'control_plane', 'aiohttp', 'prometheus_client', 'sqlalchemy'}\n"
        "assert not others & set(sys.modules), others & set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_agent_does_not_import_control_plane_dependencies() -> None:
    code = (
        "import sys\n"
        "import agent.cli, agent.runtime, agent.checks.http, agent.checks.tcp\n"
        "banned = {'fastapi', 'sqlalchemy', 'pydantic_settings', 'control_plane'} & set(sys.modules)\n"
        "assert not banned, banned\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_control_plane_does_not_import_the_agent() -> None:
    code = (
        "import sys\n"
        "import control_plane.commands.main, control_plane.api.app, control_plane.agents.endpoint\n"
        "assert 'agent' not in sys.modules, [m for m in sys.modules if m.split('.')[0] == 'agent']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_check_type_has_one_capability_on_both_sides() -> None:
    assert set(CHECK_MODULES) == set(CAPABILITY_FOR_TYPE)
    assert {capability for _, capability in CHECK_MODULES.values()} == KNOWN_CAPABILITIES
