"""Stage 0: read every recipe of a project into the model, checking what spans files.

Pure logic (no Docker): every problem in every recipe is collected and reported at once, so a user
fixes all of them in one go, before any container starts. Each `recipes/*.toml` is a service, each
`recipes/toolchains/*.toml` a toolchain; docs/recipes.md documents the schema. Besides each file's own
values, the loader checks what needs several files: unique names, a service's toolchain and its
platforms, command placeholders defined on every platform, one repository:tag per service.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.bootstrap.lock import lock_file_name, relock_command
from orchestrator.bootstrap.lock import parse as parse_lock
from orchestrator.errors import RecipeError, RecipeProblem, did_you_mean
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.convert import (
    MAX_TAG,
    WHEEL_NAME,
    Invalid,
    as_bool,
    as_check_name,
    as_components,
    as_cpus,
    as_duration,
    as_env,
    as_exit_code,
    as_extras,
    as_file_name,
    as_image_reference,
    as_languages,
    as_libraries,
    as_max_size,
    as_memory,
    as_mirror,
    as_name,
    as_nonempty_str_list,
    as_packages,
    as_pids,
    as_regex,
    as_repository,
    as_sha256,
    as_str,
    as_str_list,
    as_str_table,
    as_suite,
    as_table,
    as_tag,
    as_text,
    as_user,
    as_wheel_version,
    hints,
    normalized_repository,
    shown,
    valid_repository,
)
from orchestrator.recipe.extends import resolve_extends
from orchestrator.recipe.fetch import read_fetch
from orchestrator.recipe.model import (
    ALL_PLATFORMS,
    BUILD_LIMITS,
    SMOKE_FILE_LIMIT,
    SMOKE_FILES_LIMIT,
    SMOKE_LIMITS,
    Bootstrap,
    BuildSpec,
    ImageSpec,
    Layer,
    Limits,
    MiB,
    Project,
    Service,
    SmokeCheck,
    SmokeExpect,
    SmokeSpec,
    Toolchain,
    ToolchainPlatform,
    VerifySpec,
    Wheel,
)
from orchestrator.recipe.placeholders import (
    BUILD_VALUES,
    FACTS,
    as_shared_env,
    build_env,
    osless_env_names,
    platform_env,
    platform_packages,
    scan,
)
from orchestrator.recipe.reader import RecipeFile, Table, read_file

_COMMAND_HINT = "use {output} or {NAME}; write {{ and }} for literal braces"


def load_project(root: Path) -> Project:
    """Reads and validates every recipe below `root`; raises RecipeError listing all problems of all files."""
    root = root.resolve()
    problems: list[RecipeProblem] = []
    toolchains: dict[str, Toolchain] = {}
    toolchain_files: dict[str, str] = {}
    unloaded: list[str] = []
    derived: dict[str, Table] = {}  # name -> the [toolchain] table of a toolchain that extends another
    for path in sorted((root / "recipes" / "toolchains").glob("*.toml")):
        toolchain = read_file(
            path, root, problems, lambda doc: _read_toolchain(doc, toolchain_files, derived)
        )
        if toolchain is None:
            unloaded.append(path.relative_to(root).as_posix())
        else:
            toolchains.setdefault(toolchain.name, _with_lock(toolchain, root, problems))
    toolchains, unresolved = resolve_extends(toolchains, derived)
    unloaded.extend(unresolved)

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
        service = read_file(path, root, problems, lambda doc: _read_service(doc, context))
        if service is not None:
            services.setdefault(service.name, service)

    if problems:
        raise RecipeError(sorted(problems, key=lambda problem: (problem.file, problem.line or 0)))
    return Project(root=root, services=services, toolchains=toolchains)


def _with_lock(toolchain: Toolchain, root: Path, problems: list[RecipeProblem]) -> Toolchain:
    """The toolchain with its lock (`<name>.lock` beside its recipe) when there is one; a lock that
    cannot be read, or is another toolchain's, is a problem of the lock file."""
    path = toolchain.file.parent / lock_file_name(toolchain.name)
    if not path.is_file():
        return toolchain
    relative = path.relative_to(root).as_posix()
    hint = f"run `{relock_command(toolchain.name)}` to write it again"
    try:
        lock = parse_lock(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        problems.append(RecipeProblem(file=relative, message=str(error), hint=hint))
        return toolchain
    if lock.toolchain != toolchain.name:
        message = f"is the lock of toolchain {lock.toolchain!r}, not of {toolchain.name!r}"
        problems.append(RecipeProblem(file=relative, message=message, hint=hint))
        return toolchain
    return dataclasses.replace(toolchain, lock=lock)


def _read_name(table: Table, claimed: dict[str, str]) -> str | None:
    """The table's `name`; one that another file already claimed is a problem naming both files."""
    name = table.required("name", as_name)
    if name is not None:
        first = claimed.setdefault(name, table.file.rel)
        if first != table.file.rel:
            message = f"{table.key[-1]} {name!r} is already defined by {first}"
            table.file.problem((*table.key, "name"), message)
    return name


def _known_platform(file: RecipeFile, key: tuple[str, ...], platform: str) -> bool:
    if platform in PLATFORMS:
        return True
    known = f"known: {', '.join(PLATFORMS)}"
    file.problem(key, f"unknown platform {platform!r}", hints(did_you_mean(platform, PLATFORMS), known))
    return False


_ADD_PLATFORM = 'add e.g. [toolchain.platforms."linux/amd64"]'


def _read_toolchain(doc: Table, claimed: dict[str, str], derived: dict[str, Table]) -> Toolchain | None:
    """A toolchain recipe; one that extends another is resolved later (`resolve_extends`), once every
    toolchain is read: its [toolchain] table is kept in `derived` for the problems found then."""
    section = doc.section("toolchain", required=True)
    name = _read_name(section, claimed)
    extends = section.optional("extends", as_name)
    is_derived = "extends" in section.data
    image = section.optional("image", as_image_reference)
    env: dict[str, str] = section.get("env", as_shared_env, {})
    languages = section.optional("languages", as_languages)
    bootstrap_table = section.section("bootstrap")
    bootstrap = layer = None
    if is_derived:
        layer = _read_layer(bootstrap_table, extends or "")
    elif bootstrap_table.present:
        bootstrap = _read_bootstrap(bootstrap_table)
    platforms = _read_toolchain_platforms(
        section.section("platforms", required=not is_derived, hint=_ADD_PLATFORM), required=not is_derived
    )
    if is_derived and "image" in section.data:
        doc.file.problem(
            (*section.key, "image"),
            f"a toolchain that extends another is layered on its image (extends = {extends!r})",
            "leave `image` out, or `extends` to use that image as is",
        )
    if section.present and not is_derived and "image" not in section.data and "bootstrap" not in section.data:
        doc.file.problem(
            section.key,
            "needs `image` or [toolchain.bootstrap] (or both)",
            "image: use an existing image; bootstrap: build one with mmdebstrap; "
            'or extends = "<toolchain>" to add packages to another toolchain',
        )
    if name is None or (is_derived and extends is None):
        return None
    if extends is not None:
        derived.setdefault(name, section)
    return Toolchain(
        name=name,
        file=doc.file.path,
        image=None if is_derived else image,
        bootstrap=bootstrap,
        env=env,
        platforms=platforms,
        languages=() if languages is None else languages,
        extends=extends,
        layer=layer,
    )


_FROM_BASE = ("suite", "mirror", "components", "wheels")


def _read_layer(table: Table, base: str) -> Layer:
    """The [toolchain.bootstrap] of a toolchain that extends another: only what it adds to the base image;
    the suite, mirror and components are the base image's (its apt sources)."""
    for key in _FROM_BASE:
        if key in table.data:
            table.known.append(key)
            table.file.problem(
                (*table.key, key),
                f"comes from the base toolchain {base!r}: a toolchain that extends another adds packages "
                "from the base image's apt sources",
                "leave it out; only packages, unpack and libraries are added",
            )
    return Layer(
        packages=table.get("packages", as_packages, ()),
        unpack=table.get("unpack", as_packages, ()),
        libraries=table.get("libraries", as_libraries, ()),
    )


def _read_bootstrap(table: Table) -> Bootstrap | None:
    suite = table.required("suite", as_suite)
    packages = table.required("packages", as_packages)
    mirror = table.optional("mirror", as_mirror)
    components: tuple[str, ...] = table.get("components", as_components, ("main",))
    unpack: tuple[str, ...] = table.get("unpack", as_packages, ())
    libraries: tuple[str, ...] = table.get("libraries", as_libraries, ())
    wheels = _read_wheels(table.section("wheels"))
    if suite is None or packages is None:
        return None
    return Bootstrap(
        suite=suite,
        packages=packages,
        mirror=mirror,
        components=components,
        unpack=unpack,
        wheels=wheels,
        libraries=libraries,
    )


def _read_wheels(table: Table) -> tuple[Wheel, ...]:
    """`wheels = { ziglang = { version = "0.17.1", sha256 = "..." } }`: each pinned to one file."""
    wheels: list[Wheel] = []
    for name in table.entries():
        entry = table.section(name, required=True)
        version = entry.required("version", as_wheel_version)
        sha256 = entry.required("sha256", as_sha256, "the sha256 of the wheel file, as PyPI lists it")
        if not WHEEL_NAME.fullmatch(name):
            table.file.problem((*table.key, name), f"{shown(name)} is not a Python project name")
        elif version is not None and sha256 is not None:
            wheels.append(Wheel(name=name, version=version, sha256=sha256))
    return tuple(wheels)


def _read_toolchain_platforms(table: Table, *, required: bool = True) -> dict[str, ToolchainPlatform]:
    """The platforms a toolchain targets (a derived one's: its additions to its base's platforms)."""
    if required and table.present and not table.data:
        table.file.problem(table.key, "needs at least one platform", _ADD_PLATFORM)
    platforms: dict[str, ToolchainPlatform] = {}
    for platform in table.entries():
        if not _known_platform(table.file, (*table.key, platform), platform):
            continue
        entry = table.section(platform)
        packages: tuple[str, ...] = entry.get("packages", platform_packages(PLATFORMS[platform]), ())
        unpack: tuple[str, ...] = entry.get("unpack", platform_packages(PLATFORMS[platform]), ())
        libraries: tuple[str, ...] = entry.get("libraries", as_libraries, ())
        env: dict[str, str] = entry.get("env", platform_env(PLATFORMS[platform]), {})
        if entry.present:
            platforms[platform] = ToolchainPlatform(
                packages=packages, unpack=unpack, libraries=libraries, env=env
            )
    return platforms


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
    file: RecipeFile
    key: tuple[str, ...]


def _read_service(doc: Table, context: _Context) -> Service | None:
    section = doc.section("service", required=True)
    name = _read_name(section, context.service_files)
    source, unbuildable = _read_source(section, context.root)
    toolchain = _read_toolchain_name(section, context)
    platforms = _read_platforms(section, toolchain)
    excluded = _read_excluded_platforms(section)
    everything = platforms == (ALL_PLATFORMS,)
    build = _read_build(
        doc.section("build", required=True), name or "", toolchain, () if everything else platforms or ()
    )
    image_table = doc.section("image")
    readable = None if unbuildable else source
    image = _read_image(image_table, name or "", build.output if build else "", readable)
    smoke = _read_smoke(doc, context.root, build.output if build else "")
    verify = _read_verify(doc.section("verify"))
    fetch = read_fetch(doc.section("fetch"), context.root, toolchain)
    if name is not None and "repository" not in image_table.data and not valid_repository(name):
        section.file.problem(
            (*section.key, "name"),
            f"{name!r} is not a valid image repository, and the image is named after the service",
            "rename the service (no '-', '.' or '_' at its end, nor two in a row) or set image.repository",
        )
    _check_user(image_table, image.user, smoke.allow_root)
    if source is not None and unbuildable is None:
        unbuildable = _special_files_reason(section, source, context.root)
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
        fetch=fetch,
        unbuildable=unbuildable,
    )


