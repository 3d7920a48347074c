"""Stage 1: provision each toolchain image once.

A toolchain with a bootstrap section becomes an image built from Debian packages (mmdebstrap, then
`docker import`), tagged with a hash of its spec: a changed spec gives a new image, an unchanged one is
reused. Before the import, the files of the `unpack` packages and of the pinned `wheels` are added to
mmdebstrap's tarball (orchestrator/bootstrap). A toolchain that names an existing image uses it as is
(no registry is assumed reachable).

A toolchain that extends another (`extends = "gcc"`) is a thin layer on its base's image: its packages
are resolved and downloaded on the host (bootstrap/layer.py), installed in a container of the base
image (root, no network, limits) and committed. Its hash covers the base's identity and its own
additions, so changing them rebuilds only the layer; a base rebuilt since is noticed by its image id
(a label of the layer). A bootstrap's `libraries` are installed the same way, on the imported image.

Once a new image is made, the images it supersedes (the same toolchain name, another spec, made by
osless for the same project: by label) are removed, but not one that a container uses or that other
images are layered on.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.bootstrap import debian, layer, rootfs, wheels
from orchestrator.bootstrap.debian import foreign_architectures
from orchestrator.engine import PROJECT_LABEL, ContainerSpec, Engine, project_label
from orchestrator.errors import ToolchainError
from orchestrator.outputs.sizes import human_size
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import Bootstrap, GiB, Layer, Limits, MiB, Toolchain

# Bump when the way images are bootstrapped changes, so old images are not reused.
BOOTSTRAP_FORMAT = 1
LAYER_FORMAT = 1  # the same for images layered on a base toolchain's
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
    derived toolchain, of its base's identity and its own additions."""
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
        return _short_hash(layered)
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
    return _short_hash(spec)


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


