"""Pinned wheels from a PEP 691 package index (PyPI's simple JSON API): the file whose sha256 the recipe
pins, which must be a Linux wheel for this machine, downloaded once and kept by its sha256.

The pin is the trust: a file is used only when its bytes hash to it, so neither the index nor the
connection needs to be trusted, and a kept download is used again without asking the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ToolchainError
from orchestrator.recipe.model import Wheel

PYPI_SIMPLE = "https://pypi.org/simple/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
MAX_INDEX_BYTES = 64 * 1024**2
MAX_WHEEL_BYTES = 2 * 1024**3
TIMEOUT = 60.0  # seconds without a byte before a request fails
_CHUNK = 1024**2
_PROGRESS_EVERY = 16 * 1024**2
# manylinux1/2010/2014, manylinux_X_Y, musllinux_X_Y and plain linux tags, by machine.
_LINUX_TAG = re.compile(r"(?:manylinux(?:1|2010|2014|_\d+_\d+)|musllinux_\d+_\d+|linux)_(?P<machine>\w+)")

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class IndexFile:
    """One file the index lists for a project."""

    filename: str
    url: str
    sha256: str | None
    size: int | None


def fetch(
    wheel: Wheel, downloads: Path, progress: Progress, index: str = PYPI_SIMPLE, machine: str | None = None
) -> Path:
    """The pinned wheel file, from `downloads/<sha256>/` when kept there, else from the index."""
    kept = _kept(wheel, downloads / wheel.sha256)
    if kept is not None:
        progress(f"wheel {wheel.name} {wheel.version}: kept download {kept.name}")
        return kept
    page = urllib.parse.urljoin(index, f"{normalized_name(wheel.name)}/")
    progress(f"wheel {wheel.name} {wheel.version}: asking {page}")
    chosen = choose(wheel, index_files(wheel, page), machine or platform.machine())
    directory = downloads / wheel.sha256
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / chosen.filename
    _download(wheel, chosen, target, progress)
    return target


def normalized_name(name: str) -> str:
    """PEP 503: the project's name as the index's URLs spell it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def index_files(wheel: Wheel, page: str) -> list[IndexFile]:
    """The files of the project's PEP 691 JSON page."""
    request = urllib.request.Request(page, headers={"Accept": SIMPLE_JSON})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read(MAX_INDEX_BYTES + 1)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise ToolchainError(
                f"wheel {wheel.name}: the index has no project {wheel.name!r} ({page})",
                hint="check the wheel's name in the toolchain recipe",
            ) from None
        raise ToolchainError(f"wheel {wheel.name}: {page} answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ToolchainError(
            f"wheel {wheel.name}: cannot fetch {page}: {reason}",
            hint="check the network; once downloaded, a wheel is kept and no longer fetched",
        ) from None
    if len(body) > MAX_INDEX_BYTES:
        raise ToolchainError(f"wheel {wheel.name}: {page} is larger than {MAX_INDEX_BYTES // 1024**2} MiB")
    try:
        files = json.loads(body)["files"]
        return [_index_file(entry, page) for entry in files]
    except (ValueError, KeyError, TypeError) as error:
        raise ToolchainError(f"wheel {wheel.name}: {page} is not a PEP 691 JSON page ({error})") from None


def _index_file(entry: Any, page: str) -> IndexFile:
    sha256 = entry.get("hashes", {}).get("sha256")
    size = entry.get("size")
    return IndexFile(
        filename=str(entry["filename"]),
        url=urllib.parse.urljoin(page, str(entry["url"])),
        sha256=str(sha256).lower() if sha256 else None,
        size=size if isinstance(size, int) else None,
    )


def wheel_fits(filename: str, version: str, machine: str) -> bool:
    """Whether `filename` is a wheel of `version` that runs on Linux on `machine` (e.g. "x86_64")."""
    if not filename.endswith(".whl"):
        return False
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6) or parts[1] != version.replace("-", "_"):
        return False
    tags = (_LINUX_TAG.fullmatch(tag) for tag in parts[-1].split("."))
    return any(tag is not None and tag["machine"] == machine for tag in tags)


def choose(wheel: Wheel, files: list[IndexFile], machine: str) -> IndexFile:
    """The file with the pinned sha256; a ToolchainError naming the file to pin when it is not the
    right one (another version, not a Linux wheel for `machine`) or when no file has that sha256."""
    fitting = [file for file in files if wheel_fits(file.filename, wheel.version, machine)]
    pin = "; ".join(f"sha256 = {file.sha256!r} ({file.filename})" for file in fitting if file.sha256)
    hint = f"pin {pin}" if pin else f"no Linux {machine} wheel of {wheel.name} {wheel.version} is listed"
    pinned = [file for file in files if file.sha256 == wheel.sha256]
    if not pinned:
        raise ToolchainError(f"wheel {wheel.name}: no file of the index has sha256 {wheel.sha256}", hint=hint)
    chosen = pinned[0]
    if not wheel_fits(chosen.filename, wheel.version, machine):
        raise ToolchainError(
            f"wheel {wheel.name}: the pinned file {chosen.filename} is not a Linux {machine} wheel "
            f"of version {wheel.version}",
            hint=hint,
        )
    return chosen


def _kept(wheel: Wheel, directory: Path) -> Path | None:
    """A download kept from an earlier run, when its bytes still hash to the pin."""
    for path in sorted(directory.glob("*.whl")) if directory.is_dir() else ():
        if _sha256_of(path) == wheel.sha256:
            return path
        path.unlink()
    return None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(wheel: Wheel, file: IndexFile, target: Path, progress: Progress) -> None:
    """`file` into `target`, written aside and renamed once its sha256 matched (never half a file)."""
    if urllib.parse.urlsplit(file.url).scheme not in ("https", "http"):
        raise ToolchainError(f"wheel {wheel.name}: the index gives {file.url!r}, not an http(s) URL")
    cap = min(file.size, MAX_WHEEL_BYTES) if file.size is not None else MAX_WHEEL_BYTES
    total = f"{cap / 1024**2:.0f} MiB" if file.size is not None else "?"
    # A name of its own: another osless may be downloading the same wheel into the same directory.
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(handle)
    partial = Path(name)
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(file.url, timeout=TIMEOUT) as response, partial.open("wb") as out:
            progress(f"wheel {wheel.name}: downloading {file.filename} ({total})")
            while chunk := response.read(_CHUNK):
                done += len(chunk)
                if done > cap:
                    raise ToolchainError(
                        f"wheel {wheel.name}: {file.url} sends more than {cap} bytes",
                        hint="the index lists another size: try again later",
                    )
                digest.update(chunk)
                out.write(chunk)
                if done // _PROGRESS_EVERY != (done - len(chunk)) // _PROGRESS_EVERY:
                    progress(f"wheel {wheel.name}: {done / 1024**2:.0f} of {total}")
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise ToolchainError(
            f"wheel {wheel.name}: downloading {file.url} failed: {reason}", hint="check the network"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != wheel.sha256:
        partial.unlink()
        raise ToolchainError(
            f"wheel {wheel.name}: {file.filename} has sha256 {digest.hexdigest()}, not the pinned "
            f"{wheel.sha256}",
            hint="the download was altered on its way or the index changed the file: try again",
        )
    os.replace(partial, target)
