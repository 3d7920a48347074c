"""binfmt.problem on a fake /proc/sys/fs/binfmt_misc: each missing piece gets its message and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.host import binfmt
from orchestrator.platforms import PLATFORMS

ARM64 = PLATFORMS["linux/arm64"]
MAGIC = "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"


@pytest.fixture
def binfmt_dir(tmp_path: Path) -> Path:
    """A mounted-looking binfmt_misc directory with no handlers."""
    directory = tmp_path / "binfmt_misc"
    directory.mkdir()
    (directory / "register").write_text("")
    (directory / "status").write_text("enabled\n")
    return directory


@pytest.fixture
def interpreter(tmp_path: Path) -> Path:
    path = tmp_path / "qemu-aarch64-static"
    path.write_bytes(b"\x7fELF")
    return path


def register(directory: Path, interpreter: Path | str, *, flags: str = "POF", enabled: bool = True) -> None:
    state = "enabled" if enabled else "disabled"
    (directory / "qemu-aarch64").write_text(
        f"{state}\ninterpreter {interpreter}\nflags: {flags}\noffset 0\n{MAGIC}"
    )


def test_healthy_handler_has_no_problem(binfmt_dir: Path, interpreter: Path) -> None:
    register(binfmt_dir, interpreter)
    assert binfmt.problem(ARM64, binfmt_dir) is None
    assert binfmt.read_handler("qemu-aarch64", binfmt_dir) == binfmt.Handler(
        name="qemu-aarch64", enabled=True, interpreter=str(interpreter), flags="POF"
    )


def test_not_mounted(tmp_path: Path) -> None:
    assert binfmt.problem(ARM64, tmp_path) == binfmt.Problem(
        message=f"binfmt_misc is not mounted at {tmp_path}", fix=binfmt.FIX_COMMAND
    )


def test_no_handler(binfmt_dir: Path) -> None:
    assert binfmt.read_handler("qemu-aarch64", binfmt_dir) is None
    assert binfmt.problem(ARM64, binfmt_dir) == binfmt.Problem(
        message="no binfmt_misc handler qemu-aarch64 is registered", fix=binfmt.FIX_COMMAND
    )


def test_disabled_handler(binfmt_dir: Path, interpreter: Path) -> None:
    register(binfmt_dir, interpreter, enabled=False)
    assert binfmt.problem(ARM64, binfmt_dir) == binfmt.Problem(
        message="the binfmt_misc handler qemu-aarch64 is disabled",
        fix=f"echo 1 > {binfmt_dir / 'qemu-aarch64'}",
    )


def test_handler_without_fix_binary_flag(binfmt_dir: Path, interpreter: Path) -> None:
    register(binfmt_dir, interpreter, flags="OC")
    problem = binfmt.problem(ARM64, binfmt_dir)
    assert problem is not None
    assert "lacks the fix-binary (F) flag" in problem.message
    assert problem.fix == f"echo -1 > {binfmt_dir / 'qemu-aarch64'}; {binfmt.FIX_COMMAND}"


def test_missing_interpreter(binfmt_dir: Path, tmp_path: Path) -> None:
    register(binfmt_dir, tmp_path / "gone")
    problem = binfmt.problem(ARM64, binfmt_dir)
    assert problem == binfmt.Problem(
        message=f"the interpreter {tmp_path / 'gone'} is missing", fix="apt-get install qemu-user-static"
    )
    assert str(problem) == f"{problem.message} — fix: {problem.fix}"
