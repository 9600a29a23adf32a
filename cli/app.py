"""The command line's shared state: settings, the loaded configuration, the runtime, and how errors exit."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import exc as sa_exc

from adapters.connectors.base import RecordRejected, SystemUnavailable, UnknownTable
from adapters.runtime import Runtime
from adapters.store.store import StoreError
from config.errors import ConfigError
from config.mappings import Configuration, load_file
from config.settings import Settings
from config.wiring import build_runtime

DEMO_MAPPINGS = Path(str(resources.files("config") / "demo" / "mappings.yaml"))

# Exit codes, written down once: scripts can tell a refused record from a broken setup.
EXIT_FAILED = 1  # some records failed, or the operation was refused
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_UNAVAILABLE = 3  # a system or the store cannot be reached


class Failure(click.ClickException):
    exit_code = EXIT_FAILED


class Unavailable(click.ClickException):
    exit_code = EXIT_UNAVAILABLE


class BadUsage(click.ClickException):
    exit_code = EXIT_USAGE


@dataclass
class App:
    settings: Settings
    config_path: Path | None = None
    _configuration: Configuration | None = field(default=None, repr=False)
    _runtime: Runtime | None = field(default=None, repr=False)

    @property
    def mapping_file(self) -> Path:
        return self.config_path or self.settings.config or DEMO_MAPPINGS

    def environ(self) -> dict[str, str]:
        return {"TANDEM_HOME": str(self.settings.home), **os.environ}

    def configuration(self) -> Configuration:
        if self._configuration is None:
            self._configuration = load_file(self.mapping_file, self.environ())
        return self._configuration

    @property
    def store_url(self) -> str:
        """The configured store; exploring the demo (no mapping file given) uses the demo's own."""
        if self.settings.database_url is None and self.mapping_file == DEMO_MAPPINGS:
            return f"sqlite:///{self.settings.home / 'demo' / 'tandem.db'}"
        return self.settings.store_url

    def runtime(self) -> Runtime:
        if self._runtime is None:
            settings = self.settings.model_copy(update={"database_url": self.store_url})
            self._runtime = build_runtime(settings, self.configuration())
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


F = TypeVar("F", bound=Callable[..., Any])


def handled(function: F) -> F:
    """Turns the engine's exceptions into one clear line and the documented exit code."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except click.ClickException:
            raise
        except ConfigError as exc:
            raise BadUsage(f"configuration error:\n{exc}") from None
        except KeyError as exc:
            raise BadUsage(str(exc.args[0]) if exc.args else str(exc)) from None
        except SystemUnavailable as exc:
            raise Unavailable(f"{exc} (nothing was lost; run it again when it is back)") from None
        except (UnknownTable, RecordRejected, StoreError) as exc:
            raise Failure(str(exc)) from None
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            # connectors translate their own errors: a raw driver error here is the store's
            lines = str(exc.orig or exc).strip().splitlines() or [type(exc).__name__]
            raise Unavailable(f"the coupling store is unavailable: {lines[0]}") from None

    return wrapper  # type: ignore[return-value]


pass_app = click.make_pass_decorator(App)
