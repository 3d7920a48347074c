"""What the recipes describe, resolved: frozen dataclasses that the stages read, and their defaults.

The recipe schema (tables, keys, types, defaults and rules) is documented in docs/recipes.md; the
loader fills these objects from the TOML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.image.extras import EXTRAS

ALL_PLATFORMS = "all"  # `platforms = ["all"]`: every platform the toolchain can build the service for
IMAGE_EXTRAS = tuple(EXTRAS)  # the names `[image] extras` accepts, from the one registry
MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True, kw_only=True)
class Wheel:
    """A Python wheel pinned by version and sha256: a way to ship a compiler Debian lacks (ziglang).
    Its files land under /opt/wheels in the toolchain image."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Bootstrap:
    """How to make a toolchain image from Debian packages with mmdebstrap."""

    suite: str
    packages: tuple[str, ...]
    mirror: str | None = None  # None: mmdebstrap's default mirror for the suite
    components: tuple[str, ...] = ("main",)
    variant: str = "apt"  # mmdebstrap's package set before `packages`: "apt" (with apt), "minbase"
    # Packages whose files are added without their dependencies (a foreign architecture's target
    # library that multiarch could not install: its dependencies would pull a foreign libc).
    unpack: tuple[str, ...] = ()
    wheels: tuple[Wheel, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ToolchainPlatform:
    """What a toolchain adds for one target platform: cross packages and environment, with the
    platform's `{NAME}` placeholders already filled in (they belong to this one platform)."""

    packages: tuple[str, ...] = ()
    unpack: tuple[str, ...] = ()  # like Bootstrap.unpack, for this platform
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Toolchain:
    """A builder image and the platforms it can compile for."""

    name: str
    file: Path
    image: str | None  # an existing image reference, used as is
    bootstrap: Bootstrap | None
    env: dict[str, str]  # for every platform; platform placeholders filled by `build_env`
    platforms: dict[str, ToolchainPlatform]  # keyed by platform name, e.g. "linux/arm64"
    languages: tuple[str, ...] = ()  # names of orchestrator.languages.LANGUAGES it compiles


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one container may use: the engine enforces them (cpus clamped to the engine's cores)."""

    memory: int  # bytes
    pids: int
    cpus: float


BUILD_LIMITS = Limits(memory=4 * GiB, pids=1024, cpus=2.0)
SMOKE_LIMITS = Limits(memory=512 * MiB, pids=128, cpus=1.0)


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    """The compile command; `{output}` and `{NAME}` placeholders are filled per platform."""

    command: tuple[str, ...]
    env: dict[str, str]  # platform placeholders filled by `build_env`
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
