"""Stage 0: read and validate the TOML recipes into frozen, fully resolved objects.

Pure logic (no Docker): every problem in every recipe is collected and reported at once, so a user
fixes all of them in one go, before any container starts.

Recipe schema. Every `recipes/*.toml` is a service, every `recipes/toolchains/*.toml` a toolchain.
Unknown tables and keys are errors. A duration is "500ms", "30s", "2m", "1h", "1m30s" or a number
of seconds, and must be positive. A name matches `^[a-z0-9][a-z0-9._-]*$`. Every `env` table maps
variable names (`[A-Za-z_][A-Za-z0-9_]*`, as they double as placeholders) to strings.

Service file:

    [service]                      required
    name        str                required, a name
    source      str                required, directory relative to the project root, inside it
    toolchain   str                required, name of a toolchain in recipes/toolchains/
    platforms   list[str]          required, non-empty, each in PLATFORMS and in the toolchain;
                                   ["all"]: every platform the toolchain can build it for (see below)
    exclude_platforms list[str]    default []; platforms left out of ["all"]
    [build]                        required
    command     list[str]          required, non-empty; placeholders: see below
    env         table str -> str   default {}
    output      str                default: service name; binary file name, no "/"
    timeout     duration           default "10m"
    [image]                        optional
    repository  str                default: service name
    tag         str                default "latest"; repository and tag as Docker allows
    entrypoint  list[str]          default ["/" + output]; non-empty
    cmd         list[str]          default []
    user        str                default "65534:65534", numeric `uid[:gid]`
    env         table str -> str   default {}
    labels      table str -> str   default {}
    extras      list[str]          default []; of "ca-certificates", "tzdata", "passwd", "tmp"
    zones       list[str]          default: all; with tzdata, e.g. ["Europe/Paris", "UTC"]
    files       table str -> str   default {}; image path -> file relative to the source
    [verify]                       optional: the verification policy
    errors      list[str]          default []; finding ids that fail the target (e.g. "needs.tzdata")
    allow       table str -> str   default {}; finding id -> the reason it is acceptable here
    max_size    size               default: none; "800KiB", "2MiB" or bytes: a larger binary fails
    [smoke]                        optional
    args        list[str]          default []
    stdout      str                default: not checked; else the exact expected stdout
    exit_code   int                default 0; 0 to 255
    timeout     duration           default "30s"

Placeholders in build.command: `{output}` is the absolute path the binary must be written to;
`{NAME}` is the value of NAME in the build environment of the platform (see `build_env`); `{{` and
`}}` are literal braces. Every placeholder must be defined for every platform of the service.
With `platforms = ["all"]`, a platform that the toolchain does not target or for which it does not
define a placeholder is left out, and the reason is kept in `Service.unsupported` (shown by
`osless list` and in the report) instead of being an error.

Toolchain file:

    [toolchain]                    required
    name        str                required, a name
    image       str                optional, an existing image used as is
    env         table str -> str   default {}, for every platform
    [toolchain.bootstrap]          optional; `image` or `bootstrap` (or both) is required
    suite       str                required, Debian suite for mmdebstrap
    packages    list[str]          required
    mirror      str                default: mmdebstrap's default mirror
    components  list[str]          default ["main"]
    [toolchain.platforms."<platform>"]   at least one; <platform> in PLATFORMS
    packages    list[str]          default [], e.g. the cross compiler
    env         table str -> str   default {}
"""

from __future__ import annotations

import difflib
import math
import posixpath
import re
import string
import sys
from collections.abc import Callable, Iterable, Mapping
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
class BuildSpec:
    """The compile command; `{output}` and `{NAME}` (toolchain env) placeholders are filled per platform."""

    command: tuple[str, ...]
    env: dict[str, str]
    output: str  # file name of the binary inside the image, e.g. "hello-go"
    timeout: float  # seconds


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

    context = _Context(root=root, toolchains=toolchains, unloaded=tuple(unloaded), service_files={})
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
_REPOSITORY_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"(?:[A-Za-z0-9.-]+(?::\d+)?/)?{_REPOSITORY_PATH}(?:/{_REPOSITORY_PATH})*")
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


