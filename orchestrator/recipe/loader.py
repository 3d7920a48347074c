"""Stage 0: read every recipe of a project into the model, checking what spans files.

Pure logic (no Docker): every problem in every recipe is collected and reported at once, so a user
fixes all of them in one go, before any container starts. Each `recipes/*.toml` is a service, each
`recipes/toolchains/*.toml` a toolchain; docs/recipes.md documents the schema. Besides each file's own
values, the loader checks what needs several files: unique names, a service's toolchain and its
platforms, command placeholders defined on every platform, one repository:tag per service.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import RecipeError, RecipeProblem, did_you_mean
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.convert import (
    MAX_TAG,
    WHEEL_NAME,
    as_bool,
    as_components,
    as_cpus,
    as_duration,
    as_env,
    as_exit_code,
    as_extras,
    as_file_name,
    as_image_reference,
    as_languages,
    as_max_size,
    as_memory,
    as_mirror,
    as_name,
    as_nonempty_str_list,
    as_packages,
    as_pids,
    as_repository,
    as_sha256,
    as_str,
    as_str_list,
    as_str_table,
    as_suite,
    as_tag,
    as_text,
    as_user,
    as_wheel_version,
    hints,
    normalized_repository,
    shown,
    valid_repository,
)
from orchestrator.recipe.model import (
    ALL_PLATFORMS,
    BUILD_LIMITS,
    SMOKE_LIMITS,
    Bootstrap,
    BuildSpec,
    ImageSpec,
    Limits,
    Project,
    Service,
    SmokeSpec,
    Toolchain,
    ToolchainPlatform,
    VerifySpec,
    Wheel,
)
from orchestrator.recipe.placeholders import (
    FACTS,
    as_shared_env,
    build_env,
    platform_env,
    platform_packages,
    scan,
)
from orchestrator.recipe.reader import RecipeFile, Table, read_file

_COMMAND_HINT = "use {output} or {NAME}"


def load_project(root: Path) -> Project:
    """Reads and validates every recipe below `root`; raises RecipeError listing all problems of all files."""
    root = root.resolve()
    problems: list[RecipeProblem] = []
    toolchains: dict[str, Toolchain] = {}
    toolchain_files: dict[str, str] = {}
    unloaded: list[str] = []
    for path in sorted((root / "recipes" / "toolchains").glob("*.toml")):
        toolchain = read_file(path, root, problems, lambda doc: _read_toolchain(doc, toolchain_files))
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
        service = read_file(path, root, problems, lambda doc: _read_service(doc, context))
        if service is not None:
            services.setdefault(service.name, service)

    if problems:
        raise RecipeError(sorted(problems, key=lambda problem: (problem.file, problem.line or 0)))
    return Project(root=root, services=services, toolchains=toolchains)


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


def _read_toolchain(doc: Table, claimed: dict[str, str]) -> Toolchain | None:
    section = doc.section("toolchain", required=True)
    name = _read_name(section, claimed)
    image = section.optional("image", as_image_reference)
    env: dict[str, str] = section.get("env", as_shared_env, {})
    languages: tuple[str, ...] = section.get("languages", as_languages, ())
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
        name=name,
        file=doc.file.path,
        image=image,
        bootstrap=bootstrap,
        env=env,
        platforms=platforms,
        languages=languages,
    )


def _read_bootstrap(table: Table) -> Bootstrap | None:
    suite = table.required("suite", as_suite)
    packages = table.required("packages", as_packages)
    mirror = table.optional("mirror", as_mirror)
    components: tuple[str, ...] = table.get("components", as_components, ("main",))
    unpack: tuple[str, ...] = table.get("unpack", as_packages, ())
    wheels = _read_wheels(table.section("wheels"))
    if suite is None or packages is None:
        return None
    return Bootstrap(
        suite=suite, packages=packages, mirror=mirror, components=components, unpack=unpack, wheels=wheels
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


def _read_toolchain_platforms(table: Table) -> dict[str, ToolchainPlatform]:
    if table.present and not table.data:
        table.file.problem(table.key, "needs at least one platform", _ADD_PLATFORM)
    platforms: dict[str, ToolchainPlatform] = {}
    for platform in table.entries():
        if not _known_platform(table.file, (*table.key, platform), platform):
            continue
        entry = table.section(platform)
        packages: tuple[str, ...] = entry.get("packages", platform_packages(PLATFORMS[platform]), ())
        unpack: tuple[str, ...] = entry.get("unpack", platform_packages(PLATFORMS[platform]), ())
        env: dict[str, str] = entry.get("env", platform_env(PLATFORMS[platform]), {})
        if entry.present:
            platforms[platform] = ToolchainPlatform(packages=packages, unpack=unpack, env=env)
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
    if name is not None and "repository" not in image_table.data and not valid_repository(name):
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
_MAX_SPECIAL_REPORTED = 10


def _check_special_files(table: Table, source: Path, root: Path) -> None:
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
        missing = _undefined(_command_names(build.command), build_env(toolchain, platform, build.env))
        if missing:
            unsupported[platform] = f"toolchain {toolchain.name} defines no {{{missing[0]}}} for {platform}"
        else:
            chosen.append(platform)
    return tuple(chosen), unsupported


def _command_names(command: tuple[str, ...]) -> list[str]:
    """The placeholder names of a command, in order, each once (what else is between braces: left out)."""
    return list(dict.fromkeys(name for argument in command for name in scan(argument, _COMMAND_HINT)[0]))


def _undefined(names: list[str], env: Mapping[str, str]) -> list[str]:
    """The names a build command cannot be given on a platform: neither `output`, a platform fact nor in its
    build environment (the build stage fills them in that order)."""
    return [name for name in names if name != "output" and name not in FACTS and name not in env]


def _read_source(table: Table, root: Path) -> Path | None:
    """The source directory, absolute; after symlinks and `..` it must still be inside the project."""
    text = table.required("source", as_text)
    if text is None:
        return None
    key = (*table.key, "source")
    if "\0" in text:
        table.file.problem(key, f"{shown(text)} holds a NUL character")
        return None
    if Path(text).is_absolute():
        table.file.problem(key, f"{text!r} is absolute", "give a directory relative to the project root")
        return None
    try:
        source = (root / text).resolve()
        is_dir = source.is_dir()
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long
        table.file.problem(key, f"cannot resolve {shown(text)}: {shown(str(error), 200)[1:-1]}")
        return None
    if not source.is_relative_to(root):
        table.file.problem(key, f"{text!r} leads outside the project, to {source}", "keep sources inside it")
    elif not is_dir:
        table.file.problem(key, f"{text!r} is {'not a directory' if source.exists() else 'missing'}")
    else:
        return source
    return None


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


def _read_build(
    table: Table, name: str, toolchain: Toolchain | None, platforms: tuple[str, ...]
) -> BuildSpec | None:
    command = table.required("command", as_nonempty_str_list)
    env: dict[str, str] = table.get("env", as_shared_env, {})
    output = table.get("output", as_file_name, name)
    timeout = table.get("timeout", as_duration, 600.0)
    limits = _read_limits(table, BUILD_LIMITS)
    if command is None:
        return None
    _check_placeholders(table, command, env, toolchain, platforms)
    return BuildSpec(command=command, env=env, output=output, timeout=timeout, limits=limits)


def _check_placeholders(
    table: Table,
    command: tuple[str, ...],
    env: Mapping[str, str],
    toolchain: Toolchain | None,
    platforms: tuple[str, ...],
) -> None:
    """Every `{NAME}` must be a platform fact or in the build environment of every platform, so no build
    fails on it later."""
    key = (*table.key, "command")
    for argument in command:
        for invalid in scan(argument, _COMMAND_HINT)[1]:
            table.file.problem(key, str(invalid), invalid.hint)
    if toolchain is None:
        return
    names = _command_names(command)
    for platform in dict.fromkeys(platform for platform in platforms if platform in toolchain.platforms):
        defined = build_env(toolchain, platform, env)
        for name in _undefined(names, defined):
            table.file.problem(
                key,
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


def _read_smoke(table: Table) -> SmokeSpec:
    return SmokeSpec(
        args=table.get("args", as_str_list, ()),
        stdout=table.optional("stdout", as_str),
        exit_code=table.get("exit_code", as_exit_code, 0),
        timeout=table.get("timeout", as_duration, 30.0),
        limits=_read_limits(table, SMOKE_LIMITS),
        allow_root=table.get("allow_root", as_bool, False),
    )
