"""docs/event.schema.json is adapters.events.schema() written out: this fails when the two drift apart."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.events import parse, schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "event.schema.json"
REGENERATE = (
    '.venv/bin/python -c "import json; from adapters.events import schema; '
    "open('docs/event.schema.json', 'w').write(json.dumps(schema(), indent=2, sort_keys=True) + '\\n')\""
)


def test_the_schema_file_is_what_schema_gives():
    expected = json.dumps(schema(), indent=2, sort_keys=True) + "\n"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected, (
        f"docs/event.schema.json is stale: {REGENERATE}"
    )


def test_the_schema_describes_the_envelope():
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["required"] == ["system", "table", "key"]
    assert document["additionalProperties"] is False
    assert set(document["properties"]) == {
        "version",
        "id",
        "system",
        "table",
        "key",
        "op",
        "occurred_at",
        "published_at",
        "since",
        "fields",
        "payload",
        "source",
    }
    assert document["properties"]["op"]["enum"] == ["upsert", "delete", "rescan"]


def test_the_documented_example_events_are_valid():
    # the examples of docs/events.md, in the order they appear there
    text = (SCHEMA_FILE.parent / "events.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    assert blocks, "docs/events.md shows no JSON examples"
    for block in blocks:
        body = json.loads(block)
        for item in body if isinstance(body, list) else [body]:
            if "system" in item:  # an envelope (other blocks show what a sender posts)
                parse(item)
