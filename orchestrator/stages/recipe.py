"""Stage 0: read and validate the TOML recipes into frozen, fully resolved objects.

Pure logic (no Docker): every problem in every recipe is collected and reported at once, so a user
fixes all of them in one go, before any container starts.

Recipe schema. Every `recipes/*.toml` is a service, every `recipes/toolchains/*.toml` a toolchain.
Unknown tables and keys are errors. A duration is "500ms", "30s", "2m", "1h", "1m30s" or a number
of seconds, and must be positive. A name matches `^[a-z0-9][a-z0-9._-]*$`.

Service file:

    [service]                      required
    name        str                required, a name
    source      str                required, directory relative to the project root, inside it
    toolchain   str                required, name of a toolchain in recipes/toolchains/
    platforms   list[str]          required, non-empty, each in PLATFORMS and in the toolchain
    [build]                        required
    command     list[str]          required, non-empty; placeholders: see below
    env         table str -> str   default {}
    output      str                default: service name; binary file name, no "/"
    timeout     duration           default "10m"
    [image]                        optional
    repository  str                default: service name
    tag         str                default "latest"
    entrypoint  list[str]          default ["/" + output]
    cmd         list[str]          default []
    user        str                default "65534:65534", numeric `uid[:gid]`
    env         table str -> str   default {}
    labels      table str -> str   default {}
    [smoke]                        optional
    args        list[str]          default []
    stdout      str                default: not checked; else the exact expected stdout
    exit_code   int                default 0
    timeout     duration           default "30s"

Placeholders in build.command: `{output}` is the absolute path the binary must be written to;
`{NAME}` is the value of NAME in the build environment of the platform (see `build_env`); `{{` and
`}}` are literal braces. Every placeholder must be defined for every platform of the service.

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
import re
import string
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

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


@dataclass(frozen=True, kw_only=True)
class Project:
    """Everything the recipes describe: services and toolchains by name."""

    root: Path
    services: dict[str, Service]
    toolchains: dict[str, Toolchain]
