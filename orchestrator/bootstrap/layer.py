"""A toolchain layer: packages added on top of an existing toolchain image, as one thin image layer.

Everything that needs the network happens here, on the host: apt (debian.Apt: a private state, the
archive's signatures checked) reads the base image's dpkg status and apt sources, resolves what the
packages need beyond what the image has, and downloads the .deb files. make.py then installs them in
a container of the base image, with no network, and makes what it changed a layer
(engine.build_layer, image/toolchain_archive.py).

Three kinds of additions:
- `packages`: installed with their dependencies (apt inside the container, from the downloaded files);
- `libraries`: target libraries for static linking, `<name>-dev:<arch>`: the `-dev` package and the
  `-dev` packages it depends on, installed with dpkg but without their run-time packages (a static link
  never reads them, and they pull in a foreign libc that the archive may lack); each one that ships a
  shared library must ship a static archive too;
- `unpack`: files only, no dependencies, no scripts (the version of the image's native package when
  it has one), as for a bootstrap.
"""

from __future__ import annotations

import io
import posixpath
import re
import shutil
import subprocess
import tarfile
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.bootstrap import debian
from orchestrator.bootstrap.lock import Lock, include_specs
from orchestrator.bootstrap.rootfs import RootfsFacts, installed_packages
from orchestrator.errors import ToolchainError
from orchestrator.platforms import PLATFORMS

Progress = Callable[[str], None]
LAYER_DIR = "osless-layer"  # where the files go in the container; removed before the layer is read
# The image label listing the `libraries` installed without their run-time dependencies ("name:arch"
# separated by spaces): they are left out of the dpkg status the next layer's apt resolves against.
LIBRARIES_LABEL = "osless.toolchain.libraries"
# `-dev` packages of the C library and the compilers: the cross toolchain has them for every platform
# (libc6-dev-<arch>-cross...), so a library's dependency on them is already met.
_TOOLCHAIN_DEV = re.compile(r"libc6?-dev|libc-dev|linux-libc-dev|libcrypt-dev|lib(?:gcc|stdc\+\+)-\d+-dev")
_FETCH_FAILED = re.compile(r"Failed to fetch (\S+)\s+(\d{3})?\s*([^\[/]*)")
# A shared or static library in a library directory, as dpkg-deb lists a package's files.
_SHARED = re.compile(r"(?:^|/)lib/(?:[^/]+/)*lib[^/]+\.so(?:\.[0-9.]+)?$")
_STATIC = re.compile(r"(?:^|/)lib/(?:[^/]+/)*lib[^/]+\.a$")
_SCRIPT = r"""set -eu
layer=/osless-layer
export DEBIAN_FRONTEND=noninteractive
while read -r arch; do dpkg --add-architecture "$arch"; done < "$layer/architectures"
set -- "$layer"/install/*.deb
if [ -e "$1" ]; then
  if command -v apt-get >/dev/null; then
    apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
  else
    dpkg --install "$@"
  fi
fi
set -- "$layer"/libraries/*.deb
if [ -e "$1" ]; then
  dpkg --install --force-depends "$@"
fi
for deb in "$layer"/unpack/*.deb; do
  [ -e "$deb" ] || continue
  dpkg-deb --fsys-tarfile "$deb" > "$layer/data.tar"
  tar -x -f "$layer/data.tar" -C / --keep-directory-symlink --skip-old-files --no-same-owner \
    --exclude-from="$layer/excludes"
done
cd /
rm -rf "$layer"
if command -v apt-get >/dev/null; then apt-get clean; fi
rm -f /var/lib/dpkg/*-old /var/cache/debconf/*-old
"""


@dataclass(frozen=True, kw_only=True)
class Deb:
    """A downloaded package file."""

    package: str  # name:arch
    version: str
    path: Path


@dataclass(frozen=True, kw_only=True)
class LayerPlan:
    """What the layer container installs, all downloaded."""

    install: list[Path] = field(default_factory=list)
    libraries: list[Deb] = field(default_factory=list)
    unpack: list[Deb] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)  # foreign architectures dpkg must know

    @property
    def empty(self) -> bool:
        return not (self.install or self.libraries or self.unpack)


