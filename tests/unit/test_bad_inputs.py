"""The bad-input corpus: every case in tests/data/bad-inputs/ is a small project and an osless command
line that must end in one clean error (the expected exit code and message), never a traceback.

A case file says:
    description  str        what the input is and why it matters
    args         list[str]  the osless arguments after `-C PROJECT`
    exit_code    int        the expected exit code
    fragment     str        text the output must contain
    stream       str        "stderr" (default) or "stdout": where the fragment must be
    toolchains   bool       default true: copy the shipped recipes/toolchains/
    service      str        the text of recipes/s.toml (default: a valid service "s"; "" for none)
    append       str        appended to recipes/s.toml
    fifos        list[str]  FIFOs to create (paths relative to the project)
    sockets      list[str]  Unix sockets to create
    [files]                 path -> text: more files
    [repeat."<path>"]       a file too big to keep here: head + open * count + middle + close * count

No case needs the engine: DOCKER_HOST points nowhere, so a case that reached it would fail with exit 4.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib

from tests.conftest import REPO_ROOT

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad-inputs"
CASES = sorted(CORPUS.glob("*.toml"))
SERVICE = """\
[service]
name = "s"
source = "sources/s"
toolchain = "gcc"
platforms = ["linux/amd64"]

[build]
command = ["{CC}", "-static", "-o", "{output}", "main.c"]
"""
MAIN_C = "int main(void) { return 0; }\n"
KEYS = {
    "description",
    "args",
    "exit_code",
    "fragment",
    "stream",
    "toolchains",
    "service",
    "append",
    "fifos",
    "sockets",
    "files",
    "repeat",
}


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


def make_project(root: Path, case: dict[str, Any]) -> None:
    """The case's project in `root`: a valid service "s" unless the case replaces it, then its edits."""
    (root / "recipes").mkdir(parents=True)
    if case.get("toolchains", True):
        shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    service = case.get("service", SERVICE) + case.get("append", "")
    files: dict[str, str] = {"sources/s/main.c": MAIN_C}
    if service:
        files["recipes/s.toml"] = service
    files.update(case.get("files", {}))
    for relative, spec in case.get("repeat", {}).items():
        count = spec["count"]
        files[relative] = spec["head"] + spec["open"] * count + spec.get("middle", "") + spec["close"] * count
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for relative in case.get("fifos", []):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / relative)
    for relative in case.get("sockets", []):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        with socket.socket(socket.AF_UNIX) as server:
            # A relative path: the absolute one may be longer than a socket address can be.
            cwd = Path.cwd()
            os.chdir((root / relative).parent)
            try:
                server.bind((root / relative).name)
            finally:
                os.chdir(cwd)


@pytest.mark.parametrize("case_file", CASES, ids=[path.stem for path in CASES])
def test_bad_input(case_file: Path, tmp_path: Path) -> None:
    case = tomllib.loads(case_file.read_text())
    assert set(case) <= KEYS, f"unknown keys in {case_file.name}: {set(case) - KEYS}"
    assert case["description"] and case["fragment"]
    root = tmp_path / "project"
    make_project(root, case)
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent", "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)

    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "-C", str(root), *case["args"]],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a FIFO that blocks osless fails the case instead of hanging the suite
        check=False,
    )

    output = f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n"
    output += result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr, output
    assert result.returncode == case["exit_code"], output
    stream = result.stdout if case.get("stream", "stderr") == "stdout" else result.stderr
    assert case["fragment"] in " ".join(stream.split()), output
