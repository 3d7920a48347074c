"""Stage 0: read and validate the TOML recipes into frozen, fully resolved objects.

Pure logic (no Docker): every problem in every recipe is collected and reported at once, so a user
fixes all of them in one go, before any container starts.

Recipe schema. Every `recipes/*.toml` is a service, every `recipes/toolchains/*.toml` a toolchain.
Unknown tables and keys are errors. A duration is "500ms", "30s", "2m", "1h", "1m30s" or a number
of seconds, more than 0 and at most 24h. A size is "800KiB", "2MiB", "1.5GB" or a number of bytes. A
name matches `^[a-z0-9][a-z0-9._-]*$`. Every `env` table maps variable names (`[A-Za-z_][A-Za-z0-9_]*`,
as they double as placeholders) to strings. A recipe file is a regular file of at most 1 MiB whose
arrays and tables nest at most 64 deep.

Limits (`[build] limits`, `[smoke] limits`): an inline table with any of
    memory      size               16MiB to 1TiB; default 4GiB (build), 512MiB (smoke)
    pids        int                16 to 1000000; default 1024 (build), 128 (smoke)
    cpus        float              0.01 to 1024; default 2 (build), 1 (smoke); at most the engine's cores

Service file:

    [service]                      required
    name        str                required, a name; also the default image repository, so it
                                   must be one too (no trailing '-', '.' or '_', no "..")
    source      str                required, directory relative to the project root, inside it,
                                   holding no FIFO, socket or device file anywhere
    toolchain   str                required, name of a toolchain in recipes/toolchains/
    platforms   list[str]          required, non-empty, each in PLATFORMS and in the toolchain;
                                   ["all"]: every platform the toolchain can build it for (see below)
    exclude_platforms list[str]    default []; platforms left out of ["all"]
    [build]                        required
    command     list[str]          required, non-empty; placeholders: see below
    env         table str -> str   default {}
    output      str                default: service name; binary file name, no "/"
    timeout     duration           default "10m"
    limits      limits             default { memory = "4GiB", pids = 1024, cpus = 2 }
    [image]                        optional
    repository  str                default: service name; the distribution spec's name grammar
                                   (`[host[:port]/]component[/component...]`, lowercase), <= 255
    tag         str                default "latest"; `[A-Za-z0-9_][A-Za-z0-9_.-]*`, at most 128 with
                                   the platform suffix osless appends (`-<arch><variant>`, e.g.
                                   "-riscv64"); repository:tag is unique among the services
    entrypoint  list[str]          default ["/" + output]; non-empty
    cmd         list[str]          default []
    user        str                default "65534:65534", numeric `uid[:gid]`; uid 0 (root) only
                                   with [smoke] allow_root = true
    env         table str -> str   default {}
    labels      table str -> str   default {}
    extras      list[str]          default []; of "ca-certificates", "tzdata", "passwd", "tmp"
    zones       list[str]          default: all; with tzdata, e.g. ["Europe/Paris", "UTC"]
    files       table str -> str   default {}; image path -> file relative to the source
    [verify]                       optional: the verification policy
    errors      list[str]          default []; finding ids that fail the target (e.g. "needs.tzdata")
    allow       table str -> str   default {}; finding id -> the reason it is acceptable here
    max_size    size               default: none; 1 byte to 1TiB: a larger binary fails
    [smoke]                        optional
    args        list[str]          default []
    stdout      str                default: not checked; else the exact expected stdout
    exit_code   int                default 0; 0 to 255
    timeout     duration           default "30s"
    limits      limits             default { memory = "512MiB", pids = 128, cpus = 1 }
    allow_root  bool               default false; true lets image.user be uid 0

Placeholders in build.command: `{output}` is the absolute path the binary must be written to;
`{NAME}` is the value of NAME in the build environment of the platform (see `build_env`); `{{` and
`}}` are literal braces. Every placeholder must be defined for every platform of the service.
With `platforms = ["all"]`, a platform that the toolchain does not target or for which it does not
define a placeholder is left out, and the reason is kept in `Service.unsupported` (shown by
`osless list` and in the report) instead of being an error.

Toolchain file:

    [toolchain]                    required
    name        str                required, a name
    image       str                optional, an existing image used as is: `name[:tag][@digest]`
    env         table str -> str   default {}, for every platform
    [toolchain.bootstrap]          optional; `image` or `bootstrap` (or both) is required
    suite       str                required, Debian suite for mmdebstrap: `[a-z][a-z0-9-]*`, <= 64
                                   ("trixie", "bookworm-backports", "unstable")
    packages    list[str]          required; Debian package names `[a-z0-9][a-z0-9+.-]+`, each
                                   optionally with `:<arch>`
    mirror      str                default: mmdebstrap's default mirror; an http://, https:// or
                                   file:// URL, no whitespace
    components  list[str]          default ["main"]; each `[a-z][a-z0-9-]*`
    [toolchain.platforms."<platform>"]   at least one; <platform> in PLATFORMS
    packages    list[str]          default [], e.g. the cross compiler; package names as above
    env         table str -> str   default {}
"""

from __future__ import annotations

import difflib
import math
import os
import posixpath
import re
import stat
import string
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TypeVar

from orchestrator.errors import RecipeError, RecipeProblem
from orchestrator.platforms import PLATFORMS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass(frozen=True, kw_only=True)
class Bootstrap:
    """How to make a toolchain image from Debian packages with mmdebstrap."""

    suite: str
    packages: tuple[str, ...]
    mirror: str | None = None  # None: mmdebstrap's default mirror for the suite
    components: tuple[str, ...] = ("main",)
    variant: str = "apt"  # mmdebstrap's package set before `packages`: "apt" (with apt), "minbase"


