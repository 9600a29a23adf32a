"""The configuration: YAML with lines, the mapping file's checks (file, line and key of each error), settings.

Most tests load a small YAML snippet and assert the exact problems: the line, the key path and the message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent, indent

import pytest
import yaml
from pydantic import ValidationError

from config.errors import ConfigError, Problem
from config.mappings import Configuration, load_file, load_text
from config.settings import Settings
from config.yamlfile import expand, parse
from domain import transforms as tf
from domain.filters import Op
from domain.mapping import UNSET, ConflictKind, DeletionPolicy, NewKeys

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo" / "mappings.yaml"
SOURCE = "test.yaml"

# Every snippet built by `mapping_file` starts with these seven lines; the body starts on line 8.
HEAD = """\
systems:
  erp: {url: "sqlite://"}
  crm: {url: "sqlite://"}
mappings:
  M:
    erp: {table: a, key: id}
    crm: {table: b, key: id}
"""
BODY = 8


def mapping_file(body: str, head: str = HEAD) -> str:
    """The head and a body of keys of mapping M (written flush left; indented here)."""
    return head + indent(dedent(body), "    ")


def load(text: str, environ: dict[str, str] | None = None) -> Configuration:
    return load_text(text, SOURCE, environ or {})


def problems(text: str, environ: dict[str, str] | None = None) -> list[tuple[int | None, str, str]]:
    """(line, dotted key path, message) of every problem that loading `text` reports."""
    with pytest.raises(ConfigError) as caught:
        load(text, environ)
    assert caught.value.source == SOURCE
    return [(p.line, ".".join(str(part) for part in p.path), p.message) for p in caught.value.problems]


def problem(text: str, environ: dict[str, str] | None = None) -> tuple[int | None, str, str]:
    """The one problem that loading `text` reports."""
    found = problems(text, environ)
    assert len(found) == 1, found
    return found[0]


def quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar (escapes for control characters and the rest)."""
    return yaml.safe_dump(text, default_style='"', allow_unicode=True, width=1_000_000).strip()


# --- yamlfile: lines, duplicates, variables -------------------------------------------------------


def test_parse_keeps_the_line_of_every_key_and_item():
    document = parse(
        dedent(
            """\
            # a comment
            top:
              inner: 1
              flow: {a: 1, b: 2}
              items:
                - first
                -
                  deep: x
            "quoted key": 2
            7: seven
            """
        ),
        SOURCE,
    )
    assert document.line(()) == 2
    assert document.line(("top",)) == 2
    assert document.line(("top", "inner")) == 3
    assert document.line(("top", "flow", "b")) == 4
    assert document.line(("top", "items", 0)) == 6
    assert document.line(("top", "items", 1)) == 8  # an item is where its content starts
    assert document.line(("top", "items", 1, "deep")) == 8
    assert document.line(("quoted key",)) == 9
    assert document.line((7,)) == 10  # an integer key is an int in the data and in error locations
    # a path the document lacks is placed at its longest known prefix
    assert document.line(("top", "items", 1, "deep", "missing", 3)) == 8
    assert document.line(("nowhere",)) == 2


def test_duplicate_keys_are_rejected_naming_both_lines():
    text = "a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\n"
    with pytest.raises(ConfigError) as caught:
        parse(text, SOURCE)
    (found,) = caught.value.problems
    assert found.line == 5
    assert "duplicate key 'x' (first at line 3)" in found.message
    assert str(caught.value).startswith("test.yaml:5: invalid YAML: duplicate key 'x' (first at line 3)")


def test_duplicate_keys_in_a_flow_mapping_and_at_the_top_are_rejected():
    with pytest.raises(ConfigError, match=r"test.yaml:2: .*duplicate key 'k' \(first at line 2\)"):
        parse("a: 1\nb: {k: 1, k: 2}\n", SOURCE)
    with pytest.raises(ConfigError, match=r"test.yaml:4: .*duplicate key 'systems' \(first at line 1\)"):
        parse("systems: 1\nmappings: 2\n\nsystems: 3\n", SOURCE)


def test_keys_of_different_types_are_not_duplicates():
    assert parse('1: int\n"1": text\n', SOURCE).data == {1: "int", "1": "text"}


def test_merge_keys_merge_and_explicit_keys_override_them():
    document = parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", SOURCE)
    assert document.data["use"] == {"x": 1, "y": 3}
    with pytest.raises(ConfigError, match="duplicate key 'y'"):
        parse("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 3\n  y: 4\n", SOURCE)


@pytest.mark.parametrize(
    "text",
    [
        "? [a, b]\n: 1\n",
        "systems:\n  ? {a: 1}\n  : 1\n",
        "a: [1, 2\nb: 3\n",
        "a: b: c\n",
        "a:\n\tb: 1\n",
        "a: !!python/object:os.system {}\n",
        "a: \x00\n",
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
        "- *nothing\n",
    ],
    ids=[
        "list-key",
        "map-key",
        "unclosed",
        "nested-colon",
        "tab",
        "python-tag",
        "nul",
        "deep-list",
        "deep-map",
        "alias",
    ],
)
def test_broken_yaml_is_a_config_error_never_a_crash(text):
    with pytest.raises(ConfigError) as caught:
        load(text)
    assert all(p.message.startswith("invalid YAML") for p in caught.value.problems)
    assert str(caught.value).startswith("test.yaml")


def test_broken_yaml_names_the_line():
    ((line, path, message),) = problems(mapping_file("fields:\n  - {erp: x, crm: y\n"))
    assert line == BODY + 2
    assert path == ""
    assert message.startswith("invalid YAML:")


def test_an_alias_of_its_own_container_does_not_hang_or_crash():
    found = problems("a: &x [*x]\n")
    assert (1, "a", "unknown key") in found


