"""The `tandem` command through click's CliRunner against one world, as a user would call it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from adapters.store.inbox import Inbox
from cli.main import cli
from tests.factories import World


class Tandem:
    """Runs `tandem --config FILE ...` with TANDEM_DATABASE_URL and TANDEM_HOME set, the bus embedded."""

    def __init__(self, world: World, home: Path, config: Path) -> None:
        self.world = world
        self.home = home
        self.config = config
        self.env: dict[str, str | None] = {
            "TANDEM_DATABASE_URL": world.urls["store"],
            "TANDEM_HOME": str(home),
            "TANDEM_CONFIG": None,
            "TANDEM_BUS_URL": None,
            "TANDEM_BROKER_URL": None,
        }

    def __call__(
        self, *args: str, config: Path | None = None, input: str | None = None, **env: str | None
    ) -> Result:
        return self._invoke(args, config, input, env)

    def json(self, *args: str, code: int = 0, input: str | None = None, **env: str | None) -> Any:
        """The command's --json output, after checking its exit code."""
        result = self._invoke((*args, "--json"), None, input, env)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    def _invoke(
        self, args: tuple[str, ...], config: Path | None, input: str | None, env: dict[str, str | None]
    ) -> Result:
        arguments = ["--config", str(config or self.config), *args]
        return CliRunner().invoke(
            cli, arguments, input=input, env={**self.env, **env}, catch_exceptions=False
        )

    @property
    def inbox(self) -> Inbox:
        return Inbox(self.world.rt.store.engine)
