"""The pure parts of containment: bounded capture, the one-regular-file check of copied binaries, the
owner of a container, the root refusal of smoke tests and the bounded stdout diff."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.engine import FileRefused, Owner, _Capture, _file_kind, _single_file, project_label
from orchestrator.recipe.loader import load_project
from orchestrator.stages.smoke import DIFF_LIMIT, output_diff, root_refused
from tests.conftest import REPO_ROOT


def test_capture_keeps_the_limit_of_each_stream_and_counts_the_rest() -> None:
    capture = _Capture(10)
    capture.consume([(b"0123456", None), (None, b"err"), (b"789abcdef", None), (b"more", b"")])
    result = capture.result(exit_code=0, timed_out=False)
    assert result.stdout == b"0123456789" and result.stdout_truncated
    assert result.stderr == b"err" and not result.stderr_truncated


def test_capture_of_exactly_the_limit_is_not_truncated() -> None:
    capture = _Capture(4)
    capture.consume([(b"ab", None), (b"cd", None)])
    assert not capture.result(exit_code=0, timed_out=False).stdout_truncated


@pytest.mark.parametrize(
    ("mode", "link", "kind"),
    [
        (0o755, "", "regular file"),
        (0o755 | 1 << 31, "", "directory"),
        (0o777 | 1 << 27, "/etc/passwd", "symbolic link"),
        (0o644 | 1 << 26 | 1 << 21, "", "device"),
        (0o644 | 1 << 25, "", "named pipe"),
        (0o644 | 1 << 24, "", "socket"),
    ],
)
def test_file_kinds_from_the_engines_stat(mode: int, link: str, kind: str) -> None:
    assert _file_kind(mode, link) == kind


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buffer.seek(0)
    return buffer


def _member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data


def test_one_regular_file_is_taken_out_whole() -> None:
    with _single_file(_tar(_member("app", b"\x7fELF" * 1000)), limit=10_000) as content:
        assert content.read() == b"\x7fELF" * 1000


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ((_member("app", kind=tarfile.SYMTYPE, link="/etc/shadow"),), "not a regular file"),
        ((_member("app", kind=tarfile.CHRTYPE),), "not a regular file"),
        ((_member("app", kind=tarfile.FIFOTYPE),), "not a regular file"),
        ((_member("app", kind=tarfile.DIRTYPE),), "not a regular file"),
        ((_member("app", b"x" * 101),), "larger than 100 bytes"),
        ((_member("app", b"x"), _member("other", b"y")), "more than one file"),
        ((), "empty archive"),
    ],
)
def test_anything_but_one_small_regular_file_is_refused(
    members: tuple[tuple[tarfile.TarInfo, bytes], ...], reason: str
) -> None:
    with pytest.raises(FileRefused, match=reason):
        _single_file(_tar(*members), limit=100)


def test_a_truncated_archive_is_refused() -> None:
    data = _tar(_member("app", b"x" * 5000)).getvalue()[:1000]
    with pytest.raises(FileRefused):
        _single_file(io.BytesIO(data), limit=10_000)


def test_the_owner_is_this_process_and_a_finished_one_is_gone() -> None:
    me = Owner.current()
    assert me.pid == os.getpid() and me.start.isdigit() and me.alive()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert not replace(me, pid=finished.pid).alive()
    assert not replace(me, start=str(int(me.start) + 1)).alive()  # the pid reused by another process


def test_project_labels_differ_by_resolved_root(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert project_label(tmp_path / "a") == project_label(tmp_path / "link")
    assert project_label(tmp_path / "a") != project_label(tmp_path)
    assert len(project_label(tmp_path)) == 16


@pytest.mark.parametrize(
    ("user", "allow_root", "refused"),
    [
        ("65534:65534", False, False),
        ("0", False, True),
        ("0:0", False, True),
        ("00:5", False, True),
        ("0", True, False),
        ("1000", False, False),
    ],
)
def test_smoke_refuses_root_unless_the_recipe_allows_it(user: str, allow_root: bool, refused: bool) -> None:
    service = load_project(REPO_ROOT).services["hello-c"]
    service = replace(
        service,
        image=replace(service.image, user=user),
        smoke=replace(service.smoke, allow_root=allow_root),
    )
    assert (root_refused(service) is not None) == refused


def test_the_stdout_diff_is_bounded() -> None:
    diff = output_diff("expected\n", "y\n" * 100_000)
    lines = diff.splitlines()
    assert len(lines) == DIFF_LIMIT + 1 and lines[-1].startswith("[osless: diff truncated")
