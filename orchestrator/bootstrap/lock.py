"""A toolchain's lock: the exact Debian packages its image was made of, in `recipes/toolchains/<name>.lock`.

`osless lock NAME` bootstraps the toolchain without one and writes what got installed: every package
with its architecture and exact version, the `unpack` packages' versions, the wheels' pins, the suite
and the date of its Release file. A locked bootstrap asks apt for exactly those versions and checks
afterwards that the image has exactly them, so a Debian point release cannot change the compilers
unnoticed: a version the archive no longer has is an error naming the packages, with the command that
updates the lock. The lock also records the spec hash of the recipe it was made from (without the
lock), so a recipe changed since is noticed; its digest is part of the toolchain's spec hash (the
image's identity).

The file is TOML written by `render` (sorted, one package a line: diffs review well) and read back by
`parse`; this module is pure (no processes, no files but what its callers pass).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timezone

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

LOCK_FORMAT = 1
SUFFIX = ".lock"
# name:arch and a Debian version (epoch, upstream, revision): what a lock line may hold, nothing an
# apt or mmdebstrap argument could misread.
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*:[a-z0-9-]+")
_UNPACK = re.compile(r"[a-z0-9][a-z0-9+.-]*(?::[a-z0-9-]+)?")
_VERSION = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*")
_SPEC = re.compile(r"[0-9a-f]{16}")
_VERSION_NOT_FOUND = re.compile(r"E: Version '([^']+)' for '([^']+)' was not found")
_SHOWN = 8  # packages named in one message; the rest are counted


@dataclass(frozen=True, kw_only=True)
class Lock:
    """What a toolchain's image is made of, as `osless lock` found it."""

    toolchain: str
    spec: str  # the spec hash of the recipe (without a lock) the lock was made from
    suite: str  # "" for a derived toolchain's (its base's suite)
    release_date: str  # the suite's Release file Date, ISO 8601 UTC ("" when unknown)
    requested: tuple[str, ...]  # what the recipe asked for (packages, libraries, unpack), sorted
    # "name:arch" -> version, every installed one (a derived toolchain's: those its layer installs)
    packages: dict[str, str] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)  # a layer's -dev packages without dependencies
    unpack: dict[str, str] = field(default_factory=dict)  # the recipe's unpack spelling -> version
    wheels: tuple[str, ...] = ()  # "name==version sha256:<hex>"

    @property
    def digest(self) -> str:
        """sha256 of the lock's content (not of its comments or layout): part of the spec hash."""
        content = {
            "format": LOCK_FORMAT,
            "toolchain": self.toolchain,
            "spec": self.spec,
            "suite": self.suite,
            "release_date": self.release_date,
            "requested": list(self.requested),
            "packages": self.packages,
            "libraries": self.libraries,
            "unpack": self.unpack,
            "wheels": list(self.wheels),
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(canonical).hexdigest()


def lock_file_name(toolchain: str) -> str:
    return toolchain + SUFFIX


def relock_command(toolchain: str) -> str:
    return f"osless lock {toolchain}"


def render(lock: Lock) -> str:
    """The lock file's text: the same lock always gives the same bytes."""
    lines = [
        f"# The exact packages of toolchain {lock.toolchain}, written by `{relock_command(lock.toolchain)}`:",
        "# a bootstrap installs exactly these versions. Do not edit; run that command again to update it.",
        f"format = {LOCK_FORMAT}",
        f"toolchain = {_quoted(lock.toolchain)}",
        f"spec = {_quoted(lock.spec)}",
        f"suite = {_quoted(lock.suite)}",
        f"release_date = {_quoted(lock.release_date)}",
        f"requested = {_array(sorted(lock.requested))}",
        f"packages = {_array(f'{name}={version}' for name, version in sorted(lock.packages.items()))}",
        f"libraries = {_array(f'{name}={version}' for name, version in sorted(lock.libraries.items()))}",
        f"unpack = {_array(f'{name}={version}' for name, version in sorted(lock.unpack.items()))}",
        f"wheels = {_array(sorted(lock.wheels))}",
    ]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return json.dumps(text)  # a TOML basic string for the characters a lock holds


def _array(items: Iterable[str]) -> str:
    entries = [f"  {_quoted(item)},\n" for item in items]
    return "[\n" + "".join(entries) + "]" if entries else "[]"


def parse(text: str) -> Lock:
    """A lock file's content; ValueError saying what is wrong (the loader reports it on the file)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"not a lock file: {error}") from None
    if data.get("format") != LOCK_FORMAT:
        raise ValueError(f"lock format {data.get('format')!r}, this osless reads {LOCK_FORMAT}")
    spec = _text(data, "spec")
    if not _SPEC.fullmatch(spec):
        raise ValueError(f"spec {spec!r} is not a spec hash")
    wheels = tuple(_texts(data, "wheels"))
    return Lock(
        toolchain=_text(data, "toolchain"),
        spec=spec,
        suite=_text(data, "suite"),
        release_date=_text(data, "release_date"),
        requested=tuple(_texts(data, "requested")),
        packages=_pins(_texts(data, "packages"), _PACKAGE, "packages"),
        libraries=_pins(_texts(data, "libraries"), _PACKAGE, "libraries"),
        unpack=_pins(_texts(data, "unpack"), _UNPACK, "unpack"),
        wheels=wheels,
    )


def _text(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _texts(data: Mapping[str, object], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be an array of strings")
    return list(value)


def _pins(lines: Sequence[str], name: re.Pattern[str], key: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        package, _, version = line.partition("=")
        if not name.fullmatch(package) or not _VERSION.fullmatch(version):
            raise ValueError(f"{key}: {line!r} is not name:arch=version")
        if package in pins:
            raise ValueError(f"{key}: {package} is listed twice")
        pins[package] = version
    return pins


def include_specs(lock: Lock, native: str) -> list[str]:
    """apt's requests for every locked package: `name=version` for the native architecture's and
    architecture-independent ones, `name:arch=version` for a foreign architecture's."""
    specs = []
    for package, version in sorted(lock.packages.items()):
        name, _, arch = package.partition(":")
        specs.append(f"{name}={version}" if arch in (native, "all") else f"{package}={version}")
    return specs


def mismatches(locked: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """How `installed` ("name:arch" -> version) differs from `locked`, one phrase a package, sorted."""
    found = []
    for package in sorted({*locked, *installed}):
        want, have = locked.get(package), installed.get(package)
        if want == have:
            continue
        if have is None:
            found.append(f"{package} {want} not installed")
        elif want is None:
            found.append(f"{package} {have} installed but not locked")
        else:
            found.append(f"{package} {have} installed, {want} locked")
    return found


def shown(phrases: Sequence[str]) -> str:
    """The first few phrases, then how many more."""
    more = len(phrases) - _SHOWN
    return "; ".join(phrases[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")


def versions_not_found(log: str) -> list[str]:
    """`name=version` for each version apt said the archive does not have (mmdebstrap's or apt's log)."""
    return list(dict.fromkeys(f"{name}={version}" for version, name in _VERSION_NOT_FOUND.findall(log)))


def recipe_changes(lock: Lock, requested: Iterable[str]) -> tuple[list[str], list[str]]:
    """What the recipe asks for now that the lock was not made with, and what it no longer asks for."""
    now, then = set(requested), set(lock.requested)
    return sorted(now - then), sorted(then - now)


def release_date(release: str) -> str:
    """The Date field of a Release (or InRelease) file as ISO 8601 UTC; "" when it has none."""
    for line in release.splitlines():
        if line.startswith("Date:"):
            try:
                moment = email.utils.parsedate_to_datetime(line.partition(":")[2].strip())
            except (TypeError, ValueError):
                return ""
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ""


def wheel_pin(name: str, version: str, sha256: str) -> str:
    return f"{name}=={version} sha256:{sha256}"


def suite_release_date(releases: Mapping[str, str], suite: str) -> str:
    """The Release date of `suite` among apt's (In)Release files by file name (`..._dists_trixie_InRelease`);
    without one of the suite's, the newest date of the others; "" without any."""
    own = [
        text
        for name, text in releases.items()
        if name.endswith((f"_dists_{suite}_InRelease", f"_dists_{suite}_Release"))
    ]
    dates = [date for text in own or releases.values() if (date := release_date(text))]
    return max(dates, default="")
