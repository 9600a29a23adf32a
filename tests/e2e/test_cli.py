"""The `tandem` command through click's CliRunner, against a world from tests/factories.py.

Each test passes --config FILE and sets TANDEM_DATABASE_URL and TANDEM_HOME, as a user would.
Exit codes (README): 0 done, 1 records failed or refused, 2 usage or configuration, 3 unreachable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli.main import cli
from domain.jobs import Counts
from tests.factories import World, databases, mapping_yaml
from tests.runner import Tandem
from workers.usecases.couple import create_and_couple
from workers.usecases.sync import sync

COUNT_KEYS = set(Counts().as_dict())


def pair(world: World, no: str = "C1", **values: Any) -> str:
    world.insert_customer(no, **{"phone": "+45 1111", "city": "Aarhus", **values})
    assert create_and_couple(world.rt, "CUSTOMER", "erp", [no]).counts.inserted == 1
    key = world.counterpart("CUSTOMER", "erp", no)
    assert key is not None
    return key


def conflicted(world: World) -> int:
    """A pair whose name changed on both sides (policy fail): one open error; returns its id."""
    account = pair(world)
    world.edit("erp", "customer", "C1", name="ERP name")
    world.edit("crm", "account", account, name="CRM name")
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts.failed == 1
    (error,) = world.rt.store.errors()
    return error.id


# --- help ------------------------------------------------------------------------------------------


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _paths(command, (*prefix, name))


COMMANDS = [(), *_paths(cli)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "tandem")
def test_every_command_has_help(path: tuple[str, ...], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"TANDEM_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: {' '.join(('cli', *path))}") or result.stdout.startswith(
        f"Usage: {' '.join(('tandem', *path))}"
    )
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    first = (command.help or "").strip().splitlines()[0]
    assert " ".join(first.split()[:4]) in " ".join(result.stdout.split())


def test_the_core_commands_are_there() -> None:
    assert {"couple", "sync", "uncouple", "errors", "jobs", "couplings", "mappings", "verify", "db"} <= set(
        cli.commands
    )
    assert {p for p in COMMANDS if p[:1] == ("errors",)} >= {
        ("errors", name) for name in ("retry", "sync", "restore", "delete-record", "uncouple", "dismiss")
    }


def test_an_unknown_command_is_a_usage_error(tandem: Tandem) -> None:
    result = tandem("synchronise", "CUSTOMER")
    assert result.exit_code == 2
    assert "No such command 'synchronise'" in result.output


# --- couple ----------------------------------------------------------------------------------------


def test_couple_two_records(tandem: Tandem, world: World) -> None:
    world.insert_customer("C1", phone="erp-phone")
    account = world.insert_account(telephone="crm-phone")

    data = tandem.json("couple", "CUSTOMER", "--erp", "C1", "--crm", account, "--sync", "erp")

    assert set(data) == {"mapping", "job", "counts", "records"}
    assert data["mapping"] == "CUSTOMER" and isinstance(data["job"], int)
    assert set(data["counts"]) == COUNT_KEYS
    assert (data["counts"]["coupled"], data["counts"]["modified"]) == (1, 1)
    assert {"system", "key", "outcome", "reason", "error_kind", "changes", "conflicts"} == set(
        data["records"][0]
    )
    assert world.counterpart("CUSTOMER", "erp", "C1") == account
    assert world.account(account)["telephone"] == "erp-phone"


def test_couple_refuses_a_record_coupled_already(tandem: Tandem, world: World) -> None:
    account = pair(world)
    other = world.insert_account()
    result = tandem("couple", "CUSTOMER", "--erp=C1", "--crm", other)
    assert result.exit_code == 1
    assert f"is coupled to the crm record '{account}' already; uncouple it first" in result.output
    assert world.counterpart("CUSTOMER", "erp", "C1") == account


def test_couple_with_an_unknown_id_is_refused(tandem: Tandem, world: World) -> None:
    account = world.insert_account()
    result = tandem("couple", "CUSTOMER", "--erp", "NOPE", "--crm", account)
    assert result.exit_code == 1
    assert "there is no erp record 'NOPE' in customer" in result.output
    assert world.rt.store.count_couplings() == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sap", "X", "--crm", "Y"], "unexpected '--sap': give --crm ID --erp ID"),
        (["--erp", "C1"], "name one record of each system: --crm ID --erp ID"),
        (["--erp", "C1", "--crm"], "--crm needs a record id"),
        (["C1", "A1"], "unexpected 'C1'"),
        (
            ["--erp", "C1", "--crm", "A1", "--sync", "sap"],
            "--sync: mapping CUSTOMER pairs crm and erp, not 'sap'",
        ),
        (["--create-from", "sap", "C1"], "--create-from: mapping CUSTOMER pairs crm and erp, not 'sap'"),
        (["--create-from", "erp"], "--create-from SYSTEM takes the ids of the records"),
        (["--create-from", "erp", "C1", "--crm", "A1"], "--create-from SYSTEM takes the ids of the records"),
    ],
)
def test_couple_with_wrong_system_options_is_a_usage_error(
    tandem: Tandem, world: World, args: list[str], message: str
) -> None:
    world.insert_customer("C1")
    result = tandem("couple", "CUSTOMER", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert world.rt.store.count_couplings() == 0


def test_couple_create_from_and_its_dry_run(tandem: Tandem, world: World) -> None:
    world.insert_customer("C1", name="Contoso")
    world.insert_customer("C2", name="Fabrikam")
    before = world.snapshot()

    dry = tandem("couple", "CUSTOMER", "--create-from", "erp", "C1", "C2", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "crm.name: None → 'Contoso'" in dry.stdout
    assert world.snapshot() == before

    data = tandem.json("couple", "CUSTOMER", "--create-from", "erp", "C1", "C2", "NOPE")
    assert (data["counts"]["inserted"], data["counts"]["skipped"]) == (2, 1)
    assert {r["key"]: r["outcome"] for r in data["records"]} == {
        "C1": "inserted",
        "C2": "inserted",
        "NOPE": "skipped",
    }
    assert world.count("crm", "account") == 2


# --- sync ------------------------------------------------------------------------------------------


def test_sync_one_record_recommends_a_direction(tandem: Tandem, world: World) -> None:
    account = pair(world)
    world.edit("erp", "customer", "C1", phone="+45 2222")

    result = tandem("sync", "CUSTOMER", "C1", "--system", "erp")

    assert result.exit_code == 0, result.output
    assert "recommended: from erp — only erp changed since the last sync (phone)" in result.stdout
    assert "1 modified (job " in result.stdout
    assert world.account(account)["telephone"] == "+45 2222"

    world.edit("crm", "account", account, city="Roskilde")
    data = tandem.json("sync", "CUSTOMER", account, "--system", "crm")
    assert data["recommendation"] == {
        "source": "crm",
        "reason": "only crm changed since the last sync (city)",
    }
    assert data["counts"]["modified"] == 1
    assert world.customer("C1")["city"] == "Roskilde"


def test_sync_all_and_dry_run(tandem: Tandem, world: World) -> None:
    accounts = [pair(world, f"C{i}") for i in range(3)]
    world.edit_all("erp", "customer", city="Odense")
    before = world.snapshot()

    dry = tandem("sync", "CUSTOMER", "--all", "--system", "erp", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing was written" in dry.stdout
    assert "crm.city: 'Aarhus' → 'Odense'" in dry.stdout
    assert world.snapshot() == before

    data = tandem.json("sync", "CUSTOMER", "--all", "--system", "erp")
    assert data["counts"]["modified"] == 3
    assert {world.account(a)["city"] for a in accounts} == {"Odense"}


def test_sync_with_failed_records_exits_1(tandem: Tandem, world: World) -> None:
    account = pair(world)
    world.edit("erp", "customer", "C1", name="ERP name")
    world.edit("crm", "account", account, name="CRM name")
    data = tandem.json("sync", "CUSTOMER", "C1", "--merge", code=1)
    (record,) = data["records"]
    assert (record["outcome"], record["error_kind"]) == ("failed", "conflict")
    assert record["conflicts"][0]["current"] == {"crm": "CRM name", "erp": "ERP name"}


def test_sync_push_skips_a_changed_target_unless_forced(tandem: Tandem, world: World) -> None:
    account = pair(world)
    world.edit("crm", "account", account, telephone="crm-edit")
    skipped = tandem.json("sync", "CUSTOMER", "C1", "--from", "erp")
    assert skipped["counts"]["skipped"] == 1
    assert "use --force to overwrite it" in skipped["records"][0]["reason"]
    forced = tandem.json("sync", "CUSTOMER", "C1", "--from", "erp", "--force")
    assert forced["counts"]["modified"] == 1
    assert world.account(account)["telephone"] == "+45 1111"


def test_sync_unknown_ids_are_skipped_with_a_reason(tandem: Tandem, world: World) -> None:
    pair(world)
    data = tandem.json("sync", "CUSTOMER", "NOPE", "C1")
    assert data["counts"]["skipped"] == 1
    reasons = {r["key"]: r["reason"] for r in data["records"]}
    assert reasons["NOPE"] == "no erp record with key 'NOPE'"


@pytest.mark.parametrize(
    "args, message",
    [
        (["CUSTOMER"], "give the ids of the records to sync, or --all"),
        (["CUSTOMER", "C1", "--all"], "give the ids of the records to sync, or --all"),
        (["CUSTOMER", "C1", "--from", "erp", "--merge"], "choose --from SYSTEM or --merge, not both"),
        (["CUSTOMER", "C1", "--system", "sap"], "--system: mapping CUSTOMER pairs crm and erp, not 'sap'"),
        (["CUSTOMER", "C1", "--from", "sap"], "mapping CUSTOMER pairs crm and erp, not 'sap'"),
        (["VENDOR", "C1"], "unknown mapping 'VENDOR' (known: CUSTOMER, SALESPEOPLE)"),
        (["CUSTOMER", "C1", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_sync_usage_errors(tandem: Tandem, world: World, args: list[str], message: str) -> None:
    world.insert_customer("C1")
    result = tandem("sync", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


# --- uncouple --------------------------------------------------------------------------------------


def test_uncouple_one_and_all(tandem: Tandem, world: World) -> None:
    for i in range(3):
        pair(world, f"C{i}")
    one = tandem("uncouple", "CUSTOMER", "C0", "NOPE")
    assert one.exit_code == 0, one.output
    assert "1 skipped, 1 uncoupled" in one.stdout
    assert "1 of the ids were not coupled" in one.stdout
    assert world.counterpart("CUSTOMER", "erp", "C0") is None

    data = tandem.json("uncouple", "CUSTOMER", "--all")
    assert set(data) == {"mapping", "counts"}
    assert data["counts"]["uncoupled"] == 2
    assert world.rt.store.count_couplings("CUSTOMER") == 0
    assert world.count("erp", "customer") == world.count("crm", "account") == 3

    neither = tandem("uncouple", "CUSTOMER")
    assert neither.exit_code == 2
    assert "give the ids of the records to uncouple, or --all" in neither.output


# --- errors ----------------------------------------------------------------------------------------

ERROR_KEYS = {
    "id",
    "job_id",
    "mapping",
    "subject",
    "coupling_id",
    "system",
    "record_key",
    "a_key",
    "b_key",
    "kind",
    "message",
    "detail",
    "occurrences",
    "skipped",
    "state",
    "created_at",
    "updated_at",
    "resolved_at",
}


def test_errors_list_and_sync_from_a_system(tandem: Tandem, world: World) -> None:
    error_id = conflicted(world)

    listed = tandem.json("errors")
    (row,) = listed
    assert set(row) == ERROR_KEYS
    assert (row["id"], row["kind"], row["record_key"], row["state"]) == (error_id, "conflict", "C1", "open")
    assert tandem.json("errors", "CUSTOMER") == listed
    assert tandem.json("errors", "SALESPEOPLE") == []
    assert tandem.json("errors", "--skipped") == []
    table = tandem("errors")
    assert table.exit_code == 0 and "1 open errors" in table.stdout

    settled = tandem.json("errors", "sync", str(error_id), "--from", "crm")
    assert set(settled) == {"counts", "jobs"}
    assert settled["counts"]["modified"] == 1
    assert world.customer("C1")["name"] == "CRM name"
    assert tandem.json("errors") == []


def test_errors_retry_that_fails_again_exits_1(tandem: Tandem, world: World) -> None:
    error_id = conflicted(world)
    result = tandem("errors", "retry", str(error_id))
    assert result.exit_code == 1
    assert "failed: CUSTOMER erp C1 — erp.name ↔ crm.name changed on both sides" in result.stdout
    assert tandem.json("errors")[0]["occurrences"] == 2


def test_errors_dismiss_and_uncouple(tandem: Tandem, world: World) -> None:
    error_id = conflicted(world)
    assert tandem.json("errors", "dismiss", str(error_id)) == {"dismissed": 1}
    assert tandem.json("errors") == []
    assert world.counterpart("CUSTOMER", "erp", "C1") is not None

    sync(world.rt, "CUSTOMER", "erp", ["C1"])
    data = tandem.json("errors", "uncouple", "--all")
    assert data["counts"]["uncoupled"] == 1
    assert world.counterpart("CUSTOMER", "erp", "C1") is None
    assert world.row("erp", "customer", "C1") is not None


@pytest.mark.parametrize("action, counted", [("restore", "inserted"), ("delete-record", "deleted")])
def test_errors_restore_and_delete_record(tandem: Tandem, world: World, action: str, counted: str) -> None:
    account = pair(world)
    world.delete("crm", "account", account)
    sync(world.rt, "CUSTOMER", "erp", ["C1"])
    (error,) = tandem.json("errors")
    assert error["kind"] == "deleted"

    data = tandem.json("errors", action, str(error["id"]))

    assert data["counts"][counted] == 1
    assert tandem.json("errors") == []
    assert world.count("crm", "account") == (1 if action == "restore" else 0)
    assert world.count("erp", "customer") == (1 if action == "restore" else 0)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["retry", "999"], 1, "no open error with id 999 (see `tandem errors`)"),
        (["dismiss", "1", "999"], 1, "no open error with id 999"),
        (["retry"], 2, "give the ids of the errors (see `tandem errors`), or --all"),
        (["retry", "1", "--all"], 2, "give the ids of the errors"),
        (["retry", "one"], 2, "'one' is not a valid integer"),
        (["VENDOR"], 2, "unknown mapping 'VENDOR'"),
    ],
)
def test_errors_with_unknown_ids_or_bad_arguments(
    tandem: Tandem, world: World, args: list[str], code: int, message: str
) -> None:
    conflicted(world)
    result = tandem("errors", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert world.rt.store.count_errors() == 1  # nothing was fixed or dismissed


# --- jobs, couplings, mappings ---------------------------------------------------------------------


def test_jobs_and_couplings(tandem: Tandem, world: World) -> None:
    account = pair(world)
    world.insert_customer("C2")
    world.edit("erp", "customer", "C1", phone="x")
    tandem("sync", "CUSTOMER", "C1", "C2", "--merge")

    jobs = tandem.json("jobs", "CUSTOMER")
    assert len(jobs) == 2
    newest = jobs[0]
    assert set(newest) == {
        "id",
        "mapping",
        "kind",
        "direction",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "counts",
        "message",
    }
    assert (newest["kind"], newest["direction"], newest["status"]) == ("sync", "merge", "finished")
    assert (newest["counts"]["modified"], newest["counts"]["skipped"]) == (1, 1)
    assert jobs[1]["kind"] == "coupling"
    assert tandem.json("jobs", "--limit", "1") == [newest]
    assert tandem.json("jobs", "SALESPEOPLE") == []
    shown = tandem("jobs")
    assert shown.exit_code == 0 and "sync jobs" in shown.stdout

    (coupling,) = tandem.json("couplings", "CUSTOMER")
    assert coupling == {
        "id": coupling["id"],
        "crm": account,
        "erp": "C1",
        "status": "synced",
        "failures": 0,
        "skipped": False,
        "last_error": None,
    }
    assert tandem.json("couplings", "CUSTOMER", "--status", "failed") == []
    assert "CUSTOMER: 1 couplings" in tandem("couplings", "CUSTOMER").stdout

    for args in (["jobs", "VENDOR"], ["couplings", "VENDOR"]):
        result = tandem(*args)
        assert result.exit_code == 2
        assert "unknown mapping 'VENDOR'" in result.output
    missing = tandem("couplings")
    assert missing.exit_code == 2 and "Missing argument 'MAPPING'" in missing.output


def test_mappings_list(tandem: Tandem) -> None:
    data = tandem.json("mappings", "list")
    assert [m["name"] for m in data] == ["SALESPEOPLE", "CUSTOMER"]  # dependency order
    customer = data[1]
    assert set(customer) == {
        "name",
        "direction",
        "tables",
        "fields",
        "depends_on",
        "sync_only_coupled",
        "conflict",
        "deletion",
    }
    assert customer["tables"] == {"crm": "account", "erp": "customer"}
    assert (customer["direction"], customer["conflict"], customer["deletion"]) == ("both", "fail", "fail")
    assert customer["depends_on"] == ["SALESPEOPLE"]
    assert "customer" in tandem("mappings", "list").stdout


def test_mappings_check_a_good_file(tandem: Tandem) -> None:
    result = tandem("mappings", "check")
    assert result.exit_code == 0, result.output
    assert f"{tandem.config}: 2 mappings, the file and the systems' tables are valid" in result.stdout
    offline = tandem("mappings", "check", str(tandem.config), "--offline")
    assert offline.exit_code == 0 and "2 mappings, the file is valid" in offline.stdout


BROKEN = {
    "unknown key": ("conflict: fail", "confict: fail", "mappings.CUSTOMER.confict: unknown key"),
    "out of range": (
        "skip_after: 2",
        "skip_after: 0",
        "skip_after: Input should be greater than or equal to 1",
    ),
    "direction": ("direction: both\n    sync", "direction: erp=>crm\n    sync", "direction must be `both`"),
    "lookup": ("lookup: SALESPEOPLE", "lookup: SELLERS", "lookup through unknown mapping 'SELLERS'"),
    "yaml": ("systems:", "systems: {", "invalid YAML"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_mappings_check_a_broken_file_names_the_line(tandem: Tandem, tmp_path: Path, case: str) -> None:
    old, new, message = BROKEN[case]
    text = tandem.config.read_text(encoding="utf-8")
    assert text.count(old) == 1
    broken = text.replace(old, new)
    path = tmp_path / "broken.yaml"
    path.write_text(broken, encoding="utf-8")

    result = tandem("mappings", "check", str(path))

    assert result.exit_code == 2, result.output
    assert "configuration error" in result.output
    assert message in result.output
    found = re.search(rf"{re.escape(str(path))}:(\d+): ", result.output)
    assert found is not None, result.output
    if case != "yaml":
        marker = new.split("\n")[0]
        assert (
            int(found.group(1))
            == broken.splitlines().index(next(x for x in broken.splitlines() if marker in x)) + 1
        )
    # every command refuses the file the same way
    other = tandem("jobs", config=path)
    assert other.exit_code == 2 and message in other.output


def test_mappings_check_names_an_unknown_table_and_column(tandem: Tandem, tmp_path: Path) -> None:
    text = tandem.config.read_text(encoding="utf-8")
    path = tmp_path / "tables.yaml"
    path.write_text(
        text.replace("table: account", "table: acount").replace("crm: fullname", "crm: full_name")
    )

    result = tandem("mappings", "check", str(path))

    assert result.exit_code == 2, result.output
    assert "crm has no table 'acount'" in result.output
    assert "crm table 'systemuser' has no column 'full_name'" in result.output
    assert f"{path}:" in result.output and "mappings.CUSTOMER.crm" in result.output
    assert tandem("mappings", "check", str(path), "--offline").exit_code == 0


def test_mappings_check_a_missing_file(tandem: Tandem, tmp_path: Path) -> None:
    result = tandem("mappings", "check", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file" in result.output


# --- verify and db ---------------------------------------------------------------------------------


def test_verify(tandem: Tandem, world: World) -> None:
    account = pair(world)
    good = tandem("verify")
    assert good.exit_code == 0, good.output
    assert "1 couplings, 0 open errors, converged" in good.stdout

    world.edit("crm", "account", account, city="changed by hand")
    data = tandem.json("verify", "CUSTOMER", code=1)
    assert set(data) == {"pairs", "open_errors", "converged", "mismatches"}
    assert (data["pairs"], data["open_errors"], data["converged"]) == (1, 0, False)
    (mismatch,) = data["mismatches"]
    assert mismatch["keys"] == {"crm": account, "erp": "C1"}
    assert "changed by hand" in mismatch["problems"][0]
    bad = tandem("verify")
    assert bad.exit_code == 1 and "NOT converged" in bad.stdout
    assert tandem("verify", "VENDOR").exit_code == 2


def test_db_upgrade(tandem: Tandem, backend: str, tmp_path: Path) -> None:
    with databases(backend, tmp_path, ("fresh",)) as urls:
        first = tandem("db", "upgrade", TANDEM_DATABASE_URL=urls["fresh"])
        assert first.exit_code == 0, first.output
        assert "store at revision " in first.stdout and "nothing to do" not in first.stdout
        again = tandem("db", "upgrade", TANDEM_DATABASE_URL=urls["fresh"])
        assert again.exit_code == 0 and again.stdout.endswith("(nothing to do)\n")
        assert again.stdout.split()[3] == first.stdout.split()[3]


# --- unreachable -----------------------------------------------------------------------------------


def test_an_unreachable_system_exits_3(tandem: Tandem, world: World, backend: str, tmp_path: Path) -> None:
    pair(world)
    world.edit("erp", "customer", "C1", phone="later")
    down = (
        f"sqlite:///{tmp_path / 'no' / 'folder' / 'crm.sqlite'}"
        if backend == "sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    )
    path = tmp_path / "down.yaml"
    path.write_text(mapping_yaml(world.urls["erp"], down), encoding="utf-8")

    result = tandem("sync", "CUSTOMER", "C1", "--merge", config=path)

    assert result.exit_code == 3, result.output
    assert "crm is unavailable" in result.output
    assert "nothing was lost; run it again when it is back" in result.output
    assert world.rt.store.count_errors() == 0
    assert tandem.json("sync", "CUSTOMER", "C1", "--merge")["counts"]["modified"] == 1


def test_an_unreachable_store_exits_3(tandem: Tandem) -> None:
    down = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    for args in (["jobs"], ["sync", "CUSTOMER", "C1"], ["db", "upgrade"]):
        result = tandem(*args, TANDEM_DATABASE_URL=down)
        assert result.exit_code == 3, (args, result.output)
        assert "the coupling store is unavailable" in result.output