def test_expand_replaces_variables_and_defaults():
    env = {"HOST": "db.example", "EMPTY": "", "PORT": "5432"}
    assert expand("pg://${HOST}:${PORT}/x", env) == "pg://db.example:5432/x"
    assert expand("${MISSING:-fallback}/${HOST:-unused}", env) == "fallback/db.example"
    assert expand("${MISSING:-}", env) == ""
    assert expand("${MISSING:-a b/c}", env) == "a b/c"
    # the default stands in for a variable that is not set (docs/mapping-file.md §9); set and empty is empty
    assert expand("${EMPTY:-default}", env) == ""
    assert expand("[${EMPTY}]", env) == "[]"
    # only ${NAME} is a variable
    assert expand("$HOST ${1X} ${} $${HOST}", env) == "$HOST ${1X} ${} $db.example"


def test_expand_of_an_unset_variable_without_default_is_an_error():
    with pytest.raises(KeyError, match=r"environment variable NOPE is not set \(write \$\{NOPE:-default\}"):
        expand("x-${NOPE}-y", {})


def test_expand_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("TANDEM_TEST_VARIABLE", "from-env")
    assert expand("${TANDEM_TEST_VARIABLE}") == "from-env"


def test_system_urls_expand_variables_and_a_missing_one_is_located():
    text = dedent(
        """\
        systems:
          erp: {url: "sqlite:///${DATA:-/tmp}/erp.db"}
          crm:
            url: "postgresql://${PGHOST}/crm"
        mappings:
          M:
            erp: {table: a, key: id}
            crm: {table: "${NOT_EXPANDED}", key: id}
            fields: [{erp: x, crm: y}]
        """
    )
    loaded = load(text, {"PGHOST": "db"})
    assert loaded.systems["erp"].url == "sqlite:////tmp/erp.db"
    assert loaded.systems["crm"].url == "postgresql://db/crm"
    assert loaded.mappings["M"].side("crm").table == "${NOT_EXPANDED}"  # only URLs expand
    assert problem(text) == (
        4,
        "systems.crm.url",
        "environment variable PGHOST is not set (write ${PGHOST:-default} for a default)",
    )


# --- the demo file and load_file ------------------------------------------------------------------


def test_the_demo_mapping_file_loads():
    loaded = load_file(DEMO, {})
    assert loaded.source == str(DEMO)
    assert set(loaded.systems) == {"erp", "crm"}
    assert loaded.systems["erp"].url == "sqlite:///.tandem/demo/erp.db"
    names = [m.name for m in loaded.mappings]
    assert names == ["CURRENCY", "SALESPEOPLE", "PAYMENT TERMS", "CUSTOMER", "CONTACT", "ITEM"]
    customer = loaded.mappings["CUSTOMER"]
    assert customer.direction == "both"
    assert customer.conflict.kind is ConflictKind.LATEST
    assert customer.deletion is DeletionPolicy.FAIL
    assert customer.depends_on == ("CURRENCY", "SALESPEOPLE", "PAYMENT TERMS")
    assert customer.side("erp").new_keys is NewKeys.UUID
    assert customer.side("erp").key_prefix == "C-"
    assert [c.op for c in customer.side("crm").filter.conditions] == [Op.EQ, Op.EQ]
    constant = next(f for f in customer.fields if f.is_constant)
    assert (dict(constant.columns), constant.constant, constant.sources) == (
        {"crm": "customertypecode"},
        3,
        frozenset({"erp"}),
    )
    owner = next(f for f in customer.fields if f.lookup == "SALESPEOPLE")
    assert owner.blank_if_uncoupled
    assert loaded.mappings["SALESPEOPLE"].direction == "crm->erp"
    code = next(f for f in loaded.mappings["SALESPEOPLE"].fields if f.columns.get("erp") == "code")
    assert code.chain("erp").apply("jane.doe@example.com") == "JANE.DOE"
    assert [[m.name for m in wave] for wave in loaded.mappings.waves()][-1] == ["CONTACT"]
    assert loaded.line("mappings", "CUSTOMER") == 50
    assert (
        loaded.problem("bad", "mappings", "ITEM", "crm")
        .describe(loaded.source)
        .endswith("mappings.yaml:123: mappings.ITEM.crm: bad")
    )


def test_the_demo_file_expands_tandem_home():
    loaded = load_file(DEMO, {"TANDEM_HOME": "/srv/tandem"})
    assert loaded.systems["crm"].url == "sqlite:////srv/tandem/demo/crm.db"


