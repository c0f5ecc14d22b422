"""The JSON Schema of traxo.yaml for editors, generated from the file's models and shipped beside
them; `python -m control_plane.config_as_code.schema` writes it again after a model changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from control_plane.config_as_code.model import TraxoFile

SCHEMA_PATH = Path(__file__).with_name("traxo.schema.json")


def file_schema() -> dict[str, Any]:
    schema = TraxoFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(file_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}")
