"""Config as code: `traxo apply` and `traxo export` (docs/config-as-code.md).

A client of the public API, like any user's script: it reads the organization of a key through
the API, plans the changes that make it match a traxo.yaml, and makes them through the API. It
imports neither the API nor the database layers (an import-linter contract holds it to that).

    model     the file's pydantic models (and so its JSON Schema, traxo.schema.json)
    loader    YAML with lines, ${ENV_VAR}s, and every problem of a file in one report
    resources each kind in the file's terms, its defaults, comparisons and API bodies
    secrets   alert channels' masked secrets, compared by their masks
    state     what the organization holds, read through the API
    planner   the plan: creates, updates, deletes, in an order references allow
    executor  the plan carried out, stopping at the first refusal
    export    the organization as a file
"""
