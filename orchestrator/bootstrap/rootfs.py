"""A root filesystem tarball (mmdebstrap's output): what it says about itself (installed packages, apt
sources), and files appended to it before it becomes the image's layer.

Appended files are owned by root and keep their modes and symlinks. Their directories pass through the
symlinks the tarball already has (merged /usr: `lib` is `usr/lib`), so a package's `./lib/x` lands in
`usr/lib/x` instead of replacing the `lib` symlink by a directory. A directory already there is left
as it is; a missing one is created (0755). A file already there is kept: a layer names each path
once, and the files a foreign architecture's package shares with the native
one (Multi-Arch: same) are the same files.
"""

from __future__ import annotations

import calendar
import fnmatch
import posixpath
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestrator.errors import ToolchainError

STATUS = "var/lib/dpkg/status"
DPKG_INFO = "var/lib/dpkg/info"
SOURCES_LIST = "etc/apt/sources.list"
SOURCES_PARTS = "etc/apt/sources.list.d"
WHEELS_DIR = "opt/wheels"
APT_LISTS = "var/lib/apt/lists"
_MAX_SYMLINK_HOPS = 40


@dataclass(frozen=True, kw_only=True)
class RootfsFacts:
    """What the bootstrapped root filesystem says about itself."""

    installed: dict[str, str]  # "name:arch" -> version, each package dpkg has installed
    sources: dict[str, bytes]  # apt's source files by path, e.g. "etc/apt/sources.list"
    status: bytes = b""  # dpkg's status file, when a layer's apt resolves against it


def member_path(name: str) -> str:
    """A member name as a normalized relative path ("" for the root); ToolchainError when it leaves it."""
    path = posixpath.normpath("/" + name).lstrip("/")
    if ".." in name.split("/"):
        raise ToolchainError(f"archive member {name!r} leads outside the root filesystem")
    return "" if path == "." else path


def read_facts(tarball: Path) -> RootfsFacts:
    """The installed packages and apt sources of a root filesystem tarball, in one pass over it."""
    status = b""
    sources: dict[str, bytes] = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            path = member_path(member.name)
            wanted = path in (STATUS, SOURCES_LIST) or posixpath.dirname(path) == SOURCES_PARTS
            if wanted and member.isfile() and (data := tar.extractfile(member)) is not None:
                if path == STATUS:
                    status = data.read()
                else:
                    sources[path] = data.read()
    return RootfsFacts(installed=installed_packages(status.decode(errors="replace")), sources=sources)


def release_files(tarball: Path) -> dict[str, str]:
    """apt's Release and InRelease files in the tarball (`var/lib/apt/lists`, kept only when mmdebstrap
    was told to), by file name."""
    releases: dict[str, str] = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            path = member_path(member.name)
            if (
                posixpath.dirname(path) == APT_LISTS
                and path.endswith(("_Release", "_InRelease"))
                and member.isfile()
                and (data := tar.extractfile(member)) is not None
            ):
                releases[posixpath.basename(path)] = data.read().decode(errors="replace")
    return releases


def package_files(tarball: Path, packages: Iterable[str]) -> dict[str, list[str]]:
    """The files dpkg recorded for each of `packages` ("name:arch"), from `var/lib/dpkg/info/*.list`."""
    wanted = {f"{DPKG_INFO}/{package}.list": package for package in packages}
    files: dict[str, list[str]] = {}
    if not wanted:
        return files
    with tarfile.open(tarball) as tar:
        for member in tar:
            path = member_path(member.name)
            if path in wanted and member.isfile() and (data := tar.extractfile(member)) is not None:
                files[wanted[path]] = data.read().decode(errors="replace").splitlines()
    return files


def installed_packages(status: str) -> dict[str, str]:
    """`name:arch` -> version of the packages dpkg's status file says are installed."""
    installed: dict[str, str] = {}
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line[:1].isspace()
        )
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            installed[f"{fields['Package']}:{fields.get('Architecture', '')}"] = fields.get("Version", "")
    return installed