def test_load_file_reports_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: no such file"):
        load_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_file(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"systems: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"binary.yaml: cannot read the file"):
        load_file(binary)


def test_load_file_names_the_file_in_every_problem(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(mapping_file("fields:\n  - {erp: x, crm: y, colour: red}\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert caught.value.source == str(path)
    assert str(caught.value) == (
        f"{path}:9: mappings.M.fields.0.colour: unknown key: not a field setting nor a system here (crm, erp)"
    )


def test_problem_describe_without_line_or_path():
    assert Problem("bad").describe("f.yaml") == "f.yaml: bad"
    assert Problem("bad", ("a", 0)).describe("f.yaml") == "f.yaml: a.0: bad"
    assert Problem("bad", (), 3).describe("f.yaml") == "f.yaml:3: bad"


# --- the top level --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n", "42\n", "null\n"])
def test_a_file_that_is_not_a_mapping_is_refused(text):
    assert problem(text) == (1, "", "the file must be a mapping with `systems` and `mappings`")


def test_a_minimal_file_loads_with_the_defaults():
    loaded = load(mapping_file("fields:\n  - {erp: x, crm: y}\n"))
    mapping = loaded.mappings["M"]
    assert mapping.systems == ("crm", "erp")  # sides are sorted by system
    assert mapping.direction == "both"
    assert mapping.sync_only_coupled is True
    assert mapping.conflict.kind is ConflictKind.FAIL
    assert mapping.deletion is DeletionPolicy.FAIL
    assert mapping.skip_after == 2
    (fmap,) = mapping.fields
    assert dict(fmap.columns) == {"erp": "x", "crm": "y"}
    assert fmap.name == "erp.x ↔ crm.y"
    assert fmap.sources == {"erp", "crm"}
    assert fmap.constant is UNSET
    assert fmap.match is None


def test_required_keys_are_named():
    assert problems("systems:\n  erp: {url: x}\n  crm: {url: y}\n") == [
        (1, "mappings", "required key is missing")
    ]
    assert problem(mapping_file("direction: both\n")) == (5, "mappings.M.fields", "required key is missing")
    assert problem(
        HEAD.replace("{table: a, key: id}", "{table: a}") + "    fields: [{erp: x, crm: y}]\n"
    ) == (
        6,
        "mappings.M.erp.key",
        "required key is missing",
    )


def test_too_few_systems_or_mappings_or_fields():
    line, path, message = problems("systems:\n  erp: {url: x}\nmappings: {}\n")[0]
    assert (line, path) == (1, "systems")
    assert "at least 2" in message
    assert problems("systems:\n  erp: {url: x}\n  crm: {url: y}\nmappings: {}\n")[0][:2] == (4, "mappings")
    line, path, message = problem(mapping_file("fields: []\n"))
    assert (line, path) == (BODY, "mappings.M.fields")
    assert "at least 1" in message


def test_wrong_value_types_are_located():
    assert problem("version: 2\n" + HEAD + "    fields: [{erp: x, crm: y}]\n")[:2] == (1, "version")
    assert problem(mapping_file("skip_after: 0\nfields: [{erp: x, crm: y}]\n"))[:2] == (
        BODY,
        "mappings.M.skip_after",
    )
    assert problem(mapping_file("sync_only_coupled: maybe\nfields: [{erp: x, crm: y}]\n"))[:2] == (
        BODY,
        "mappings.M.sync_only_coupled",
    )
    assert problem(mapping_file("depends_on: OTHER\nfields: [{erp: x, crm: y}]\n"))[:2] == (
        BODY,
        "mappings.M.depends_on",
    )
    line, path, message = problem(mapping_file("deletion: nuke\nfields: [{erp: x, crm: y}]\n"))
    assert (line, path) == (BODY, "mappings.M.deletion")
    assert "'fail', 'uncouple', 'restore' or 'propagate'" in message


# --- unknown keys at every level ------------------------------------------------------------------

UNKNOWN_KEYS = [
    ("top", HEAD + "    fields: [{erp: x, crm: y}]\nextra: 1\n", 9, "extra", "unknown key"),
    (
        "system",
        HEAD.replace('erp: {url: "sqlite://"}', 'erp: {url: "sqlite://", password: x}')
        + "    fields: [{erp: x, crm: y}]\n",
        2,
        "systems.erp.password",
        "unknown key",
    ),
    (
        "mapping",
        mapping_file("fields: [{erp: x, crm: y}]\ncolour: red\n"),
        BODY + 1,
        "mappings.M.colour",
        "unknown key: neither a mapping setting nor a system (systems: erp, crm)",
    ),
    (
        "side",
        HEAD.replace("{table: b, key: id}", "{table: b, key: id, colour: red}")
        + "    fields: [{erp: x, crm: y}]\n",
        7,
        "mappings.M.crm.colour",
        "unknown key",
    ),
    (
        "condition",
        HEAD.replace("{table: b, key: id}", "{table: b, key: id, filter: [{field: f, opp: eq}]}")
        + "    fields: [{erp: x, crm: y}]\n",
        7,
        "mappings.M.crm.filter.0.opp",
        "unknown key",
    ),
    (
        "template",
        mapping_file("fields: [{erp: x, crm: y}]\n").replace(
            "{table: a, key: id}",
            "\n      table: a\n      key: id\n      defaults:\n        - {values: {}, colour: 1}",
        ),
        10,
        "mappings.M.erp.defaults.0.colour",
        "unknown key",
    ),
    (
        "field",
        mapping_file("fields:\n  - {erp: x, crm: y}\n  - {erp: z, crm: w, colour: red}\n"),
        BODY + 2,
        "mappings.M.fields.1.colour",
        "unknown key: not a field setting nor a system here (crm, erp)",
    ),
    (
        "match",
        mapping_file("fields:\n  - erp: x\n    crm: y\n    match: {priority: 1, fuzzy: true}\n"),
        BODY + 3,
        "mappings.M.fields.0.match.fuzzy",
        "unknown key",
    ),
    (
        "transform argument",
        mapping_file(
            "fields:\n  - erp: x\n    crm: y\n    transforms:\n      crm:\n        - substring: {begin: 1}\n"
        ),
        BODY + 5,
        "mappings.M.fields.0.transforms.crm.0.substring.begin",
        "unknown key",
    ),
    (
        "transform name",
        mapping_file("fields:\n  - erp: x\n    crm: y\n    transforms:\n      crm:\n        - shout: 1\n"),
        BODY + 5,
        "mappings.M.fields.0.transforms.crm.0.shout",
        "unknown key",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "path", "message"), [u[1:] for u in UNKNOWN_KEYS], ids=[u[0] for u in UNKNOWN_KEYS]
)
def test_unknown_keys_are_rejected_at_every_level(text, line, path, message):
    assert (line, path, message) in problems(text)


def test_every_problem_is_reported_at_once():
    text = mapping_file(
        """\
        colour: red
        direction: sideways
        fields:
          - {erp: x, crm: y, size: 1}
        """
    )
    found = problems(text)
    assert (
        BODY,
        "mappings.M.colour",
        "unknown key: neither a mapping setting nor a system (systems: erp, crm)",
    ) in found
    assert any(p[:2] == (BODY + 1, "mappings.M.direction") for p in found)


# --- systems of a mapping -------------------------------------------------------------------------


def test_a_mapping_naming_an_unknown_system():
    text = mapping_file("hr: {table: c, key: id}\nfields: [{erp: x, crm: y}]\n")
    assert problem(text) == (
        BODY,
        "mappings.M.hr",
        "unknown key: neither a mapping setting nor a system (systems: erp, crm)",
    )


def test_a_mapping_with_only_one_system():
    text = HEAD.replace("    crm: {table: b, key: id}\n", "") + "    fields: [{erp: x, crm: y}]\n"
    assert problem(text) == (5, "mappings.M", "a mapping pairs exactly two systems; found 1")


def test_a_mapping_with_three_systems():
    head = HEAD.replace(
        '  crm: {url: "sqlite://"}\n', '  crm: {url: "sqlite://"}\n  hr: {url: "sqlite://"}\n'
    )
    text = head + "    hr: {table: c, key: id}\n    fields: [{erp: x, crm: y}]\n"
    assert problem(text) == (6, "mappings.M", "a mapping pairs exactly two systems; found 3")


def test_a_field_naming_a_system_outside_its_mapping():
    head = HEAD.replace(
        '  crm: {url: "sqlite://"}\n', '  crm: {url: "sqlite://"}\n  hr: {url: "sqlite://"}\n'
    )
    text = head + "    fields:\n      - {erp: x, hr: y}\n"
    assert problems(text) == [
        (10, "mappings.M.fields.0.hr", "unknown key: not a field setting nor a system here (crm, erp)"),
        (10, "mappings.M.fields.0", "a field mapping names a column for crm and erp"),
    ]


def test_a_field_with_one_column_and_no_constant():
    assert problem(mapping_file("fields:\n  - {erp: x}\n")) == (
        BODY + 1,
        "mappings.M.fields.0",
        "a field mapping names a column for crm and erp",
    )


# --- directions -----------------------------------------------------------------------------------

DIRECTION_MESSAGE = "direction must be `both` or `<system>-><system>` with crm and erp"


@pytest.mark.parametrize(
    "direction",
    [
        "erp=>crm",
        "erp->erp",
        "->crm",
        "erp->",
        "erp->sap",
        "both ways",
        "ERP->CRM",
        "erp->crm->erp",
        "erp - > crm",
        "<-",
    ],
)
def test_bad_mapping_directions_are_located(direction):
    text = mapping_file(f"direction: {quoted(direction)}\nfields: [{{erp: x, crm: y}}]\n")
    assert problem(text) == (BODY, "mappings.M.direction", DIRECTION_MESSAGE)


def test_an_empty_direction_is_refused():
    line, path, message = problem(mapping_file('direction: ""\nfields: [{erp: x, crm: y}]\n'))
    assert (line, path) == (BODY, "mappings.M.direction")
    assert "at least 1 character" in message


@pytest.mark.parametrize(
    ("direction", "sources"), [("erp->crm", {"erp"}), (" crm -> erp ", {"crm"}), ("both", {"erp", "crm"})]
)
def test_good_directions(direction, sources):
    loaded = load(mapping_file(f"direction: {quoted(direction)}\nfields: [{{erp: x, crm: y}}]\n"))
    assert loaded.mappings["M"].sources == sources
    assert loaded.mappings["M"].fields[0].sources == sources


def test_a_field_flowing_in_a_direction_its_mapping_does_not_allow():
    text = mapping_file(
        """\
        direction: erp->crm
        fields:
          - {erp: a, crm: b}
          - {erp: x, crm: y, direction: crm->erp}
          - {erp: p, crm: q, direction: both}
        """
    )
    message = "the field flows in a direction that its mapping does not allow"
    assert problems(text) == [
        (BODY + 3, "mappings.M.fields.1.direction", message),
        (BODY + 4, "mappings.M.fields.2.direction", message),
    ]


def test_a_field_direction_narrows_a_two_way_mapping_and_bad_ones_are_located():
    loaded = load(mapping_file("fields:\n  - {erp: x, crm: y, direction: crm->erp}\n"))
    assert loaded.mappings["M"].fields[0].sources == {"crm"}
    text = mapping_file("fields:\n  - erp: x\n    crm: y\n    direction: erp<-crm\n")
    assert problem(text) == (BODY + 3, "mappings.M.fields.0.direction", DIRECTION_MESSAGE)


# --- constants ------------------------------------------------------------------------------------


def test_a_constant_goes_into_one_column_of_a_system_the_mapping_flows_into():
    loaded = load(
        mapping_file(
            "fields:\n  - {erp: x, crm: y}\n  - {crm: kind, constant: 3}\n  - {erp: note, constant: null}\n"
        )
    )
    into_crm, into_erp = loaded.mappings["M"].fields[1:]
    assert (into_crm.constant, into_crm.sources, into_crm.is_constant) == (3, frozenset({"erp"}), True)
    assert (into_erp.constant, into_erp.sources, into_erp.is_constant) == (None, frozenset({"crm"}), True)


def test_a_constant_with_two_columns():
    assert problem(mapping_file("fields:\n  - {erp: x, crm: y, constant: 3}\n")) == (
        BODY + 1,
        "mappings.M.fields.0",
        "a constant goes into one system's column: name only that one",
    )


def test_a_constant_without_a_column():
    assert problem(mapping_file("fields:\n  - {erp: x, crm: y}\n  - {constant: 3}\n")) == (
        BODY + 2,
        "mappings.M.fields.1",
        "a field mapping names one system's column with `constant`",
    )


def test_a_constant_into_a_system_the_mapping_does_not_flow_into():
    text = mapping_file(
        "direction: crm->erp\nfields:\n  - {erp: x, crm: y}\n  - {crm: kind,\n     constant: 3}\n"
    )
    assert problem(text) == (
        BODY + 4,
        "mappings.M.fields.1.constant",
        "a constant into crm needs the mapping to flow into crm",
    )


def test_a_constant_cannot_be_a_match_field_and_must_be_a_scalar():
    assert problem(
        mapping_file("fields:\n  - {erp: x, crm: y}\n  - {crm: k, constant: 1, match: true}\n")
    ) == (
        BODY + 2,
        "mappings.M.fields.1.match",
        "a constant cannot be a match field",
    )
    found = problems(mapping_file("fields:\n  - {erp: x, crm: y}\n  - {crm: k, constant: [1, 2]}\n"))
    assert {(line, path) for line, path, _ in found} == {(BODY + 2, "mappings.M.fields.1.constant")}


# --- transforms -----------------------------------------------------------------------------------


def test_transforms_build_their_chains():
    text = mapping_file(
        """\
        fields:
          - erp: x
            crm: y
            transforms:
              crm: [trim, upper, {prefix: "C-"}, {substring: {start: 0, length: 4}}]
              erp: lower
          - erp: n
            crm: m
            transforms:
              crm: [{replace: {old: "-", new: ""}}, to_number, {round: 1}]
              erp: [{value_map: {values: {1: one, "2": two}, unmapped: keep}}, {if_blank: "none"}]
          - erp: d
            crm: e
            transforms:
              crm:
                - {date_format: {to: "%d.%m.%Y", from: "%Y-%m-%d"}}
                - {regex_replace: {pattern: "(\\\\d+)", replacement: "<\\\\1>"}}
        """
    )
    first, second, third = load(text).mappings["M"].fields
    assert first.chain("crm").apply("  abcdef ") == "C-AB"
    assert first.chain("erp").apply("ABC") == "abc"
    assert second.chain("crm").apply("1-2.34") == 12.3
    assert second.chain("erp").apply(1) == "one"
    assert second.chain("erp").apply("2") == "two"
    assert second.chain("erp").apply("") == "none"
    assert third.chain("crm").apply("2024-03-09") == "<09>.<03>.<2024>"
    assert isinstance(first.chain("crm").steps[2], tf.Prefix)


def test_transforms_keyed_by_a_system_the_field_never_writes_into():
    text = mapping_file(
        """\
        direction: erp->crm
        fields:
          - erp: x
            crm: y
            transforms:
              crm: [upper]
              erp: [lower]
              sap: [trim]
        """
    )
    assert problems(text) == [
        (
            BODY + 6,
            "mappings.M.fields.0.transforms.erp",
            "this field never flows into erp, so it has nothing to transform",
        ),
        (
            BODY + 7,
            "mappings.M.fields.0.transforms.sap",
            "transforms are keyed by the system they write into; 'sap' is not one here",
        ),
    ]


def _transform_problem(steps: str) -> tuple[int | None, str, str]:
    """The one problem of a field whose crm transforms (on line BODY + 5) are `steps`."""
    return problem(
        mapping_file(f"fields:\n  - erp: x\n    crm: y\n    transforms:\n      crm:\n        {steps}\n")
    )


STEP = "mappings.M.fields.0.transforms.crm.0"


def test_unknown_transform_names():
    line, path, message = _transform_problem("- shout")
    assert (line, path) == (BODY + 5, STEP)
    assert "unknown transform 'shout' (bare names: upper, lower, title, trim, to_text, to_number" in message
    line, path, message = _transform_problem("- prefix")  # needs an argument
    assert (line, path) == (BODY + 5, STEP)
    assert "unknown transform 'prefix'" in message


@pytest.mark.parametrize(
    ("steps", "path", "fragment"),
    [
        ("- {substring: {start: -1}}", STEP + ".substring.start", "greater than or equal to 0"),
        ("- {substring: {length: -2}}", STEP + ".substring.length", "greater than or equal to 0"),
        ("- {round: x}", STEP + ".round", "valid integer"),
        ("- {round: 1.5}", STEP + ".round", "fractional part"),
        ("- {prefix: 3}", STEP + ".prefix", "valid string"),
        ("- {prefix: null}", STEP, "transform prefix needs an argument"),
        ("- {replace: {new: x}}", STEP + ".replace.old", "required key is missing"),
        ("- {date_format: {}}", STEP + ".date_format.to", "required key is missing"),
        (
            "- {value_map: {values: {a: b}, unmapped: maybe}}",
            STEP + ".value_map.unmapped",
            "'error', 'keep' or 'null'",
        ),
        ("- {value_map: {values: [a, b]}}", STEP + ".value_map.values", "valid dictionary"),
        ("- {upper: false}", STEP + ".upper", "Input should be True"),
        ("- {prefix: a, suffix: b}", STEP, "a transform is one key with its argument"),
        ("- {}", STEP, "a transform is one key with its argument"),
        ("- 42", STEP, "valid dictionary"),
        ("- null", STEP, "valid dictionary"),
    ],
)
def test_bad_transform_arguments_are_located(steps, path, fragment):
    found = problems(
        mapping_file(f"fields:\n  - erp: x\n    crm: y\n    transforms:\n      crm:\n        {steps}\n")
    )
    assert {(line, where) for line, where, _ in found} == {(BODY + 5, path)}
    assert any(fragment in message for _, _, message in found), found


def test_transforms_must_be_keyed_by_system():
    assert problem(mapping_file("fields:\n  - {erp: x, crm: y, transforms: [upper]}\n"))[:2] == (
        BODY + 1,
        "mappings.M.fields.0.transforms",
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ('{pattern: "(["}', "unterminated character set"),
        ('{pattern: "a{2,1}"}', "min repeat greater than max repeat"),
        ('{pattern: "(?P<x"}', "missing >"),
        ('{pattern: "a", replacement: "\\\\9"}', "invalid group reference 9"),
        ('{pattern: "(?P<x>a)", replacement: "\\\\g<y>"}', "unknown group name 'y'"),
    ],
)
def test_invalid_regular_expressions_and_replacements_are_located(args, fragment):
    line, path, message = _transform_problem(f"- regex_replace: {args}")
    assert (line, path) == (BODY + 5, STEP)
    assert message.startswith("invalid regular expression")
    assert fragment in message


# --- lookups and dependencies ---------------------------------------------------------------------

TWO_MAPPINGS = """\
systems:
  erp: {url: x}
  crm: {url: y}
mappings:
  P:
    erp: {table: p, key: id}
    crm: {table: q, key: id}
    fields: [{erp: name, crm: name}]
  M:
    erp: {table: a, key: id}
    crm: {table: b, key: id}
    fields:
"""


def test_a_lookup_through_a_known_mapping_depends_on_it():
    loaded = load(TWO_MAPPINGS + "      - {erp: p_code, crm: p_id, lookup: P, if_uncoupled: blank}\n")
    (fmap,) = loaded.mappings["M"].fields
    assert fmap.lookup == "P"
    assert fmap.blank_if_uncoupled
    assert loaded.mappings["M"].depends_on == ("P",)
    assert [m.name for m in loaded.mappings.ordered()] == ["P", "M"]


def test_a_lookup_through_an_unknown_mapping():
    assert problem(TWO_MAPPINGS + "      - {erp: p_code, crm: p_id, lookup: NOPE}\n") == (
        13,
        "mappings.M.fields.0.lookup",
        "lookup through unknown mapping 'NOPE'",
    )


def test_a_lookup_takes_no_transforms():
    text = (
        TWO_MAPPINGS
        + "      - erp: p_code\n        crm: p_id\n        lookup: P\n        transforms: {crm: [upper]}\n"
    )
    assert problem(text) == (
        16,
        "mappings.M.fields.0.transforms",
        "a lookup field takes no transforms (the value is a key)",
    )


def test_a_lookup_through_a_mapping_of_other_systems():
    text = dedent(
        """\
        systems:
          erp: {url: x}
          crm: {url: y}
          hr: {url: z}
        mappings:
          P:
            erp: {table: p, key: id}
            hr: {table: q, key: id}
            fields: [{erp: name, hr: name}]
          M:
            erp: {table: a, key: id}
            crm: {table: b, key: id}
            fields:
              - {erp: p_code, crm: p_id,
                 lookup: P}
        """
    )
    assert problem(text) == (15, "mappings.M.fields.0.lookup", "lookup mapping P pairs other systems")


def test_depends_on_an_unknown_mapping():
    text = (
        TWO_MAPPINGS.replace("    fields:\n", "    depends_on: [P, NOPE]\n    fields:\n")
        + "      - {erp: x, crm: y}\n"
    )
    assert problem(text) == (12, "mappings.M.depends_on", "depends on unknown mapping 'NOPE'")


def test_a_cycle_in_depends_on_shows_the_cycle():
    text = dedent(
        """\
        systems:
          erp: {url: x}
          crm: {url: y}
        mappings:
          A:
            erp: {table: a, key: id}
            crm: {table: a, key: id}
            depends_on: [B]
            fields: [{erp: x, crm: y}]
          B:
            erp: {table: b, key: id}
            crm: {table: b, key: id}
            depends_on: [C]
            fields: [{erp: x, crm: y}]
          C:
            erp: {table: c, key: id}
            crm: {table: c, key: id}
            fields:
              - {erp: x, crm: y}
              - {erp: a_id, crm: a_id, lookup: A}
        """
    )
    assert problem(text) == (8, "mappings.A.depends_on", "depends_on has a cycle: A → B → C → A")


def test_a_mapping_that_depends_on_itself():
    assert problem(mapping_file("depends_on: [M]\nfields: [{erp: x, crm: y}]\n")) == (
        BODY,
        "mappings.M.depends_on",
        "depends_on has a cycle: M → M",
    )


# --- targets written twice ------------------------------------------------------------------------


def test_two_field_mappings_writing_the_same_target_column():
    text = mapping_file("fields:\n  - {erp: x, crm: y}\n  - {erp: z, crm: y}\n  - {erp: x, crm: w}\n")
    assert problems(text) == [
        (BODY + 2, "mappings.M.fields.1", "crm.y is written by two field mappings (erp.x ↔ crm.y)"),
        (BODY + 3, "mappings.M.fields.2", "erp.x is written by two field mappings (erp.x ↔ crm.y)"),
    ]


def test_a_column_read_by_one_field_and_written_by_another_is_fine():
    text = mapping_file(
        "fields:\n  - {erp: x, crm: y, direction: erp->crm}\n  - {erp: z, crm: y, direction: crm->erp}\n"
    )
    assert len(load(text).mappings["M"].fields) == 2
    text = mapping_file("fields:\n  - {erp: x, crm: y}\n  - {crm: y, constant: 1}\n")
    assert problem(text) == (
        BODY + 2,
        "mappings.M.fields.1",
        "crm.y is written by two field mappings (erp.x ↔ crm.y)",
    )


# --- filters --------------------------------------------------------------------------------------


def _filter_file(condition: str) -> str:
    """A file whose crm filter has one condition, on line 11."""
    side = "\n      table: b\n      key: id\n      filter:\n        - " + condition
    return HEAD.replace(" {table: b, key: id}", side) + "    fields: [{erp: x, crm: y}]\n"


CONDITION = "mappings.M.crm.filter.0"


@pytest.mark.parametrize(
    ("condition", "path", "fragment"),
    [
        ("{field: f, op: in, value: 1}", CONDITION, "operator in needs a list of values"),
        ("{field: f, op: not_in}", CONDITION, "operator not_in needs a list of values"),
        ("{field: f, op: is_null, value: 1}", CONDITION, "operator is_null takes no value"),
        ("{field: f, op: not_null, value: [1]}", CONDITION, "not a list"),
        (
            "{field: f, op: eq, value: [1, 2]}",
            CONDITION,
            "operator eq takes one value, not a list (use in / not_in)",
        ),
        ("{field: f, op: like, value: x}", CONDITION + ".op", "'eq', 'ne', 'in'"),
        ("{op: eq, value: 1}", CONDITION + ".field", "required key is missing"),
        ("{field: f, value: {a: 1}}", CONDITION + ".value", "valid"),
        ("{field: '', value: 1}", CONDITION + ".field", "at least 1 character"),
        ("just-text", CONDITION, "valid dictionary"),
    ],
)
def test_filters_with_wrong_operator_or_value_shapes(condition, path, fragment):
    found = problems(_filter_file(condition))
    assert {(line, where) for line, where, _ in found} == {(11, path)}
    assert any(fragment in message for _, _, message in found), found


def test_filters_and_default_templates_build_conditions():
    crm_filter = "[{field: s, op: in, value: [1, null]}, {field: t, op: is_null}, {field: u, value: x}]"
    erp_defaults = "[{values: {k: v}}, {values: {k: w}, when: [{field: c, op: gt, value: 5}], priority: -1}]"
    text = (
        HEAD.replace("{table: b, key: id}", "{table: b, key: id, filter: " + crm_filter + "}").replace(
            "{table: a, key: id}", "{table: a, key: id, defaults: " + erp_defaults + "}"
        )
        + "    fields: [{erp: x, crm: y}]\n"
    )
    mapping = load(text).mappings["M"]
    conditions = [(c.field, c.op, c.value) for c in mapping.side("crm").filter.conditions]
    assert conditions == [("s", Op.IN, (1, None)), ("t", Op.IS_NULL, None), ("u", Op.EQ, "x")]
    erp = mapping.side("erp")
    assert erp.template_for({"c": 6}) == {"k": "w"}
    assert erp.template_for({"c": 1}) == {"k": "v"}


def test_a_bad_condition_in_a_default_template_is_located():
    side = (
        "\n      table: a\n      key: id\n      defaults:\n        - values: {k: v}\n"
        "          when: [{field: c, op: in, value: 5}]"
    )
    text = HEAD.replace(" {table: a, key: id}", side) + "    fields: [{erp: x, crm: y}]\n"
    ((line, path, message),) = problems(text)
    assert (line, path) == (11, "mappings.M.erp.defaults.0.when.0")
    assert "operator in needs a list of values" in message


# --- conflicts, match settings, union members -----------------------------------------------------


@pytest.mark.parametrize("conflict", ["prefer sap", "prefer", "latest wins", "newest", "prefer erp crm"])
def test_bad_conflict_policies(conflict):
    text = mapping_file(f"conflict: {quoted(conflict)}\nfields: [{{erp: x, crm: y}}]\n")
    assert problem(text) == (
        BODY,
        "mappings.M.conflict",
        "conflict must be `fail`, `latest` or `prefer <system>` (crm or erp)",
    )


def test_system_names_with_spaces_work_in_directions_and_conflicts():
    text = dedent(
        """\
        systems:
          my erp: {url: x}
          crm: {url: y}
        mappings:
          M:
            my erp: {table: a, key: id}
            crm: {table: b, key: id}
            direction: my erp->crm
            conflict: prefer my erp
            fields: [{my erp: x, crm: y}]
        """
    )
    mapping = load(text).mappings["M"]
    assert mapping.sources == {"my erp"}
    assert (mapping.conflict.kind, mapping.conflict.system) == (ConflictKind.PREFER, "my erp")


def test_match_settings():
    text = mapping_file(
        "fields:\n  - {erp: a, crm: b, match: true}\n"
        "  - {erp: c, crm: d, match: {priority: 2, case_sensitive: true}}\n"
    )
    first, second = load(text).mappings["M"].fields
    assert (first.match.priority, first.match.case_sensitive) == (1, False)  # type: ignore[union-attr]
    assert (second.match.priority, second.match.case_sensitive) == (2, True)  # type: ignore[union-attr]


def test_errors_of_a_union_name_the_key_not_the_union_member():
    found = problems(mapping_file("fields:\n  - {erp: a, crm: b, match: 'yes please'}\n"))
    assert {(line, path) for line, path, _ in found} == {(BODY + 1, "mappings.M.fields.0.match")}


def test_errors_under_integer_keys_name_their_own_line():
    text = mapping_file(
        """\
        fields:
          - erp: x
            crm: y
            transforms:
              crm:
                - value_map:
                    values:
                      1: one
                      2: [not, a, scalar]
        """
    )
    found = problems(text)
    assert {(line, path) for line, path, _ in found} == {(BODY + 8, STEP + ".value_map.values.2")}


def test_merge_keys_share_settings_between_sides():
    text = dedent(
        """\
        systems:
          erp: {url: x}
          crm: {url: y}
        mappings:
          M:
            erp: &side {table: a, key: id, version: modified}
            crm: {<<: *side, table: b, key: guid}
            fields: [{erp: x, crm: y}]
        """
    )
    crm = load(text).mappings["M"].side("crm")
    assert (crm.table, crm.key, crm.version) == ("b", "guid", "modified")


# --- hostile strings ------------------------------------------------------------------------------

HOSTILE = [
    "O'Brien",
    'say "hi"',
    "a;b",
    "'; DROP TABLE customer; --",
    "x') OR ('1'='1",
    "\\",
    "ünïcödé",
    "日本語",
    "party 🎉",
    "\u202eevil",
    "${HOME}",
    "{{ template }}",
    "%s %(name)s",
    "a.b",
    "--",
    "null",
    "True",
    "~",
    "#not a comment",
    "&anchor *alias",
    "x" * 200,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_in_names_and_values_are_plain_data(text):
    q = quoted(text)
    yaml_text = dedent(
        f"""\
        systems:
          {q}: {{url: "sqlite://"}}
          crm: {{url: "sqlite://"}}
        mappings:
          {q}:
            {q}:
              table: {q}
              key: {q}
              version: {q}
              key_prefix: {q}
              filter: [{{field: {q}, value: {q}}}, {{field: other, op: in, value: [{q}]}}]
              defaults: [{{values: {{{q}: {q}}}}}]
            crm: {{table: t, key: id}}
            fields:
              - {{{q}: {q}, crm: b, name: {q}}}
              - {{crm: c, constant: {q}}}
              - {q}: col2
                crm: d
                transforms:
                  crm:
                    - {{prefix: {q}}}
                    - {{replace: {{old: {q}, new: {q}}}}}
                    - {{value_map: {{values: {{{q}: {q}}}, unmapped: keep}}}}
        """
    )
    loaded = load(yaml_text)
    mapping = loaded.mappings[text]
    side = mapping.side(text)
    assert (side.table, side.key, side.version, side.key_prefix) == (text, text, text, text)
    assert [(c.field, c.value) for c in side.filter.conditions] == [(text, text), ("other", (text,))]
    assert side.templates[0].values == {text: text}
    first, constant, transformed = mapping.fields
    assert (first.name, first.columns[text]) == (text, text)
    assert constant.constant == text
    assert transformed.chain("crm").apply("plain") == text + "plain"


FIELDS = "    fields: [{erp: x, crm: y}]\n"
THIRD_SYSTEM = HEAD.replace("systems:\n", "systems:\n  @C@: {url: z}\n")


@pytest.mark.parametrize("control", ["\x00", "\x01", "\t", "\n", "\x1b", "\x1f"], ids=repr)
@pytest.mark.parametrize(
    ("template", "line", "path"),
    [
        (THIRD_SYSTEM + FIELDS, 2, "systems"),
        (HEAD.replace("table: a", "table: @C@") + FIELDS, 6, "mappings.M.erp.table"),
        (HEAD.replace("key: id}", "key: @C@}", 1) + FIELDS, 6, "mappings.M.erp.key"),
        (
            HEAD.replace("table: a, key: id", "table: a, key: id, version: @C@") + FIELDS,
            6,
            "mappings.M.erp.version",
        ),
        (HEAD + "    fields: [{erp: @C@, crm: y}]\n", 8, "mappings.M.fields.0.erp"),
        (HEAD + "    fields: [{erp: x, crm: y, name: @C@}]\n", 8, "mappings.M.fields.0.name"),
        (HEAD + "    depends_on: [@C@]\n" + FIELDS, 8, "mappings.M.depends_on.0"),
        (HEAD.replace("  M:", "  @C@:") + FIELDS, 5, "mappings"),
    ],
    ids=["system", "table", "key", "version", "column", "field-name", "depends-on", "mapping"],
)
def test_control_characters_in_names_are_refused_with_a_clear_message(control, template, line, path):
    text = template.replace("@C@", quoted("bad" + control + "name"))
    found = problems(text)
    first_line, first_path, message = found[0]
    assert (first_line, first_path.startswith(path)) == (line, True), found
    assert "pattern" in message or "no control characters" in message, found


@pytest.mark.parametrize("control", ["\x00", "\x01", "\t", "\n", "\x7f"], ids=repr)
def test_control_characters_in_values_are_plain_data(control):
    value = "a" + control + "b"
    q = quoted(value)
    text = HEAD.replace(
        "{table: b, key: id}", f"{{table: b, key: id, filter: [{{field: f, value: {q}}}]}}"
    ) + (
        f"    fields:\n      - {{erp: x, crm: y, transforms: {{crm: [{{prefix: {q}}}]}}}}\n"
        f"      - {{crm: z, constant: {q}}}\n"
    )
    mapping = load(text).mappings["M"]
    assert mapping.side("crm").filter.conditions[0].value == value
    assert mapping.fields[0].chain("crm").apply("") == value
    assert mapping.fields[1].constant == value


def test_long_names_are_refused():
    line, path, message = problems(mapping_file(f"fields: [{{erp: {'x' * 201}, crm: y}}]\n"))[0]
    assert (line, path) == (BODY, "mappings.M.fields.0.erp")
    assert "1 to 200 characters" in message
    line, path, message = problem(HEAD.replace("table: a", "table: " + "t" * 201) + FIELDS)
    assert (line, path) == (6, "mappings.M.erp.table")
    assert "at most 200 characters" in message


def test_non_text_column_names_are_refused():
    for column in ("5", "null", "[a]", "{a: 1}", "true", '""'):
        found = problems(mapping_file(f"fields:\n  - {{erp: {column}, crm: y}}\n"))
        assert found[0][:2] == (BODY + 1, "mappings.M.fields.0.erp"), (column, found)
        assert found[0][2] == "a column name (1 to 200 characters, no control characters) is expected"


# --- settings -------------------------------------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch, tmp_path) -> Iterator[pytest.MonkeyPatch]:
    """No TANDEM_* variables, and a working directory without a .env file."""
    for name in list(os.environ):
        if name.upper().startswith("TANDEM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield monkeypatch


def test_settings_defaults(clean_environment):
    settings = Settings()
    assert settings.home == Path(".tandem")
    assert settings.config is None
    assert settings.database_url is None
    assert settings.bus_url is None
    assert settings.broker_url is None
    assert settings.batch_size == 500
    assert settings.store_url == "sqlite:///.tandem/tandem.db"
    assert settings.config_path() == Path(".tandem/demo/mappings.yaml")


def test_settings_come_from_tandem_variables(clean_environment):
    env = clean_environment
    env.setenv("TANDEM_HOME", "/srv/tandem")
    env.setenv("TANDEM_CONFIG", "/etc/tandem/mappings.yaml")
    env.setenv("TANDEM_DATABASE_URL", "postgresql+psycopg://tandem@db/tandem")
    env.setenv("TANDEM_BUS_URL", "amqp://guest:guest@mq//")
    env.setenv("TANDEM_BROKER_URL", "redis://cache:6379/1")
    env.setenv("TANDEM_BATCH_SIZE", "25")
    env.setenv("TANDEM_NO_SUCH_SETTING", "ignored")
    env.setenv("HOME_OF_SOMETHING_ELSE", "ignored")
    settings = Settings()
    assert settings.home == Path("/srv/tandem")
    assert settings.config == Path("/etc/tandem/mappings.yaml")
    assert settings.config_path() == Path("/etc/tandem/mappings.yaml")
    assert settings.store_url == "postgresql+psycopg://tandem@db/tandem"
    assert settings.bus_url == "amqp://guest:guest@mq//"
    assert settings.broker_url == "redis://cache:6379/1"
    assert settings.batch_size == 25


def test_settings_home_moves_the_default_store_and_config(clean_environment):
    clean_environment.setenv("TANDEM_HOME", "/data/t")
    settings = Settings()
    assert settings.store_url == "sqlite:////data/t/tandem.db"
    assert settings.config_path() == Path("/data/t/demo/mappings.yaml")


def test_settings_variable_names_ignore_case(clean_environment):
    clean_environment.setenv("tandem_batch_size", "7")
    assert Settings().batch_size == 7


def test_explicit_settings_win_over_the_environment(clean_environment):
    clean_environment.setenv("TANDEM_BATCH_SIZE", "25")
    assert Settings(batch_size=3).batch_size == 3


@pytest.mark.parametrize("value", ["0", "-1", "10001", "many", "1.5", ""])
def test_bad_batch_sizes_are_refused(clean_environment, value):
    clean_environment.setenv("TANDEM_BATCH_SIZE", value)
    with pytest.raises(ValidationError, match="batch_size"):
        Settings()


def test_settings_do_not_read_unprefixed_variables(clean_environment):
    clean_environment.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    clean_environment.setenv("BATCH_SIZE", "3")
    settings = Settings()
    assert settings.database_url is None
    assert settings.batch_size == 500


def test_a_regex_looking_name_is_shown_as_written():
    text = mapping_file("fields:\n  - {erp: x, crm: y, lookup: 'a.*(b'}\n")
    assert problem(text) == (BODY + 1, "mappings.M.fields.0.lookup", "lookup through unknown mapping 'a.*(b'")
