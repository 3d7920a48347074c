"""What a language's fetch step is, as data for the generic stage (orchestrator/stages/fetch.py).

The stage knows containers, caches and keys; the language knows its tools: which files of the source
pin the dependencies (the cache key), the command that downloads them, and the environment that makes
the fetch write into, and the build read from, the fetched directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class FetchPlan:
    """One language's fetch step for one service."""

    description: str  # the command as messages name it: "go mod download"
    lock_files: tuple[str, ...]  # files of the source (relative) whose bytes key what is fetched
    sources: tuple[str, ...]  # where it fetches from, as the container sees it (in the key, not paths)
    command: tuple[str, ...]  # run in the service's source directory
    env: dict[str, str] = field(default_factory=dict)  # the fetch's environment, over the build's
    build_env: dict[str, str] = field(default_factory=dict)  # the build's environment, over the recipe's
    # The variable that names the fetched directory: set to a private directory for the fetch, to the
    # finished one for the build.
    directory_variable: str = ""