def mmdebstrap_command(toolchain: Toolchain, output: Path, native: str) -> list[str]:
    """The mmdebstrap call that writes the toolchain's root filesystem as a tarball; `native` is the
    image's own Debian architecture (the build machine's)."""
    assert toolchain.bootstrap is not None
    packages = bootstrap_packages(toolchain)
    foreign = foreign_architectures(packages, native)
    command = [
        "mmdebstrap",
        f"--variant={toolchain.bootstrap.variant}",
        "--mode=auto",
        *([f"--architectures={','.join([native, *foreign])}"] if foreign else []),
        f"--components={','.join(toolchain.bootstrap.components)}",
        *([f"--include={','.join(packages)}"] if packages else []),
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES),
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
    if toolchain.image:
        image_id = engine.image_id(toolchain.image)
        if image_id:
            return ToolchainImage(
                name=toolchain.name, reference=toolchain.image, image_id=image_id, bootstrapped=False
            )
        if toolchain.bootstrap is None:
            raise ToolchainError(
                f"toolchain {toolchain.name}: image {toolchain.image} is not in the engine and no registry "
                "is reachable",
                hint=f"load it with `docker load`, or give {toolchain.file} a [toolchain.bootstrap] section",
            )
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
        image_id = _bootstrap(engine, toolchain, reference, work_dir, progress, project=project)
        collect_superseded(engine, toolchain.name, image_id, project, progress)
    return ToolchainImage(name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=True)


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
            project=project,
        )
        if stale and stale != image_id:
            engine.remove_unused_image(stale)  # untagged now; kept by the engine only while in use
        collect_superseded(engine, toolchain.name, image_id, project, progress)
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
    project: Path | None,
) -> str:
    """Packages, libraries and unpack packages installed on `base` as one layer, committed as
    `reference`: the new image's id."""
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
        )
    labels = {
        TOOLCHAIN_LABEL: toolchain.name,
        SPEC_LABEL: spec_hash(toolchain),
        BASE_LABEL: base.image_id,
        layer.LIBRARIES_LABEL: " ".join(
            sorted({*earlier_libraries, *(deb.package for deb in plan.libraries)})
        ),
        PROJECT_LABEL: project_label(project) if project else "",
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
    result, image_id = engine.build_layer(spec, layer.archive(plan, DPKG_EXCLUDES), reference, labels)
    with log_path.open("a") as log:
        log.write(result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace"))
    if image_id is None:
        how = "timed out" if result.timed_out else f"exited with {result.exit_code}"
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        errors = [line for line in lines if line.startswith(("E:", "dpkg:", "tar:"))] or lines
        raise ToolchainError(
            f"toolchain {toolchain.name}: installing on {base.reference} {how}: {' / '.join(errors[-3:])}",
            hint=f"full log: {log_path}",
        )
    progress(f"committed {reference}")
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


def collect_superseded(
    engine: Engine, name: str, current: str, project: Path | None, progress: Progress
) -> None:
    """Remove the project's other images of toolchain `name` (tagged only `osless-toolchain/<name>:*`,
    labelled by osless for this project), but those a container uses or other images are layered on;
    says what it removed and what it kept. Without a project, nothing is collected."""
    if project is None:
        return
    label = project_label(project)
    for image in engine.images_labelled(TOOLCHAIN_LABEL, name):
        ours = image.tags and all(tag.startswith(f"{IMAGE_REPOSITORY}/{name}:") for tag in image.tags)
        if image.id == current or image.labels.get(PROJECT_LABEL) != label or not ours:
            continue
        shown = ", ".join(image.tags)
        users = engine.containers_using(image.id)
        if users:
            progress(f"kept superseded {shown}: container {users[0]} uses it")
            continue
        reason = engine.remove_unused_image(image.id)
        if reason is None:
            progress(f"removed superseded {shown} ({human_size(image.size)})")
        elif "child" in reason:
            progress(f"kept superseded {shown}: other toolchain images are layered on it")
        else:
            progress(f"kept superseded {shown}: {reason}")


def _bootstrap(
    engine: Engine,
    toolchain: Toolchain,
    reference: str,
    work_dir: Path,
    progress: Progress,
    *,
    project: Path | None = None,
) -> str:
    if shutil.which("mmdebstrap") is None:
        raise ToolchainError(
            f"toolchain {toolchain.name} must be bootstrapped but mmdebstrap is not installed",
            hint="run `sudo scripts/setup-host` or `apt-get install mmdebstrap`",
        )
    assert toolchain.bootstrap is not None
    tarball = work_dir / f"{toolchain.name}-{spec_hash(toolchain)}.tar"
    log_path = work_dir / f"{toolchain.name}.log"
    try:
        # Wheels first: a wrong pin fails in seconds, not after mmdebstrap's minutes.
        with _named(toolchain):
            wheel_files = [
                wheels.fetch(wheel, work_dir / "downloads", progress) for wheel in toolchain.bootstrap.wheels
            ]
        native = native_architecture()
        _run_mmdebstrap(toolchain, tarball, log_path, native, progress)
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
        progress("docker import")
        labels = {TOOLCHAIN_LABEL: toolchain.name, SPEC_LABEL: spec_hash(toolchain)}
        if project is not None:
            labels[PROJECT_LABEL] = project_label(project)
        changes = [f"ENV PATH={IMAGE_PATH}", *(f"LABEL {key}={value}" for key, value in labels.items())]
        engine.import_image(tarball, reference, changes=changes)
    finally:
        tarball.unlink(missing_ok=True)
    image_id = engine.image_id(reference)
    if image_id is None:
        raise ToolchainError(f"toolchain {toolchain.name}: docker import did not produce {reference}")
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
            project=project,
        )
    return image_id


@contextmanager
def _named(toolchain: Toolchain) -> Iterator[None]:
    """Errors of the bootstrap machinery, which knows no toolchain, prefixed with the toolchain's name."""
    try:
        yield
    except ToolchainError as error:
        raise ToolchainError(f"toolchain {toolchain.name}: {error.message}", hint=error.hint) from error


def native_architecture() -> str:
    """This machine's Debian architecture, which a bootstrapped image has (mmdebstrap's default)."""
    return subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()


def _run_mmdebstrap(
    toolchain: Toolchain, tarball: Path, log_path: Path, native: str, progress: Progress
) -> None:
    """Run mmdebstrap, streaming its log to a file and its step names to the progress view."""
    command = mmdebstrap_command(toolchain, tarball, native)
    with log_path.open("w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if line.startswith("I: "):
                progress("mmdebstrap: " + line[3:].strip().rstrip("."))
        code = process.wait()
    if code != 0:
        text = log_path.read_text(errors="replace")
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
        debs = debian.download(
            unpack,
            facts.installed,
            facts.sources,
            state=work_dir / f"{toolchain.name}-apt",
            native=native,
            log=log_path,
            progress=progress,
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
