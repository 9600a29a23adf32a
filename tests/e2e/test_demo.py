"""`tandem demo` as a user runs it: the console script in a subprocess, then the commands on its home."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TANDEM = Path(sys.executable).parent / "tandem"
LAST_LINE = re.compile(r"^demo: (\d+) couplings, 0 open errors, systems converged$")


def tandem(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env["TANDEM_HOME"] = str(home)
    return subprocess.run(
        [str(TANDEM), *args],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    home = tmp_path_factory.mktemp("demo") / "home"
    return home, tandem(home, "demo")


def test_the_demo_ends_converged(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    home, result = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    found = LAST_LINE.match(last)
    assert found is not None, last
    assert int(found.group(1)) > 0
    assert (home / "demo" / "tandem.db").exists()


def test_verify_after_the_demo(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    home, result = demo
    found = LAST_LINE.match(result.stdout.strip().splitlines()[-1])
    assert found is not None, result.stdout[-3000:]
    couplings = int(found.group(1))
    verified = tandem(home, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip().splitlines()[-1] == f"{couplings} couplings, 0 open errors, converged"
    data = json.loads(tandem(home, "verify", "--json").stdout)
    assert (data["pairs"], data["open_errors"], data["converged"], data["mismatches"]) == (
        couplings,
        0,
        True,
        [],
    )


def test_no_open_errors_after_the_demo(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    home, _ = demo
    listed = tandem(home, "errors", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_the_demo_store_is_the_one_every_command_uses(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, _ = demo
    upgraded = tandem(home, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip().endswith("(nothing to do)")
    assert not (home / "tandem.db").exists()  # no second, empty store next to the demo's
    jobs = json.loads(tandem(home, "jobs", "--json", "--limit", "500").stdout)
    assert jobs and all(j["status"] == "finished" for j in jobs)
    assert {"CURRENCY", "SALESPEOPLE", "CUSTOMER", "CONTACT", "ITEM"} <= {j["mapping"] for j in jobs}
    customers = json.loads(tandem(home, "couplings", "CUSTOMER", "--json", "--limit", "1000").stdout)
    assert customers and {c["status"] for c in customers} == {"synced"}


def test_the_demo_runs_again_from_scratch(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    home, first = demo
    again = tandem(home, "demo")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[-1] == first.stdout.strip().splitlines()[-1]
