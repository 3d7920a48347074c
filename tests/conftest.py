"""Shared fixtures: the repository root, and throw-away projects that reuse the shipped toolchains."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """A project in tmp_path with the shipped toolchain recipes plus the given files (path -> text).

    Copying the toolchain recipes unchanged gives them the same spec hash, so the images are reused.
    """

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "project"
        shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return make