def _check_user(image: Table, user: str, allow_root: bool) -> None:
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
_MAX_SPECIAL_REPORTED = 3


def _special_files_reason(table: Table, source: Path, root: Path) -> str | None:
    """A FIFO, socket or device in the source would block or flood whatever reads the tree: the
    service cannot be built (the recipe itself is fine, the others build)."""
    found = sorted(_special_files(source))
    if not found:
        return None
    shown_files = found[:_MAX_SPECIAL_REPORTED]
    listed = ", ".join(f"{path.relative_to(root).as_posix()!r} is {kind}" for path, kind in shown_files)
    more = len(found) - len(shown_files)
    message = listed + (f" and {more} more special files" if more else "")
    them = "them" if len(found) > 1 else "it"
    hint = f"a source tree holds only files, directories and symlinks: remove {them}"
    return str(table.file.located((*table.key, "source"), message, hint))


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


def _check_tag_length(table: Table, tag: str, platforms: tuple[str, ...]) -> None:
    """osless tags each platform's image `<tag>-<arch><variant>`: that must still be a valid tag."""
    suffixes = (PLATFORMS[platform].tag_suffix for platform in platforms if platform in PLATFORMS)
    suffix = max(suffixes, key=len, default="")
    if suffix and len(tag) + 1 + len(suffix) > MAX_TAG:
        table.file.problem(
            (*table.key, "tag"),
            f"{shown(tag)} is too long: with the platform suffix '-{suffix}' it has "
            f"{len(tag) + 1 + len(suffix)} characters",
            f"at most {MAX_TAG - 1 - len(suffix)} here: tags have at most {MAX_TAG} characters",
        )


