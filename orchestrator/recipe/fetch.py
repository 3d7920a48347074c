"""A service's `[fetch]` table: where its dependencies come from before the build, and whether that
step may use the network (docs/recipes.md, "[fetch]").

Builds never have a network. A fetch step runs apart, in its own container, with a network only when
the recipe says `network = true`; a source that needs one (an http(s) proxy) without it, or a network
that no source needs, is a recipe problem, reported by `osless list` before anything runs. A `file://`
source is a directory of the project (mounted read-only into the fetch step), written relative to the
project root: no host path reaches a recipe's cache key or a container.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from orchestrator.recipe.convert import Invalid, as_bool, as_duration, as_text, shown
from orchestrator.recipe.model import FetchSpec, Toolchain
from orchestrator.recipe.reader import Table

FILE_SCHEME = "file://"
GOPROXY_HINT = (
    'e.g. "file://deps/goproxy" (a directory of the project, in the GOPROXY layout) or '
    '"https://proxy.golang.org" (with network = true)'
)
# A file:// directory as GOPROXY can carry it: no list separators (",", "|"), spaces or escapes.
_RELATIVE_PATH = re.compile(r"[A-Za-z0-9._+@~/-]+")
_URL_TEXT = re.compile(r"[!-~]+")  # printable ASCII, no space
_NOT_SOURCES = {
    "direct": "'direct' downloads from version control: no VCS tools are in the toolchain image and the "
    "result is not pinned to a proxy; use a module proxy",
    "off": "'off' forbids downloads (the build step always runs so); name a proxy to fetch from",
}


def as_goproxy(value: object) -> tuple[str, ...]:
    """GOPROXY entries: a string ("a,b" as Go writes it) or a list of strings; none empty."""
    if isinstance(value, str):
        entries = value.split(",")
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        entries = list(value)
    else:
        raise Invalid("expected a string or a list of strings", GOPROXY_HINT)
    if not entries or any(not entry.strip() for entry in entries):
        raise Invalid("has an empty entry", GOPROXY_HINT)
    return tuple(entry.strip() for entry in entries)


def read_fetch(table: Table, root: Path, toolchain: Toolchain | None) -> FetchSpec | None:
    """The `[fetch]` table, None when the recipe has none; every problem is reported on the file."""
    if not table.present:
        return None
    goproxy = table.optional("goproxy", as_goproxy)
    network = table.get("network", as_bool, False)
    timeout = table.get("timeout", as_duration, 600.0)
    if goproxy is None:
        if "goproxy" not in table.data:
            table.file.problem(table.key, "names nothing to fetch", f"set goproxy, {GOPROXY_HINT}")
        return None
    key = (*table.key, "goproxy")
    entries: list[str] = []
    online: list[str] = []
    for entry in goproxy:
        if entry.startswith(FILE_SCHEME):
            directory = _project_directory(table, key, root, entry)
            if directory is not None:
                entries.append(directory)
        elif (url := _proxy_url(table, key, entry)) is not None:
            entries.append(url)
            online.append(url)
    if online and not network:
        table.file.problem(
            key,
            f"{shown(online[0])} is fetched over the network, and the fetch step has none",
            "set network = true in [fetch]: the fetch step alone gets one, builds never do",
        )
    if network and not online and len(entries) == len(goproxy):
        table.file.problem(
            (*table.key, "network"),
            "is true, but every goproxy entry is a directory of the project",
            "leave network out: a file:// proxy needs none",
        )
    if toolchain is not None and toolchain.languages and "go" not in toolchain.languages:
        table.file.problem(
            key,
            f"goproxy is for Go modules, and toolchain {toolchain.name} compiles "
            f"{', '.join(toolchain.languages)}",
            'use a toolchain with languages = ["go"]',
        )
    if len(entries) != len(goproxy):
        return None
    return FetchSpec(goproxy=tuple(entries), network=network, timeout=timeout)


def file_directory(entry: str) -> str | None:
    """The project-relative directory of a `file://` entry as the model keeps it, else None."""
    return entry.removeprefix(FILE_SCHEME) if entry.startswith(FILE_SCHEME) else None


def _project_directory(table: Table, key: tuple[str, ...], root: Path, entry: str) -> str | None:
    """`file://<directory relative to the project root>`, normalized ("file://deps/goproxy"), when it
    is a directory inside the project (after symbolic links), else None with a problem."""
    text = entry.removeprefix(FILE_SCHEME)
    if text.startswith("/"):
        table.file.problem(
            key,
            f"{shown(entry)} is an absolute path",
            "give a directory relative to the project root: file://deps/goproxy",
        )
        return None
    if not _RELATIVE_PATH.fullmatch(text):
        table.file.problem(
            key, f"{shown(entry)} is not a plain relative path", "letters, digits and . _ + @ ~ / - only"
        )
        return None
    try:
        directory = (root / text).resolve()
        is_dir = directory.is_dir()
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long
        table.file.problem(key, f"cannot resolve {shown(entry)}: {shown(str(error), 200)[1:-1]}")
        return None
    if not directory.is_relative_to(root) or directory == root:
        table.file.problem(key, f"{shown(entry)} leads outside the project, to {directory}")
        return None
    if not is_dir:
        table.file.problem(key, f"{shown(entry)} is {'not a directory' if directory.exists() else 'missing'}")
        return None
    return FILE_SCHEME + directory.relative_to(root).as_posix()


def _proxy_url(table: Table, key: tuple[str, ...], entry: str) -> str | None:
    """An http(s) proxy URL without credentials, else None with a problem."""
    reason = _NOT_SOURCES.get(entry)
    if reason is not None:
        table.file.problem(key, f"{shown(entry)} is not a place to fetch from", reason)
        return None
    try:
        url = urllib.parse.urlsplit(as_text(entry))
    except (ValueError, Invalid):
        url = None
    if (
        url is None
        or url.scheme not in ("http", "https")
        or not url.hostname
        or not _URL_TEXT.fullmatch(entry)
    ):
        table.file.problem(key, f"{shown(entry)} is not a file:// directory nor an http(s) URL", GOPROXY_HINT)
        return None
    if "|" in entry:
        table.file.problem(
            key, f"{shown(entry)} holds '|'", "list the entries instead; osless joins them with ','"
        )
        return None
    if url.username is not None or url.password is not None:
        table.file.problem(
            key,
            f"{shown(entry.split('@', 1)[-1])} carries credentials",
            "credentials do not belong in a recipe: use a proxy that needs none",
        )
        return None
    return entry