def _matching(pattern: re.Pattern[str], what: str, hint: str) -> Callable[[object], str]:
    """A converter for strings of a given form."""

    def convert(value: object) -> str:
        text = _as_str(value)
        if not pattern.fullmatch(text):
            raise _Invalid(f"{text!r} is not {what}", hint)
        return text

    return convert


_as_name = _matching(
    _NAME, "a valid name", "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
)
_as_file_name = _matching(_FILE_NAME, "a plain file name", "no '/': it names the binary in the image root")
_as_user = _matching(_USER, "a numeric user", "use 'uid' or 'uid:gid', e.g. '65534:65534'")
_as_tag = _matching(_TAG, "a valid image tag", "letters, digits, '_', '.' and '-', at most 128")
_as_repository = _matching(
    _REPOSITORY,
    "a valid image repository",
    "e.g. 'hello' or 'registry.example:5000/team/hello'; the tag goes in image.tag",
)


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
        raise _Invalid(f"{value} is not an exit code", "exit codes are 0 to 255")
    return value


def _as_duration(value: object) -> float:
    """Seconds, from "500ms", "30s", "2m", "1h", "1m30s" or a plain number of seconds."""
    if isinstance(value, str):
        if not _DURATION.fullmatch(value):
            raise _Invalid(f"{value!r} is not a duration", 'use e.g. "500ms", "30s", "2m" or "1m30s"')
        parts = _DURATION_PART.findall(value)
        seconds = sum(float(amount) * _SECONDS_PER_UNIT[unit] for amount, unit in parts)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise _Invalid(f'expected a duration like "30s" or a number of seconds, got {_type_name(value)}')
    if not (math.isfinite(seconds) and seconds > 0):
        raise _Invalid(f"{value!r} is not a positive duration")
    return seconds


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
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as error:
        file.problem((), f"cannot read: {error}")
        return None
    except tomllib.TOMLDecodeError as error:
        file.syntax_problem(error)
        return None
    file.lines = _index_lines(text)
    result = read(_Table(file, (), data))
    file.reject_unknown_keys()
    return result


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
    image = section.optional("image", _as_text)
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
    suite = table.required("suite", _as_text)
    packages = table.required("packages", _as_str_list)
    mirror = table.optional("mirror", _as_text)
    components: tuple[str, ...] = table.get("components", _as_nonempty_str_list, ("main",))
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
        packages: tuple[str, ...] = entry.get("packages", _as_str_list, ())
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
    image = _read_image(doc.section("image"), name or "", build.output if build else "", source)
    smoke = _read_smoke(doc.section("smoke"))
    verify = _read_verify(doc.section("verify"))
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
    if command is None:
        return None
    _check_placeholders(table, command, env, toolchain, platforms)
    return BuildSpec(command=command, env=env, output=output, timeout=timeout)


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
        if not target.startswith("/") or posixpath.normpath(target) != target or target == f"/{output}":
            table.file.problem(
                key, f"{target!r} is not an absolute, normalized image path other than the binary"
            )
        elif source is not None and not _inside_file(source, relative):
            table.file.problem(key, f"{relative!r} is not a file inside the service's source {source}")
    return files


def _inside_file(directory: Path, relative: str) -> bool:
    path = (directory / relative).resolve()
    return path.is_relative_to(directory) and path.is_file()


def _read_verify(table: _Table) -> VerifySpec:
    return VerifySpec(
        errors=table.get("errors", _as_str_list, ()),
        allow=table.get("allow", _as_str_table, {}),
        max_size=table.optional("max_size", _as_size),
    )


def _as_size(value: object) -> int:
    """Bytes, from "800KiB", "2MiB", "1.5MB", "500kB" or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Invalid(f"{value!r} is not a size", 'use e.g. "800KiB", "2MiB" or a number of bytes')
    return int(float(match[1]) * _BYTES_PER_UNIT[match[2]])


def _read_smoke(table: _Table) -> SmokeSpec:
    return SmokeSpec(
        args=table.get("args", _as_str_list, ()),
        stdout=table.optional("stdout", _as_str),
        exit_code=table.get("exit_code", _as_exit_code, 0),
        timeout=table.get("timeout", _as_duration, 30.0),
    )
