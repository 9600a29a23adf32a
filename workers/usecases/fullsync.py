"""Guided full synchronization: a recommendation per mapping, then the mappings in dependency waves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from adapters.runtime import Runtime
from domain.jobs import Counts
from domain.mapping import TableMapping
from domain.plan import RecordPlan
from workers.usecases.batch import is_coupled
from workers.usecases.couple import create_and_couple
from workers.usecases.match import match

FULL = "full synchronization"
COUPLE = "couple records"
NOTHING = "nothing to do"


@dataclass
class Review:
    """What a mapping needs: in-scope records on each side and how many of them are not coupled yet."""

    mapping: str
    records: dict[str, int]
    uncoupled: dict[str, int]
    action: str
    reason: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (what, from system)


@dataclass
class Outcome:
    mapping: str
    action: str
    counts: Counts = field(default_factory=Counts)
    jobs: list[int] = field(default_factory=list)
    plans: list[RecordPlan] = field(default_factory=list)  # what was (on a dry run: would be) written


Progress = Callable[[str, int, int], None]


def _uncoupled(rt: Runtime, mapping: TableMapping, system: str) -> tuple[int, list[str]]:
    side = mapping.side(system)
    total, free = 0, list[str]()
    for page in rt.connector(system).query(side, [side.key], side.filter):
        keys = [str(r[side.key]) for r in page]
        total += len(keys)
        coupled = {k for k, c in rt.store.couplings(mapping, system, keys).items() if is_coupled(c)}
        free.extend(k for k in keys if k not in coupled)
    return total, free


def review(rt: Runtime, names: Sequence[str] | None = None) -> list[Review]:
    """BC's Full Synch. Review: for each mapping in dependency order, what a full sync would do."""
    reviews = []
    for mapping in rt.mappings.ordered(names):
        counted = {s: _uncoupled(rt, mapping, s) for s in mapping.systems}
        records = {s: n for s, (n, _) in counted.items()}
        uncoupled = {s: len(free) for s, (_, free) in counted.items()}
        sources = [s for s in mapping.systems if uncoupled[s] and mapping.may_flow(s, mapping.other(s))]
        steps: list[tuple[str, str]] = []
        if not sources:
            action, reason = NOTHING, "every record in scope is coupled (or cannot flow anywhere)"
        elif mapping.match_fields and all(records[s] for s in mapping.systems):
            action = COUPLE
            reason = "records on both sides: match first, then create the rest"
            steps = [("match", s) for s in sources]
        else:
            action = FULL
            reason = " and ".join(f"{uncoupled[s]} {s} records have no counterpart" for s in sources)
            steps = [("create", s) for s in sources]
        reviews.append(Review(mapping.name, records, uncoupled, action, reason, steps))
    return reviews


def run(
    rt: Runtime,
    names: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Runs the reviewed steps, wave by wave; a wave starts when the mappings it depends on are done.

    Every step skips what is coupled already, so running it again after an interruption resumes.
    """
    outcomes: list[Outcome] = []
    for wave in rt.mappings.waves(names):
        plans = {r.mapping: r for r in review(rt, [m.name for m in wave])}
        with ThreadPoolExecutor(max_workers=max(1, len(wave))) as pool:
            futures = [pool.submit(_one, rt, plans[m.name], dry_run, progress) for m in wave]
            outcomes.extend(f.result() for f in futures)
    return outcomes


def _one(rt: Runtime, plan: Review, dry_run: bool, progress: Progress | None) -> Outcome:
    outcome = Outcome(plan.mapping, plan.action)
    mapping = rt.mappings[plan.mapping]
    matched: set[str] = set()  # on a dry run: records an earlier step would have coupled already
    for what, system in plan.steps:

        def step_progress(done: int, total: int, what: str = what, system: str = system) -> None:
            if progress is not None:
                progress(f"{mapping.name}: {what} from {system}", done, total)

        if what == "match":
            keys = [k for k in _uncoupled(rt, mapping, system)[1] if k not in matched] if matched else None
            found = match(
                rt,
                mapping.name,
                system,
                keys,
                create_new=True,
                dry_run=dry_run,
                progress=step_progress,
                trigger="fullsync",
            )
            outcome.counts.merge(found.counts)
            outcome.plans.extend(found.plans)
            if dry_run:
                matched.update(target_key for _, target_key in found.matched)
            if found.job_id is not None:
                outcome.jobs.append(found.job_id)
        else:
            _, free = _uncoupled(rt, mapping, system)
            created = create_and_couple(
                rt, mapping.name, system, free, trigger="fullsync", dry_run=dry_run, progress=step_progress
            )
            outcome.counts.merge(created.counts)
            outcome.plans.extend(created.plans)
            if created.job_id is not None:
                outcome.jobs.append(created.job_id)
    return outcome
