"""Settings from the environment (TANDEM_*): where the store, the bus, the broker and the files are."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TANDEM_", extra="ignore")

    home: Path = Field(default=Path(".tandem"), description="folder for the embedded default's files")
    config: Path | None = Field(default=None, description="the mapping file")
    database_url: str | None = Field(default=None, description="the coupling store (SQLAlchemy URL)")
    bus_url: str | None = Field(default=None, description="the change-event bus (kombu URL)")
    broker_url: str | None = Field(default=None, description="the dramatiq broker (redis:// or amqp://)")
    batch_size: int = Field(default=500, ge=1, le=10_000, description="records per sync batch")
    namespace: str = Field(
        default="tandem",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,60}$",
        description="prefix of exchange and queue names",
    )
    retries: int = Field(default=5, ge=0, le=100, description="retries of a batch that cannot run")
    min_backoff_ms: int = Field(default=500, ge=10, description="first retry delay")
    max_backoff_ms: int = Field(default=30_000, ge=10, description="longest retry delay")
    time_limit_s: int = Field(default=600, ge=1, description="longest a batch may run")
    sweep_after_s: float = Field(
        default=600, gt=0, description="re-enqueue inbox events not applied after this"
    )
    keep_events_days: float = Field(default=7, gt=0, description="how long applied events stay in the inbox")

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tandem.db'}"

    def config_path(self) -> Path:
        return self.config or self.home / "demo" / "mappings.yaml"