@dataclass(frozen=True, kw_only=True)
class ToolchainPlatform:
    """What a toolchain adds for one target platform: cross packages and environment."""

    packages: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Toolchain:
    """A builder image and the platforms it can compile for."""

    name: str
    file: Path
    image: str | None  # an existing image reference, used as is
    bootstrap: Bootstrap | None
    env: dict[str, str]  # for every platform
    platforms: dict[str, ToolchainPlatform]  # keyed by platform name, e.g. "linux/arm64"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one container may use: the engine enforces them (cpus clamped to the engine's cores)."""

    memory: int  # bytes
    pids: int
    cpus: float


MiB = 1024**2
GiB = 1024**3
BUILD_LIMITS = Limits(memory=4 * GiB, pids=1024, cpus=2.0)
SMOKE_LIMITS = Limits(memory=512 * MiB, pids=128, cpus=1.0)


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    """The compile command; `{output}` and `{NAME}` (toolchain env) placeholders are filled per platform."""

    command: tuple[str, ...]
    env: dict[str, str]
    output: str  # file name of the binary inside the image, e.g. "hello-go"
    timeout: float  # seconds
    limits: Limits = BUILD_LIMITS


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    """The scratch image that carries the binary."""

    repository: str
    tag: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    env: dict[str, str]
    labels: dict[str, str]
    extras: tuple[str, ...] = ()  # of IMAGE_EXTRAS
    zones: tuple[str, ...] = ()  # with the tzdata extra: only these zones (default: all)
    files: dict[str, str] = field(default_factory=dict)  # image path -> file relative to the source


@dataclass(frozen=True, kw_only=True)
class VerifySpec:
    """The service's verification policy: which findings fail the target and which are accepted."""

    errors: tuple[str, ...] = ()  # finding ids raised to errors
    allow: dict[str, str] = field(default_factory=dict)  # finding id -> why it is acceptable here
    max_size: int | None = None  # bytes


@dataclass(frozen=True, kw_only=True)
class SmokeSpec:
    """What running the image must produce."""

    args: tuple[str, ...]
    stdout: str | None  # exact expected stdout, None: not checked
    exit_code: int
    timeout: float  # seconds
    limits: Limits = SMOKE_LIMITS
    allow_root: bool = False  # image.user may be uid 0


@dataclass(frozen=True, kw_only=True)
class Service:
    """One service recipe, resolved: paths absolute, defaults filled in."""

    name: str
    file: Path
    source: Path  # absolute, inside the project root
    toolchain: str
    platforms: tuple[str, ...]
    build: BuildSpec
    image: ImageSpec
    smoke: SmokeSpec
    verify: VerifySpec = field(default_factory=VerifySpec)
    unsupported: dict[str, str] = field(default_factory=dict)  # platform -> why ["all"] left it out


@dataclass(frozen=True, kw_only=True)
class Project:
    """Everything the recipes describe: services and toolchains by name."""

    root: Path
    services: dict[str, Service]
    toolchains: dict[str, Toolchain]


def load_project(root: Path) -> Project:
    """Reads and validates every recipe below `root`; raises RecipeError listing all problems of all files."""
    root = root.resolve()
    problems: list[RecipeProblem] = []
    toolchains: dict[str, Toolchain] = {}
    toolchain_files: dict[str, str] = {}
    unloaded: list[str] = []
    for path in sorted((root / "recipes" / "toolchains").glob("*.toml")):
        toolchain = _read_file(path, root, problems, lambda doc: _read_toolchain(doc, toolchain_files))
        if toolchain is None:
            unloaded.append(path.relative_to(root).as_posix())
        else:
            toolchains.setdefault(toolchain.name, toolchain)

    context = _Context(
        root=root, toolchains=toolchains, unloaded=tuple(unloaded), service_files={}, images={}
    )
    services: dict[str, Service] = {}
    service_paths = sorted((root / "recipes").glob("*.toml"))
    if not service_paths:
        problems.append(
            RecipeProblem(file="recipes/", message="no service recipes (*.toml)", hint="add one, see README")
        )
    for path in service_paths:
        service = _read_file(path, root, problems, lambda doc: _read_service(doc, context))
        if service is not None:
            services.setdefault(service.name, service)

    if problems:
        raise RecipeError(sorted(problems, key=lambda problem: (problem.file, problem.line or 0)))
    return Project(root=root, services=services, toolchains=toolchains)


def build_env(toolchain: Toolchain, platform: str, service_env: Mapping[str, str]) -> dict[str, str]:
    """The build environment of one platform: toolchain env, its platform env, then the service's, later wins.

    Command placeholders are checked against it here, so the build stage must fill them from it too.
    """
    return {**toolchain.env, **toolchain.platforms[platform].env, **service_env}


# --- Values: each converter returns the typed value or raises _Invalid saying what was expected. ---

T = TypeVar("T")

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FILE_NAME = re.compile(r"(?!\.\.?$)[^/\x00]+")
_USER = re.compile(r"\d+(?::\d+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_TAG = 128
MAX_REPOSITORY = 255
# The distribution spec's reference grammar (github.com/distribution/reference, regexp.go).
_REPOSITORY_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:]+\])(?::\d+)?"
_REPOSITORY_NAME = rf"(?:{_DOMAIN}/)?{_REPOSITORY_PATH}(?:/{_REPOSITORY_PATH})*"
_REPOSITORY = re.compile(_REPOSITORY_NAME)
_REPOSITORY_COMPONENT = re.compile(_REPOSITORY_PATH)
_IMAGE_REFERENCE = re.compile(
    rf"(?P<name>{_REPOSITORY_NAME})(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{{32,}})?"
)
_SUITE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?")
_COMPONENT = re.compile(r"[a-z][a-z0-9-]{0,63}")
_MIRROR_SCHEMES = ("http", "https", "file")
MAX_DURATION = 24 * 3600.0
MAX_SIZE = 1024**4  # 1 TiB: the most a binary (verify.max_size) or a container's memory may be
MAX_UID = 2**32 - 2  # 2**32 - 1 is (uid_t) -1
MAX_RECIPE_BYTES = 1024**2
MAX_NESTING = 64
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)")
_BYTES_PER_UNIT = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "list"),
    (dict, "table"),
    (datetime, "datetime"),
    (date, "date"),
    (time, "time"),
)


