"""Webhook sources of the mapping file: who may call which path, how they prove it, which tables they name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from config.schema import WebhookModel


@dataclass(frozen=True)
class Auth:
    kind: Literal["hmac", "header", "query"]
    name: str
    secret: str
    algorithm: str = "sha256"


@dataclass(frozen=True)
class TableRoute:
    table: str
    key_column: str | None = None


@dataclass(frozen=True)
class Webhook:
    name: str
    kind: str
    system: str | None
    auth: Auth | None
    client_state: str | None
    tables: Mapping[str, TableRoute] = field(default_factory=dict)
    ignore_users: frozenset[str] = frozenset()
    max_body_bytes: int = 1024 * 1024

    def route(self, name: str) -> TableRoute:
        return self.tables.get(name) or self.tables.get(name.lower()) or TableRoute(name)


def build(name: str, model: WebhookModel, expand: Callable[[str], str]) -> Webhook:
    """The runtime form of one source; `expand` resolves ${VARIABLES} in secrets (KeyError when unset)."""
    auth = None
    if model.auth is not None:
        if model.auth.hmac is not None:
            hmac = model.auth.hmac
            auth = Auth("hmac", hmac.header, expand(hmac.secret), hmac.algorithm)
        elif model.auth.header is not None:
            auth = Auth("header", model.auth.header, expand(model.auth.key or ""))
        else:
            auth = Auth("query", model.auth.query or "", expand(model.auth.key or ""))
    tables = {
        key: TableRoute(value) if isinstance(value, str) else TableRoute(value.table, value.key_column)
        for key, value in model.tables.items()
    }
    client_state = expand(model.client_state) if model.client_state else None
    return Webhook(
        name,
        model.kind,
        model.system,
        auth,
        client_state,
        tables,
        frozenset(u.lower() for u in model.ignore_users),
        model.max_body_bytes,
    )
