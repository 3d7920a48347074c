"""Debian packages downloaded with apt on the host, for `unpack`: no dependencies, no maintainer scripts.

apt runs with a private state directory (its own sources, lists, an empty dpkg status), the sources
the bootstrapped image has (so the same suites, mirror and pockets) and the host's trusted keys (apt
checks the archive's signatures). A package the image also has natively is requested in exactly that
version: `libstd-rust-dev:arm64` must match the native rustc's `libstd-rust-dev`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from orchestrator.bootstrap.rootfs import SOURCES_LIST, SOURCES_PARTS, RootfsAppender
from orchestrator.errors import ToolchainError

Progress = Callable[[str], None]
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+~:-]*")
_TRUSTED = (
    "-o",
    "Dir::Etc::trusted=/etc/apt/trusted.gpg",
    "-o",
    "Dir::Etc::trustedparts=/etc/apt/trusted.gpg.d",
)
_STATE_DIRS = (
    "etc/apt/sources.list.d",
    "etc/apt/preferences.d",
    "etc/apt/apt.conf.d",
    "var/lib/apt/lists/partial",
    "var/cache/apt/archives/partial",
    "debs",
)


def foreign_architectures(packages: Sequence[str], native: str) -> list[str]:
    """The Debian architectures named by `name:arch` packages other than `native`, sorted: dpkg (and
    apt) must know them (multiarch) before such packages install (`musl-dev:arm64`)."""
    qualifiers = {package.partition(":")[2] for package in packages}
    return sorted(qualifiers - {"", native, "any", "all", "native"})


def requested(package: str, installed: Mapping[str, str], native: str) -> str:
    """`name:arch=version` when the image has `name` natively (that version), else the package as is."""
    version = installed.get(f"{package.partition(':')[0]}:{native}")
    if version is None:
        return package
    if not _VERSION.fullmatch(version):
        raise ToolchainError(f"the image's {package.partition(':')[0]} has a malformed version {version!r}")
    return f"{package}={version}"


class Apt:
    """apt-get on the host with a private state directory; its output goes to the toolchain's log."""

    def __init__(self, state: Path, native: str, foreign: Sequence[str], log: Path) -> None:
        self.state = state
        self.log = log
        self.options = [
            "-q",
            *("-o", f"Dir={state}"),
            *("-o", f"Dir::State::status={state / 'status'}"),
            *_TRUSTED,
            *("-o", f"APT::Architecture={native}"),
            *("-o", f"APT::Architectures={','.join([native, *foreign])}"),
        ]

    def prepare(self, sources: Mapping[str, bytes]) -> None:
        """The state directory with the image's apt sources (and only them)."""
        for directory in _STATE_DIRS:
            (self.state / directory).mkdir(parents=True, exist_ok=True)
        parts = self.state / SOURCES_PARTS
        for old in parts.iterdir():
            old.unlink()
        (self.state / SOURCES_LIST).unlink(missing_ok=True)
        for path, data in sources.items():
            (self.state / path).write_bytes(data)
        (self.state / "status").touch()

    def run(self, *arguments: str, what: str, cwd: Path | None = None) -> str:
        """apt-get's stdout; ToolchainError with the end of its messages when it fails."""
        command = ["apt-get", *self.options, *arguments]
        with self.log.open("a") as log:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
            log.write(completed.stdout + completed.stderr)
        if completed.returncode != 0:
            errors = [line for line in completed.stderr.splitlines() if line.startswith("E: ")]
            detail = " / ".join(errors[-3:] or completed.stderr.strip().splitlines()[-3:])
            raise ToolchainError(
                f"{what} failed (apt-get exit {completed.returncode}): {detail}",
                hint=f"full log: {self.log}; check the network and the suite's packages",
            )
        return completed.stdout

    def available(self, package: str) -> list[str]:
        """The versions of `package` (`name:arch`) the archive has, as `apt-cache madison` lists them."""
        command = ["apt-cache", *self.options, "madison", "--", package]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        return [line.split("|")[1].strip() for line in completed.stdout.splitlines() if line.count("|") >= 2]


