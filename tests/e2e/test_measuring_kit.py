"""The measuring kit in CI: the benchmark's quick mode runs (figures are printed, never asserted), and the
short convergence run finds nothing wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import services

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _services() -> None:
    services.need("PostgreSQL", services.POSTGRES, 5432)
    services.need("RabbitMQ", services.RABBITMQ, 5672)
    services.need("Redis", services.REDIS, 6379)


def test_the_quick_benchmark_runs_and_writes_its_figures():
    _services()
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(c) Tandem end to end" in result.stdout and "ratios" in result.stdout
    written = result.stdout.rsplit("written to ", 1)[1].strip()
    assert Path(written).is_file()
    Path(written).unlink()


def test_a_short_convergence_run_finds_nothing_wrong(tmp_path):
    _services()
    from benchmarks.convergence import Plan, run

    plan = Plan(seed=11, operations=300, rate=50, initial=60, kills=1, broker_restarts=1, pg_outages=1)
    tally = run(plan, tmp_path)
    print(tally.line())
    assert (
        tally.operations == 300 and tally.kills == 1 and tally.broker_restarts == 1 and tally.pg_outages == 1
    )
    assert tally.duplicates > 0 and tally.delayed > 0  # the chaos was real
    assert tally.ok, "\n".join(tally.problems[:20])