def _claim_image(context: _Context, image: Table, section: Table, name: str, spec: ImageSpec) -> None:
    """Two services with one repository:tag would overwrite each other in the engine and the registry."""
    key = (
        (*image.key, "repository")
        if "repository" in image.data
        else (*image.key, "tag")
        if "tag" in image.data
        else (*section.key, "name")
    )
    claim = _ImageClaim(service=name, file=image.file, key=key)
    reference = f"{normalized_repository(spec.repository)}:{spec.tag}"
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


def _read_excluded_platforms(table: Table) -> tuple[str, ...]:
    excluded: tuple[str, ...] = table.get("exclude_platforms", as_str_list, ())
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
        names = _command_names(build.placeholder_texts)
        missing = _undefined(names, build_env(toolchain, platform, build.env))
        if missing:
            unsupported[platform] = f"toolchain {toolchain.name} defines no {{{missing[0]}}} for {platform}"
        else:
            chosen.append(platform)
    return tuple(chosen), unsupported


def _command_names(texts: tuple[str, ...]) -> list[str]:
    """The placeholder names of a build's commands and artifact, in order, each once (what else is
    between braces: left out)."""
    return list(dict.fromkeys(name for text in texts for name in scan(text, _COMMAND_HINT)[0]))


def _undefined(names: list[str], env: Mapping[str, str]) -> list[str]:
    """The names a build cannot be given on a platform: neither what osless gives every build
    (`output`, `JOBS`, `WORKSPACE`, its own variables such as CARGO_TARGET_DIR), a platform fact nor in
    its build environment."""
    given = {*BUILD_VALUES, *FACTS, *osless_env_names()}
    return [name for name in names if name not in given and name not in env]


