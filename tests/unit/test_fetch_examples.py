"""scripts/fetch-examples against a file:// mirror made here: pinned files unpacked, checksums enforced,
missing files named, Go modules vendored from Debian-style golang-*-dev packages, reruns idempotent."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fetch-examples"
MTIME = 1_600_000_000


def _tar(files: dict[str, bytes], compression: str = "gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    """A Debian binary package: an ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", _tar({"./control": b"Package: x\n"}, "xz")),
        ("data.tar.xz", _tar(files, "xz")),
    ]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def _pool(mirror: Path, path: str, data: bytes) -> str:
    """Puts data at the mirror's path; returns its sha256."""
    target = mirror / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _run(examples: Path, mirror: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--examples", str(examples), "--mirror", mirror.as_uri(), *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


GO_MOD = b"""module example.com/demo

go 1.21

require (
\texample.com/x v1.0.0
\texample.com/testonly v0.1.0
)

require example.com/y v0.2.0 // indirect
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """A mirror with an upstream tarball, a crate-like binary package and two golang-*-dev packages,
    and an examples project pinning them."""
    mirror, examples = tmp_path / "mirror", tmp_path / "examples"
    examples.mkdir()
    tarball = _pool(
        mirror,
        "pool/main/d/demo/demo_1.0.orig.tar.gz",
        _tar(
            {"demo-1.0/go.mod": GO_MOD, "demo-1.0/main.go": b"package main\n", "demo-1.0/doc/a.txt": b"a\n"}
        ),
    )
    crate = _pool(
        mirror,
        "pool/main/r/rust-tool/librust-tool-dev_1.0_amd64.deb",
        _deb({"./usr/share/cargo/registry/tool-1.0/Cargo.toml": b"[package]\n", "./usr/share/doc/x": b""}),
    )
    x = _pool(
        mirror,
        "pool/main/g/golang-x/golang-x-dev_1.2.0-1_all.deb",
        _deb(
            {
                "./usr/share/gocode/src/example.com/x/go.mod": b"module example.com/x\n\ngo 1.18\n",
                "./usr/share/gocode/src/example.com/x/x.go": b"package x\n",
                "./usr/share/gocode/src/example.com/x/x_test.go": b"package x\n",
                "./usr/share/gocode/src/example.com/x/testdata/t.go": b"package t\n",
                "./usr/share/gocode/src/example.com/x/sub/y.go": b"package sub\n",
            }
        ),
    )
    y = _pool(
        mirror,
        "pool/main/g/golang-y/golang-y-dev_0.3.0-1_all.deb",
        _deb({"./usr/share/gocode/src/example.com/y/y.go": b"package y\n"}),
    )
    (examples / "sources.toml").write_text(
        f"""
[demo]
path = "pool/main/d/demo/demo_1.0.orig.tar.gz"
sha256 = "{tarball}"

[[demo.vendor]]
module = "example.com/x"
version = "v1.2.0"
path = "pool/main/g/golang-x/golang-x-dev_1.2.0-1_all.deb"
sha256 = "{x}"

[[demo.vendor]]
module = "example.com/y"
version = "v0.3.0"
path = "pool/main/g/golang-y/golang-y-dev_0.3.0-1_all.deb"
sha256 = "{y}"

[tool]
path = "pool/main/r/rust-tool/librust-tool-dev_1.0_amd64.deb"
sha256 = "{crate}"
subdir = "usr/share/cargo/registry/tool-1.0"
"""
    )
    return examples, mirror


def test_unpacks_pinned_files_and_vendors_go_modules(project: tuple[Path, Path]) -> None:
    examples, mirror = project
    result = _run(examples, mirror)
    assert result.returncode == 0, result.stderr
    demo = examples / "sources" / "demo"
    assert (demo / "main.go").read_text() == "package main\n"
    assert int((demo / "doc" / "a.txt").stat().st_mtime) == MTIME  # make compares mtimes
    assert (demo.stat().st_mode & 0o777) == 0o755  # readable by a build user other than the owner
    assert (examples / "sources" / "tool" / "Cargo.toml").is_file()
    assert not (examples / "sources" / "tool" / "usr").exists()

    vendor = demo / "vendor"
    assert (vendor / "example.com/x/x.go").is_file()
    assert (vendor / "example.com/x/sub/y.go").is_file()
    assert not (vendor / "example.com/x/x_test.go").exists()  # as `go mod vendor`: no tests
    assert not (vendor / "example.com/x/testdata").exists()
    assert (vendor / "modules.txt").read_text() == (
        "# example.com/x v1.2.0\n## explicit; go 1.18\nexample.com/x\nexample.com/x/sub\n"
        "# example.com/testonly v0.1.0\n## explicit\n"
        "# example.com/y v0.3.0\n## explicit\nexample.com/y\n"
    )
    go_mod = (demo / "go.mod").read_text()
    assert "\texample.com/x v1.2.0\n" in go_mod
    assert "\texample.com/testonly v0.1.0\n" in go_mod
    assert "require example.com/y v0.3.0 // indirect\n" in go_mod


def test_a_second_run_changes_nothing(project: tuple[Path, Path]) -> None:
    examples, mirror = project
    assert _run(examples, mirror).returncode == 0
    main_go = examples / "sources" / "demo" / "main.go"
    before = main_go.stat().st_ino
    (mirror / "pool/main/d/demo/demo_1.0.orig.tar.gz").unlink()  # nothing is downloaded again
    result = _run(examples, mirror)
    assert result.returncode == 0, result.stderr
    assert "demo: up to date" in result.stdout
    assert main_go.stat().st_ino == before


def test_a_changed_pin_fetches_again(project: tuple[Path, Path]) -> None:
    examples, mirror = project
    assert _run(examples, mirror, "demo").returncode == 0
    data = _tar({"demo-1.1/go.mod": b"module example.com/demo\n", "demo-1.1/new.go": b"package main\n"})
    digest = _pool(mirror, "pool/main/d/demo/demo_1.1.orig.tar.gz", data)
    (examples / "sources.toml").write_text(
        f'[demo]\npath = "pool/main/d/demo/demo_1.1.orig.tar.gz"\nsha256 = "{digest}"\n'
    )
    result = _run(examples, mirror)
    assert result.returncode == 0, result.stderr
    assert (examples / "sources" / "demo" / "new.go").is_file()
    assert not (examples / "sources" / "demo" / "main.go").exists()  # the old tree is gone


def test_a_checksum_mismatch_is_refused(project: tuple[Path, Path]) -> None:
    examples, mirror = project
    (mirror / "pool/main/d/demo/demo_1.0.orig.tar.gz").write_bytes(_tar({"demo-1.0/evil.go": b"x"}))
    result = _run(examples, mirror, "demo")
    assert result.returncode == 1
    assert "refusing pool/main/d/demo/demo_1.0.orig.tar.gz: its sha256 is" in result.stderr
    assert not (examples / "sources" / "demo").exists()
    assert not list((examples / ".fetch" / "downloads").iterdir())  # nothing half-trusted kept


def test_a_missing_file_is_named_and_the_others_are_fetched(project: tuple[Path, Path]) -> None:
    examples, mirror = project
    (mirror / "pool/main/g/golang-y/golang-y-dev_0.3.0-1_all.deb").unlink()
    result = _run(examples, mirror)
    assert result.returncode == 1
    assert "demo: pool/main/g/golang-y/golang-y-dev_0.3.0-1_all.deb is missing on the mirror" in result.stderr
    assert "1 of 2 sources failed" in result.stderr
    assert (examples / "sources" / "tool" / "Cargo.toml").is_file()
    assert not (examples / "sources" / "demo").exists()


def test_a_member_outside_the_tree_is_refused(project: tuple[Path, Path]) -> None:
    examples, mirror = project
    data = _tar({"demo-1.0/go.mod": b"module m\n", "demo-1.0/../../outside.txt": b"x"})
    digest = _pool(mirror, "pool/main/d/demo/demo_1.0.orig.tar.gz", data)
    (examples / "sources.toml").write_text(
        f'[demo]\npath = "pool/main/d/demo/demo_1.0.orig.tar.gz"\nsha256 = "{digest}"\n'
    )
    result = _run(examples, mirror)
    assert result.returncode == 1
    assert "demo: cannot unpack demo_1.0.orig.tar.gz" in result.stderr
    assert not (examples.parent / "outside.txt").exists()
    assert not (examples / "sources" / "demo").exists()


def test_unknown_names_and_bad_pins_are_usage_errors(project: tuple[Path, Path]) -> None:
    examples, mirror = project
    result = _run(examples, mirror, "nope")
    assert result.returncode == 2
    assert "unknown source nope (known: demo, tool)" in result.stderr
    (examples / "sources.toml").write_text('[demo]\npath = "/etc/passwd"\nsha256 = "00"\n')
    result = _run(examples, mirror)
    assert result.returncode == 2
    assert "must be a file below the archive's pool/" in result.stderr


def test_the_shipped_manifest_is_valid() -> None:
    """examples/sources.toml: every pin well formed (`nox -s examples` fetches the files themselves)."""
    examples = SCRIPT.parent.parent / "examples"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--examples",
            str(examples),
            "--mirror",
            "file:///nonexistent",
            "x-none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown source x-none (known: lua, minisign, ninja, gojq, hexyl)" in result.stderr
