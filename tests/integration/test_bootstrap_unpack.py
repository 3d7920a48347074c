"""`unpack` against the real Debian archive: a foreign architecture's musl-dev downloaded by apt on this
machine (private state, signatures checked with the machine's keys) and added to a real root filesystem
tarball, in the version of the image's native package when it has one. Needs the network, not Docker."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from orchestrator.bootstrap import debian, rootfs
from orchestrator.bootstrap.make import native_architecture
from orchestrator.bootstrap.spec import DPKG_EXCLUDES
from orchestrator.errors import ToolchainError

pytestmark = pytest.mark.integration

NATIVE = native_architecture()
FOREIGN = "amd64" if NATIVE == "arm64" else "arm64"
MUSL_TRIPLE = {"arm64": "aarch64-linux-musl", "amd64": "x86_64-linux-musl"}[FOREIGN]
PACKAGE = f"musl-dev:{FOREIGN}"
SOURCES = b"deb http://deb.debian.org/debian trixie main\n"


def _rootfs(path: Path, status: str = "") -> Path:
    """A merged-/usr root filesystem with a dpkg status and apt sources, as mmdebstrap leaves them."""
    with tarfile.open(path, "w") as tar:
        for name, data in (
            ("./usr/", None),
            ("./usr/lib/", None),
            ("./lib", "usr/lib"),
            ("./etc/apt/sources.list", SOURCES),
            ("./var/lib/dpkg/status", status.encode()),
        ):
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if isinstance(data, bytes) else None)
    return path


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One apt state for the module: the lists are fetched once."""
    return tmp_path_factory.mktemp("apt")


def _download(tarball: Path, state: Path, log: Path) -> list[Path]:
    facts = rootfs.read_facts(tarball)
    return debian.download(
        [PACKAGE], facts.installed, facts.sources, state=state, native=NATIVE, log=log, progress=print
    )


def test_a_foreign_package_is_unpacked_from_the_real_archive(tmp_path: Path, state: Path) -> None:
    tarball = _rootfs(tmp_path / "rootfs.tar")

    [deb] = _download(tarball, state, tmp_path / "log")
    with rootfs.appending(tarball) as appender:
        added = debian.unpack(deb, appender, PACKAGE, DPKG_EXCLUDES)

    assert deb.name.startswith("musl-dev_") and deb.name.endswith(f"_{FOREIGN}.deb")
    assert added > 100
    with tarfile.open(tarball) as tar:
        members = {rootfs.member_path(member.name): member for member in tar}
        libc = members[f"usr/lib/{MUSL_TRIPLE}/libc.a"]
        extracted = tar.extractfile(libc)
        assert extracted is not None and extracted.read(8) == b"!<arch>\n"
    assert (libc.uid, libc.gid, libc.uname) == (0, 0, "root")
    assert members[f"usr/bin/{MUSL_TRIPLE}-gcc"].mode == 0o755
    assert members["lib"].issym()  # the package's files went through it, not over it
    assert not any(path.startswith("usr/share/doc/") for path in members)
    assert "Release" in (tmp_path / "log").read_text()  # apt's own log: update and download


def test_the_native_version_is_requested_exactly(tmp_path: Path, state: Path) -> None:
    [candidate] = _download(_rootfs(tmp_path / "first.tar"), state, tmp_path / "log")
    version = candidate.name.split("_")[1].replace("%3a", ":")
    same = f"Package: musl-dev\nStatus: install ok installed\nArchitecture: {NATIVE}\nVersion: {version}\n"

    [deb] = _download(_rootfs(tmp_path / "same.tar", same), state, tmp_path / "log")
    assert deb == candidate

    other = same.replace(f"Version: {version}", "Version: 0.0.1-1")
    with pytest.raises(ToolchainError) as caught:
        _download(_rootfs(tmp_path / "other.tar", other), state, tmp_path / "log")
    assert caught.value.message == (
        f"unpack {PACKAGE}: the image's musl-dev:{NATIVE} is 0.0.1-1, the archive has {version} of {PACKAGE}"
    )
    assert caught.value.hint is not None and "both must be one version" in caught.value.hint