def _read_source(table: Table, root: Path) -> tuple[Path | None, str | None]:
    """The source directory, absolute; after symlinks and `..` it must still be inside the project.

    A source that is missing or not a directory leaves the recipe valid: the second value says why the
    service cannot be built (its targets fail with it, the other services build)."""
    text = table.required("source", as_text)
    if text is None:
        return None, None
    key = (*table.key, "source")
    if "\0" in text:
        table.file.problem(key, f"{shown(text)} holds a NUL character")
        return None, None
    if Path(text).is_absolute():
        table.file.problem(key, f"{text!r} is absolute", "give a directory relative to the project root")
        return None, None
    try:
        source = (root / text).resolve()
        is_dir = source.is_dir()
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long
        table.file.problem(key, f"cannot resolve {shown(text)}: {shown(str(error), 200)[1:-1]}")
        return None, None
    if not source.is_relative_to(root):
        table.file.problem(key, f"{text!r} leads outside the project, to {source}", "keep sources inside it")
        return None, None
    if not is_dir:
        message = f"{text!r} is {'not a directory' if source.exists() else 'missing'}"
        return source, str(table.file.located(key, message))
    return source, None


def _read_toolchain_name(table: Table, context: _Context) -> Toolchain | None:
    name = table.required("toolchain", as_text)
    if name is None:
        return None
    toolchain = context.toolchains.get(name)
    if toolchain is None:
        known = f"known: {', '.join(context.toolchains) or 'none'}"
        unloaded = f"(not loaded: {', '.join(context.unloaded)})" if context.unloaded else None
        table.file.problem(
            (*table.key, "toolchain"),
            f"unknown toolchain {name!r}",
            hints(did_you_mean(name, context.toolchains), known, unloaded),
        )
    return toolchain


def _read_platforms(table: Table, toolchain: Toolchain | None) -> tuple[str, ...] | None:
    """The service's platforms; each must be known, listed once, and supported by its toolchain."""
    platforms = table.required("platforms", as_nonempty_str_list)
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


