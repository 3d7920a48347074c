"""What `osless lock` writes (lock.py renders it): the exact packages a toolchain's image would be made
of, found the way it would be made (make.py) but never loaded. A toolchain with a bootstrap is
bootstrapped without its lock into a scratch tarball (apt's lists kept for its suite's Release date);
a derived one's layer is planned on its base's image, which the toolchain stage provisions first
(stages/toolchain.py: make_lock). The downloads are kept for the next build.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from orchestrator.bootstrap import debian, layer, rootfs
from orchestrator.bootstrap.lock import Lock, suite_release_date, wheel_pin
from orchestrator.bootstrap.lock_checks import requested_packages
from orchestrator.bootstrap.make import download_unpack, named, native_architecture, run_mmdebstrap
from orchestrator.bootstrap.spec import (
    bootstrap_packages,
    library_packages,
    recipe_spec_hash,
    unpack_packages,
)
from orchestrator.engine import Engine
from orchestrator.errors import ToolchainError
from orchestrator.recipe.model import Toolchain

Progress = Callable[[str], None]


def bootstrap_lock(toolchain: Toolchain, work_dir: Path, progress: Progress) -> Lock:
    """What `osless lock` writes for a toolchain with a bootstrap: the toolchain bootstrapped without its
    lock into a scratch tarball (apt's lists kept, never imported), its installed packages, its suite's
    Release date and the versions its `unpack` packages resolve to (downloaded as a bootstrap would, so
    kept for it)."""
    unlocked = dataclasses.replace(toolchain, lock=None)
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
        run_mmdebstrap(unlocked, tarball, log_path, native, progress, keep_lists=True)
        progress("reading the installed packages and the suite's Release date")
        facts = rootfs.read_facts(tarball)
        date = suite_release_date(rootfs.release_files(tarball), toolchain.bootstrap.suite)
        debs: list[Path] = []
        if unpack:
            with named(toolchain):
                debs = download_unpack(
                    unlocked,
                    unpack,
                    facts,
                    work_dir=work_dir,
                    log_path=log_path,
                    native=native,
                    progress=progress,
                )
    finally:
        tarball.unlink(missing_ok=True)
    with named(toolchain):
        unpacked = {package: debian.deb_package(deb)[1] for package, deb in zip(unpack, debs, strict=True)}
    return Lock(
        toolchain=toolchain.name,
        spec=recipe_spec_hash(unlocked),
        suite=toolchain.bootstrap.suite,
        release_date=date,
        requested=tuple(requested_packages(unlocked)),
        packages=facts.installed,
        unpack=unpacked,
        wheels=tuple(wheel_pin(w.name, w.version, w.sha256) for w in toolchain.bootstrap.wheels),
    )


def layer_lock(engine: Engine, toolchain: Toolchain, base: str, work_dir: Path, progress: Progress) -> Lock:
    """A derived toolchain's lock (`toolchain` without its own): its layer planned against `base`, its
    base's image, provisioned by the caller (resolved and downloaded on the host, as layering does, so
    the files are kept for it), and the versions of what the plan holds. Nothing is installed."""
    assert toolchain.base is not None
    facts = layer.image_facts(
        engine.read_from_image(base, "/var/lib/dpkg/status"),
        engine.read_from_image(base, "/etc/apt"),
        (engine.image_labels(base) or {}).get(layer.LIBRARIES_LABEL, "").split(),
    )
    unpack = unpack_packages(toolchain)
    state = work_dir / f"{toolchain.name}-apt"
    with named(toolchain):
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
        requested=tuple(requested_packages(toolchain)),
        packages=packages,
        libraries={deb.package: deb.version for deb in plan.libraries},
        unpack=unpacked,
    )
