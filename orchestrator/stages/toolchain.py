"""Stage 1: provision each toolchain image once.

Which image a toolchain uses, and whether one must be made (orchestrator/bootstrap makes it). A
toolchain with a bootstrap section uses the image tagged with the hash of its spec (bootstrap/spec.py):
already in the engine, copied from another engine that has it (the same spec and package versions give
the same image id on every machine), or made from Debian packages (bootstrap/make.py); a changed spec
gives a new image, an unchanged one is reused. A toolchain that names an existing image uses it as is:
a local name is never pulled (no registry is assumed reachable), one naming a registry host is pulled
by digest unless present (image/toolchain_registry.py). A toolchain that extends another
(`extends = "gcc"`) is a thin layer on its base's image: the base is provisioned first, and the layer
is reused while its tag exists and its base is that same image (a label of the layer), else layered
again. A lock made from another recipe than the toolchain's stops it first (bootstrap/lock_checks.py).

Once a new image is made, the images it supersedes (the same toolchain name, another spec, made by
osless for the same project: listed in `<work dir>/<name>.images`, not labelled, since the image is the
same for every clone) are removed, but not one that a container uses.
"""

from __future__ import annotations

import dataclasses
import fcntl
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from orchestrator.bootstrap import locking
from orchestrator.bootstrap.lock import Lock
from orchestrator.bootstrap.lock_checks import check_lock
from orchestrator.bootstrap.make import bootstrap_image, layer_image
from orchestrator.bootstrap.spec import (
    BASE_LABEL,
    IMAGE_REPOSITORY,
    TOOLCHAIN_LABEL,
    bootstrap_packages,
    image_reference,
    library_packages,
    unpack_packages,
)
from orchestrator.engine import PROJECT_LABEL, Engine, ImageInfo, project_label
from orchestrator.errors import ToolchainError, UsageError
from orchestrator.image import toolchain_registry
from orchestrator.outputs.sizes import human_size
from orchestrator.recipe.model import Bootstrap, Toolchain

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class ToolchainImage:
    """A provisioned toolchain: the reference builds use and the image id the report records."""

    name: str
    reference: str
    image_id: str
    bootstrapped: bool  # True when this run built it
    repo_digest: str | None = None  # `REPO@sha256:...` of an image the recipe names in a registry


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
        image_id = bootstrap_image(engine, toolchain, reference, work_dir, progress)
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
        image_id = layer_image(
            engine,
            toolchain,
            base=base.reference,
            base_id=base.image_id,
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


def make_lock(
    toolchain: Toolchain, work_dir: Path, progress: Progress, *, engine: Engine | None = None
) -> Lock:
    """What `osless lock` writes (bootstrap/locking.py): a bootstrapped toolchain's, from a scratch
    bootstrap without its lock; a derived toolchain's (`engine` then needed), from its layer planned on
    its base's image, provisioned here first."""
    if toolchain.base is None:
        return locking.bootstrap_lock(toolchain, work_dir, progress)
    assert engine is not None
    unlocked = dataclasses.replace(toolchain, lock=None)
    base = provision(engine, toolchain.base, work_dir, lambda text: progress(f"base: {text}"))
    return locking.layer_lock(engine, unlocked, base.reference, work_dir, progress)


def made_images(record: Path) -> list[str]:
    """The image ids a record lists (none when there is no record yet)."""
    try:
        return [line for line in record.read_text().splitlines() if line.startswith("sha256:")]
    except FileNotFoundError:
        return []


def recorded_images(work_dir: Path) -> frozenset[str]:
    """The ids of every toolchain image osless made for the project whose toolchain work dir this is."""
    return frozenset(image for record in work_dir.glob("*.images") for image in made_images(record))


def osless_toolchain_image(image: ImageInfo, made: Collection[str]) -> bool:
    """Whether an image labelled with a toolchain is one osless made: tagged only
    `osless-toolchain/<its toolchain>:…` (not an image built FROM one, which inherits the label, nor one
    pulled under the recipe's name), or untagged (its tag moved to a newer image) and in a project's
    record, `made`."""
    if not image.tags:
        return image.id in made
    prefix = f"{IMAGE_REPOSITORY}/{image.labels[TOOLCHAIN_LABEL]}:"
    return all(tag.startswith(prefix) for tag in image.tags)


def image_name(image: ImageInfo) -> str:
    """How a toolchain image is named to people: its tags, else its toolchain and short id."""
    short = image.id.removeprefix("sha256:")[:12]
    return ", ".join(image.tags) or f"{IMAGE_REPOSITORY}/{image.labels[TOOLCHAIN_LABEL]} (untagged {short})"


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
    `name` (those its record lists, or labelled `osless.project=<legacy>` by an older osless; made by
    osless: osless_toolchain_image), but those a container uses; says what it removed and what it kept.
    The record then lists what is left."""
    made = set(made_images(record))
    kept = [current]
    for image in engine.images_labelled(TOOLCHAIN_LABEL, name):
        project_made = image.id in made or (legacy is not None and image.labels.get(PROJECT_LABEL) == legacy)
        if image.id == current or not project_made or not osless_toolchain_image(image, made):
            continue
        shown = image_name(image)
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


# What teams would otherwise ship on: Debian's slim image is minbase without docs, man pages, locales.
TOOLCHAIN_WORK_DIR = ".toolchains"  # in out/: bootstrap work, image records, package listings
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
