"""`osless clean`: what osless left on this machine, and which of it may go.

What is osless's is told by the marks osless puts on it, never by a name alone:

- containers: the owner labels (host, pid, start time) on every container osless starts. Those of an
  osless process that is gone are removed, as every run does; those of a running osless are kept.
- volumes: the `osless.project` label of the compiler caches (`osless-cache-…`) and workspaces
  (`osless-work-…`); an anonymous scratch volume carries its container's owner labels and goes with it.
- toolchain images: the `osless.toolchain` label, tagged only `osless-toolchain/<name>:…`, or untagged
  and listed in the project's records (out/.toolchains/<name>.images: its tag moved to a newer image).
  Superseded: not the tag the project's recipes make now; the current ones go only when asked
  (`--all-toolchains`).
- service images: the `dev.osless.toolchain.image` label and a creation time equal to their
  `org.opencontainers.image.created` label (an image built FROM one inherits its labels, not its time),
  tagged only as a service's `<repository>:<tag>-<arch>`; kept while a run of the project may still
  smoke-test them (its builders are up).
- out/: the files and directories osless writes there (in a directory holding `.lock` or `.toolchains`,
  which every osless command that writes there makes first); anything else (a .gitkeep, notes) stays.

`plan` is pure: the engine's listing (engine.usage), out/'s listing and the scope in, what to remove and
what osless keeps (and why) out. `list_out` reads out/, `remove_out` empties it of osless's entries.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.bootstrap.spec import TOOLCHAIN_LABEL, image_reference
from orchestrator.engine import (
    OWNER_HOST_LABEL,
    OWNER_PID_LABEL,
    OWNER_START_LABEL,
    PROJECT_LABEL,
    ROLE_LABEL,
    ContainerInfo,
    EngineUsage,
    ImageInfo,
    Owner,
    VolumeInfo,
    project_label,
)
from orchestrator.outputs import outdir
from orchestrator.outputs.sbom import SBOM_FILE
from orchestrator.outputs.writers import RUN_FILES
from orchestrator.pipeline.provenance import PROVENANCE_RECORD
from orchestrator.pipeline.target import STAGING_DIR
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import Project, Toolchain
from orchestrator.stages.package import TOOLCHAIN_ANNOTATION, image_tag
from orchestrator.stages.toolchain import DEBIAN_SLIM, TOOLCHAIN_WORK_DIR, image_name, osless_toolchain_image
from orchestrator.stages.workspace import RECORDS_DIR

CREATED_LABEL = "org.opencontainers.image.created"  # stages/package.py writes it with the config's time
# What osless writes at the top of out/ besides one directory per service; `reproducible.json` and
# `.reproducible/` are --check-reproducible's (pipeline/reproduce.py).
OUT_NAMES = frozenset(
    {
        *(run_file.name for run_file in RUN_FILES),
        outdir.LOCK_FILE,
        PROVENANCE_RECORD,
        TOOLCHAIN_WORK_DIR,
        RECORDS_DIR,
        STAGING_DIR,
        "reproducible.json",
        ".reproducible",
    }
)
# What every osless command that writes into out/ makes there first: out/ holds neither, it is not osless's.
OUT_MARKS = frozenset({outdir.LOCK_FILE, TOOLCHAIN_WORK_DIR})
# What a service's directory in out/ holds: one directory per platform, its OCI layout, its SBOM.
SERVICE_DIR_ENTRIES = frozenset({*(platform.slug for platform in PLATFORMS.values()), "oci", SBOM_FILE})
PLATFORM_SUFFIXES = tuple(f"-{platform.tag_suffix}" for platform in PLATFORMS.values())
UNKNOWN_SIZE = -1


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Whose things to clean: one project's (default), or every project's; which toolchain images."""

    project: str  # its `osless.project` label
    host: str  # this machine: only its osless processes can be told running or gone
    service_tags: frozenset[str]  # `<repository>:<tag>-<arch>` of every service, every platform
    toolchains: dict[str, str | None]  # name -> the tag its recipe makes now (None: it uses an image as is)
    made_images: frozenset[str] = frozenset()  # ids of the toolchain images osless made for the project
    all_toolchains: bool = False  # the current toolchain images too
    all_projects: bool = False  # volumes and images of every project


@dataclass(frozen=True, kw_only=True)
class OutEntry:
    """One entry at the top of out/."""

    name: str
    size: int  # bytes of its files (apparent sizes), a directory's all together
    children: frozenset[str] = frozenset()  # a directory's own entries' names


