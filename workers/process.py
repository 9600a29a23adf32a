"""What one worker process holds: settings, configuration, runtime, inbox and jobs, built in that process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from adapters.runtime import Runtime
from adapters.store.inbox import Inbox
from config.mappings import Configuration, load_file
from config.settings import Settings
from config.wiring import build_runtime
from workers.usecases.apply import EventJobs


@dataclass
class Process:
    settings: Settings
    configuration: Configuration
    runtime: Runtime
    inbox: Inbox
    jobs: EventJobs = field(default_factory=EventJobs)

    @classmethod
    def build(cls, settings: Settings, mapping_file: Path) -> Process:
        """Builds engines and connections here, in this process (never inherited across a fork)."""
        configuration = load_file(mapping_file, {"TANDEM_HOME": str(settings.home), **os.environ})
        runtime = build_runtime(settings, configuration)
        return cls(settings, configuration, runtime, Inbox(runtime.store.engine, runtime.store.reader))

    def close(self) -> None:
        self.jobs.close(self.runtime)
        self.runtime.close()
