"""What the recipes describe, resolved: frozen dataclasses that the stages read, and their defaults.

The recipe schema (tables, keys, types, defaults and rules) is documented in docs/recipes.md; the
loader fills these objects from the TOML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.bootstrap.lock import Lock
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
    # Library -dev packages (no `:arch`) installed for every platform's Debian architecture (LIBRARIES).
    libraries: tuple[str, ...] = ()


# A toolchain's `libraries` are target libraries for static linking: for each platform, the `-dev`
# package of that platform's Debian architecture and the `-dev` packages it depends on, installed with
# dpkg but without their run-time packages (whose foreign libc the archive may lack, and which a static
# link never reads). Each must ship a static archive (.a) when it ships a shared library.


@dataclass(frozen=True, kw_only=True)
class Layer:
    """What a toolchain that extends another adds to the base toolchain's image, as a thin image layer
    on it (the base image stays as it is): packages installed with their dependencies, packages
    unpacked without them, and target libraries (like Bootstrap's)."""

    packages: tuple[str, ...] = ()
    unpack: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ToolchainPlatform:
    """What a toolchain adds for one target platform: cross packages and environment, with the
    platform's `{NAME}` placeholders already filled in (they belong to this one platform)."""

    packages: tuple[str, ...] = ()
    unpack: tuple[str, ...] = ()  # like Bootstrap.unpack, for this platform
    libraries: tuple[str, ...] = ()  # like Bootstrap.libraries, for this platform only (no `:arch`)
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
    # `extends = "<name>"`: a derived toolchain. The loader resolves `base` and merges into this one the
    # base's env, languages and platforms (its own values win); `layer` and the platforms' packages,
    # unpack and libraries are its own additions only, installed on the base image.
    extends: str | None = None
    base: Toolchain | None = None
    layer: Layer | None = None
    # `recipes/toolchains/<name>.lock` when there is one: the exact packages its image is made of.
    lock: Lock | None = None


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
    """How the binary is built in the target's workspace: exactly one of `command` (one argv), `steps`
    (argv lists, run in order) or `script` (shell text, `sh -eu -c`). `{output}` and `{NAME}`
    placeholders are filled per platform in command, steps and artifact; a script gets their values as
    environment variables instead (shell syntax would collide with them)."""

    command: tuple[str, ...] = ()
    steps: tuple[tuple[str, ...], ...] = ()
    script: str | None = None
    env: dict[str, str]  # platform placeholders filled by `build_env`
    output: str  # file name of the binary inside the image, e.g. "hello-go"
    timeout: float  # seconds, for the whole build (every step)
    limits: Limits = BUILD_LIMITS
    artifact: str | None = None  # the binary's path (relative: to the workspace); None: `{output}`
    # The workspace kept from the previous build and synced with the source; False: a fresh copy
    # each build (for a build that edits its source files in place)
    incremental: bool = True

    @property
    def argv_templates(self) -> tuple[tuple[str, ...], ...]:
        """What runs, in order, placeholders not yet filled (a script is one `sh -eu -c` step)."""
        if self.script is not None:
            return (("sh", "-eu", "-c", self.script),)
        return self.steps or (self.command,)

    @property
    def placeholder_texts(self) -> tuple[str, ...]:
        """Every value whose `{NAME}` placeholders are filled (a script's are not)."""
        arguments = () if self.script is not None else tuple(a for s in self.argv_templates for a in s)
        return arguments + ((self.artifact,) if self.artifact is not None else ())


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
class SmokeExpect:
    """What one run of the image must give on a platform; None: not checked. A regular expression is
    searched in the output (`re.search`), validated when the recipe is read."""

    stdout: str | None = None  # the exact standard output
    stdout_matches: str | None = None  # a Python regular expression
    stderr: str | None = None
    stderr_matches: str | None = None
    exit_code: int = 0


# What a smoke check may bring from the project: each file (stdin_file, files) and all of a check's together.
SMOKE_FILE_LIMIT = 64 * MiB
SMOKE_FILES_LIMIT = 256 * MiB


@dataclass(frozen=True, kw_only=True)
class SmokeCheck:
    """One run of the image: its arguments, its stdin and test files, and what it must give."""

    name: str  # unique within the service: shown in the report
    args: tuple[str, ...] = ()
    stdin: str | None = None  # inline text, fed as UTF-8
    stdin_file: Path | None = None  # absolute, a regular file inside the project root
    # image path -> absolute file inside the project root: in a smoke-only layer, never in the shipped image
    files: dict[str, Path] = field(default_factory=dict)
    expect: SmokeExpect = field(default_factory=SmokeExpect)
    platforms: dict[str, SmokeExpect] = field(default_factory=dict)  # platform -> what it must give there
    timeout: float = 30.0  # seconds
    limits: Limits = SMOKE_LIMITS

    def expected(self, platform: str) -> SmokeExpect:
        """The expectation on `platform`: its own when the recipe gives one, else the check's."""
        return self.platforms.get(platform, self.expect)


@dataclass(frozen=True, kw_only=True)
class SmokeSpec:
    """The smoke checks of a service (at least one), run in order on every platform."""

    checks: tuple[SmokeCheck, ...] = (SmokeCheck(name="smoke"),)
    allow_root: bool = False  # image.user may be uid 0

    @property
    def args(self) -> tuple[str, ...]:
        """The first check's arguments: what `osless run` passes when given none."""
        return self.checks[0].args if self.checks else ()


@dataclass(frozen=True, kw_only=True)
class FetchSpec:
    """Dependencies downloaded in a step of their own before the (always offline) build, into the
    toolchain's cache volume, keyed by the files that pin them (Go: go.mod and go.sum): an unchanged
    lock file fetches nothing. Only this step may have a network, and only when the recipe says so."""

    # Go: GOPROXY entries in order, "file://<directory relative to the project root>" (mounted read-only)
    # or an http(s) proxy URL.
    goproxy: tuple[str, ...] = ()
    network: bool = False  # the fetch container gets a network (http(s) entries need it)
    timeout: float = 600.0  # seconds


@dataclass(frozen=True, kw_only=True)
class Service:
    """One service recipe, resolved: paths absolute, defaults filled in."""

    name: str
    file: Path
    source: Path  # absolute, inside the project root (absent when `unbuildable` says so)
    toolchain: str
    platforms: tuple[str, ...]
    build: BuildSpec
    image: ImageSpec
    smoke: SmokeSpec
    verify: VerifySpec = field(default_factory=VerifySpec)
    unsupported: dict[str, str] = field(default_factory=dict)  # platform -> why ["all"] left it out
    fetch: FetchSpec | None = None  # dependencies downloaded before the build, in a step of their own
    # Why none of its targets can be built, though the recipe is valid (its source is missing, or holds a
    # FIFO): its targets fail with this reason, and the other services build.
    unbuildable: str | None = None


@dataclass(frozen=True, kw_only=True)
class Project:
    """Everything the recipes describe: services and toolchains by name."""

    root: Path
    services: dict[str, Service]
    toolchains: dict[str, Toolchain]