@dataclass(frozen=True, kw_only=True)
class OutListing:
    """What out/ holds, and the running osless that holds its lock, if any."""

    root: Path
    entries: tuple[OutEntry, ...]
    holder: str | None = None  # "pid N, started T"


@dataclass(frozen=True, kw_only=True)
class Item:
    """One thing osless made: what it is, what removing it takes, its size, and why it goes (or stays)."""

    kind: str  # "container", "volume", "image", "toolchain", "out"
    name: str
    ref: str  # container id, volume name, image id, out/ path
    size: int  # bytes; UNKNOWN_SIZE when the engine did not count them
    why: str
    shared: int = 0  # an image's: bytes of its layers that other images use too (removing it keeps them)
    parts: tuple[str, ...] = ()  # out/: the entries osless wrote there


# (removable, the item) for one of osless's things in the scope; None for the rest.
Decision = tuple[bool, Item] | None


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What `osless clean` removes, what of osless's it keeps and why, and what else it has to say."""

    remove: tuple[Item, ...]
    keep: tuple[Item, ...]
    notes: tuple[str, ...]

    @property
    def size(self) -> int:
        """Bytes the removals free, at least: images' shared layers and sizes the engine did not count
        are left out."""
        return freed(self.remove)


def freed(items: Iterable[Item]) -> int:
    """Bytes that removing these items frees, at least (see Plan.size)."""
    return sum(max(0, item.size - item.shared) for item in items if item.size > 0)


def project_scope(
    project: Project,
    *,
    host: str,
    made_images: frozenset[str] = frozenset(),
    all_toolchains: bool = False,
    all_projects: bool = False,
) -> Scope:
    """The scope of a project: its label, its services' tags and directories, its toolchains' current
    tags (and debian-slim's, the base image every build compares sizes with), the toolchain images its
    records list (`made_images`, stages.toolchain.recorded_images)."""
    toolchains: dict[str, str | None] = {}
    for toolchain in (*project.toolchains.values(), DEBIAN_SLIM):
        for each in _with_bases(toolchain):
            made = each.bootstrap is not None or each.base is not None
            toolchains[each.name] = image_reference(each) if made else None
    return Scope(
        project=project_label(project.root),
        host=host,
        service_tags=frozenset(
            image_tag(service, platform)
            for service in project.services.values()
            for platform in PLATFORMS.values()
        ),
        toolchains=toolchains,
        made_images=made_images,
        all_toolchains=all_toolchains,
        all_projects=all_projects,
    )


def _with_bases(toolchain: Toolchain) -> Iterable[Toolchain]:
    while True:
        yield toolchain
        if toolchain.base is None:
            return
        toolchain = toolchain.base


def plan(usage: EngineUsage, out: OutListing | None, scope: Scope, *, alive: Callable[[Owner], bool]) -> Plan:
    """What to remove of osless's things in the scope, and what to keep; `alive` tells whether an osless
    process of this host still runs (Owner.alive)."""
    remove: list[Item] = []
    keep: list[Item] = []
    notes: list[str] = []
    for container in usage.containers:
        decided = _container(container, scope, alive)
        if decided is not None:
            (remove if decided[0] else keep).append(decided[1])
    gone = {item.ref for item in remove}
    staying = [container for container in usage.containers if container.id not in gone]
    volume_users = {volume: c.name for c in staying for volume in c.volumes}
    for volume in usage.volumes:
        decided = _volume(volume, scope, volume_users.get(volume.name), alive)
        if decided is not None:
            (remove if decided[0] else keep).append(decided[1])
    image_users = {c.image_id: c.name for c in staying}
    smoking = _running_run(staying, {item.ref for item in keep}, scope)
    current_kept = 0
    for image in usage.images:
        if TOOLCHAIN_LABEL in image.labels and _current_toolchain(image, scope) and not scope.all_toolchains:
            current_kept += 1
            continue
        decided = (
            _toolchain_image(image, scope)
            if TOOLCHAIN_LABEL in image.labels
            else _service_image(image, scope)
        )
        if decided is not None:
            removable, item = decided
            user = image_users.get(image.id)
            if removable and user is not None:
                removable, item = False, replace(item, why=f"container {user} uses it")
            elif removable and item.kind == "image" and smoking is not None:
                removable, item = False, replace(item, why=f"{smoking} may still smoke-test it")
            (remove if removable else keep).append(item)
    if current_kept:
        notes.append(
            f"kept {current_kept} current toolchain image{'s' if current_kept != 1 else ''} "
            "(--all-toolchains removes those too; rebuilding one takes minutes)"
        )
    if out is not None:
        _out(out, remove, keep, notes)
    return Plan(remove=tuple(remove), keep=tuple(keep), notes=tuple(notes))