class _Invalid(Exception):
    """A value of the wrong type or form; the message says what was expected."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def _type_name(value: object) -> str:
    """The TOML name of a value's type, as users wrote it."""
    return next((name for kind, name in _TOML_TYPES if isinstance(value, kind)), type(value).__name__)


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_type_name(value)}")
    return value


def _as_text(value: object) -> str:
    """A string that must say something: an empty path, image or suite is always a mistake."""
    text = _as_str(value)
    if not text.strip():
        raise _Invalid("must not be empty")
    return text


def _shown(value: object, limit: int = 80) -> str:
    """A value as a message quotes it: its repr, cut short when long (a recipe may hold a megabyte)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def _matching(pattern: re.Pattern[str], what: str, hint: str) -> Callable[[object], str]:
    """A converter for strings of a given form."""

    def convert(value: object) -> str:
        text = _as_str(value)
        if not pattern.fullmatch(text):
            raise _Invalid(f"{_shown(text)} is not {what}", hint)
        return text

    return convert


_as_name = _matching(
    _NAME, "a valid name", "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
)
_as_file_name = _matching(_FILE_NAME, "a plain file name", "no '/': it names the binary in the image root")
_as_tag = _matching(_TAG, "a valid image tag", "letters, digits, '_', '.' and '-', at most 128")
_REPOSITORY_HINT = (
    "lowercase letters and digits, separated by one '.', one or two '_' or '-'s, in components "
    "separated by '/', e.g. 'hello' or 'registry.example:5000/team/hello'; the tag goes in image.tag"
)
_as_suite = _matching(
    _SUITE, "a Debian suite", "a suite or codename, e.g. 'trixie', 'bookworm-backports' or 'unstable'"
)
_as_component = _matching(_COMPONENT, "a Debian component", "e.g. 'main', 'contrib' or 'non-free-firmware'")


def _as_user(value: object) -> str:
    """`uid[:gid]`, numeric: a scratch image has no /etc/passwd to look a name up in."""
    text = _as_str(value)
    if not _USER.fullmatch(text):
        hint = "use 'uid' or 'uid:gid', e.g. '65534:65534'"
        if text.split(":")[0] == "root":
            hint = "use '0' together with [smoke] allow_root = true to run as root, or e.g. '65534:65534'"
        raise _Invalid(f"{_shown(text)} is not a numeric user", hint)
    if any(int(part) > MAX_UID for part in text.split(":")):
        raise _Invalid(f"{_shown(text)} is out of range", f"uids and gids are 0 to {MAX_UID}")
    return text


def _as_repository(value: object) -> str:
    text = _as_str(value)
    if not _REPOSITORY.fullmatch(text):
        raise _Invalid(f"{_shown(text)} is not a valid image repository", _REPOSITORY_HINT)
    if len(text) > MAX_REPOSITORY:
        raise _Invalid(f"{_shown(text)} is too long ({len(text)} characters)", f"at most {MAX_REPOSITORY}")
    return text


def _as_image_reference(value: object) -> str:
    """An image reference as Docker takes it: `name[:tag][@digest]`."""
    text = _as_text(value)
    match = _IMAGE_REFERENCE.fullmatch(text)
    if match is None or len(match["name"]) > MAX_REPOSITORY:
        raise _Invalid(f"{_shown(text)} is not a valid image reference", "e.g. 'gcc:14' or 'my/builder:1'")
    return text


def _as_packages(value: object) -> tuple[str, ...]:
    """Debian package names, optionally `name:arch`: they reach mmdebstrap's command line."""
    packages = _as_str_list(value)
    for package in packages:
        if not _PACKAGE.fullmatch(package):
            raise _Invalid(
                f"{_shown(package)} is not a Debian package name",
                "lowercase letters, digits, '+', '-', '.', at least 2 characters, optionally ':<arch>'",
            )
    return packages


def _as_components(value: object) -> tuple[str, ...]:
    components = _as_nonempty_str_list(value)
    for component in components:
        _as_component(component)
    return components


def _as_mirror(value: object) -> str:
    """An http(s):// or file:// URL: it reaches mmdebstrap's command line and the sources.list line."""
    text = _as_text(value)
    hint = "e.g. 'http://deb.debian.org/debian' or 'file:///srv/mirror'"
    if text.startswith("-") or any(char.isspace() or not char.isprintable() for char in text):
        raise _Invalid(f"{_shown(text)} is not a mirror URL (no leading '-', no whitespace)", hint)
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise _Invalid(f"{_shown(text)} is not a mirror URL: {error}", hint) from None
    if parts.scheme not in _MIRROR_SCHEMES or not text.startswith(f"{parts.scheme}://"):
        raise _Invalid(f"{_shown(text)} is not an http://, https:// or file:// URL", hint)
    if parts.scheme != "file" and not parts.hostname:
        raise _Invalid(f"{_shown(text)} has no host", hint)
    if parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
        raise _Invalid(f"{_shown(text)} is not a file:// URL of an absolute path", hint)
    return text