def image_facts(status_tar: bytes, apt_tar: bytes, left_out: Iterable[str] = ()) -> RootfsFacts:
    """The base image's installed packages and apt sources, from `docker cp` tars of
    /var/lib/dpkg/status and /etc/apt; the `left_out` packages ("name:arch") are not counted as
    installed (libraries installed without their run-time dependencies)."""
    status = _members(status_tar, lambda path: path == "status").get("status", b"")
    sources = {
        f"etc/{path}": data
        for path, data in _members(
            apt_tar,
            lambda path: path == "apt/sources.list" or posixpath.dirname(path) == "apt/sources.list.d",
        ).items()
    }
    kept = _without_stanzas(status.decode(errors="replace"), set(left_out))
    return RootfsFacts(installed=installed_packages(kept), sources=sources, status=kept.encode())


def _members(archive: bytes, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            path = posixpath.normpath(member.name).lstrip("/")
            if member.isfile() and wanted(path) and (data := tar.extractfile(member)) is not None:
                files[path] = data.read()
    return files


def _without_stanzas(status: str, left_out: set[str]) -> str:
    """dpkg's status without the stanzas of the `left_out` packages ("name:arch")."""
    if not left_out:
        return status
    kept = []
    for stanza in status.split("\n\n"):
        fields = _fields(stanza)
        if f"{fields.get('Package', '')}:{fields.get('Architecture', '')}" not in left_out:
            kept.append(stanza)
    return "\n\n".join(kept)


def _fields(stanza: str) -> dict[str, str]:
    """The fields of a Debian control stanza (continuation lines joined)."""
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line[:1].isspace() and key is not None:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    return fields


def plan(
    *,
    packages: Sequence[str],
    libraries: Sequence[str],
    unpack: Sequence[str],
    facts: RootfsFacts,
    state: Path,
    native: str,
    log: Path,
    progress: Progress,
    locked: Lock | None = None,
) -> LayerPlan:
    """Resolve and download everything the layer adds (`libraries` as "name-dev:arch"); with a lock (a
    derived toolchain's), in exactly its versions: its packages asked for by version, its libraries'
    and unpack packages' versions instead of the candidates (the caller checks what was planned)."""
    if not (packages or libraries or unpack):
        return LayerPlan()
    if not facts.sources:
        raise ToolchainError("the base image has no apt sources to download the packages from")
    installed_arches = {key.rpartition(":")[2] for key in facts.installed}
    foreign = sorted(
        (installed_arches | set(debian.foreign_architectures([*packages, *libraries, *unpack], native)))
        - {native, "all", ""}
    )
    apt = debian.Apt(state, native, foreign, log)
    apt.prepare(facts.sources)
    (state / "status").write_bytes(facts.status)
    progress("apt-get update")
    apt.run("update", what="apt-get update")
    debs = state / "debs"
    result = LayerPlan(
        architectures=sorted(set(debian.foreign_architectures([*packages, *libraries], native)))
    )
    if packages:
        requests = None if locked is None else include_specs(locked, native)
        result.install.extend(_install(apt, packages, native, progress, requests=requests))
    if libraries:
        pins = None if locked is None else locked.libraries
        result.libraries.extend(_libraries(apt, libraries, debs, progress, pins=pins))
    if unpack:
        wanted = [
            f"{package}={locked.unpack[package]}"
            if locked is not None and package in locked.unpack
            else debian.requested(package, facts.installed, native)
            for package in unpack
        ]
        result.unpack.extend(_download(apt, wanted, debs, "unpack", progress))
    return result


def _install(
    apt: debian.Apt,
    packages: Sequence[str],
    native: str,
    progress: Progress,
    *,
    requests: Sequence[str] | None = None,
) -> list[Path]:
    """The files of `packages` and of every dependency the image lacks, downloaded by apt (which
    checks them against the signed indexes) into the state's archives directory; `requests` (a lock's
    `name=version` for each of those) is what apt is asked for instead, when given."""
    wanted = packages if requests is None else requests
    if not wanted:
        progress("packages: the base image has them all")
        return []
    archives = apt.state / "archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    # apt prints no URI for a file its archives directory has: resolve against an empty one, download
    # into the kept one (a file already there is not fetched again).
    empty = apt.state / "resolving"
    shutil.rmtree(empty, ignore_errors=True)
    (empty / "partial").mkdir(parents=True)
    options = ("--no-install-recommends", "-o", "Debug::NoLocking=1")
    printed = apt.run(
        "install",
        "--print-uris",
        "-qq",
        *options,
        *("-o", f"Dir::Cache::archives={empty}"),
        "--",
        *wanted,
        what="resolving the packages",
    )
    download = (*options, "-o", f"Dir::Cache::archives={archives}")
    entries = _uris(printed)
    if not entries:
        progress("packages: the base image has them all")
        return []
    size = sum(entry.size for entry in entries)
    progress(f"packages: downloading {len(entries)} files ({size / 1024**2:.1f} MiB)")
    try:
        apt.run("install", "--download-only", "-y", *download, "--", *wanted, what="downloading the packages")
    except ToolchainError as error:
        raise _fetch_error(error, entries, packages) from None
    for package in packages:
        name, _, arch = package.partition(":")
        if name.endswith("-dev") and arch not in ("", native, "all", "native"):  # a target library
            entry = _entry_of(package, entries)
            if entry is not None:
                check_static(package, archives / entry.file)
    return [archives / entry.file for entry in entries]


def _libraries(
    apt: debian.Apt,
    libraries: Sequence[str],
    debs: Path,
    progress: Progress,
    *,
    pins: Mapping[str, str] | None = None,
) -> list[Deb]:
    """Each library (`name-dev:arch`) and the `-dev` packages it depends on, downloaded (in the version
    `pins` gives it, when it does); each requested library checked for a static archive."""
    closure = library_closure(libraries, lambda packages: _show(apt, packages))
    if pins is not None:
        closure = {package: pins.get(package, version) for package, version in closure.items()}
    progress(f"libraries: {len(closure)} -dev packages for {len(libraries)} requested")
    downloaded = _download(
        apt, [f"{package}={version}" for package, version in closure.items()], debs, "libraries", progress
    )
    for deb in downloaded:
        if deb.package in libraries:
            check_static(deb.package, deb.path)
    return downloaded


def library_closure(
    libraries: Sequence[str], show: Callable[[Sequence[str]], dict[str, dict[str, str]]]
) -> dict[str, str]:
    """`name:arch` -> version of each library and of the `-dev` packages they depend on, transitively
    (the first `-dev` alternative of each dependency that the toolchain does not already meet); `show`
    gives the candidate fields of each of some packages it finds, by `name:arch` (apt is asked once per
    level of dependencies, not once per package)."""
    closure: dict[str, str] = {}
    needed_by: dict[str, str | None] = dict.fromkeys(libraries)
    pending = list(dict.fromkeys(libraries))
    while pending:
        found = show(pending)
        following: list[str] = []
        for package in pending:
            fields = found.get(package)
            if fields is None:
                name, _, arch = package.partition(":")
                where = f" (needed by {needed_by[package]})" if needed_by.get(package) else ""
                raise ToolchainError(
                    f"library {package}{where}: the archive has no {name} for {arch}{_platforms_of(arch)}",
                    hint="check its name (`apt-cache search`) and that it is built for that architecture",
                )
            closure[package] = fields.get("Version", "")
            arch = package.partition(":")[2]
            for group in _dependencies(fields):
                names = [name for name, _ in group]
                if any(_TOOLCHAIN_DEV.fullmatch(name) for name in names):
                    continue
                dev = next((name for name in names if name.endswith("-dev")), None)
                dependency = f"{dev}:{arch}"
                if dev is not None and dependency not in closure and dependency not in following:
                    needed_by.setdefault(dependency, package)
                    following.append(dependency)
        pending = [package for package in following if package not in closure]
    return closure


def _dependencies(fields: Mapping[str, str]) -> list[list[tuple[str, str]]]:
    """Pre-Depends and Depends as groups of alternatives: (name, architecture qualifier)."""
    groups = []
    for key in ("Pre-Depends", "Depends"):
        for group in filter(None, (part.strip() for part in fields.get(key, "").split(","))):
            alternatives = []
            for alternative in group.split("|"):
                name = re.split(r"[\s(\[<]", alternative.strip(), maxsplit=1)[0]
                name, _, qualifier = name.partition(":")
                if name:
                    alternatives.append((name, qualifier))
            groups.append(alternatives)
    return groups


def _show(apt: debian.Apt, packages: Sequence[str]) -> dict[str, dict[str, str]]:
    """The candidate's fields of each of `packages` (`name:arch`) that the archive has, by `name:arch`;
    an architecture-independent package is found through its name and answers for every architecture."""
    found: dict[str, dict[str, str]] = {}
    for specs in (list(packages), sorted({package.partition(":")[0] for package in packages})):
        stanzas = _apt_cache_show(apt, specs)
        if stanzas is None:  # apt refuses the whole list at a name it does not know: one by one
            stanzas = [stanza for spec in specs for stanza in _apt_cache_show(apt, [spec]) or []]
        for stanza in stanzas:
            fields = _fields(stanza)
            name, arch = fields.get("Package", ""), fields.get("Architecture", "")
            for package in packages:
                if package.partition(":")[0] == name and arch in (package.partition(":")[2], "all"):
                    found.setdefault(package, fields)
        if all(package in found for package in packages):
            break
    return found


def _apt_cache_show(apt: debian.Apt, specs: Sequence[str]) -> list[str] | None:
    """The candidate stanzas of `specs`; None when apt-cache fails (a name it does not know)."""
    command = ["apt-cache", *apt.options, "show", "--no-all-versions", "--", *specs]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return None
    return [stanza for stanza in completed.stdout.strip().split("\n\n") if stanza.strip()]


@dataclass(frozen=True, kw_only=True)
class _Uri:
    url: str
    file: str
    size: int

    @property
    def package(self) -> tuple[str, str, str]:
        """(name, version, architecture) from the file name `name_version_arch.deb` (no epoch)."""
        name, version, arch = [*self.file.removesuffix(".deb").split("_"), "", ""][:3]
        return name, urllib.parse.unquote(version), arch


def _uris(printed: str) -> list[_Uri]:
    """apt-get's --print-uris lines: `'URL' file size hash`."""
    entries = []
    for line in printed.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith("'") and parts[1].endswith(".deb") and "/" not in parts[1]:
            entries.append(
                _Uri(url=parts[0].strip("'"), file=parts[1], size=int(parts[2]) if parts[2].isdigit() else 0)
            )
    return entries


def _entry_of(package: str, entries: Sequence[_Uri]) -> _Uri | None:
    name, _, arch = package.partition(":")
    return next((e for e in entries if e.package[0] == name and e.package[2] in (arch, "all")), None)


def _download(apt: debian.Apt, wanted: Sequence[str], debs: Path, what: str, progress: Progress) -> list[Deb]:
    """`name:arch=version` packages downloaded one file each (apt-get download: no dependencies)."""
    debs.mkdir(parents=True, exist_ok=True)
    printed = apt.run("download", "--print-uris", "--", *wanted, what=f"looking up the {what} packages")
    entries = _uris(printed)
    progress(f"{what}: downloading {', '.join(wanted)}")
    try:
        apt.run("download", "--", *wanted, what=f"downloading the {what} packages", cwd=debs)
    except ToolchainError as error:
        raise _fetch_error(error, entries, [spec.partition("=")[0] for spec in wanted]) from None
    result = []
    for spec in wanted:
        package, _, version = spec.partition("=")
        entry = _entry_of(package, entries)
        if entry is None:
            raise ToolchainError(f"{what} {package}: apt-get download --print-uris named no file of it")
        result.append(Deb(package=package, version=version, path=debs / entry.file))
    return result


def _fetch_error(error: ToolchainError, entries: Sequence[_Uri], requested: Sequence[str]) -> ToolchainError:
    """An archive gap said plainly: which packages, versions and architectures (and so platforms) the
    archive could not give, and for which requested packages. apt may fetch from another source than
    it printed (a security pocket), so files are matched by name, architecture and version."""
    gaps: list[str] = []
    arches: list[str] = []
    urls: list[str] = []
    for url, code, reason in _FETCH_FAILED.findall(error.message):
        name, version, arch = _Uri(url=url, file=posixpath.basename(url), size=0).package
        entry = next((e for e in entries if _plain(e.package) == (name, version, arch)), None)
        status = f"{code} {reason.strip()}".strip() or "failed"
        gaps.append(
            f"{name} {entry.package[1] if entry else version} for {arch}{_platforms_of(arch)}: {status}"
        )
        arches.append(arch)
        urls.append(url)
    if not gaps:
        return error
    needing = ", ".join(p for p in requested if p.partition(":")[2] in arches) or "the packages asked for"
    return ToolchainError(
        f"the archive lacks {'; '.join(gaps)} (needed by {needing})",
        hint=f"{urls[0]} could not be downloaded: the mirror is incomplete for "
        f"{', '.join(dict.fromkeys(arches))}; leave those platforms out, or use another mirror",
    )


_UNLOCATED = re.compile(r"E: Unable to locate package (\S+)")


def apt_failure(text: str, requested: Sequence[str]) -> ToolchainError | None:
    """What apt's messages in `text` (mmdebstrap's log) say went wrong, plainly, once: a package the
    suite does not have, or files the mirror lacks; None when they say neither."""
    missing = list(dict.fromkeys(_UNLOCATED.findall(text)))
    if missing:
        arches = {name.partition(":")[2] for name in missing} - {""}
        return ToolchainError(
            f"the archive has no package {', '.join(missing)}",
            hint="check the names (`apt-cache search`)"
            + (
                f"; a name:arch package needs the architecture's packages ({', '.join(sorted(arches))})"
                if arches
                else ""
            ),
        )
    gap = _fetch_error(ToolchainError(text), [], requested)
    return None if gap.message == text else gap


def _without_epoch(version: str) -> str:
    return version.partition(":")[2] if ":" in version else version


def _plain(package: tuple[str, str, str]) -> tuple[str, str, str]:
    """(name, version without epoch, arch)."""
    return package[0], _without_epoch(package[1]), package[2]


def _platforms_of(arch: str) -> str:
    names = [p.name for p in PLATFORMS.values() if p.debian_arch == arch]
    return f" ({', '.join(names)})" if names else ""


def check_static(package: str, deb: Path) -> None:
    """A library that ships a shared library but no static archive cannot be linked into a static
    binary: say so at bootstrap, not at link time."""
    listing = subprocess.run(
        ["dpkg-deb", "--contents", "--", str(deb)], capture_output=True, text=True, check=False
    ).stdout
    check_static_paths(
        package, [line.split()[5] if len(line.split()) > 5 else "" for line in listing.splitlines()]
    )


def check_static_paths(package: str, paths: Iterable[str]) -> None:
    """check_static on a package's file list (a .deb's, or dpkg's `info/<package>.list`)."""
    paths = list(paths)
    if any(_SHARED.search(path) for path in paths) and not any(_STATIC.search(path) for path in paths):
        arch = package.partition(":")[2]
        raise ToolchainError(
            f"{package} ships no static archive (.a): a static binary cannot link it{_platforms_of(arch)}",
            hint="drop it, or build the library from source in the service's tree",
        )


def target_libraries(packages: Iterable[str], native: str) -> list[str]:
    """The `lib*-dev:<arch>` packages among `packages` for another architecture than `native`: what a
    bootstrap checks for a static archive."""
    return [
        package
        for package in packages
        if package.startswith("lib")
        and package.partition(":")[0].endswith("-dev")
        and package.partition(":")[2] not in ("", native, "all", "native")
    ]


def archive(plan: LayerPlan, excludes: Sequence[str]) -> bytes:
    """The tar put into the layer container at /: the script, the lists and the package files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_bytes(tar, f"{LAYER_DIR}/run.sh", _SCRIPT.encode())
        _add_bytes(tar, f"{LAYER_DIR}/architectures", "".join(f"{a}\n" for a in plan.architectures).encode())
        patterns = "".join(f".{pattern}\n" for pattern in excludes)
        _add_bytes(tar, f"{LAYER_DIR}/excludes", patterns.encode())
        for directory, paths in (
            ("install", plan.install),
            ("libraries", [deb.path for deb in plan.libraries]),
            ("unpack", [deb.path for deb in plan.unpack]),
        ):
            _add_bytes(tar, f"{LAYER_DIR}/{directory}/", None)
            for path in paths:
                tar.add(str(path), arcname=f"{LAYER_DIR}/{directory}/{path.name}", filter=_root_owned)
    return buffer.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name.rstrip("/"))
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o644
    return info


SCRIPT_COMMAND = ("/bin/sh", f"/{LAYER_DIR}/run.sh")