_BUILD_FORMS = ("command", "steps", "script")
MAX_STEPS = 64  # each step's output is kept in build.log: bounded
_STEP_HINT = 'each step is a list of arguments, e.g. ["make", "-j{JOBS}"]; shell text goes in `script`'


def _read_build(
    table: Table, name: str, toolchain: Toolchain | None, platforms: tuple[str, ...]
) -> BuildSpec | None:
    """`[build]`: exactly one of command, steps or script, and where the binary is (`artifact`)."""
    command = table.optional("command", as_nonempty_str_list)
    steps = table.optional("steps", _as_steps)
    script = table.optional("script", _as_script)
    env: dict[str, str] = table.get("env", as_shared_env, {})
    output = table.get("output", as_file_name, name)
    timeout = table.get("timeout", as_duration, 600.0)
    limits = _read_limits(table, BUILD_LIMITS)
    artifact = table.optional("artifact", _as_artifact)
    given = [form for form in _BUILD_FORMS if form in table.data]
    if not table.present:
        return None
    if not given:
        table.file.problem(
            (*table.key, "command"), "required but missing", "give one of command, steps or script"
        )
        return None
    if len(given) > 1:
        table.file.problem(
            (*table.key, given[1]),
            f"{' and '.join(given)} are alternatives",
            "keep one: command (one program), steps (programs in order) or script (shell text)",
        )
        return None
    if command is None and steps is None and script is None:
        return None  # its value was invalid: already reported
    spec = BuildSpec(
        command=command or (),
        steps=steps or (),
        script=script,
        env=env,
        output=output,
        timeout=timeout,
        limits=limits,
        artifact=artifact,
    )
    _check_placeholders(table, spec, toolchain, platforms)
    return spec


def _as_steps(value: object) -> tuple[tuple[str, ...], ...]:
    """`steps = [["./configure", "--host={GNU_TRIPLE}"], ["make", "-j{JOBS}"]]`: argv lists, in order."""
    if not isinstance(value, list):
        raise Invalid(f"expected a list of steps, got {_toml_type(value)}", _STEP_HINT)
    if not value:
        raise Invalid("must not be empty", _STEP_HINT)
    if len(value) > MAX_STEPS:
        raise Invalid(f"{len(value)} steps: at most {MAX_STEPS}", "join steps into a script")
    steps = []
    for number, step in enumerate(value, start=1):
        try:
            steps.append(as_nonempty_str_list(step))
        except Invalid as invalid:
            raise Invalid(f"step {number}: {invalid}", _STEP_HINT) from None
    return tuple(steps)


def _toml_type(value: object) -> str:
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "a table or date")


def _as_script(value: object) -> str:
    """Shell text for `sh -eu -c`; a NUL character cannot be passed to a program."""
    text = as_text(value)
    if "\0" in text:
        raise Invalid("holds a NUL character")
    return text


def _as_artifact(value: object) -> str:
    """The binary's path after the build: relative to the workspace, or absolute; a file, not a directory."""
    text = as_text(value)
    if "\0" in text:
        raise Invalid(f"{shown(text)} holds a NUL character")
    if text.endswith("/") or posixpath.basename(posixpath.normpath(text)) in ("", ".", ".."):
        raise Invalid(f"{shown(text)} names a directory", "name the binary's file, e.g. build/app")
    return text


def _check_placeholders(
    table: Table,
    build: BuildSpec,
    toolchain: Toolchain | None,
    platforms: tuple[str, ...],
) -> None:
    """Every `{NAME}` of command, steps and artifact must be something osless gives every build, a
    platform fact or in the build environment of every platform, so no build fails on it later. A
    script is shell text: its braces are its own."""
    groups = {
        "command": build.command,
        "steps": tuple(argument for step in build.steps for argument in step),
        "artifact": (build.artifact,) if build.artifact is not None else (),
    }
    for key, texts in groups.items():
        for text in texts:
            for invalid in scan(text, _COMMAND_HINT)[1]:
                table.file.problem((*table.key, key), str(invalid), invalid.hint)
    if build.artifact is not None and "output" in _command_names((*groups["command"], *groups["steps"])):
        table.file.problem(
            (*table.key, "artifact"),
            "the binary is taken from artifact, so nothing reads what is written to {output}",
            "keep one: artifact, or write the binary to {output}",
        )
    if toolchain is None:
        return
    for key, texts in groups.items():
        names = _command_names(texts)
        for platform in dict.fromkeys(p for p in platforms if p in toolchain.platforms):
            defined = build_env(toolchain, platform, build.env)
            for name in _undefined(names, defined):
                table.file.problem(
                    (*table.key, key),
                    f"placeholder {{{name}}} is not defined for {platform} by toolchain {toolchain.name}",
                    f"defined: {', '.join(sorted(defined)) or 'none'}",
                )