class RootfsAppender:
    """Adds members to an open tarball (mode "a"), root-owned, through the symlinks it already has."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self._paths: set[str] = set()
        self._links: dict[str, str] = {}  # symlink path -> where it points, normalized from the root
        self.kept: list[str] = []  # paths that were already there, left as they were
        for member in tar.getmembers():
            self._record(member_path(member.name), member)

    def add_tar(self, stream: IO[bytes], what: str, excludes: tuple[str, ...] = ()) -> int:
        """The members of a tar stream (a Debian package's data) but those whose absolute path matches
        one of the `excludes` patterns (dpkg's path-exclude): the number of members added."""
        count = 0
        with tarfile.open(fileobj=stream, mode="r|") as data:
            for member in data:
                path = "/" + member_path(member.name)
                if not any(fnmatch.fnmatchcase(path, pattern) for pattern in excludes):
                    count += self.add(member, data.extractfile(member) if member.isfile() else None, what)
        return count

    def add_wheel(self, wheel: Path, what: str) -> int:
        """A wheel's files under /opt/wheels, modes from the zip, its own timestamps: the number added."""
        count = 0
        with zipfile.ZipFile(wheel) as archive:
            for entry in archive.infolist():
                info = tarfile.TarInfo(posixpath.join(WHEELS_DIR, member_path(entry.filename)))
                info.mtime = calendar.timegm((*entry.date_time, 0, 0, 0))
                if entry.is_dir():
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    count += self.add(info, None, what)
                else:
                    info.mode = (entry.external_attr >> 16) & 0o777 or 0o644
                    info.size = entry.file_size
                    with archive.open(entry) as data:
                        count += self.add(info, data, what)
        return count

    def add(self, member: tarfile.TarInfo, data: IO[bytes] | None, what: str) -> int:
        """One member (1 when added, 0 when not: the root, a path already there)."""
        name = member_path(member.name)
        if not name:
            return 0
        parent, base = posixpath.split(name)
        path = posixpath.join(self._resolve(parent), base) if parent else base
        if path in self._paths:
            if not member.isdir():
                self.kept.append(path)
            return 0
        info = tarfile.TarInfo(path)  # fresh: no pax headers, owners or xattrs of the source
        info.mode, info.mtime = member.mode, member.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if member.isdir():
            info.type = tarfile.DIRTYPE
        elif member.issym():
            info.type, info.linkname = tarfile.SYMTYPE, member.linkname
        elif member.islnk():
            target_parent, target_base = posixpath.split(member_path(member.linkname))
            info.type = tarfile.LNKTYPE
            info.linkname = posixpath.join(self._resolve(target_parent), target_base)
        elif member.isfile():
            info.size = member.size
        else:
            raise ToolchainError(f"{what}: {name} is neither a file, a directory nor a link")
        self._parents(path, info.mtime)
        self._tar.addfile(info, data)
        self._record(path, info)
        return 1

    def _parents(self, path: str, mtime: float) -> None:
        """The missing directories above `path`, created 0755."""
        parent = posixpath.dirname(path)
        if parent and parent not in self._paths:
            self._parents(parent, mtime)
            info = tarfile.TarInfo(parent)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            info.uname = info.gname = "root"
            self._tar.addfile(info)
            self._record(parent, info)

    def _record(self, path: str, member: tarfile.TarInfo) -> None:
        self._paths.add(path)
        if member.issym():
            target = posixpath.normpath(posixpath.join("/" + posixpath.dirname(path), member.linkname))
            self._links[path] = target.lstrip("/")
        else:
            self._links.pop(path, None)

    def _resolve(self, directory: str) -> str:
        """`directory` with each symlinked component replaced by where it points."""
        resolved = ""
        for part in directory.split("/"):
            resolved = posixpath.join(resolved, part) if resolved else part
            for _ in range(_MAX_SYMLINK_HOPS):
                if resolved not in self._links:
                    break
                resolved = self._links[resolved]
        return resolved


@contextmanager
def appending(tarball: Path) -> Iterator[RootfsAppender]:
    """A RootfsAppender on `tarball`, closed (end of archive written) on the way out."""
    with tarfile.open(tarball, "a") as tar:
        yield RootfsAppender(tar)