def download(
    packages: Sequence[str],
    installed: Mapping[str, str],
    sources: Mapping[str, bytes],
    *,
    state: Path,
    native: str,
    log: Path,
    progress: Progress,
    pins: Mapping[str, str] | None = None,
) -> list[Path]:
    """The .deb file of each package, in `state/debs` (kept: apt does not fetch a file it has); a
    package in `pins` (a toolchain's lock: the recipe's spelling -> version) in exactly that version."""
    if shutil.which("apt-get") is None:
        raise ToolchainError("unpack needs apt-get on this machine", hint="run osless on Debian or Ubuntu")
    if not sources:
        raise ToolchainError("the bootstrapped image has no apt sources to download the unpack packages from")
    apt = Apt(state, native, foreign_architectures(packages, native), log)
    apt.prepare(sources)
    progress("unpack: apt-get update")
    apt.run("update", what="apt-get update (for unpack)")
    pins = pins or {}
    wanted = [
        f"{package}={pins[package]}" if package in pins else requested(package, installed, native)
        for package in packages
    ]
    names = _file_names(apt, packages, wanted, native)
    progress(f"unpack: downloading {', '.join(wanted)}")
    debs = apt.state / "debs"
    apt.run("download", "--", *wanted, what="downloading the unpack packages", cwd=debs)
    return [debs / name for name in names]


def _file_names(apt: Apt, packages: Sequence[str], wanted: Sequence[str], native: str) -> list[str]:
    """The file names apt-get download gives the packages, asked in one go (apt loads its lists once);
    when that fails, one by one, so that the error names the package."""
    try:
        printed = apt.run("download", "--print-uris", "--", *wanted, what="looking up the unpack packages")
    except ToolchainError:
        for package, spec in zip(packages, wanted, strict=True):
            _look_up(apt, package, spec, native)
        raise
    files = [fields[1] for line in printed.splitlines() if len(fields := line.split()) >= 2]
    return [_file_of(package, files, native, apt.log) for package in packages]


def _look_up(apt: Apt, package: str, wanted: str, native: str) -> None:
    """A clear error when the archive lacks `wanted` (`name:arch=version`) or the package."""
    try:
        apt.run("download", "--print-uris", "--", wanted, what=f"looking up {wanted}")
    except ToolchainError as error:
        if "=" not in wanted:
            raise ToolchainError(
                f"unpack {package}: {error.message}", hint=f"check that {package} exists in the suite"
            ) from None
        name, version = package.partition(":")[0], wanted.partition("=")[2]
        has = ", ".join(apt.available(package)) or "no version"
        raise ToolchainError(
            f"unpack {package}: the image's {name}:{native} is {version}, the archive has {has} of {package}",
            hint=f"both must be one version: bootstrap another suite, or drop {package} from unpack "
            f"(apt log: {apt.log})",
        ) from None


def _file_of(package: str, files: Sequence[str], native: str, log: Path) -> str:
    """The file of `package` (`name[:arch]`) among apt's `name_version_arch.deb` file names."""
    name, _, arch = package.partition(":")
    for file in files:
        parts = file.removesuffix(".deb").split("_")
        if (
            file.endswith(".deb")
            and "/" not in file
            and len(parts) == 3
            and parts[0] == name
            and parts[2] in (arch or native, "all")
        ):
            return file
    raise ToolchainError(
        f"unpack {package}: apt-get download --print-uris named no file of it", hint=f"apt log: {log}"
    )


def deb_package(deb: Path) -> tuple[str, str]:
    """The `name:arch` and version a .deb file holds (with its epoch: its file name leaves that out)."""
    completed = subprocess.run(
        ["dpkg-deb", "--field", "--", str(deb), "Package", "Architecture", "Version"],
        capture_output=True,
        text=True,
        check=False,
    )
    fields = dict(line.partition(": ")[::2] for line in completed.stdout.splitlines())
    name, arch, version = (fields.get(key, "") for key in ("Package", "Architecture", "Version"))
    if completed.returncode != 0 or not (name and arch and _VERSION.fullmatch(version)):
        raise ToolchainError(f"dpkg-deb could not read the package of {deb}: {completed.stderr.strip()}")
    return f"{name}:{arch}", version


def unpack(deb: Path, appender: RootfsAppender, package: str, excludes: tuple[str, ...]) -> int:
    """The package's data files added through `appender`, streamed from dpkg-deb, but those matching
    `excludes` (the bootstrap's dpkg path-exclude patterns): the number added."""
    command = ["dpkg-deb", "--fsys-tarfile", "--", str(deb)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    try:
        count = appender.add_tar(process.stdout, f"unpack {package}", excludes)
    finally:
        process.stdout.close()  # when adding failed half-way, dpkg-deb ends on a broken pipe
        process.wait()
    errors = process.stderr.read().decode(errors="replace").strip()
    process.stderr.close()
    if process.returncode != 0:
        raise ToolchainError(f"unpack {package}: dpkg-deb failed on {deb}: {errors}")
    return count
