"""Making a toolchain image, bootstrapped or layered; its tag and what shapes it are spec.py's.

A bootstrap runs mmdebstrap with a fixed SOURCE_DATE_EPOCH (spec.TOOLCHAIN_EPOCH), adds the files of
the `unpack` packages (debian.py) and of the pinned `wheels` (wheels.py) to its tarball (rootfs.py),
and turns it into an image archive osless writes itself and `docker load`s (image/toolchain_archive.py).
No `docker import` or `docker commit`: they stamp the time, and the same spec and package versions must
give the same image id on every machine.

A layer (a toolchain that extends another, or a bootstrap's `libraries`) has its packages resolved and
downloaded on the host (layer.py), installed in a container of the base image (root, no network,
limits); what the container changed becomes one normalized layer, loaded above the base's layers. A
locked toolchain must install exactly its locked versions (lock_checks.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from orchestrator.bootstrap import debian, layer, rootfs, wheels
from orchestrator.bootstrap.lock import shown, versions_not_found
from orchestrator.bootstrap.lock_checks import check_installed, hint_relock, relock_hint
from orchestrator.bootstrap.spec import (
    BASE_LABEL,
    DPKG_EXCLUDES,
    SPEC_LABEL,
    TOOLCHAIN_EPOCH,
    TOOLCHAIN_LABEL,
    bootstrap_packages,
    library_packages,
    mmdebstrap_command,
    spec_hash,
    unpack_packages,
)
from orchestrator.engine import ContainerSpec, Engine
from orchestrator.errors import ToolchainError
from orchestrator.image import toolchain_archive
from orchestrator.outputs.sizes import human_size
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import GiB, Limits, MiB, Toolchain

# The layer container installs packages as root: dpkg sets owners and modes, apt drops to _apt.
LAYER_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETFCAP", "SETGID", "SETUID")
LAYER_LIMITS = Limits(memory=2 * GiB, pids=1024, cpus=2.0)
LAYER_TIMEOUT = 1800.0
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Progress = Callable[[str], None]


def bootstrap_image(
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
        with named(toolchain):
            wheel_files = [
                wheels.fetch(wheel, work_dir / "downloads", progress) for wheel in toolchain.bootstrap.wheels
            ]
        native = native_architecture()
        run_mmdebstrap(toolchain, tarball, log_path, native, progress)
        if toolchain.lock is not None:
            progress("checking the installed packages against the lock")
            check_installed(toolchain, toolchain.lock.packages, rootfs.read_facts(tarball).installed)
        with named(toolchain):
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
        imported = image_id
        image_id = layer_image(
            engine,
            toolchain,
            base=reference,
            base_id=imported,
            reference=reference,
            additions=([], libraries, []),
            work_dir=work_dir,
            progress=progress,
        )
        # The bootstrapped image lost its tag to the layered one: it is only an intermediate.
        if imported != image_id:
            engine.remove_unused_image(imported)
    return image_id


def run_mmdebstrap(
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
                hint=f"{relock_hint(toolchain)}; full log: {log_path}",
            )
        with hint_relock(toolchain):  # e.g. apt refusing to downgrade to a locked version
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
        with hint_relock(toolchain):
            debs = download_unpack(
                toolchain,
                unpack,
                rootfs.read_facts(tarball),
                work_dir=work_dir,
                log_path=log_path,
                native=native,
                progress=progress,
            )
    with rootfs.appending(tarball) as appender:
        for package, deb in zip(unpack, debs, strict=True):
            added = debian.unpack(deb, appender, package, DPKG_EXCLUDES)
            progress(f"unpack {package}: {added} files added{_kept(appender)}")
        for wheel, path in zip(toolchain.bootstrap.wheels, wheel_files, strict=True):
            added = appender.add_wheel(path, f"wheel {wheel.name}")
            progress(f"wheel {wheel.name}: {added} files added under /{rootfs.WHEELS_DIR}{_kept(appender)}")


def download_unpack(
    toolchain: Toolchain,
    unpack: list[str],
    facts: rootfs.RootfsFacts,
    *,
    work_dir: Path,
    log_path: Path,
    native: str,
    progress: Progress,
) -> list[Path]:
    """The `unpack` packages' .deb files, downloaded with apt on the host against the image's own packages
    and sources (`facts`), in the versions the toolchain's lock names when it has one."""
    return debian.download(
        unpack,
        facts.installed,
        facts.sources,
        state=work_dir / f"{toolchain.name}-apt",
        native=native,
        log=log_path,
        progress=progress,
        pins=toolchain.lock.unpack if toolchain.lock is not None else {},
    )


