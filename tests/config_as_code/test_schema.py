"""The JSON Schema shipped for editors is the one the file's models generate, and the example file
in docs/ is valid by both, and applies."""

from __future__ import annotations

import json

import jsonschema
import yaml

from control_plane.config_as_code.loader import load_file
from control_plane.config_as_code.schema import SCHEMA_PATH, schema_text
from tests.config_as_code.support import apply

EXAMPLE_ENV = {
    "SLACK_WEBHOOK_URL": "https://127.0.0.1:9/services/T000/B000/example-secret",
    "PAGERDUTY_ROUTING_KEY": "abcdefghijklmnopqrstuvwxyz012345",
    "STATUS_API_TOKEN": "example-token",
}


class _TimestampsAsText(yaml.SafeLoader):
    """YAML as traxo reads it: timestamps stay the strings they are written as."""

    yaml_implicit_resolvers = {
        first: [resolver for resolver in resolvers if resolver[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def test_the_shipped_schema_is_what_the_models_generate():
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "traxo.schema.json drifted from the models: python -m control_plane.config_as_code.schema"
    )


def test_the_schema_refuses_what_the_loader_refuses():
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)

    assert not list(validator.iter_errors({"version": 1, "monitors": [{"name": "a", "type": "HTTP"}]}))
    errors = list(
        validator.iter_errors({"version": 1, "monitors": [{"name": "a", "type": "HTTP", "colour": 1}]})
    )
    assert [error.validator for error in errors] == ["additionalProperties"]


def test_the_example_file_is_valid(repo_root):
    example = repo_root / "docs" / "examples" / "traxo.yaml"
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(
        yaml.load(example.read_text(), Loader=_TimestampsAsText)
    )

    loaded = load_file(example, EXAMPLE_ENV)

    assert [monitor.name for monitor in loaded.spec.monitors][:2] == ["Database", "Production API"]


def test_the_example_file_applies(server, org, repo_root):
    example = repo_root / "docs" / "examples" / "traxo.yaml"

    first = apply(server, org, example, env=EXAMPLE_ENV)
    second = apply(server, org, example, env=EXAMPLE_ENV)

    assert first.exit_code == 0, first.output
    assert "Applied: 10 created, 0 updated, 0 deleted." in first.stdout
    assert "No changes" in second.stdout
