"""Where the test services are, and the rule: skip on a developer's machine, fail in CI."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

POSTGRES = os.environ.get("TANDEM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB = os.environ.get("TANDEM_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
REDIS = os.environ.get("TANDEM_TEST_REDIS", "redis://127.0.0.1:6379/0")
RABBITMQ = os.environ.get("TANDEM_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")


def required() -> bool:
    return os.environ.get("TANDEM_REQUIRE_SERVICES", "") not in ("", "0") or os.environ.get("CI") == "true"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+psycopg", "").replace("+pymysql", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def need(name: str, url: str, default_port: int) -> None:
    """Skips the test when the service is down, unless CI requires every service (then it fails)."""
    if reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}"
    if required():
        pytest.fail(f"{message} (TANDEM_REQUIRE_SERVICES is set: CI does not skip)")
    pytest.skip(message)


def unique(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
