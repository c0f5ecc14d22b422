#!/usr/bin/env python3
"""Regenerate traxo_protocol/traxo/ from protos/ (grpcio-tools). Run from anywhere: scripts/gen_protos.py.

The generated modules import each other as `traxo_protocol.traxo.agent.v1...`, so the agent and the
control plane both import them by that one fixed path. `traxo_protocol` needs only protobuf and grpcio:
neither process pulls in the other's package or dependencies through it. Its top-level `__init__.py`
and `capabilities.py` are written by hand; everything under `traxo_protocol/traxo/` is generated.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("traxo_protocol")
PACKAGE = "traxo_protocol"
INIT_DOC = '"""Generated from protos/ by scripts/gen_protos.py; do not edit."""\n'


def generate(out_root: Path) -> list[Path]:
    """Writes the generated modules under out_root/traxo_protocol and returns the files written."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir = out_root / PACKAGE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for proto in protos:
        parts = Path(proto).parent.parts
        # Every directory level below the package becomes a package so the fixed import path
        # resolves (the package's own __init__.py is hand-written).
        for depth in range(1, len(parts) + 1):
            init = out_dir.joinpath(*parts[:depth], "__init__.py")
            init.write_text(INIT_DOC)
            written.append(init)
        stem = Path(proto).with_suffix("").as_posix()
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            path = out_dir / f"{stem}{suffix}"
            path.write_text(_fix_imports(path.read_text(), protos))
            written.append(path)
    return sorted(set(written))


def _fix_imports(source: str, protos: list[str]) -> str:
    # protoc writes `from traxo.agent.v1 import agent_pb2`; anchor it under traxo_protocol.
    for proto in protos:
        module = ".".join(Path(proto).parent.parts)
        source = re.sub(
            rf"^from {re.escape(module)} import",
            f"from {PACKAGE}.{module} import",
            source,
            flags=re.MULTILINE,
        )
    return source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="root to write traxo_protocol/ under")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
