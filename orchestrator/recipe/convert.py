"""Value converters: each turns one TOML value into its typed form or raises Invalid saying what was
expected (and how to fix it), so the reader can record the problem and read on."""

from __future__ import annotations

import difflib
import math
import re
import urllib.parse
from collections.abc import Callable
from datetime import date, datetime, time

from orchestrator.errors import UsageError, did_you_mean
from orchestrator.image.toolchain_registry import remote_image
from orchestrator.languages import LANGUAGES
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import IMAGE_EXTRAS, GiB, MiB

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FILE_NAME = re.compile(r"(?!\.\.?$)[^/\x00]+")
USER_PATTERN = re.compile(r"\d+(?::\d+)?")
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_TAG = 128
MAX_REPOSITORY = 255
# The distribution spec's reference grammar (github.com/distribution/reference, regexp.go).
_REPOSITORY_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:]+\])(?::\d+)?"
_REPOSITORY_NAME = rf"(?:{_DOMAIN}/)?{_REPOSITORY_PATH}(?:/{_REPOSITORY_PATH})*"
REPOSITORY_PATTERN = re.compile(_REPOSITORY_NAME)
IMAGE_REFERENCE_PATTERN = re.compile(
    rf"(?P<name>{_REPOSITORY_NAME})(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{{32,}})?"
)
SUITE_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,63}")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?")
# Debian's architectures (release and ports, dpkg's table) that a `name:arch` package may name, plus
# `all` (architecture-independent) and `native` (the image's own).
DEBIAN_ARCHITECTURES = (
    "amd64", "arm64", "armel", "armhf", "i386", "mips64el", "mipsel", "ppc64el", "riscv64", "s390x",
    "alpha", "hppa", "hurd-amd64", "hurd-i386", "ia64", "loong64", "m68k", "powerpc", "ppc64", "sh4",
    "sparc64", "x32", "arc", "armeb", "mips", "mips64", "mipsr6", "mipsr6el", "powerpcspe", "s390",
    "sparc", "or1k", "kfreebsd-amd64", "kfreebsd-i386", "all", "native",
)  # fmt: skip
# What other tools call each platform's Debian architecture (GOARCH, `uname -m`, qemu): a did-you-mean.
_ARCH_ALIASES = {
    alias: platform.debian_arch
    for platform in PLATFORMS.values()
    for alias in (platform.goarch, platform.qemu, *platform.uname_machines, platform.name.split("/", 1)[1])
    if alias != platform.debian_arch
}
COMPONENT_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,63}")
# PEP 508 project names and PEP 440 public versions (a superset: the index decides what exists).
WHEEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
WHEEL_VERSION_PATTERN = re.compile(r"[0-9][A-Za-z0-9.+!]{0,63}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
LANGUAGE_NAMES = tuple(language.name for language in LANGUAGES)
_MIRROR_SCHEMES = ("http", "https", "file")
MAX_DURATION = 24 * 3600.0
MAX_SIZE = 1024**4  # 1 TiB: the most a binary (verify.max_size) or a container's memory may be
MAX_UID = 2**32 - 2  # 2**32 - 1 is (uid_t) -1
DURATION_PATTERN = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
SIZE_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)")
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


class Invalid(Exception):
    """A value of the wrong type or form; the message says what was expected."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def _type_name(value: object) -> str:
    """The TOML name of a value's type, as users wrote it."""
    return next((name for kind, name in _TOML_TYPES if isinstance(value, kind)), type(value).__name__)