def _running_run(staying: list[ContainerInfo], kept: set[str], scope: Scope) -> str | None:
    """The osless run still running (or not known to have ended) that may use the service images in
    the scope: one of this project's (its builders carry the project's label); with all_projects, any."""
    for container in staying:
        owner = _owner(container.labels)
        ours = scope.all_projects or container.labels.get(PROJECT_LABEL) == scope.project
        if container.id in kept and owner is not None and ours:
            return f"the osless run of pid {owner.pid} on {owner.host}"
    return None


def _owner(labels: dict[str, str]) -> Owner | None:
    try:
        return Owner(
            host=labels[OWNER_HOST_LABEL],
            pid=int(labels[OWNER_PID_LABEL]),
            start=labels.get(OWNER_START_LABEL, ""),
        )
    except (KeyError, ValueError):
        return None


def _owner_state(owner: Owner, scope: Scope, alive: Callable[[Owner], bool]) -> str | None:
    """None when that osless process is gone; else why what it made stays."""
    if owner.host != scope.host:
        return f"made by osless on host {owner.host}: whether that run still runs is not known here"
    if alive(owner):
        return f"its osless run (pid {owner.pid}) is still running"
    return None


def _container(container: ContainerInfo, scope: Scope, alive: Callable[[Owner], bool]) -> Decision:
    owner = _owner(container.labels)
    if owner is None:
        return None
    role = container.labels.get(ROLE_LABEL, "osless")
    state = _owner_state(owner, scope, alive)
    why = state or f"{role} container of an osless run that is gone (pid {owner.pid})"
    item = Item(kind="container", name=container.name, ref=container.id, size=container.size, why=why)
    return state is None, item


def _volume(volume: VolumeInfo, scope: Scope, user: str | None, alive: Callable[[Owner], bool]) -> Decision:
    owner = _owner(volume.labels)
    if owner is not None:  # a container's scratch volume: goes with it, unless the container is gone
        if user is not None or _owner_state(owner, scope, alive) is not None:
            return None
        why = f"scratch volume of an osless run that is gone (pid {owner.pid})"
        return True, Item(kind="volume", name=volume.name, ref=volume.name, size=volume.size, why=why)
    project = volume.labels.get(PROJECT_LABEL)
    if project is None or (project != scope.project and not scope.all_projects):
        return None
    role = volume.labels.get(ROLE_LABEL, "cache")
    what = {"cache": "compiler cache", "workspace": "build workspaces"}.get(role, role)
    whose = "this project's" if project == scope.project else f"project {project}'s"
    item = Item(kind="volume", name=volume.name, ref=volume.name, size=volume.size, why=f"{whose} {what}")
    if user is not None:
        return False, replace(item, why=f"container {user} uses it")
    return True, item


def _current_toolchain(image: ImageInfo, scope: Scope) -> bool:
    """The image the project's recipe of its toolchain makes now."""
    current = scope.toolchains.get(image.labels[TOOLCHAIN_LABEL])
    return osless_toolchain_image(image, scope.made_images) and current is not None and current in image.tags


def _toolchain_image(image: ImageInfo, scope: Scope) -> Decision:
    if not osless_toolchain_image(image, scope.made_images):
        return None
    name = image.labels[TOOLCHAIN_LABEL]
    if name in scope.toolchains:
        current = scope.toolchains[name]
        if _current_toolchain(image, scope):
            why = f"current image of toolchain {name} (rebuilding it takes minutes)"
        elif not image.tags:
            why = f"superseded: its tag moved to another image of toolchain {name}"
        else:
            now = f"its recipe now makes {current}" if current else "its recipe now uses an image as is"
            why = f"superseded: {now}"
    elif scope.all_projects and scope.all_toolchains:
        why = f"toolchain {name} is not one of this project's"
    else:
        return None
    return True, Item(
        kind="toolchain",
        name=image_name(image),
        ref=image.id,
        size=image.size,
        shared=image.shared_size,
        why=why,
    )


