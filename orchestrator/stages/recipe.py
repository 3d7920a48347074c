"""Stage 0: read and validate the TOML recipes into frozen, fully resolved objects.

Pure logic (no Docker): every problem in every recipe is collected and reported at once, so a user
fixes all of them in one go, before any container starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
