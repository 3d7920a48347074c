"""Platform placeholders: the facts of the one platform table (`Platform.placeholders()`: `{GOARCH}`,
`{GNU_TRIPLE}`, `{DEBIAN_ARCH}`...) filled into recipe values per platform, so that toolchain recipes
need not restate the table.

A toolchain's per-platform packages and env belong to one platform: they are filled when read. The
toolchain's env and the service's build env are shared by all platforms: `build_env` fills them for
the platform being built. The facts become environment variables only where a recipe sets one (e.g.
`GOARCH = "{GOARCH}"`), or in a build `script`, which gets every placeholder's value as a variable of
the same name (`script_env`). In both, `{{` and `}}` are literal braces.

A build's `command`, `steps` and `artifact` may also name what osless itself gives every build:
`{output}`, `{JOBS}`, `{WORKSPACE}` and the variables of `osless_env_names()` (`{CARGO_TARGET_DIR}`...).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping

from orchestrator.errors import did_you_mean
from orchestrator.languages import build_env_defaults
from orchestrator.platforms import PLATFORMS, Platform
from orchestrator.recipe.convert import ENV_NAME, Invalid, as_env, as_packages, as_str_list, hints, shown
from orchestrator.recipe.model import Toolchain

FACTS = tuple(dict.fromkeys(name for platform in PLATFORMS.values() for name in platform.placeholders()))
# What osless fills in for every build: the binary's path, the build's CPU count, its workspace.
BUILD_VALUES = ("output", "JOBS", "WORKSPACE")
# Variables osless sets in every build's environment besides the recipes' (stages/build.container_env).
_OSLESS_ENV = ("HOME", "XDG_CACHE_HOME", "SOURCE_DATE_EPOCH")
_FACT_HINT = "use a platform placeholder such as {GOARCH}; write a literal brace as {{ or }}"


def scan(text: str, hint: str) -> tuple[list[str], list[Invalid]]:
    """The `{NAME}` placeholder names in `text`, in order, and what is wrong with any other use of braces."""
    try:
        fields = [
            (name, conversion, spec)
            for _, name, spec, conversion in string.Formatter().parse(text)
            if name is not None
        ]
    except ValueError as error:
        return [], [Invalid(f"{text!r}: {error}", "write a literal brace as {{ or }}")]
    names: list[str] = []
    problems: list[Invalid] = []
    for name, conversion, spec in fields:
        if ENV_NAME.fullmatch(name) and not conversion and not spec:
            names.append(name)
        else:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            problems.append(Invalid(f"{text!r}: {{{written}}} is not a placeholder", hint))
    return names, problems


def _fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with its placeholders, already checked, replaced by their values."""
    return string.Formatter().vformat(text, (), values)


def _with_facts_only(text: str) -> str:
    """`text` unchanged; Invalid unless each of its placeholders is a platform fact."""
    names, problems = scan(text, _FACT_HINT)
    if problems:
        raise problems[0]
    for name in names:
        if name not in FACTS:
            known = f"known: {', '.join(FACTS)}"
            raise Invalid(
                f"{shown(text)}: {{{name}}} is not a platform placeholder",
                hints(did_you_mean(name, FACTS), known),
            )
    return text


def as_shared_env(value: object) -> dict[str, str]:
    """An env table for every platform, whose values may hold platform placeholders (see `build_env`)."""
    env = as_env(value)
    for text in env.values():
        _with_facts_only(text)
    return env


def platform_env(platform: Platform) -> Callable[[object], dict[str, str]]:
    """A converter for one platform's env table: its placeholders filled with that platform's facts."""

    def convert(value: object) -> dict[str, str]:
        facts = platform.placeholders()
        return {name: _fill(text, facts) for name, text in as_shared_env(value).items()}

    return convert


def platform_packages(platform: Platform) -> Callable[[object], tuple[str, ...]]:
    """A converter for one platform's Debian packages, e.g. `gcc-{GNU_TRIPLE}`: filled, then checked."""

    def convert(value: object) -> tuple[str, ...]:
        facts = platform.placeholders()
        return as_packages([_fill(_with_facts_only(text), facts) for text in as_str_list(value)])

    return convert


def build_env(toolchain: Toolchain, platform: str, service_env: Mapping[str, str]) -> dict[str, str]:
    """The build environment of one platform: toolchain env, its platform env, then the service's, later
    wins; platform placeholders in the shared values are filled for this platform.

    A build command's `{NAME}` is filled from the platform facts, then this (see build.undefined).
    """
    facts = PLATFORMS[platform].placeholders()
    return {
        **{name: _fill(text, facts) for name, text in toolchain.env.items()},
        **toolchain.platforms[platform].env,
        **{name: _fill(text, facts) for name, text in service_env.items()},
    }


def osless_env_names() -> frozenset[str]:
    """The variables osless sets in every build, whatever the recipes say (each language's defaults,
    such as CARGO_TARGET_DIR, among them): a build's placeholders may name them."""
    return frozenset((*_OSLESS_ENV, *build_env_defaults("/cache", "/cache/target")))


def build_values(
    platform: Platform, env: Mapping[str, str], *, output: str, jobs: int, workspace: str
) -> dict[str, str]:
    """The value of every placeholder of one build: platform facts, then its environment, then what
    osless gives (later wins), as the recipe loader checked them (see build.undefined)."""
    given = {"output": output, "JOBS": str(jobs), "WORKSPACE": workspace}
    return {**platform.placeholders(), **env, **given}


def fill(text: str, values: Mapping[str, str]) -> str:
    """A command argument or artifact path with its (already checked) placeholders filled in."""
    return _fill(text, values)


def script_env(values: Mapping[str, str]) -> dict[str, str]:
    """A build script's environment: every placeholder's value as a variable of the same name
    (`{output}` as OUTPUT), so that a script says `$GNU_TRIPLE` where a command says `{GNU_TRIPLE}`."""
    return {("OUTPUT" if name == "output" else name): value for name, value in values.items()}
