"""The committed generated code matches protos/; the control plane can import it alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "agent" / "protocol"
# Tool versions are stamped into the output; a newer grpcio-tools alone is not drift.
_VERSION_STAMPS = re.compile(
    r"^(# Protobuf Python Version: .*|GRPC_GENERATED_VERSION = .*|    \d+,)$", re.MULTILINE
)


def _normalized(path: Path) -> str:
    return _VERSION_STAMPS.sub("<version>", path.read_text())


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "agent" / "protocol"
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed_files = sorted(
        p.relative_to(GENERATED) for p in GENERATED.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert committed_files == fresh_files, "run scripts/gen_protos.py and commit agent/protocol/"
    for name in fresh_files:
        assert _normalized(GENERATED / name) == _normalized(fresh / name), (
            f"agent/protocol/{name} drifted from protos/: run scripts/gen_protos.py"
        )


def test_the_protocol_imports_without_the_agent_runtime() -> None:
    code = (
        "import sys\n"
        "from agent.protocol.traxo.agent.v1 import agent_pb2, agent_pb2_grpc\n"
        "heavy = {'aiohttp', 'prometheus_client', 'agent.runtime', 'agent.checks'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
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