def _read_image(table: Table, name: str, output: str, source: Path | None) -> ImageSpec:
    extras: tuple[str, ...] = table.get("extras", as_extras, ())
    zones: tuple[str, ...] = table.get("zones", as_str_list, ())
    if zones and "tzdata" not in extras:
        table.file.problem(
            (*table.key, "zones"), "only applies with the tzdata extra", 'add "tzdata" to extras'
        )
    return ImageSpec(
        repository=table.get("repository", as_repository, name),
        tag=table.get("tag", as_tag, "latest"),
        entrypoint=table.get("entrypoint", as_nonempty_str_list, (f"/{output}",)),
        cmd=table.get("cmd", as_str_list, ()),
        user=table.get("user", as_user, "65534:65534"),
        env=table.get("env", as_env, {}),
        labels=table.get("labels", as_str_table, {}),
        extras=extras,
        zones=zones,
        files=_read_image_files(table, source, output),
    )


def _read_image_files(table: Table, source: Path | None, output: str) -> dict[str, str]:
    """`files = { "/etc/app.toml" = "config/app.toml" }`: from the service's source to an image path."""
    files: dict[str, str] = table.get("files", as_str_table, {})
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


def _read_verify(table: Table) -> VerifySpec:
    return VerifySpec(
        errors=table.get("errors", as_str_list, ()),
        allow=table.get("allow", as_str_table, {}),
        max_size=table.optional("max_size", as_max_size),
    )


def _read_limits(table: Table, default: Limits) -> Limits:
    """`limits = { memory = "8GiB", pids = 2048, cpus = 1.5 }`: any subset, the rest from `default`."""
    limits = table.section("limits")
    return Limits(
        memory=limits.get("memory", as_memory, default.memory),
        pids=limits.get("pids", as_pids, default.pids),
        cpus=limits.get("cpus", as_cpus, default.cpus),
    )


def _read_smoke(doc: Table, root: Path, output: str) -> SmokeSpec:
    """`[smoke]` (one check) or `[[smoke]]` (several, run in order); none: the image must exit 0.
    `allow_root` is about the image, so one check that sets it allows root for all."""
    tables, several = doc.tables("smoke")
    checks: list[SmokeCheck] = []
    allow_root = False
    for number, table in enumerate(tables, start=1):
        check = _read_smoke_check(table, root, output, f"check {number}" if several else "smoke")
        allow_root |= table.get("allow_root", as_bool, False)
        if any(other.name == check.name for other in checks):
            table.file.problem(
                (*table.key, "name"), f"check {check.name!r} is named twice", "give each check its own name"
            )
        checks.append(check)
    return SmokeSpec(checks=tuple(checks) or (SmokeCheck(name="smoke"),), allow_root=allow_root)


def _read_smoke_check(table: Table, root: Path, output: str, name: str) -> SmokeCheck:
    stdin = table.optional("stdin", as_str)
    stdin_file = _read_project_file(table, "stdin_file", root)
    if stdin is not None and "stdin_file" in table.data:
        table.file.problem((*table.key, "stdin_file"), "give stdin or stdin_file, not both")
    files = _read_smoke_files(table, root, output)
    inputs = (*files.values(), *((stdin_file,) if stdin_file else ()))
    if sum(_size(path) for path in inputs) > SMOKE_FILES_LIMIT:
        table.file.problem(
            (*table.key, "files"),
            f"the check's files and stdin_file hold more than {SMOKE_FILES_LIMIT // MiB} MiB",
            "smoke tests need small inputs",
        )
    expect = _read_expect(table, SmokeExpect())
    return SmokeCheck(
        name=table.get("name", as_check_name, name),
        args=table.get("args", as_str_list, ()),
        stdin=stdin,
        stdin_file=stdin_file,
        files=files,
        expect=expect,
        platforms=_read_expect_platforms(table, expect),
        timeout=table.get("timeout", as_duration, 30.0),
        limits=_read_limits(table, SMOKE_LIMITS),
    )


