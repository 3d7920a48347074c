"""Shared fixtures: the repository root, throw-away projects that reuse the shipped toolchains, and the
leak check over the whole session.

The leak check: the session gets a private temporary directory (TMPDIR and tempfile.tempdir, which
subprocesses inherit; pytest's own tmp_path directories live apart and are removed at the end), and
the engine's containers and volumes are listed at the start. At the end the session fails, naming
them, when a container, a volume or a temporary file was left behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_LABEL = "osless.project"  # orchestrator.engine.PROJECT_LABEL: the compiler cache volumes' owner


def project_label(root: Path) -> str:
    """orchestrator.engine.project_label, without importing the engine (and docker) here."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def _docker(*args: str) -> list[str] | None:
    """`docker ARGS` output lines, or None when no engine answers."""
    try:
        completed = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return [line for line in completed.stdout.splitlines() if line.strip()]


def remove_project_volumes(root: Path) -> None:
    """The compiler cache volumes a test project's builds created (labelled with its root)."""
    volumes = _docker("volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project_label(root)}")
    if volumes:
        _docker("volume", "rm", "--force", *volumes)


def pytest_configure(config: pytest.Config) -> None:
    """pytest's tmp_path directories in a directory of their own (outside the private TMPDIR), removed
    at the end, so that what a test leaves in the temp directory is told apart."""
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="osless-pytest-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)


def example_source(name: str) -> Path:
    """An example program's source tree (examples/sources/<name>): fetched, not committed, so a test
    that needs one says how to get it rather than failing on a missing directory."""
    source = REPO_ROOT / "examples" / "sources" / name
    if not source.is_dir():
        pytest.fail(f"{source} is missing: run scripts/fetch-examples (`nox -s tests` does)")
    return source


INIT_TREES = REPO_ROOT / "tests" / "data" / "init-trees"


def init_source(name: str) -> Path:
    """The source tree `osless init` is tested on for `name`: a test tree of a build system no shipped
    source uses (tests/data/init-trees), else a sample (sources/), else an example's fetched source."""
    for tree in (INIT_TREES / name, REPO_ROOT / "sources" / name):
        if tree.is_dir():
            return tree
    return example_source(name)


_OWN_BASETEMP = pytest.StashKey[Path]()


@pytest.fixture(scope="session", autouse=True)
def no_leaks() -> Iterator[None]:
    """Fails the session when containers, volumes or temporary files outlive it (named)."""
    original = {"env": os.environ.get("TMPDIR"), "tempdir": tempfile.tempdir}
    private = Path(tempfile.mkdtemp(prefix="osless-tests-tmp-"))
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = str(private)
    containers = _docker("ps", "-aq", "--no-trunc")
    volumes = _docker("volume", "ls", "-q")
    try:
        yield
    finally:
        tempfile.tempdir = original["tempdir"]
        if original["env"] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = original["env"]
        left = sorted(str(path.relative_to(private)) for path in private.iterdir())
        shutil.rmtree(private, ignore_errors=True)
        leaks = [f"temporary files left in {private}: {', '.join(left)}"] if left else []
        if containers is not None:
            now = _docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Labels}}") or []
            new = [line for line in now if line.split()[0] not in containers]
            if new:
                leaks.append(f"containers left: {'; '.join(new)}")
        if volumes is not None:
            # The repository's own compiler caches, when this session created them (builds of the
            # shipped samples), go too: the engine is left as the session found it.
            own = _docker(
                "volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project_label(REPO_ROOT)}"
            )
            created = sorted(set(own or []) - set(volumes))
            if created:
                _docker("volume", "rm", "--force", *created)
            new_volumes = sorted(set(_docker("volume", "ls", "-q") or []) - set(volumes))
            if new_volumes:
                leaks.append(f"volumes left: {', '.join(new_volumes)}")
        if leaks:
            pytest.fail("the test session leaked: " + " | ".join(leaks), pytrace=False)


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Path]]:
    """A project in tmp_path with the shipped toolchain recipes plus the given files (path -> text).

    Copying the toolchain recipes unchanged gives them the same spec hash, so the images are reused.
    The compiler cache volumes its builds created are removed afterwards.
    """
    made: list[Path] = []

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "project"
        made.append(root)
        shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    yield make
    for root in made:
        remove_project_volumes(root)
