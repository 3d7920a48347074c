"""Stage 1: provision each toolchain image once.

A toolchain with a bootstrap section becomes an image built from Debian packages (mmdebstrap with a
fixed SOURCE_DATE_EPOCH, then an image archive osless writes itself and `docker load`s:
image/toolchain_archive.py), tagged with a hash of its spec: a changed spec gives a new image, an
unchanged one is reused. The same spec and package versions give the same image id on every machine
(no `docker import` or `docker commit`: they stamp the time). Before the load, the files of the
`unpack` packages and of the pinned `wheels` are added to mmdebstrap's tarball (orchestrator/bootstrap).
A toolchain that names an existing image uses it as is (no registry is assumed reachable).

A toolchain that extends another (`extends = "gcc"`) is a thin layer on its base's image: its packages
are resolved and downloaded on the host (bootstrap/layer.py), installed in a container of the base
image (root, no network, limits); what the container changed becomes one normalized layer, loaded
above the base's layers. Its hash covers the base's identity and its own additions, so changing them
rebuilds only the layer; a base rebuilt since is noticed by its image id (a label of the layer). A
bootstrap's `libraries` are installed the same way, on the bootstrapped image.

Once a new image is made, the images it supersedes (the same toolchain name, another spec, made by
osless for the same project: listed in `<work dir>/<name>.images`, not labelled, since the image is the
same for every clone) are removed, but not one that a container uses.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from orchestrator.bootstrap import debian, layer, rootfs, wheels
from orchestrator.bootstrap.debian import foreign_architectures
from orchestrator.bootstrap.lock import (
    Lock,
    include_specs,
    lock_file_name,
    mismatches,
    relock_command,
    shown,
    suite_release_date,
    versions_not_found,
    wheel_pin,
)
from orchestrator.bootstrap.lock import recipe_changes as lock_recipe_changes
from orchestrator.engine import PROJECT_LABEL, ContainerSpec, Engine, project_label
from orchestrator.errors import ToolchainError, UsageError
from orchestrator.image import toolchain_archive, toolchain_registry
from orchestrator.outputs.sizes import human_size
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import Bootstrap, GiB, Layer, Limits, MiB, Toolchain

# Bump when the way images are bootstrapped changes, so old images are not reused.
BOOTSTRAP_FORMAT = 2  # 2: images written by osless (toolchain_archive), no longer `docker import`ed
LAYER_FORMAT = 2  # the same for images layered on a base toolchain's (2: no longer `docker commit`ted)
# Every date in a toolchain image (config `created`, mtimes clamped to it, mmdebstrap's
# SOURCE_DATE_EPOCH): fixed, so that the same spec and packages give the same image id everywhere.
TOOLCHAIN_EPOCH = 1735689600  # 2025-01-01T00:00:00Z
IMAGE_REPOSITORY = "osless-toolchain"
TOOLCHAIN_LABEL = "osless.toolchain"  # the toolchain's name, on every image osless makes for one
SPEC_LABEL = "osless.toolchain.spec"  # its spec hash
BASE_LABEL = "osless.toolchain.base"  # a layer's: the id of the base image it was built on
# The layer container installs packages as root: dpkg sets owners and modes, apt drops to _apt.
LAYER_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETFCAP", "SETGID", "SETUID")
LAYER_LIMITS = Limits(memory=2 * GiB, pids=1024, cpus=2.0)
LAYER_TIMEOUT = 1800.0
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Documentation, manual pages and locales are never needed to compile: leaving them out saves ~15%.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class ToolchainImage:
    """A provisioned toolchain: the reference builds use and the image id the report records."""

    name: str
    reference: str
    image_id: str
    bootstrapped: bool  # True when this run built it
    repo_digest: str | None = None  # `REPO@sha256:...` of an image the recipe names in a registry


def _own(toolchain: Toolchain) -> Bootstrap | Layer:
    """What the toolchain's own recipe installs: its bootstrap, or a derived toolchain's layer."""
    own = toolchain.layer if toolchain.base is not None else toolchain.bootstrap
    assert own is not None
    return own


def bootstrap_packages(toolchain: Toolchain) -> list[str]:
    """Base packages plus every platform's cross packages: one image serves all the toolchain's platforms
    (a derived toolchain's: only its own additions)."""
    return _sorted_union(_own(toolchain).packages, (p.packages for p in toolchain.platforms.values()))


def unpack_packages(toolchain: Toolchain) -> list[str]:
    """The bootstrap's and every platform's `unpack` packages, sorted, each once."""
    return _sorted_union(_own(toolchain).unpack, (p.unpack for p in toolchain.platforms.values()))


def library_packages(toolchain: Toolchain) -> list[str]:
    """`<library>:<debian arch>` for each platform's libraries (the toolchain's and the platform's own)."""
    own = _own(toolchain).libraries
    return sorted(
        {
            f"{library}:{PLATFORMS[name].debian_arch}"
            for name, platform in toolchain.platforms.items()
            for library in (*own, *platform.libraries)
        }
    )


def _sorted_union(base: Iterable[str], per_platform: Iterable[Iterable[str]]) -> list[str]:
    return sorted({*base, *(package for packages in per_platform for package in packages)})


def spec_hash(toolchain: Toolchain) -> str:
    """A short hash of everything that shapes the bootstrapped image (not of build-time env); for a
    derived toolchain, of its base's identity and its own additions. A lock is part of it: relocking
    (other package versions) makes another image."""
    spec = _recipe_spec(toolchain)
    if toolchain.lock is not None:
        spec["lock"] = toolchain.lock.digest
    return _short_hash(spec)


def recipe_spec_hash(toolchain: Toolchain) -> str:
    """The spec hash without the lock: what a lock records it was made from (a changed recipe)."""
    return _short_hash(_recipe_spec(toolchain))


def _recipe_spec(toolchain: Toolchain) -> dict[str, object]:
    if toolchain.base is not None:
        layered: dict[str, object] = {
            "format": LAYER_FORMAT,
            "base": base_identity(toolchain.base),
            "packages": bootstrap_packages(toolchain),
        }
        if unpack := unpack_packages(toolchain):
            layered["unpack"] = unpack
        if libraries := library_packages(toolchain):
            layered["libraries"] = libraries
        return layered
    assert toolchain.bootstrap is not None
    spec: dict[str, object] = {
        "format": BOOTSTRAP_FORMAT,
        "suite": toolchain.bootstrap.suite,
        "mirror": toolchain.bootstrap.mirror,
        "components": sorted(toolchain.bootstrap.components),
        "packages": bootstrap_packages(toolchain),
    }
    # Each left out at its default, so that the tags of existing images stay valid.
    if toolchain.bootstrap.variant != "apt":
        spec["variant"] = toolchain.bootstrap.variant
    if unpack := unpack_packages(toolchain):
        spec["unpack"] = unpack
    if toolchain.bootstrap.wheels:
        spec["wheels"] = sorted([w.name, w.version, w.sha256] for w in toolchain.bootstrap.wheels)
    if libraries := library_packages(toolchain):
        spec["libraries"] = libraries
    return spec


def _short_hash(spec: dict[str, object]) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def base_identity(toolchain: Toolchain) -> str:
    """What names a base toolchain's image in a derived one's spec: its tag, or the image it uses as is."""
    if toolchain.image and toolchain.bootstrap is None and toolchain.base is None:
        return toolchain.image
    return image_reference(toolchain)


def image_reference(toolchain: Toolchain) -> str:
    """The tag of a bootstrapped (or layered) toolchain image: `osless-toolchain/<name>:<spec hash>`."""
    return f"{IMAGE_REPOSITORY}/{toolchain.name}:{spec_hash(toolchain)}"


def mmdebstrap_command(
    toolchain: Toolchain, output: Path, native: str, *, keep_lists: bool = False
) -> list[str]:
    """The mmdebstrap call that writes the toolchain's root filesystem as a tarball; `native` is the
    image's own Debian architecture (the build machine's). A locked toolchain asks for every locked
    package in its locked version (apt then resolves nothing else); `keep_lists` keeps apt's lists in
    the tarball (`osless lock` reads the suite's Release date from them)."""
    assert toolchain.bootstrap is not None
    packages = bootstrap_packages(toolchain)
    foreign = foreign_architectures(packages, native)
    if toolchain.lock is not None:
        packages = include_specs(toolchain.lock, native)
    command = [
        "mmdebstrap",
        f"--variant={toolchain.bootstrap.variant}",
        "--mode=auto",
        *([f"--architectures={','.join([native, *foreign])}"] if foreign else []),
        f"--components={','.join(toolchain.bootstrap.components)}",
        *([f"--include={','.join(packages)}"] if packages else []),
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES),
        *(["--skip=cleanup/apt/lists"] if keep_lists else []),
        # mmdebstrap takes options anywhere: after "--" nothing is one, whatever the recipe says.
        "--",
        toolchain.bootstrap.suite,
        str(output),
    ]
    if toolchain.bootstrap.mirror:
        command.append(toolchain.bootstrap.mirror)
    return command