def _read_expect(table: Table, base: SmokeExpect) -> SmokeExpect:
    """stdout/stdout_matches, stderr/stderr_matches and exit_code; a stream the table says nothing about
    keeps what `base` expects of it (a platform's table over its check's)."""
    streams = {"stdout": (base.stdout, base.stdout_matches), "stderr": (base.stderr, base.stderr_matches)}
    for stream in streams:
        exact = table.optional(stream, as_str)
        pattern = table.optional(f"{stream}_matches", as_regex)
        if stream in table.data and f"{stream}_matches" in table.data:
            table.file.problem(
                (*table.key, f"{stream}_matches"),
                f"give {stream} or {stream}_matches, not both",
                f"{stream} is the exact text, {stream}_matches a regular expression searched in it",
            )
        if stream in table.data or f"{stream}_matches" in table.data:
            streams[stream] = (exact, pattern)
    return SmokeExpect(
        stdout=streams["stdout"][0],
        stdout_matches=streams["stdout"][1],
        stderr=streams["stderr"][0],
        stderr_matches=streams["stderr"][1],
        exit_code=table.get("exit_code", as_exit_code, base.exit_code),
    )


def _read_expect_platforms(table: Table, base: SmokeExpect) -> dict[str, SmokeExpect]:
    """`[smoke.platforms."linux/386"]`: what the check must give on that platform instead."""
    platforms = table.optional("platforms", as_table) or {}
    expected: dict[str, SmokeExpect] = {}
    for platform, value in platforms.items():
        key = (*table.key, "platforms", platform)
        if not _known_platform(table.file, key, platform):
            continue
        if not isinstance(value, dict):
            table.file.problem(key, "expected a table", 'e.g. { stdout = "32\\n" }')
            continue
        expected[platform] = _read_expect(Table(table.file, key, value), base)
    return expected


def _read_smoke_files(table: Table, root: Path, output: str) -> dict[str, Path]:
    """`files = { "/smoke/input.json" = "tests/data/x.json" }`: project files for the smoke run only."""
    files: dict[str, str] = table.get("files", as_str_table, {})
    key = (*table.key, "files")
    resolved: dict[str, Path] = {}
    for target, relative in files.items():
        if (
            not target.startswith("/")
            or target == "/"
            or "\0" in target
            or posixpath.normpath(target) != target
            or target == f"/{output}"
        ):
            table.file.problem(
                key, f"{shown(target)} is not an absolute, normalized image path other than the binary"
            )
        elif any(other.startswith(f"{target}/") for other in files):
            table.file.problem(key, f"{shown(target)} is both a file and the directory of another file")
        elif (path := _project_file(table, key, relative, root)) is not None:
            resolved[target] = path
    return resolved


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since it was checked: the run says so
        return 0


def _read_project_file(table: Table, name: str, root: Path) -> Path | None:
    text = table.optional(name, as_text)
    return None if text is None else _project_file(table, (*table.key, name), text, root)


def _project_file(table: Table, key: tuple[str, ...], text: str, root: Path) -> Path | None:
    """A file relative to the project root: after symlinks and `..` inside it, regular, not too large."""
    if "\0" in text:
        table.file.problem(key, f"{shown(text)} holds a NUL character")
        return None
    if Path(text).is_absolute():
        table.file.problem(key, f"{shown(text)} is absolute", "give a file relative to the project root")
        return None
    try:
        path = (root / text).resolve()
        info = path.stat() if path.is_relative_to(root) else None
    except FileNotFoundError:
        table.file.problem(key, f"{shown(text)} is missing")
        return None
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long, no permission
        table.file.problem(key, f"cannot read {shown(text)}: {shown(str(error), 200)[1:-1]}")
        return None
    if info is None:
        table.file.problem(key, f"{shown(text)} leads outside the project, to {path}", "keep it inside")
    elif not stat.S_ISREG(info.st_mode):
        table.file.problem(key, f"{shown(text)} is not a regular file")
    elif info.st_size > SMOKE_FILE_LIMIT:
        table.file.problem(
            key,
            f"{shown(text)} is larger than {SMOKE_FILE_LIMIT // MiB} MiB",
            "smoke tests need small inputs",
        )
    else:
        return path
    return None