def _kept(appender: rootfs.RootfsAppender) -> str:
    """ ", 2 already there" for the paths the last addition left as they were (then forgets them)."""
    count = len(appender.kept)
    appender.kept.clear()
    return f", {count} already there (kept)" if count else ""


def layer_image(
    engine: Engine,
    toolchain: Toolchain,
    *,
    base: str,
    base_id: str,
    reference: str,
    additions: tuple[list[str], list[str], list[str]],
    work_dir: Path,
    progress: Progress,
) -> str:
    """Packages, libraries and unpack packages installed on the image `base` (its id: `base_id`) as one
    layer, loaded as `reference` (base's layers plus that one, written by osless: the same additions on
    the same base give the same image id everywhere): the new image's id."""
    packages, libraries, unpack = additions
    log_path = work_dir / f"{toolchain.name}.log"
    log_path.write_text(f"layer on {base} ({base_id})\n")
    base_labels = engine.image_labels(base) or {}
    earlier_libraries = base_labels.get(layer.LIBRARIES_LABEL, "").split()
    progress(f"reading the packages and apt sources of {base}")
    facts = layer.image_facts(
        engine.read_from_image(base, "/var/lib/dpkg/status"),
        engine.read_from_image(base, "/etc/apt"),
        earlier_libraries,
    )
    with named(toolchain):
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
        BASE_LABEL: base_id,
        layer.LIBRARIES_LABEL: " ".join(
            sorted({*earlier_libraries, *(deb.package for deb in plan.libraries)})
        ),
    }
    progress(f"installing {_count(plan)} in a container of {base} (no network)")
    spec = ContainerSpec(
        image=base,
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
        image_id = None if written is None else _load_layered(engine, base_id, written, reference, labels)
    finally:
        layer_path.unlink(missing_ok=True)
    if image_id is None:
        how = "timed out" if result.timed_out else f"exited with {result.exit_code}"
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        errors = [line for line in lines if line.startswith(("E:", "dpkg:", "tar:"))] or lines
        raise ToolchainError(
            f"toolchain {toolchain.name}: installing on {base} {how}: {' / '.join(errors[-3:])}",
            hint=f"full log: {log_path}",
        )
    progress(f"loaded {reference}")
    return image_id


def check_planned(toolchain: Toolchain, plan: layer.LayerPlan) -> None:
    """A locked derived toolchain's layer must hold exactly the locked packages and libraries."""
    assert toolchain.lock is not None
    with named(toolchain):
        packages = dict(debian.deb_package(path) for path in plan.install)
    check_installed(toolchain, toolchain.lock.packages, packages)
    check_installed(toolchain, toolchain.lock.libraries, {deb.package: deb.version for deb in plan.libraries})


def _load_layered(
    engine: Engine,
    base_id: str,
    written: toolchain_archive.LayerFile,
    reference: str,
    labels: Mapping[str, str],
) -> str:
    """The image `base_id` plus the written layer, loaded as `reference` (the archive carries only the
    new layer: the engine has the base's); its id, checked to be the config's digest."""
    attributes = engine.image_attributes(base_id)
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


@contextmanager
def named(toolchain: Toolchain) -> Iterator[None]:
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