def _as_str_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected a list of strings, got {_type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _Invalid(f"expected a list of strings, item {index} is {_type_name(item)}")
    return tuple(value)


def _as_nonempty_str_list(value: object) -> tuple[str, ...]:
    items = _as_str_list(value)
    if not items:
        raise _Invalid("must not be empty")
    return items


def _as_table(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a table, got {_type_name(value)}")
    return value


def _as_str_table(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a table of strings, got {_type_name(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise _Invalid(f"expected a table of strings, {key} is {_type_name(item)}")
    return dict(value)


def _as_env(value: object) -> dict[str, str]:
    """Environment variables: their names are also the command placeholders, so they must be identifiers."""
    env = _as_str_table(value)
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            raise _Invalid(f"{name!r} is not a variable name", "letters, digits, '_'; not a digit first")
    return env


def _as_exit_code(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {_type_name(value)}")
    if not 0 <= value <= 255:
        raise _Invalid(f"{_shown(value)} is not an exit code", "exit codes are 0 to 255")
    return value


def _as_duration(value: object) -> float:
    """Seconds, from "500ms", "30s", "2m", "1h", "1m30s" or a plain number of seconds."""
    if isinstance(value, str):
        if not _DURATION.fullmatch(value):
            raise _Invalid(f"{value!r} is not a duration", 'use e.g. "500ms", "30s", "2m" or "1m30s"')
        parts = _DURATION_PART.findall(value)
        seconds = sum(float(amount) * _SECONDS_PER_UNIT[unit] for amount, unit in parts)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _as_float(value)
    else:
        raise _Invalid(f'expected a duration like "30s" or a number of seconds, got {_type_name(value)}')
    if not (math.isfinite(seconds) and seconds > 0):
        raise _Invalid(f"{_shown(value)} is not a positive duration")
    if seconds > MAX_DURATION:
        raise _Invalid(f"{_shown(value)} is longer than 24h", "durations are at most 24h (86400 seconds)")
    return seconds


def _as_float(value: float) -> float:
    """A TOML number as a float; an integer too large for one becomes infinity, not an OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


# --- Reading: problems are recorded with file, dotted key and line, and reading goes on. ---

_BARE_KEY = r"[A-Za-z0-9_-]+"
_KEY_PART = rf"""{_BARE_KEY}|"(?:[^"\\]|\\.)*"|'[^']*'"""
_DOTTED_KEY = rf"(?:{_KEY_PART})(?:\s*\.\s*(?:{_KEY_PART}))*"
_HEADER_LINE = re.compile(rf"\s*\[\[?\s*({_DOTTED_KEY})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED_KEY})\s*=")
_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in re.findall(_KEY_PART, dotted))


def _dotted(key: tuple[str, ...]) -> str:
    return ".".join(part if re.fullmatch(_BARE_KEY, part) else f'"{part}"' for part in key)


def _index_lines(text: str) -> dict[tuple[str, ...], int]:
    """The first line of each table header and key, by full key; a line scan, so approximate but cheap."""
    index: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.split("\n"), start=1):
        if header := _HEADER_LINE.match(line):
            table = _key_parts(header[1])
            index.setdefault(table, number)
        elif key := _KEY_LINE.match(line):
            index.setdefault(table + _key_parts(key[1]), number)
    return index


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _hints(*hints: str | None) -> str | None:
    return " ".join(hint for hint in hints if hint) or None


@dataclass
class _File:
    """One recipe file being read: where its problems go, and on which line each key is."""

    path: Path
    root: Path
    problems: list[RecipeProblem]
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    tables: list[_Table] = field(default_factory=list)

    @property
    def rel(self) -> str:
        """The file's path as problems name it."""
        return self.path.relative_to(self.root).as_posix()

    def problem(self, key: tuple[str, ...], message: str, hint: str | None = None) -> None:
        located = RecipeProblem(
            file=self.rel, message=message, key=_dotted(key) or None, line=self._line(key), hint=hint
        )
        self.problems.append(located)

    def syntax_problem(self, error: tomllib.TOMLDecodeError) -> None:
        message = str(error)
        at = _SYNTAX_AT.search(message)
        self.problems.append(
            RecipeProblem(
                file=self.rel,
                message=f"invalid TOML: {message[: at.start()] if at else message}",
                line=int(at[1]) if at else None,
                column=int(at[2]) if at else None,
            )
        )

    def reject_unknown_keys(self) -> None:
        for table in self.tables:
            table.reject_unknown_keys()

    def _line(self, key: tuple[str, ...]) -> int | None:
        """The line of the key, else of its nearest enclosing key or table; None rather than a guess."""
        for end in range(len(key), 0, -1):
            if (line := self.lines.get(key[:end])) is not None:
                return line
        return None


class _Table:
    """Typed reads from one TOML table: problems are recorded, not raised, and keys never read are unknown."""

    def __init__(self, file: _File, key: tuple[str, ...], data: Mapping[str, object] | None) -> None:
        self.file = file
        self.key = key
        self.present = data is not None  # an absent table reads as empty and reports no missing keys
        self.data: Mapping[str, object] = data or {}
        self.known: list[str] = []
        file.tables.append(self)

    def optional(self, key: str, convert: Callable[[object], T]) -> T | None:
        """The value, or None when absent or invalid (then a problem is recorded)."""
        self.known.append(key)
        if key not in self.data:
            return None
        try:
            return convert(self.data[key])
        except _Invalid as invalid:
            self.file.problem((*self.key, key), str(invalid), invalid.hint)
            return None

    def get(self, key: str, convert: Callable[[object], T], default: T) -> T:
        value = self.optional(key, convert)
        return default if value is None else value

    def required(self, key: str, convert: Callable[[object], T], hint: str | None = None) -> T | None:
        if self.present and key not in self.data:
            self.file.problem((*self.key, key), "required but missing", hint)
        return self.optional(key, convert)

    def section(self, key: str, *, required: bool = False, hint: str | None = None) -> _Table:
        """The sub-table `key`, read like this one; empty when absent or invalid."""
        data = self.required(key, _as_table, hint) if required else self.optional(key, _as_table)
        return _Table(self.file, (*self.key, key), data)

    def entries(self) -> list[str]:
        """All keys, for a table whose keys are data (platform names) rather than schema."""
        self.known.extend(self.data)
        return list(self.data)

    def reject_unknown_keys(self) -> None:
        for key, value in self.data.items():
            if key not in self.known:
                kind = "table" if isinstance(value, dict) else "key"
                valid = f"valid keys: {', '.join(dict.fromkeys(self.known)) or 'none'}"
                hint = _did_you_mean(key, self.known) or valid
                self.file.problem((*self.key, key), f"unknown {kind}", hint)


def _read_file(
    path: Path, root: Path, problems: list[RecipeProblem], read: Callable[[_Table], T | None]
) -> T | None:
    """Parses one file and lets `read` turn its top-level table into an object (None when it cannot)."""
    file = _File(path=path, root=root, problems=problems)
    try:
        text = _read_text(path)
    except (OSError, UnicodeDecodeError) as error:
        file.problem((), f"cannot read: {error}")
        return None
    except _Invalid as invalid:
        file.problem((), str(invalid), invalid.hint)
        return None
    if (deep := _too_deep(text)) is not None:
        file.problems.append(
            RecipeProblem(
                file=file.rel,
                message=f"arrays and tables nest more than {MAX_NESTING} deep",
                line=deep,
                hint="recipes need a few levels",
            )
        )
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        file.syntax_problem(error)
        return None
    except (ValueError, RecursionError) as error:  # e.g. an integer of more than 4300 digits
        file.problem((), f"invalid TOML: {_shown(str(error), 200)[1:-1]}")
        return None
    file.lines = _index_lines(text)
    result = read(_Table(file, (), data))
    file.reject_unknown_keys()
    return result


def _read_text(path: Path) -> str:
    """A recipe's text: a regular file (a FIFO would block) of at most MAX_RECIPE_BYTES."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, and is refused
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise _Invalid("not a regular file", "a recipe is a TOML file")
        data = stream.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise _Invalid(f"larger than {MAX_RECIPE_BYTES // MiB} MiB", "a recipe is a few lines of TOML")
    return data.decode("utf-8")


_NESTING_TOKEN = re.compile(r"""#|"{3}|'{3}|["'\[\]{}]""")
_STRING_END = {
    '"': re.compile(r'\\.|"', re.DOTALL),
    '"""': re.compile(r'\\.|"""', re.DOTALL),
    "'": re.compile("'"),
    "'''": re.compile("'''"),
}


def _too_deep(text: str) -> int | None:
    """The line where arrays and tables nest more than MAX_NESTING deep, if they do; None otherwise.

    A cheap scan before tomllib, whose recursive parser would end in a RecursionError: brackets and
    braces are counted outside strings and comments (an unterminated string is left to tomllib).
    """
    depth = 0
    position = 0
    while (token := _NESTING_TOKEN.search(text, position)) is not None:
        position = token.end()
        if token[0] == "#":
            position = text.find("\n", position)
            if position < 0:
                return None
        elif token[0] in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return text.count("\n", 0, position) + 1
        elif token[0] in "]}":
            depth = max(depth - 1, 0)
        else:  # a string: skip to its end, over escapes
            end = _STRING_END[token[0]]
            while (close := end.search(text, position)) is not None and close[0][0] == "\\":
                position = close.end()
            if close is None:
                return None
            position = close.end()
            # A closing triple quote may come after up to two quotes that belong to the string.
            while len(token[0]) == 3 and text.startswith(token[0][0], position):
                position += 1
    return None


def _read_name(table: _Table, claimed: dict[str, str]) -> str | None:
    """The table's `name`; one that another file already claimed is a problem naming both files."""
    name = table.required("name", _as_name)
    if name is not None:
        first = claimed.setdefault(name, table.file.rel)
        if first != table.file.rel:
            message = f"{table.key[-1]} {name!r} is already defined by {first}"
            table.file.problem((*table.key, "name"), message)
    return name


def _known_platform(file: _File, key: tuple[str, ...], platform: str) -> bool:
    if platform in PLATFORMS:
        return True
    known = f"known: {', '.join(PLATFORMS)}"
    file.problem(key, f"unknown platform {platform!r}", _hints(_did_you_mean(platform, PLATFORMS), known))
    return False


# --- Toolchains ---


_ADD_PLATFORM = 'add e.g. [toolchain.platforms."linux/amd64"]'
ALL_PLATFORMS = "all"
IMAGE_EXTRAS = ("ca-certificates", "tzdata", "passwd", "tmp")


def _read_toolchain(doc: _Table, claimed: dict[str, str]) -> Toolchain | None:
    section = doc.section("toolchain", required=True)
    name = _read_name(section, claimed)
    image = section.optional("image", _as_image_reference)
    env: dict[str, str] = section.get("env", _as_env, {})
    bootstrap_table = section.section("bootstrap")
    bootstrap = _read_bootstrap(bootstrap_table) if bootstrap_table.present else None
    platforms = _read_toolchain_platforms(section.section("platforms", required=True, hint=_ADD_PLATFORM))
    if section.present and "image" not in section.data and "bootstrap" not in section.data:
        doc.file.problem(
            section.key,
            "needs `image` or [toolchain.bootstrap] (or both)",
            "image: use an existing image; bootstrap: build one with mmdebstrap",
        )
    if name is None:
        return None
    return Toolchain(
        name=name, file=doc.file.path, image=image, bootstrap=bootstrap, env=env, platforms=platforms
    )


def _read_bootstrap(table: _Table) -> Bootstrap | None:
    suite = table.required("suite", _as_suite)
    packages = table.required("packages", _as_packages)
    mirror = table.optional("mirror", _as_mirror)
    components: tuple[str, ...] = table.get("components", _as_components, ("main",))
    if suite is None or packages is None:
        return None
    return Bootstrap(suite=suite, packages=packages, mirror=mirror, components=components)


def _read_toolchain_platforms(table: _Table) -> dict[str, ToolchainPlatform]:
    if table.present and not table.data:
        table.file.problem(table.key, "needs at least one platform", _ADD_PLATFORM)
    platforms: dict[str, ToolchainPlatform] = {}
    for platform in table.entries():
        if not _known_platform(table.file, (*table.key, platform), platform):
            continue
        entry = table.section(platform)
        packages: tuple[str, ...] = entry.get("packages", _as_packages, ())
        env: dict[str, str] = entry.get("env", _as_env, {})
        if entry.present:
            platforms[platform] = ToolchainPlatform(packages=packages, env=env)
    return platforms


# --- Services ---


@dataclass(frozen=True)
class _Context:
    """What reading a service needs from outside its own file."""

    root: Path
    toolchains: Mapping[str, Toolchain]
    unloaded: tuple[str, ...]  # toolchain files that had problems too bad to know their toolchain
    service_files: dict[str, str]  # service name -> the file that claimed it first
    images: dict[str, list[_ImageClaim]]  # normalized repository:tag -> the services that use it


@dataclass(frozen=True)
class _ImageClaim:
    """A service's image reference, and where to report a clash on it."""

    service: str
    file: _File
    key: tuple[str, ...]


def _read_service(doc: _Table, context: _Context) -> Service | None:
    section = doc.section("service", required=True)
    name = _read_name(section, context.service_files)
    source = _read_source(section, context.root)
    toolchain = _read_toolchain_name(section, context)
    platforms = _read_platforms(section, toolchain)
    excluded = _read_excluded_platforms(section)
    everything = platforms == (ALL_PLATFORMS,)
    build = _read_build(
        doc.section("build", required=True), name or "", toolchain, () if everything else platforms or ()
    )
    image_table = doc.section("image")
    image = _read_image(image_table, name or "", build.output if build else "", source)
    smoke = _read_smoke(doc.section("smoke"))
    verify = _read_verify(doc.section("verify"))
    if name is not None and "repository" not in image_table.data and not _valid_repository(name):
        section.file.problem(
            (*section.key, "name"),
            f"{name!r} is not a valid image repository, and the image is named after the service",
            "rename the service (no '-', '.' or '_' at its end, nor two in a row) or set image.repository",
        )
    _check_user(image_table, image.user, smoke.allow_root)
    if source is not None:
        _check_special_files(section, source, context.root)
    if name is None or source is None or toolchain is None or platforms is None or build is None:
        return None
    if excluded and not everything:
        section.file.problem(
            (*section.key, "exclude_platforms"),
            'only applies to platforms = ["all"]',
            "list the platforms instead",
        )
    unsupported: dict[str, str] = {}
    if everything:
        platforms, unsupported = _all_platforms(toolchain, build, excluded)
    _check_tag_length(image_table, image.tag, platforms)
    _claim_image(context, image_table, section, name, image)
    return Service(
        name=name,
        file=doc.file.path,
        source=source,
        toolchain=toolchain.name,
        platforms=platforms,
        build=build,
        image=image,
        smoke=smoke,
        verify=verify,
        unsupported=unsupported,
    )


def _valid_repository(text: str) -> bool:
    return len(text) <= MAX_REPOSITORY and _REPOSITORY.fullmatch(text) is not None


def _check_user(image: _Table, user: str, allow_root: bool) -> None:
    """Uid 0 only when the recipe says so: `[smoke] allow_root = true`."""
    if int(user.split(":", maxsplit=1)[0]) == 0 and not allow_root:
        image.file.problem(
            (*image.key, "user"),
            f"{user!r} runs the image as root",
            "use a non-root uid such as '65534:65534', or set [smoke] allow_root = true",
        )


_SPECIAL_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
_MAX_SPECIAL_REPORTED = 10


def _check_special_files(table: _Table, source: Path, root: Path) -> None:
    """A FIFO, socket or device in the source would block or flood whatever reads the tree."""
    found = sorted(_special_files(source))
    for path, kind in found[:_MAX_SPECIAL_REPORTED]:
        table.file.problem(
            (*table.key, "source"),
            f"{path.relative_to(root).as_posix()!r} is {kind}",
            "a source tree holds only files, directories and symlinks: remove it",
        )
    if len(found) > _MAX_SPECIAL_REPORTED:
        more = len(found) - _MAX_SPECIAL_REPORTED
        table.file.problem((*table.key, "source"), f"and {more} more special files in {source}")


def _special_files(source: Path) -> Iterator[tuple[Path, str]]:
    """Every non-regular, non-directory, non-symlink file below `source`: lstat only, nothing opened,
    symlinked directories not followed, unreadable directories skipped."""
    pending = [source]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        mode = entry.stat(follow_symlinks=False).st_mode
                    except OSError:
                        continue
                    if stat.S_ISDIR(mode):
                        pending.append(Path(entry.path))
                    elif (kind := _SPECIAL_KINDS.get(stat.S_IFMT(mode))) is not None:
                        yield Path(entry.path), kind
        except OSError:
            continue


def _check_tag_length(table: _Table, tag: str, platforms: tuple[str, ...]) -> None:
    """osless tags each platform's image `<tag>-<arch><variant>`: that must still be a valid tag."""
    suffixes = (PLATFORMS[platform].tag_suffix for platform in platforms if platform in PLATFORMS)
    suffix = max(suffixes, key=len, default="")
    if suffix and len(tag) + 1 + len(suffix) > MAX_TAG:
        table.file.problem(
            (*table.key, "tag"),
            f"{_shown(tag)} is too long: with the platform suffix '-{suffix}' it has "
            f"{len(tag) + 1 + len(suffix)} characters",
            f"at most {MAX_TAG - 1 - len(suffix)} here: tags have at most {MAX_TAG} characters",
        )


def _claim_image(context: _Context, image: _Table, section: _Table, name: str, spec: ImageSpec) -> None:
    """Two services with one repository:tag would overwrite each other in the engine and the registry."""
    key = (
        (*image.key, "repository")
        if "repository" in image.data
        else (*image.key, "tag")
        if "tag" in image.data
        else (*section.key, "name")
    )
    claim = _ImageClaim(service=name, file=image.file, key=key)
    reference = f"{_normalized_repository(spec.repository)}:{spec.tag}"
    others = context.images.setdefault(reference, [])
    for other in others:
        hint = "give one of them another image.repository or image.tag"
        shown = f"{spec.repository}:{spec.tag}"
        claim.file.problem(
            claim.key,
            f"image {shown} is also the image of service {other.service!r} ({other.file.rel})",
            hint,
        )
        message = f"image {shown} is also the image of service {name!r} ({claim.file.rel})"
        other.file.problem(other.key, message, hint)
    others.append(claim)


def _normalized_repository(repository: str) -> str:
    """The repository as the engine names it: `hello` is `docker.io/library/hello`."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
    else:
        domain, path = "docker.io", repository
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return f"{domain}/{path}"


def _read_excluded_platforms(table: _Table) -> tuple[str, ...]:
    excluded: tuple[str, ...] = table.get("exclude_platforms", _as_str_list, ())
    key = (*table.key, "exclude_platforms")
    return tuple(platform for platform in excluded if _known_platform(table.file, key, platform))


def _all_platforms(
    toolchain: Toolchain, build: BuildSpec, excluded: tuple[str, ...]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """`["all"]`: the platforms this service can be built for, and why each other one cannot."""
    chosen: list[str] = []
    unsupported: dict[str, str] = {}
    for platform in PLATFORMS:
        if platform in excluded:
            continue
        if platform not in toolchain.platforms:
            unsupported[platform] = f"toolchain {toolchain.name} does not target {platform}"
            continue
        defined = build_env(toolchain, platform, build.env)
        missing = [name for name in _used_names(build.command) if name != "output" and name not in defined]
        if missing:
            unsupported[platform] = f"toolchain {toolchain.name} defines no {{{missing[0]}}} for {platform}"
        else:
            chosen.append(platform)
    return tuple(chosen), unsupported


def _used_names(command: tuple[str, ...]) -> list[str]:
    """Placeholder names of a command already checked by `_placeholder_names`."""
    return [name for argument in command for _, name, _, _ in string.Formatter().parse(argument) if name]


def _read_source(table: _Table, root: Path) -> Path | None:
    """The source directory, absolute; after symlinks and `..` it must still be inside the project."""
    text = table.required("source", _as_text)
    if text is None:
        return None
    key = (*table.key, "source")
    if "\0" in text:
        table.file.problem(key, f"{_shown(text)} holds a NUL character")
        return None
    if Path(text).is_absolute():
        table.file.problem(key, f"{text!r} is absolute", "give a directory relative to the project root")
        return None
    try:
        source = (root / text).resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop
        table.file.problem(key, f"cannot resolve {text!r}: {error}")
        return None
    if not source.is_relative_to(root):
        table.file.problem(key, f"{text!r} leads outside the project, to {source}", "keep sources inside it")
    elif not source.is_dir():
        table.file.problem(key, f"{text!r} is {'not a directory' if source.exists() else 'missing'}")
    else:
        return source
    return None


def _read_toolchain_name(table: _Table, context: _Context) -> Toolchain | None:
    name = table.required("toolchain", _as_text)
    if name is None:
        return None
    toolchain = context.toolchains.get(name)
    if toolchain is None:
        known = f"known: {', '.join(context.toolchains) or 'none'}"
        unloaded = f"(not loaded: {', '.join(context.unloaded)})" if context.unloaded else None
        table.file.problem(
            (*table.key, "toolchain"),
            f"unknown toolchain {name!r}",
            _hints(_did_you_mean(name, context.toolchains), known, unloaded),
        )
    return toolchain


def _read_platforms(table: _Table, toolchain: Toolchain | None) -> tuple[str, ...] | None:
    """The service's platforms; each must be known, listed once, and supported by its toolchain."""
    platforms = table.required("platforms", _as_nonempty_str_list)
    if platforms is None or platforms == (ALL_PLATFORMS,):
        return platforms
    key = (*table.key, "platforms")
    if ALL_PLATFORMS in platforms:
        table.file.problem(key, '"all" must be the only entry', "use exclude_platforms to leave some out")
        return None
    for index, platform in enumerate(platforms):
        if platform in platforms[:index]:
            table.file.problem(key, f"{platform!r} is listed twice")
        elif _known_platform(table.file, key, platform) and toolchain and platform not in toolchain.platforms:
            table.file.problem(
                key,
                f"{platform} is not supported by toolchain {toolchain.name}",
                f"it supports: {', '.join(toolchain.platforms) or 'none'}",
            )
    return platforms


def _read_build(
    table: _Table, name: str, toolchain: Toolchain | None, platforms: tuple[str, ...]
) -> BuildSpec | None:
    command = table.required("command", _as_nonempty_str_list)
    env: dict[str, str] = table.get("env", _as_env, {})
    output = table.get("output", _as_file_name, name)
    timeout = table.get("timeout", _as_duration, 600.0)
    limits = _read_limits(table, BUILD_LIMITS)
    if command is None:
        return None
    _check_placeholders(table, command, env, toolchain, platforms)
    return BuildSpec(command=command, env=env, output=output, timeout=timeout, limits=limits)


def _check_placeholders(
    table: _Table,
    command: tuple[str, ...],
    env: Mapping[str, str],
    toolchain: Toolchain | None,
    platforms: tuple[str, ...],
) -> None:
    """Every `{NAME}` must be in the build environment of every platform, so no build fails on it later."""
    key = (*table.key, "command")
    names = _placeholder_names(table.file, key, command)
    if toolchain is None:
        return
    for platform in dict.fromkeys(platform for platform in platforms if platform in toolchain.platforms):
        defined = build_env(toolchain, platform, env)
        for name in names:
            if name != "output" and name not in defined:
                table.file.problem(
                    key,
                    f"placeholder {{{name}}} is not defined for {platform} by toolchain {toolchain.name}",
                    f"defined: {', '.join(sorted(defined)) or 'none'}",
                )


def _placeholder_names(file: _File, key: tuple[str, ...], command: tuple[str, ...]) -> list[str]:
    """The placeholder names used in the command, in order; anything but `{NAME}` is a problem."""
    names: dict[str, None] = {}
    for argument in command:
        try:
            fields = [
                (name, conversion, spec)
                for _, name, spec, conversion in string.Formatter().parse(argument)
                if name is not None
            ]
        except ValueError as error:
            file.problem(key, f"{argument!r}: {error}", "write a literal brace as {{ or }}")
            continue
        for name, conversion, spec in fields:
            if _ENV_NAME.fullmatch(name) and not conversion and not spec:
                names[name] = None
            else:
                written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                message = f"{argument!r}: {{{written}}} is not a placeholder"
                file.problem(key, message, "use {output} or {NAME}")
    return list(names)


def _read_image(table: _Table, name: str, output: str, source: Path | None) -> ImageSpec:
    extras: tuple[str, ...] = table.get("extras", _as_extras, ())
    zones: tuple[str, ...] = table.get("zones", _as_str_list, ())
    if zones and "tzdata" not in extras:
        table.file.problem(
            (*table.key, "zones"), "only applies with the tzdata extra", 'add "tzdata" to extras'
        )
    return ImageSpec(
        repository=table.get("repository", _as_repository, name),
        tag=table.get("tag", _as_tag, "latest"),
        entrypoint=table.get("entrypoint", _as_nonempty_str_list, (f"/{output}",)),
        cmd=table.get("cmd", _as_str_list, ()),
        user=table.get("user", _as_user, "65534:65534"),
        env=table.get("env", _as_env, {}),
        labels=table.get("labels", _as_str_table, {}),
        extras=extras,
        zones=zones,
        files=_read_image_files(table, source, output),
    )


def _as_extras(value: object) -> tuple[str, ...]:
    extras = _as_str_list(value)
    for extra in extras:
        if extra not in IMAGE_EXTRAS:
            hint = _hints(_did_you_mean(extra, IMAGE_EXTRAS), f"known: {', '.join(IMAGE_EXTRAS)}")
            raise _Invalid(f"unknown extra {extra!r}", hint)
    return extras


def _read_image_files(table: _Table, source: Path | None, output: str) -> dict[str, str]:
    """`files = { "/etc/app.toml" = "config/app.toml" }`: from the service's source to an image path."""
    files: dict[str, str] = table.get("files", _as_str_table, {})
    key = (*table.key, "files")
    for target, relative in files.items():
        if (
            not target.startswith("/")
            or "\0" in target
            or posixpath.normpath(target) != target
            or target == f"/{output}"
        ):
            table.file.problem(
                key, f"{target!r} is not an absolute, normalized image path other than the binary"
            )
        elif source is not None and not _inside_file(source, relative):
            table.file.problem(key, f"{relative!r} is not a file inside the service's source {source}")
    return files


def _inside_file(directory: Path, relative: str) -> bool:
    try:
        path = (directory / relative).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL character
        return False
    return path.is_relative_to(directory) and path.is_file()


def _read_verify(table: _Table) -> VerifySpec:
    return VerifySpec(
        errors=table.get("errors", _as_str_list, ()),
        allow=table.get("allow", _as_str_table, {}),
        max_size=table.optional("max_size", _as_max_size),
    )


def _sizes(low: int, high: int) -> Callable[[object], int]:
    """A converter for sizes from `low` to `high` bytes."""

    def convert(value: object) -> int:
        size = _as_size(value)
        if not low <= size <= high:
            raise _Invalid(
                f"{_shown(value)} is out of range", f"from {_size_text(low)} to {_size_text(high)}"
            )
        return size

    return convert


def _as_size(value: object) -> int:
    """Bytes, from "800KiB", "2MiB", "1.5MB", "500kB" or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Invalid(f"{_shown(value)} is not a size", 'use e.g. "800KiB", "2MiB" or a number of bytes')
    size = float(match[1]) * _BYTES_PER_UNIT[match[2]]
    return int(size) if math.isfinite(size) else 2**64  # past any range: reported by the caller


def _size_text(size: int) -> str:
    """A size as recipes write it: "16MiB", "1TiB", "1 byte"."""
    for unit, factor in (("TiB", 1024**4), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} byte{'s' if size != 1 else ''}"


_as_max_size = _sizes(1, MAX_SIZE)
_as_memory = _sizes(16 * MiB, MAX_SIZE)


def _as_pids(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {_type_name(value)}")
    if not 16 <= value <= 1_000_000:
        raise _Invalid(f"{_shown(value)} is out of range", "from 16 to 1000000")
    return value


def _as_cpus(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"expected a number, got {_type_name(value)}")
    cpus = _as_float(value)
    if not (math.isfinite(cpus) and 0.01 <= cpus <= 1024):
        raise _Invalid(f"{_shown(value)} is out of range", "from 0.01 to 1024")
    return cpus


def _read_limits(table: _Table, default: Limits) -> Limits:
    """`limits = { memory = "8GiB", pids = 2048, cpus = 1.5 }`: any subset, the rest from `default`."""
    limits = table.section("limits")
    return Limits(
        memory=limits.get("memory", _as_memory, default.memory),
        pids=limits.get("pids", _as_pids, default.pids),
        cpus=limits.get("cpus", _as_cpus, default.cpus),
    )


def _as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected a boolean, got {_type_name(value)}")
    return value


def _read_smoke(table: _Table) -> SmokeSpec:
    return SmokeSpec(
        args=table.get("args", _as_str_list, ()),
        stdout=table.optional("stdout", _as_str),
        exit_code=table.get("exit_code", _as_exit_code, 0),
        timeout=table.get("timeout", _as_duration, 30.0),
        limits=_read_limits(table, SMOKE_LIMITS),
        allow_root=table.get("allow_root", _as_bool, False),
    )
