"""The run's engines: the default one, and one per platform given with `--engine PLATFORM=DOCKER_HOST`.

Each platform is built, packaged and smoke-tested on its engine; cleanup (stale containers, this run's
containers, cancellation) goes to every engine, and an engine that does not answer never stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from orchestrator.engine import Engine
from orchestrator.errors import OslessError
from orchestrator.outputs.progress import ProgressView
from orchestrator.platforms import Platform

DEFAULT = "default"  # the engine for every platform not given with --engine
T = TypeVar("T")


class Engines:
    """Routes each platform to its engine, by name: "default" or the platform given with --engine."""

    def __init__(self, default: Engine, per_platform: Mapping[str, Engine] | None = None) -> None:
        self.default = default
        self.per_platform = dict(per_platform or {})  # platform -> the engine given for it

    def by_name(self) -> dict[str, Engine]:
        """Every engine of the run by name, the default one first."""
        return {DEFAULT: self.default, **self.per_platform}

    def name_for(self, platform: Platform) -> str:
        return platform.name if platform.name in self.per_platform else DEFAULT

    def for_platform(self, platform: Platform) -> Engine:
        return self.by_name()[self.name_for(platform)]

    @staticmethod
    def sees_local_files(name: str) -> bool:
        """Whether an engine can bind-mount this machine's files: one given with --engine may run
        elsewhere, so its builders get the sources copied in."""
        return name == DEFAULT

    @staticmethod
    def default_first(needed: tuple[str, str]) -> tuple[bool, str, str]:
        """Order (engine name, toolchain) pairs with the default engine's first, so that other engines
        can copy toolchains from it."""
        return (needed[0] != DEFAULT, *needed)

    def cancel(self, view: ProgressView) -> None:
        """Stop starting containers and remove this run's, on every engine."""
        self._on_each(view, lambda engine: engine.cancel())

    def remove_run_containers(self, view: ProgressView) -> None:
        self._on_each(view, lambda engine: engine.remove_run_containers())

    def remove_stale_containers(self, view: ProgressView) -> None:
        """Containers of earlier runs that could not be removed (the engine crashed under them)."""
        for name, removed in self._on_each(view, lambda engine: engine.remove_stale_containers()).items():
            if removed:
                view.step(
                    f"cleanup ({name} engine)",
                    f"removed {len(removed)} containers left by an earlier run: {', '.join(removed)}",
                    done=True,
                )

    def _on_each(self, view: ProgressView, cleanup: Callable[[Engine], T]) -> dict[str, T]:
        """A cleanup on every engine, by engine name; one that fails is noted, never raised."""
        done = {}
        for name, engine in self.by_name().items():
            try:
                done[name] = cleanup(engine)
            except Exception as error:
                _cleanup_failed(view, name, error)
        return done


def _cleanup_failed(view: ProgressView, name: str, error: Exception) -> None:
    message = error.message if isinstance(error, OslessError) else f"{type(error).__name__}: {error}"
    view.step(
        f"cleanup ({name} engine)",
        f"could not remove containers: {message.strip().splitlines()[0] if message.strip() else ''}"
        "; the next run removes them",
        done=True,
    )