def provision(
    engine: Engine,
    toolchain: Toolchain,
    work_dir: Path,
    progress: Progress,
    *,
    source: Engine | None = None,
    project: Path | None = None,
) -> ToolchainImage:
    """Make sure the toolchain's image is in the engine: already there, copied from `source` (another
    engine that has it: the same image id everywhere), bootstrapped, or layered on its base's image.
    With `project` (its root), a new image is labelled with it and supersedes the project's older
    images of the toolchain, which are removed (collect_superseded)."""
    if toolchain.base is not None:
        return _provision_layered(engine, toolchain, work_dir, progress, source=source, project=project)
    if toolchain.image and (given := _given_image(engine, toolchain, progress)) is not None:
        return given
    check_lock(toolchain)
    reference = image_reference(toolchain)
    work_dir.mkdir(parents=True, exist_ok=True)
    # One bootstrap per spec even when several osless runs start at once.
    with (work_dir / f"{toolchain.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        image_id = engine.image_id(reference)
        if image_id:
            return ToolchainImage(
                name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=False
            )
        if source is not None and source.image_id(reference):
            progress(f"copying {reference} from the default engine")
            engine.copy_image(source, reference)
            image_id = engine.image_id(reference)
            if image_id:
                return ToolchainImage(
                    name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=False
                )
        image_id = _bootstrap(engine, toolchain, reference, work_dir, progress)
        _collect(engine, toolchain, image_id, work_dir=work_dir, project=project, progress=progress)
    return ToolchainImage(name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=True)


def _given_image(engine: Engine, toolchain: Toolchain, progress: Progress) -> ToolchainImage | None:
    """The recipe's `image`: a local name used as is; one naming a registry host pulled unless present,
    its digest checked (toolchain_registry). None when the toolchain is to be bootstrapped instead: the
    local image is missing, or the registry is unreachable, and the recipe has a bootstrap section."""
    assert toolchain.image is not None
    try:
        remote = toolchain_registry.remote_image(toolchain.image)
    except UsageError as error:  # the loader checked it already
        raise ToolchainError(f"toolchain {toolchain.name}: {error.message}", hint=error.hint) from error
    if remote is None:
        image_id = engine.image_id(toolchain.image)
        if image_id:
            return ToolchainImage(
                name=toolchain.name, reference=toolchain.image, image_id=image_id, bootstrapped=False
            )
        if toolchain.bootstrap is None:
            raise ToolchainError(
                f"toolchain {toolchain.name}: image {toolchain.image} is not in the engine (a name without "
                "a registry host is never pulled)",
                hint="load it with `docker load`, name it as REGISTRY/REPO@sha256:... to pull it, or give "
                f"{toolchain.file} a [toolchain.bootstrap] section",
            )
        return None
    try:
        pulled = toolchain_registry.provide(engine, remote, progress)
    except toolchain_registry.PullFailed as error:
        if error.problem != "unreachable" or toolchain.bootstrap is None:
            raise ToolchainError(f"toolchain {toolchain.name}: {error.message}", hint=error.hint) from error
        progress(f"{error.message}: bootstrapping instead")
        return None
    except ToolchainError as error:
        raise ToolchainError(f"toolchain {toolchain.name}: {error.message}", hint=error.hint) from error
    return ToolchainImage(
        name=toolchain.name,
        reference=pulled.reference,
        image_id=pulled.image_id,
        bootstrapped=False,
        repo_digest=pulled.repo_digest,
    )


def _provision_layered(
    engine: Engine,
    toolchain: Toolchain,
    work_dir: Path,
    progress: Progress,
    *,
    source: Engine | None,
    project: Path | None,
) -> ToolchainImage:
    """The base's image first (provisioned like any toolchain's), then this toolchain's layer on it:
    reused while its tag exists and its base is that same image."""
    assert toolchain.base is not None
    check_lock(toolchain)
    base_name = toolchain.base.name
    base = provision(
        engine,
        toolchain.base,
        work_dir,
        lambda text: progress(f"base {base_name}: {text}"),
        source=source,
        project=project,
    )
    reference = image_reference(toolchain)
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / f"{toolchain.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        labels = engine.image_labels(reference)
        if labels is not None and labels.get(BASE_LABEL) == base.image_id:
            image_id = engine.image_id(reference)
            if image_id:
                return ToolchainImage(
                    name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=False
                )
        if labels is None and source is not None:
            theirs = source.image_labels(reference)
            if theirs is not None and theirs.get(BASE_LABEL) == base.image_id:
                progress(f"copying {reference} from the default engine")
                engine.copy_image(source, reference)
                if image_id := engine.image_id(reference) or "":
                    return ToolchainImage(
                        name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=False
                    )
        stale = engine.image_id(reference) if labels is not None else None
        if stale:
            progress(f"{reference} was layered on another {base_name} image: layering it again")
        image_id = _layer(
            engine,
            toolchain,
            base=base,
            reference=reference,
            additions=(
                bootstrap_packages(toolchain),
                library_packages(toolchain),
                unpack_packages(toolchain),
            ),
            work_dir=work_dir,
            progress=progress,
        )
        if stale and stale != image_id:
            engine.remove_unused_image(stale)  # untagged now; kept by the engine only while in use
        _collect(engine, toolchain, image_id, work_dir=work_dir, project=project, progress=progress)
    return ToolchainImage(name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=True)


def _layer(
    engine: Engine,
    toolchain: Toolchain,
    *,
    base: ToolchainImage,
    reference: str,
    additions: tuple[list[str], list[str], list[str]],
    work_dir: Path,
    progress: Progress,
) -> str:
    """Packages, libraries and unpack packages installed on `base` as one layer, loaded as `reference`
    (base's layers plus that one, written by osless: the same additions on the same base give the same
    image id everywhere): the new image's id."""
    packages, libraries, unpack = additions
    log_path = work_dir / f"{toolchain.name}.log"
    log_path.write_text(f"layer on {base.reference} ({base.image_id})\n")
    base_labels = engine.image_labels(base.reference) or {}
    earlier_libraries = base_labels.get(layer.LIBRARIES_LABEL, "").split()
    progress(f"reading the packages and apt sources of {base.reference}")
    facts = layer.image_facts(
        engine.read_from_image(base.reference, "/var/lib/dpkg/status"),
        engine.read_from_image(base.reference, "/etc/apt"),
        earlier_libraries,
    )
    with _named(toolchain):
        plan = layer.plan(
            packages=packages,
            libraries=libraries,
            unpack=unpack,
            facts=facts,
            state=work_dir / f"{toolchain.name}-apt",
            native=native_architecture(),
            log=log_path,
            progress=progress,
            locked=toolchain.lock if toolchain.base is not None else None,
        )
    if toolchain.base is not None and toolchain.lock is not None:
        check_planned(toolchain, plan)
    labels = {
        TOOLCHAIN_LABEL: toolchain.name,
        SPEC_LABEL: spec_hash(toolchain),
        BASE_LABEL: base.image_id,
        layer.LIBRARIES_LABEL: " ".join(
            sorted({*earlier_libraries, *(deb.package for deb in plan.libraries)})
        ),
    }
    progress(f"installing {_count(plan)} in a container of {base.reference} (no network)")
    spec = ContainerSpec(
        image=base.reference,
        command=layer.SCRIPT_COMMAND,
        role="layer",
        user="0",
        writable_root=True,
        cap_add=LAYER_CAPS,
        tmpfs={"/tmp": "rw,exec,nosuid,size=1g"},
        timeout=LAYER_TIMEOUT,
        limits=LAYER_LIMITS,
        output_limit=4 * MiB,
    )
    layer_path = work_dir / f"{toolchain.name}-layer.tar"

    def collect(changes: list[dict[str, Any]], export: IO[bytes]) -> toolchain_archive.LayerFile:
        progress("writing the layer from what the container changed")
        return toolchain_archive.changes_layer(
            [toolchain_archive.Change(path=str(c["Path"]), kind=int(c["Kind"])) for c in changes],
            export,
            layer_path,
            TOOLCHAIN_EPOCH,
        )

    try:
        result, written = engine.build_layer(spec, layer.archive(plan, DPKG_EXCLUDES), collect)
        with log_path.open("a") as log:
            log.write(result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace"))
        image_id = None if written is None else _load_layered(engine, base, written, reference, labels)
    finally:
        layer_path.unlink(missing_ok=True)
    if image_id is None:
        how = "timed out" if result.timed_out else f"exited with {result.exit_code}"
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        errors = [line for line in lines if line.startswith(("E:", "dpkg:", "tar:"))] or lines
        raise ToolchainError(
            f"toolchain {toolchain.name}: installing on {base.reference} {how}: {' / '.join(errors[-3:])}",
            hint=f"full log: {log_path}",
        )
    progress(f"loaded {reference}")
    return image_id


def _load_layered(
    engine: Engine,
    base: ToolchainImage,
    written: toolchain_archive.LayerFile,
    reference: str,
    labels: Mapping[str, str],
) -> str:
    """`base`'s image plus the written layer, loaded as `reference` (the archive carries only the new
    layer: the engine has the base's); its id, checked to be the config's digest."""
    attributes = engine.image_attributes(base.image_id)
    settings = attributes.get("Config") or {}
    platform = {"architecture": str(attributes.get("Architecture")), "os": str(attributes.get("Os"))}
    if attributes.get("Variant"):
        platform["variant"] = str(attributes["Variant"])
    base_layers = [str(diff_id) for diff_id in (attributes.get("RootFS") or {}).get("Layers") or []]
    diff_ids = [*base_layers, written.diff_id]
    config = toolchain_archive.image_config(
        platform=platform,
        runtime={key: settings.get(key) for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User")},
        labels={**(settings.get("Labels") or {}), **labels},
        diff_ids=diff_ids,
        history=[*("osless: base toolchain" for _ in base_layers), f"osless: {labels[TOOLCHAIN_LABEL]}"],
        epoch=TOOLCHAIN_EPOCH,
    )
    return _load(engine, config, diff_ids, written, reference)


def _load(
    engine: Engine,
    config: bytes,
    diff_ids: list[str],
    written: toolchain_archive.LayerFile,
    reference: str,
) -> str:
    """The image `docker load`ed from an archive streamed from the layer file: its id, which must be the
    config's digest (the engine kept the bytes osless wrote)."""
    engine.load_archive(
        toolchain_archive.archive_chunks(config=config, diff_ids=diff_ids, layer=written, reference=reference)
    )
    image_id = engine.image_id(reference)
    expected = toolchain_archive.config_digest(config)
    if image_id != expected:
        raise ToolchainError(
            f"docker load gave {reference} the id {image_id}, not {expected} (the config's digest)",
            hint="another osless run may have loaded the same tag at once; run again",
        )
    return image_id


def _count(plan: layer.LayerPlan) -> str:
    parts = [
        f"{len(files)} {what}"
        for what, files in (
            ("packages", plan.install),
            ("libraries", plan.libraries),
            ("unpacked", plan.unpack),
        )
        if files
    ]
    return ", ".join(parts) or "nothing"


def made_images(record: Path) -> list[str]:
    """The image ids a record lists (none when there is no record yet)."""
    try:
        return [line for line in record.read_text().splitlines() if line.startswith("sha256:")]
    except FileNotFoundError:
        return []


def _collect(
    engine: Engine,
    toolchain: Toolchain,
    current: str,
    *,
    work_dir: Path,
    project: Path | None,
    progress: Progress,
) -> None:
    """collect_superseded for a project (nothing without one). Its images are listed (one id a line) in
    its toolchain work dir, `<name>.images`: not a label, since an image must be the same bytes for
    every clone of the project. The `osless.project` label osless put on a project's images before it
    wrote them reproducibly (BOOTSTRAP_FORMAT 1) still counts, so that those are collected too."""
    if project is not None:
        record = work_dir / f"{toolchain.name}.images"
        collect_superseded(engine, toolchain.name, current, record, progress, legacy=project_label(project))


def collect_superseded(
    engine: Engine,
    name: str,
    current: str,
    record: Path,
    progress: Progress,
    *,
    legacy: str | None = None,
) -> None:
    """Record `current` as made for the project, and remove the project's other images of toolchain
    `name` (those its record lists, or labelled `osless.project=<legacy>` by an older osless; tagged
    only `osless-toolchain/<name>:*`), but those a container uses; says what it removed and what it
    kept. The record then lists what is left."""
    made = set(made_images(record))
    kept = [current]
    for image in engine.images_labelled(TOOLCHAIN_LABEL, name):
        ours = image.tags and all(tag.startswith(f"{IMAGE_REPOSITORY}/{name}:") for tag in image.tags)
        project_made = image.id in made or (legacy is not None and image.labels.get(PROJECT_LABEL) == legacy)
        if image.id == current or not project_made or not ours:
            continue
        shown = ", ".join(image.tags)
        users = engine.containers_using(image.id)
        if users:
            progress(f"kept superseded {shown}: container {users[0]} uses it")
            kept.append(image.id)
            continue
        reason = engine.remove_unused_image(image.id)
        if reason is None:
            progress(f"removed superseded {shown} ({human_size(image.size)})")
        else:
            progress(f"kept superseded {shown}: {reason}")
            kept.append(image.id)
    record.write_text("".join(f"{image_id}\n" for image_id in kept))


def _bootstrap(
    engine: Engine,
    toolchain: Toolchain,
    reference: str,
    work_dir: Path,
    progress: Progress,
) -> str:
    """mmdebstrap's tarball (with the unpack packages' and wheels' files) as a one-layer image written
    by osless and loaded as `reference`, then the libraries' layer on it: the image id."""
    if shutil.which("mmdebstrap") is None:
        raise ToolchainError(
            f"toolchain {toolchain.name} must be bootstrapped but mmdebstrap is not installed",
            hint="run `sudo scripts/setup-host` or `apt-get install mmdebstrap`",
        )
    assert toolchain.bootstrap is not None
    tarball = work_dir / f"{toolchain.name}-{spec_hash(toolchain)}.tar"
    layer_path = work_dir / f"{toolchain.name}-{spec_hash(toolchain)}.layer.tar"
    log_path = work_dir / f"{toolchain.name}.log"
    try:
        # Wheels first: a wrong pin fails in seconds, not after mmdebstrap's minutes.
        with _named(toolchain):
            wheel_files = [
                wheels.fetch(wheel, work_dir / "downloads", progress) for wheel in toolchain.bootstrap.wheels
            ]
        native = native_architecture()
        _run_mmdebstrap(toolchain, tarball, log_path, native, progress)
        if toolchain.lock is not None:
            progress("checking the installed packages against the lock")
            check_installed(toolchain, toolchain.lock.packages, rootfs.read_facts(tarball).installed)
        with _named(toolchain):
            if targets := layer.target_libraries(bootstrap_packages(toolchain), native):
                progress(f"checking {', '.join(targets)} for static archives")
                for package, paths in rootfs.package_files(tarball, targets).items():
                    layer.check_static_paths(package, paths)
            _add_files(
                toolchain,
                tarball,
                wheel_files=wheel_files,
                work_dir=work_dir,
                log_path=log_path,
                native=native,
                progress=progress,
            )
        progress("writing the image layer")
        written = toolchain_archive.rootfs_layer(tarball, layer_path, TOOLCHAIN_EPOCH)
        tarball.unlink()  # the layer has it all now: half the disk space during the load
        config = toolchain_archive.image_config(
            platform=_oci_platform(native),
            runtime={"Env": [f"PATH={IMAGE_PATH}"]},
            labels={TOOLCHAIN_LABEL: toolchain.name, SPEC_LABEL: spec_hash(toolchain)},
            diff_ids=[written.diff_id],
            history=["osless: toolchain bootstrap"],
            epoch=TOOLCHAIN_EPOCH,
        )
        progress(f"docker load ({human_size(written.size)})")
        image_id = _load(engine, config, [written.diff_id], written, reference)
    finally:
        tarball.unlink(missing_ok=True)
        layer_path.unlink(missing_ok=True)
    if libraries := library_packages(toolchain):
        imported = ToolchainImage(
            name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=True
        )
        image_id = _layer(
            engine,
            toolchain,
            base=imported,
            reference=reference,
            additions=([], libraries, []),
            work_dir=work_dir,
            progress=progress,
        )
        # The bootstrapped image lost its tag to the layered one: it is only an intermediate.
        if imported.image_id != image_id:
            engine.remove_unused_image(imported.image_id)
    return image_id


def make_lock(
    toolchain: Toolchain, work_dir: Path, progress: Progress, *, engine: Engine | None = None
) -> Lock:
    """What `osless lock` writes: the toolchain bootstrapped without its lock into a scratch tarball
    (apt's lists kept, never imported), its installed packages, its suite's Release date and the
    versions its `unpack` packages resolve to (downloaded as a bootstrap would, so kept for it). A
    derived toolchain's (`engine` then needed, for its base's image): what its layer would install."""
    unlocked = dataclasses.replace(toolchain, lock=None)
    if toolchain.base is not None:
        assert engine is not None
        return _layer_lock(engine, unlocked, work_dir, progress)
    if toolchain.bootstrap is None:
        raise ToolchainError(
            f"toolchain {toolchain.name} uses the image {toolchain.image} as is: there is nothing to lock",
            hint="a lock is for toolchains with a [toolchain.bootstrap] section",
        )
    if shutil.which("mmdebstrap") is None:
        raise ToolchainError(
            f"locking toolchain {toolchain.name} bootstraps it but mmdebstrap is not installed",
            hint="run `sudo scripts/setup-host` or `apt-get install mmdebstrap`",
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    tarball = work_dir / f"{toolchain.name}-lock.tar"
    log_path = work_dir / f"{toolchain.name}-lock.log"
    native = native_architecture()
    unpack = unpack_packages(unlocked)
    try:
        _run_mmdebstrap(unlocked, tarball, log_path, native, progress, keep_lists=True)
        progress("reading the installed packages and the suite's Release date")
        facts = rootfs.read_facts(tarball)
        date = suite_release_date(rootfs.release_files(tarball), toolchain.bootstrap.suite)
        debs: list[Path] = []
        if unpack:
            with _named(toolchain):
                debs = debian.download(
                    unpack,
                    facts.installed,
                    facts.sources,
                    state=work_dir / f"{toolchain.name}-apt",
                    native=native,
                    log=log_path,
                    progress=progress,
                )
    finally:
        tarball.unlink(missing_ok=True)
    with _named(toolchain):
        unpacked = {package: debian.deb_package(deb)[1] for package, deb in zip(unpack, debs, strict=True)}
    return Lock(
        toolchain=toolchain.name,
        spec=recipe_spec_hash(unlocked),
        suite=toolchain.bootstrap.suite,
        release_date=date,
        requested=tuple(_requested(unlocked)),
        packages=facts.installed,
        unpack=unpacked,
        wheels=tuple(wheel_pin(w.name, w.version, w.sha256) for w in toolchain.bootstrap.wheels),
    )


def _layer_lock(engine: Engine, toolchain: Toolchain, work_dir: Path, progress: Progress) -> Lock:
    """A derived toolchain's lock: its base provisioned, its layer planned against the base image
    (resolved and downloaded on the host, as layering does, so the files are kept for it), and the
    versions of what the plan holds. Nothing is installed."""
    assert toolchain.base is not None
    base = provision(engine, toolchain.base, work_dir, lambda text: progress(f"base: {text}"))
    facts = layer.image_facts(
        engine.read_from_image(base.reference, "/var/lib/dpkg/status"),
        engine.read_from_image(base.reference, "/etc/apt"),
        (engine.image_labels(base.reference) or {}).get(layer.LIBRARIES_LABEL, "").split(),
    )
    unpack = unpack_packages(toolchain)
    state = work_dir / f"{toolchain.name}-apt"
    with _named(toolchain):
        plan = layer.plan(
            packages=bootstrap_packages(toolchain),
            libraries=library_packages(toolchain),
            unpack=unpack,
            facts=facts,
            state=state,
            native=native_architecture(),
            log=work_dir / f"{toolchain.name}-lock.log",
            progress=progress,
        )
        packages = dict(debian.deb_package(path) for path in plan.install)
        unpacked = {
            spec: debian.deb_package(deb.path)[1] for spec, deb in zip(unpack, plan.unpack, strict=True)
        }
    suite = toolchain.base.lock.suite if toolchain.base.lock is not None else ""
    releases = {
        path.name: path.read_text(errors="replace")
        for path in (state / rootfs.APT_LISTS).glob("*Release")
        if path.is_file()
    }
    return Lock(
        toolchain=toolchain.name,
        spec=recipe_spec_hash(toolchain),
        suite=suite,
        release_date=suite_release_date(releases, suite),
        requested=tuple(_requested(toolchain)),
        packages=packages,
        libraries={deb.package: deb.version for deb in plan.libraries},
        unpack=unpacked,
    )


def check_planned(toolchain: Toolchain, plan: layer.LayerPlan) -> None:
    """A locked derived toolchain's layer must hold exactly the locked packages and libraries."""
    assert toolchain.lock is not None
    with _named(toolchain):
        packages = dict(debian.deb_package(path) for path in plan.install)
    check_installed(toolchain, toolchain.lock.packages, packages)
    check_installed(toolchain, toolchain.lock.libraries, {deb.package: deb.version for deb in plan.libraries})


def lock_path(toolchain: Toolchain) -> Path:
    """Where the toolchain's lock is (or would be): `<name>.lock` beside its recipe."""
    return toolchain.file.parent / lock_file_name(toolchain.name)


def _relock(toolchain: Toolchain) -> str:
    command = relock_command(toolchain.name)
    return f"run `{command}` to update {toolchain.name}.lock, then review and commit it"


def check_lock(toolchain: Toolchain) -> None:
    """A lock made from another recipe than the toolchain's (its packages, suite or base changed since)
    is an error naming what changed: the lock would install what the recipe no longer says."""
    lock = toolchain.lock
    if lock is None or lock.spec == recipe_spec_hash(toolchain):
        return
    added, removed = lock_recipe_changes(lock, _requested(toolchain))
    changes = [
        *([f"asks for {', '.join(added)} now"] if added else []),
        *([f"no longer asks for {', '.join(removed)}"] if removed else []),
    ] or [
        f"its base {toolchain.base.name} changed (another lock or recipe)"
        if toolchain.base is not None
        else "its suite, mirror, components, variant or wheels changed"
    ]
    raise ToolchainError(
        f"toolchain {toolchain.name}: {toolchain.file.name} changed since {toolchain.name}.lock was "
        f"written: {'; '.join(changes)}",
        hint=_relock(toolchain),
    )


def _requested(toolchain: Toolchain) -> list[str]:
    """What the recipe asks for, as a lock records it."""
    return sorted({*bootstrap_packages(toolchain), *library_packages(toolchain), *unpack_packages(toolchain)})


def check_installed(toolchain: Toolchain, locked: Mapping[str, str], installed: Mapping[str, str]) -> None:
    """The packages a locked bootstrap (or layer) installed must be exactly the locked ones."""
    if differences := mismatches(locked, installed):
        raise ToolchainError(
            f"toolchain {toolchain.name}: the packages installed differ from {toolchain.name}.lock: "
            f"{shown(differences)}",
            hint=f"the archive changed since the lock was made: {_relock(toolchain)}",
        )


@contextmanager
def _locked(toolchain: Toolchain) -> Iterator[None]:
    """A locked toolchain's apt failures end with how to update its lock (a version the archive
    dropped is the likely reason)."""
    try:
        yield
    except ToolchainError as error:
        if toolchain.lock is None:
            raise
        hint = f"{error.hint}; " if error.hint else ""
        raise ToolchainError(
            error.message, hint=f"{hint}if the archive dropped a locked version: {_relock(toolchain)}"
        ) from error


@contextmanager
def _named(toolchain: Toolchain) -> Iterator[None]:
    """Errors of the bootstrap machinery, which knows no toolchain, prefixed with the toolchain's name."""
    try:
        yield
    except ToolchainError as error:
        raise ToolchainError(f"toolchain {toolchain.name}: {error.message}", hint=error.hint) from error


def _oci_platform(debian_arch: str) -> dict[str, str]:
    """The image config's platform fields (architecture, os, variant) of a Debian architecture."""
    for platform in PLATFORMS.values():
        if platform.debian_arch == debian_arch:
            return dict(platform.oci_platform)
    raise ToolchainError(f"no OCI platform is known for the Debian architecture {debian_arch}")


def native_architecture() -> str:
    """This machine's Debian architecture, which a bootstrapped image has (mmdebstrap's default)."""
    return subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()


def _run_mmdebstrap(
    toolchain: Toolchain,
    tarball: Path,
    log_path: Path,
    native: str,
    progress: Progress,
    *,
    keep_lists: bool = False,
) -> None:
    """Run mmdebstrap, streaming its log to a file and its step names to the progress view."""
    command = mmdebstrap_command(toolchain, tarball, native, keep_lists=keep_lists)
    with log_path.open("w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        # SOURCE_DATE_EPOCH: mmdebstrap's reproducible mode (clamped mtimes, no logs or machine id).
        environment = {**os.environ, "SOURCE_DATE_EPOCH": str(TOOLCHAIN_EPOCH)}
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if line.startswith("I: "):
                progress("mmdebstrap: " + line[3:].strip().rstrip("."))
        code = process.wait()
    if code != 0:
        text = log_path.read_text(errors="replace")
        if toolchain.lock is not None and (gone := versions_not_found(text)):
            raise ToolchainError(
                f"toolchain {toolchain.name}: the archive no longer has the locked {shown(gone)}",
                hint=f"{_relock(toolchain)}; full log: {log_path}",
            )
        with _locked(toolchain):  # e.g. apt refusing to downgrade to a locked version
            plain = layer.apt_failure(text, bootstrap_packages(toolchain))
            if plain is not None:
                raise ToolchainError(
                    f"toolchain {toolchain.name}: {plain.message}", hint=f"{plain.hint}; full log: {log_path}"
                )
            tail = text.strip().splitlines()[-5:]
            raise ToolchainError(
                f"toolchain {toolchain.name}: mmdebstrap failed (exit {code}): {' / '.join(tail)}",
                hint=f"full log: {log_path}; check that the packages exist in {toolchain.bootstrap.suite}"
                if toolchain.bootstrap
                else None,
            )


def _add_files(
    toolchain: Toolchain,
    tarball: Path,
    *,
    wheel_files: list[Path],
    work_dir: Path,
    log_path: Path,
    native: str,
    progress: Progress,
) -> None:
    """The `unpack` packages' files and the wheels' files, appended to mmdebstrap's tarball."""
    assert toolchain.bootstrap is not None
    unpack = unpack_packages(toolchain)
    if not unpack and not wheel_files:
        return
    debs: list[Path] = []
    if unpack:
        progress("unpack: reading the image's packages and apt sources")
        facts = rootfs.read_facts(tarball)
        with _locked(toolchain):
            debs = debian.download(
                unpack,
                facts.installed,
                facts.sources,
                state=work_dir / f"{toolchain.name}-apt",
                native=native,
                log=log_path,
                progress=progress,
                pins=toolchain.lock.unpack if toolchain.lock is not None else {},
            )
    with rootfs.appending(tarball) as appender:
        for package, deb in zip(unpack, debs, strict=True):
            added = debian.unpack(deb, appender, package, DPKG_EXCLUDES)
            progress(f"unpack {package}: {added} files added{_kept(appender)}")
        for wheel, path in zip(toolchain.bootstrap.wheels, wheel_files, strict=True):
            added = appender.add_wheel(path, f"wheel {wheel.name}")
            progress(f"wheel {wheel.name}: {added} files added under /{rootfs.WHEELS_DIR}{_kept(appender)}")


def _kept(appender: rootfs.RootfsAppender) -> str:
    """ ", 2 already there" for the paths the last addition left as they were (then forgets them)."""
    count = len(appender.kept)
    appender.kept.clear()
    return f", {count} already there (kept)" if count else ""


# What teams would otherwise ship on: Debian's slim image is minbase without docs, man pages, locales.
DEBIAN_SLIM = Toolchain(
    name="debian-slim",
    file=Path("<osless: the base images are compared with>"),
    image=None,
    bootstrap=Bootstrap(suite="trixie", packages=(), variant="minbase"),
    env={},
    platforms={},
)


def debian_slim_size(engine: Engine, work_dir: Path, progress: Progress) -> int:
    """Bytes of a Debian slim base image, bootstrapped once like a toolchain, for size comparisons."""
    image = provision(engine, DEBIAN_SLIM, work_dir, progress)
    return engine.image_size(image.image_id)