def as_str(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {_type_name(value)}")
    return value


def as_text(value: object) -> str:
    """A string that must say something: an empty path, image or suite is always a mistake."""
    text = as_str(value)
    if not text.strip():
        raise Invalid("must not be empty")
    return text


def shown(value: object, limit: int = 80) -> str:
    """A value as a message quotes it: its repr, cut short when long (a recipe may hold a megabyte)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def _matching(pattern: re.Pattern[str], what: str, hint: str) -> Callable[[object], str]:
    """A converter for strings of a given form."""

    def convert(value: object) -> str:
        text = as_str(value)
        if not pattern.fullmatch(text):
            raise Invalid(f"{shown(text)} is not {what}", hint)
        return text

    return convert


as_name = _matching(
    NAME_PATTERN,
    "a valid name",
    "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit",
)
as_file_name = _matching(_FILE_NAME, "a plain file name", "no '/': it names the binary in the image root")
as_tag = _matching(TAG_PATTERN, "a valid image tag", "letters, digits, '_', '.' and '-', at most 128")
_REPOSITORY_HINT = (
    "lowercase letters and digits, separated by one '.', one or two '_' or '-'s, in components "
    "separated by '/', e.g. 'hello' or 'registry.example:5000/team/hello'; the tag goes in image.tag"
)
as_suite = _matching(
    SUITE_PATTERN, "a Debian suite", "a suite or codename, e.g. 'trixie', 'bookworm-backports' or 'unstable'"
)
_as_component = _matching(
    COMPONENT_PATTERN, "a Debian component", "e.g. 'main', 'contrib' or 'non-free-firmware'"
)


def as_user(value: object) -> str:
    """`uid[:gid]`, numeric: a scratch image has no /etc/passwd to look a name up in."""
    text = as_str(value)
    if not USER_PATTERN.fullmatch(text):
        hint = "use 'uid' or 'uid:gid', e.g. '65534:65534'"
        if text.split(":")[0] == "root":
            hint = "use '0' together with [smoke] allow_root = true to run as root, or e.g. '65534:65534'"
        raise Invalid(f"{shown(text)} is not a numeric user", hint)
    if any(int(part) > MAX_UID for part in text.split(":")):
        raise Invalid(f"{shown(text)} is out of range", f"uids and gids are 0 to {MAX_UID}")
    return text


def as_repository(value: object) -> str:
    text = as_str(value)
    if not REPOSITORY_PATTERN.fullmatch(text):
        raise Invalid(f"{shown(text)} is not a valid image repository", _REPOSITORY_HINT)
    if len(text) > MAX_REPOSITORY:
        raise Invalid(f"{shown(text)} is too long ({len(text)} characters)", f"at most {MAX_REPOSITORY}")
    return text


def as_image_reference(value: object) -> str:
    """An image reference as Docker takes it: `name[:tag][@digest]`."""
    text = as_text(value)
    match = IMAGE_REFERENCE_PATTERN.fullmatch(text)
    if match is None or len(match["name"]) > MAX_REPOSITORY:
        raise Invalid(f"{shown(text)} is not a valid image reference", "e.g. 'gcc:14' or 'my/builder:1'")
    try:
        remote_image(text)  # one naming a registry host is pulled: it must pin a sha256 digest if any
    except UsageError as error:
        raise Invalid(error.message, error.hint) from error
    return text


def as_packages(value: object) -> tuple[str, ...]:
    """Debian package names, optionally `name:arch` with a Debian architecture: they reach
    mmdebstrap's and apt's command lines."""
    packages = as_str_list(value)
    for package in packages:
        if not _PACKAGE.fullmatch(package):
            raise Invalid(
                f"{shown(package)} is not a Debian package name",
                "lowercase letters, digits, '+', '-', '.', at least 2 characters, starting with a letter "
                "or digit (Debian policy 5.6.1), optionally ':<arch>'",
            )
        name, _, arch = package.partition(":")
        if arch and arch not in DEBIAN_ARCHITECTURES:
            close = difflib.get_close_matches(arch, DEBIAN_ARCHITECTURES, n=1)
            guess = _ARCH_ALIASES.get(arch) or (close[0] if close else None)
            raise Invalid(
                f"{shown(package)}: {arch!r} is not a Debian architecture",
                hints(guess and f"did you mean '{name}:{guess}'?", "per platform, write ':{DEBIAN_ARCH}'"),
            )
    return packages


def as_libraries(value: object) -> tuple[str, ...]:
    """Target library `-dev` packages, without `:arch`: each is installed for every platform's Debian
    architecture (see model.Bootstrap.libraries)."""
    libraries = as_packages(value)
    for library in libraries:
        if ":" in library:
            raise Invalid(
                f"{shown(library)}: libraries are installed for each platform's architecture",
                f"leave ':{library.partition(':')[2]}' out",
            )
        if not library.endswith("-dev"):
            raise Invalid(
                f"{shown(library)} is not a -dev package",
                "libraries are -dev packages (headers and static archives); other packages go in `packages`",
            )
    return libraries


as_wheel_version = _matching(
    WHEEL_VERSION_PATTERN, "a wheel version", "the version as PyPI lists it, e.g. '0.17.1'"
)
as_sha256 = _matching(
    SHA256_PATTERN, "a sha256", "64 lowercase hex digits: the sha256 of the wheel file, as PyPI lists it"
)


def _names_of(known: tuple[str, ...], what: str) -> Callable[[object], tuple[str, ...]]:
    """A converter for lists of names from `known`; an unknown one is `unknown <what>`, did-you-mean."""

    def convert(value: object) -> tuple[str, ...]:
        names = as_str_list(value)
        for name in names:
            if name not in known:
                raise Invalid(
                    f"unknown {what} {shown(name)}",
                    hints(did_you_mean(name, known), f"known: {', '.join(known)}"),
                )
        return names

    return convert


as_languages = _names_of(LANGUAGE_NAMES, "language")
"""Names of the languages osless knows (orchestrator.languages): what a toolchain compiles."""
as_extras = _names_of(IMAGE_EXTRAS, "extra")


def as_components(value: object) -> tuple[str, ...]:
    components = as_nonempty_str_list(value)
    for component in components:
        _as_component(component)
    return components


def as_mirror(value: object) -> str:
    """An http(s):// or file:// URL: it reaches mmdebstrap's command line and the sources.list line."""
    text = as_text(value)
    hint = "e.g. 'http://deb.debian.org/debian' or 'file:///srv/mirror'"
    if text.startswith("-") or any(char.isspace() or not char.isprintable() for char in text):
        raise Invalid(f"{shown(text)} is not a mirror URL (no leading '-', no whitespace)", hint)
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise Invalid(f"{shown(text)} is not a mirror URL: {error}", hint) from None
    if parts.scheme not in _MIRROR_SCHEMES or not text.startswith(f"{parts.scheme}://"):
        raise Invalid(f"{shown(text)} is not an http://, https:// or file:// URL", hint)
    if parts.scheme != "file" and not parts.hostname:
        raise Invalid(f"{shown(text)} has no host", hint)
    if parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
        raise Invalid(f"{shown(text)} is not a file:// URL of an absolute path", hint)
    return text


def as_str_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid(f"expected a list of strings, got {_type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise Invalid(f"expected a list of strings, item {index} is {_type_name(item)}")
    return tuple(value)


def as_nonempty_str_list(value: object) -> tuple[str, ...]:
    items = as_str_list(value)
    if not items:
        raise Invalid("must not be empty")
    return items


def as_table(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a table, got {_type_name(value)}")
    return value


def as_str_table(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a table of strings, got {_type_name(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise Invalid(f"expected a table of strings, {key} is {_type_name(item)}")
    return dict(value)


def as_env(value: object) -> dict[str, str]:
    """Environment variables: their names are also the command placeholders, so they must be identifiers."""
    env = as_str_table(value)
    for name in env:
        if not ENV_NAME.fullmatch(name):
            raise Invalid(f"{name!r} is not a variable name", "letters, digits, '_'; not a digit first")
    return env


def as_exit_code(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer, got {_type_name(value)}")
    if not 0 <= value <= 255:
        raise Invalid(f"{shown(value)} is not an exit code", "exit codes are 0 to 255")
    return value


def as_duration(value: object) -> float:
    """Seconds, from "500ms", "30s", "2m", "1h", "1m30s" or a plain number of seconds."""
    if isinstance(value, str):
        if not DURATION_PATTERN.fullmatch(value):
            raise Invalid(f"{value!r} is not a duration", 'use e.g. "500ms", "30s", "2m" or "1m30s"')
        parts = _DURATION_PART.findall(value)
        seconds = sum(float(amount) * _SECONDS_PER_UNIT[unit] for amount, unit in parts)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _as_float(value)
    else:
        raise Invalid(f'expected a duration like "30s" or a number of seconds, got {_type_name(value)}')
    if not (math.isfinite(seconds) and seconds > 0):
        raise Invalid(f"{shown(value)} is not a positive duration")
    if seconds > MAX_DURATION:
        raise Invalid(f"{shown(value)} is longer than 24h", "durations are at most 24h (86400 seconds)")
    return seconds


def _as_float(value: float) -> float:
    """A TOML number as a float; an integer too large for one becomes infinity, not an OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _sizes(low: int, high: int) -> Callable[[object], int]:
    """A converter for sizes from `low` to `high` bytes."""

    def convert(value: object) -> int:
        size = _as_size(value)
        if not low <= size <= high:
            raise Invalid(f"{shown(value)} is out of range", f"from {size_text(low)} to {size_text(high)}")
        return size

    return convert


def _as_size(value: object) -> int:
    """Bytes, from "800KiB", "2MiB", "1.5MB", "500kB" or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = SIZE_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(f"{shown(value)} is not a size", 'use e.g. "800KiB", "2MiB" or a number of bytes')
    size = float(match[1]) * _BYTES_PER_UNIT[match[2]]
    return int(size) if math.isfinite(size) else 2**64  # past any range: reported by the caller


def size_text(size: int) -> str:
    """A size as recipes write it: "16MiB", "1TiB", "1 byte"."""
    for unit, factor in (("TiB", 1024**4), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} byte{'s' if size != 1 else ''}"


as_max_size = _sizes(1, MAX_SIZE)
as_memory = _sizes(16 * MiB, MAX_SIZE)


def as_pids(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer, got {_type_name(value)}")
    if not 16 <= value <= 1_000_000:
        raise Invalid(f"{shown(value)} is out of range", "from 16 to 1000000")
    return value


def as_cpus(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"expected a number, got {_type_name(value)}")
    cpus = _as_float(value)
    if not (math.isfinite(cpus) and 0.01 <= cpus <= 1024):
        raise Invalid(f"{shown(value)} is out of range", "from 0.01 to 1024")
    return cpus


def as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected a boolean, got {_type_name(value)}")
    return value


CHECK_NAME_PATTERN = re.compile(r"[^\x00-\x1f\x7f]{1,80}")


def as_check_name(value: object) -> str:
    """A smoke check's name: shown in reports and JUnit, so one line of at most 80 characters."""
    text = as_text(value)
    if not CHECK_NAME_PATTERN.fullmatch(text):
        raise Invalid(f"{shown(text)} is not a check name", "one line of at most 80 characters")
    return text


def as_regex(value: object) -> str:
    """A Python regular expression, compiled now so that a mistake is reported with the recipe."""
    text = as_str(value)
    try:
        re.compile(text)
    except re.error as error:
        where = f" at position {error.pos}" if error.pos is not None else ""
        raise Invalid(
            f"{shown(text)} is not a regular expression: {error.msg}{where}",
            "Python `re` syntax; escape a literal character such as ( or . with a backslash",
        ) from error
    except (RecursionError, OverflowError) as error:  # nested too deep, a repeat count too large
        raise Invalid(f"{shown(text)} is not a regular expression: {type(error).__name__}") from error
    return text


def hints(*parts: str | None) -> str | None:
    """The given hints in one, or None when there is none."""
    return " ".join(part for part in parts if part) or None


def valid_repository(text: str) -> bool:
    return len(text) <= MAX_REPOSITORY and REPOSITORY_PATTERN.fullmatch(text) is not None


def normalized_repository(repository: str) -> str:
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