def _service_image(image: ImageInfo, scope: Scope) -> Decision:
    if TOOLCHAIN_ANNOTATION not in image.labels:
        return None
    if not image.tags or image.labels.get(CREATED_LABEL) != image.created:
        return None  # untagged, or made FROM an osless image (its labels, another time)
    ours = [tag in scope.service_tags or (scope.all_projects and _platform_tagged(tag)) for tag in image.tags]
    if not any(ours):
        return None
    title = image.labels.get("org.opencontainers.image.title", "?")
    item = Item(
        kind="image",
        name=", ".join(image.tags),
        ref=image.id,
        size=image.size,
        shared=image.shared_size,
        why=f"image of service {title}, loaded for its smoke tests",
    )
    if not all(ours):
        others = ", ".join(tag for tag, mine in zip(image.tags, ours, strict=True) if not mine)
        return False, replace(item, why=f"also tagged {others}, which osless did not name")
    return True, item


def _platform_tagged(tag: str) -> bool:
    return tag.rpartition(":")[2].endswith(PLATFORM_SUFFIXES)


def _out(out: OutListing, remove: list[Item], keep: list[Item], notes: list[str]) -> None:
    if not {entry.name for entry in out.entries} & OUT_MARKS:
        notes.append(
            f"{out.root} is not an osless output directory (no {' nor '.join(sorted(OUT_MARKS))} in it): "
            "left as it is"
        )
        return
    ours = [entry for entry in out.entries if written_by_osless(entry)]
    foreign = sorted(entry.name for entry in out.entries if entry not in ours)
    if foreign:
        notes.append(f"left in {out.root}: {', '.join(foreign)} (not written by osless)")
    if not ours:
        return
    services = sum(1 for entry in ours if entry.name not in OUT_NAMES and not _partial(entry.name))
    records = len(ours) - services
    what = ", ".join(
        (
            *([f"outputs of {services} service{'s' if services != 1 else ''}"] if services else []),
            *(
                [f"{records} run {'entries' if records != 1 else 'entry'} (reports, records, work)"]
                if records
                else []
            ),
        )
    )
    item = Item(
        kind="out",
        name=str(out.root),
        ref=str(out.root),
        size=sum(entry.size for entry in ours),
        why=f"what osless wrote: {what}",
        parts=tuple(sorted(entry.name for entry in ours)),
    )
    if out.holder is not None:
        keep.append(
            replace(item, why=f"a running osless holds it ({out.holder}): clean refuses until it ends")
        )
    else:
        remove.append(item)


def written_by_osless(entry: OutEntry) -> bool:
    """One of the run's files and directories, or a service's directory (it holds a platform's
    directory, its OCI layout or its SBOM)."""
    if entry.name in OUT_NAMES or _partial(entry.name):
        return True
    return bool(entry.children & SERVICE_DIR_ENTRIES)


def _partial(name: str) -> bool:
    """A file an interrupted atomic write left (outputs/atomic.py: `.<name>.<random>.partial`)."""
    return name.startswith(".") and name.endswith(".partial")


def list_out(root: Path, *, check_lock: bool) -> OutListing | None:
    """What out/ holds (None when it is not a directory), the sizes of what osless wrote (only those are
    walked); with check_lock, the running osless that holds it, found without writing anything."""
    if not root.is_dir():
        return None
    entries = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.is_symlink():
            entry = OutEntry(
                name=path.name, size=UNKNOWN_SIZE, children=frozenset(c.name for c in path.iterdir())
            )
            entries.append(replace(entry, size=_tree_size(path)) if written_by_osless(entry) else entry)
        else:
            entries.append(OutEntry(name=path.name, size=path.lstat().st_size))
    return OutListing(root=root, entries=tuple(entries), holder=_holder(root) if check_lock else None)


def _tree_size(directory: Path) -> int:
    total = 0
    for parent, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, name)).st_size
    return total


def _holder(root: Path) -> str | None:
    """Who holds out/'s lock (outdir.locked), None when no osless run does: a shared lock on it is
    refused while a run holds its exclusive one."""
    path = root / outdir.LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        return outdir.holder(path)
    finally:
        os.close(descriptor)
    return None


def remove_out(item: Item) -> None:
    """Remove the entries osless wrote in out/, its lock last (the caller holds it), then out/ itself
    when nothing else is left in it."""
    root = Path(item.ref)
    for name in sorted(item.parts, key=lambda part: part == outdir.LOCK_FILE):
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something osless did not write stays, and out/ too
        root.rmdir()
