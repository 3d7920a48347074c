"""Stage 0: read every recipe of a project into the model, checking what spans files.

Pure logic (no Docker): every problem in every recipe is collected and reported at once, so a user
fixes all of them in one go, before any container starts. Each `recipes/*.toml` is a service, each
`recipes/toolchains/*.toml` a toolchain; docs/recipes.md documents the schema. The loader reads the
toolchains (with their locks; `extends` resolved by extends.py) and each service's `[service]`,
`[image]` and `[verify]` tables, and hands its other sections to their readers: `[build]` to build.py,
`[smoke]` to smoke.py, `[fetch]` to fetch.py. Besides each file's own values, it checks what needs
several files: unique names, a service's toolchain and its platforms, command placeholders defined on
every platform, one repository:tag per service.
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
from orchestrator.recipe.build import command_names, read_build, undefined
from orchestrator.recipe.convert import (
    MAX_TAG,
    WHEEL_NAME,
    as_components,
    as_env,
    as_extras,
    as_image_reference,
    as_languages,
    as_libraries,
    as_max_size,
    as_mirror,
    as_name,
    as_nonempty_str_list,
    as_packages,
    as_repository,
    as_sha256,
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
from orchestrator.recipe.extends import resolve_extends
from orchestrator.recipe.fetch import read_fetch
from orchestrator.recipe.model import (
    ALL_PLATFORMS,
    Bootstrap,
    BuildSpec,
    ImageSpec,
    Layer,
    Project,
    Service,
    Toolchain,
    ToolchainPlatform,
    VerifySpec,
    Wheel,
)
from orchestrator.recipe.placeholders import as_shared_env, build_env, platform_env, platform_packages
from orchestrator.recipe.reader import RecipeFile, Table, read_file
from orchestrator.recipe.shared import known_platform
from orchestrator.recipe.smoke import read_smoke


def load_project(root: Path) -> Project:
    """Reads and validates every recipe below `root`; raises RecipeError listing all problems of all files."""
    root = root.resolve()
    problems: list[RecipeProblem] = []
    toolchains, unloaded = _read_toolchains(root, problems)

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


def load_toolchains(root: Path) -> dict[str, Toolchain]:
    """The toolchains of the project at `root` alone (`osless init` picks one for a new service);
    raises RecipeError listing the problems of their files."""
    problems: list[RecipeProblem] = []
    toolchains, _ = _read_toolchains(root.resolve(), problems)
    if problems:
        raise RecipeError(sorted(problems, key=lambda problem: (problem.file, problem.line or 0)))
    return toolchains


def _read_toolchains(root: Path, problems: list[RecipeProblem]) -> tuple[dict[str, Toolchain], list[str]]:
    """Every toolchain of recipes/toolchains/ (`extends` resolved), and the files that had problems too
    bad to know their toolchain."""
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
    return toolchains, unloaded


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
        if not known_platform(table.file, (*table.key, platform), platform):
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
    build = read_build(
        doc.section("build", required=True), name or "", toolchain, () if everything else platforms or ()
    )
    image_table = doc.section("image")
    readable = None if unbuildable else source
    image = _read_image(image_table, name or "", build.output if build else "", readable)
    smoke = read_smoke(doc, context.root, build.output if build else "")
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
    return tuple(platform for platform in excluded if known_platform(table.file, key, platform))


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
        names = command_names(build.placeholder_texts)
        missing = undefined(names, build_env(toolchain, platform, build.env))
        if missing:
            unsupported[platform] = f"toolchain {toolchain.name} defines no {{{missing[0]}}} for {platform}"
        else:
            chosen.append(platform)
    return tuple(chosen), unsupported


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
        elif known_platform(table.file, key, platform) and toolchain and platform not in toolchain.platforms:
            table.file.problem(
                key,
                f"{platform} is not supported by toolchain {toolchain.name}",
                f"it supports: {', '.join(toolchain.platforms) or 'none'}",
            )
    return platforms


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
