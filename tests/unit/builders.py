"""Builders for the domain tests: a two-system mapping ("erp"/"crm"), records, couplings and pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.coupling import Coupling, CouplingStatus
from domain.filters import EVERYTHING, Filter
from domain.lookups import NO_LOOKUPS, Lookups
from domain.mapping import (
    UNSET,
    ConflictKind,
    ConflictPolicy,
    DeletionPolicy,
    FieldMapping,
    MatchRule,
    TableMapping,
    TableSide,
    Template,
    Unset,
)
from domain.matching import MatchResult
from domain.plan import RecordPlan
from domain.planner import MERGE, Pair, Request, plan
from domain.transforms import Chain, Transform
from domain.values import Record, Value

ERP = "erp"
CRM = "crm"
SYSTEMS = (ERP, CRM)
ERP_KEY = "no"
CRM_KEY = "accountid"
ERP_VERSION = "last_modified"
CRM_VERSION = "modifiedon"

BOTH = "both"
ERP_TO_CRM = "erp->crm"
CRM_TO_ERP = "crm->erp"

FAIL = ConflictPolicy(ConflictKind.FAIL)
LATEST = ConflictPolicy(ConflictKind.LATEST)
PREFER_ERP = ConflictPolicy(ConflictKind.PREFER, ERP)
PREFER_CRM = ConflictPolicy(ConflictKind.PREFER, CRM)


def sources_of(direction: str) -> frozenset[str]:
    if direction == BOTH:
        return frozenset(SYSTEMS)
    source, _, target = direction.partition("->")
    assert {source, target} == set(SYSTEMS), direction
    return frozenset({source})


def fld(
    name: str,
    erp: str | None = None,
    crm: str | None = None,
    *,
    direction: str | None = None,
    constant: Value | Unset = UNSET,
    into_erp: Sequence[Transform] = (),
    into_crm: Sequence[Transform] = (),
    lookup: str | None = None,
    blank_if_uncoupled: bool = False,
    match: MatchRule | None = None,
    enabled: bool = True,
) -> FieldMapping:
    """A field mapping; `direction` None means "as the mapping" (the builder fills it in)."""
    columns = {s: c for s, c in ((ERP, erp), (CRM, crm)) if c is not None}
    transforms: dict[str, Chain] = {}
    if into_erp:
        transforms[ERP] = Chain(tuple(into_erp))
    if into_crm:
        transforms[CRM] = Chain(tuple(into_crm))
    return FieldMapping(
        name=name,
        columns=columns,
        sources=sources_of(direction) if direction else frozenset(),
        constant=constant,
        transforms=transforms,
        lookup=lookup,
        blank_if_uncoupled=blank_if_uncoupled,
        match=match,
        enabled=enabled,
    )


def constant(name: str, system: str, column: str, value: Value) -> FieldMapping:
    """A constant into one system's column (its source is the other system, as the config makes it)."""
    if system == ERP:
        return fld(name, erp=column, constant=value)
    return fld(name, crm=column, constant=value)


NAME = fld("name", "name", "name")
CITY = fld("city", "city", "address1_city")
CREDIT = fld("credit", "credit_limit", "creditlimit")
DEFAULT_FIELDS = (NAME, CITY, CREDIT)


def table_mapping(
    fields: Sequence[FieldMapping] = DEFAULT_FIELDS,
    *,
    name: str = "CUSTOMER",
    direction: str = BOTH,
    conflict: ConflictPolicy = FAIL,
    deletion: DeletionPolicy = DeletionPolicy.FAIL,
    sync_only_coupled: bool = True,
    erp_filter: Filter = EVERYTHING,
    crm_filter: Filter = EVERYTHING,
    erp_templates: Sequence[Template] = (),
    crm_templates: Sequence[Template] = (),
    depends_on: Sequence[str] = (),
) -> TableMapping:
    """The customer ↔ account mapping; fields without a direction get the mapping's, as the config does."""
    allowed = sources_of(direction)
    built: list[FieldMapping] = []
    for f in fields:
        if f.is_constant:
            (target,) = f.columns
            sources = frozenset(s for s in SYSTEMS if s != target) & allowed
        else:
            sources = f.sources or allowed
        built.append(_with_sources(f, sources))
    return TableMapping(
        name=name,
        sides=(
            TableSide(
                ERP, "customer", ERP_KEY, ERP_VERSION, filter=erp_filter, templates=tuple(erp_templates)
            ),
            TableSide(
                CRM, "account", CRM_KEY, CRM_VERSION, filter=crm_filter, templates=tuple(crm_templates)
            ),
        ),
        sources=allowed,
        fields=tuple(built),
        sync_only_coupled=sync_only_coupled,
        depends_on=tuple(depends_on),
        conflict=conflict,
        deletion=deletion,
    )


def _with_sources(f: FieldMapping, sources: frozenset[str]) -> FieldMapping:
    return FieldMapping(
        name=f.name,
        columns=f.columns,
        sources=sources,
        enabled=f.enabled,
        constant=f.constant,
        transforms=f.transforms,
        lookup=f.lookup,
        blank_if_uncoupled=f.blank_if_uncoupled,
        match=f.match,
    )


def erp_record(key: str = "C1", **values: Value) -> Record:
    return {ERP_KEY: key, **values}


def crm_record(key: str = "A1", **values: Value) -> Record:
    return {CRM_KEY: key, **values}


def coupling(
    erp_base: Mapping[str, Value] | None = None,
    crm_base: Mapping[str, Value] | None = None,
    *,
    erp_key: str = "C1",
    crm_key: str = "A1",
    mapping: str = "CUSTOMER",
    skipped: bool = False,
) -> Coupling:
    """A coupling of C1 ↔ A1; with no bases given it was never synchronized (base None)."""
    base = (
        None
        if erp_base is None and crm_base is None
        else {ERP: dict(erp_base or {}), CRM: dict(crm_base or {})}
    )
    return Coupling(
        mapping,
        {ERP: erp_key, CRM: crm_key},
        base,
        status=CouplingStatus.SKIPPED if skipped else CouplingStatus.SYNCED,
        failures=2 if skipped else 0,
        skipped=skipped,
        last_error="boom" if skipped else None,
        id=7,
    )


def sync(
    m: TableMapping,
    erp: Record | None,
    crm: Record | None,
    c: Coupling | None,
    *,
    origin: str = ERP,
    request: Request = MERGE,
    lookups: Lookups = NO_LOOKUPS,
    match: MatchResult | None = None,
) -> RecordPlan:
    """Plans one work item from `origin` (its key taken from the record, or from the coupling)."""
    record = erp if origin == ERP else crm
    key_column = ERP_KEY if origin == ERP else CRM_KEY
    if record is not None:
        key = str(record[key_column])
    elif c is not None:
        key = c.key(origin) or ""
    else:
        key = "missing"
    return plan(m, Pair(origin, key, c, {ERP: erp, CRM: crm}, match), request, lookups)
