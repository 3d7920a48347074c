"""Stage 1: provision each toolchain image once.

A toolchain with a bootstrap section becomes an image built from Debian packages (mmdebstrap, then
`docker import`), tagged with a hash of its spec: a changed spec gives a new image, an unchanged one is
reused. Before the import, the files of the `unpack` packages and of the pinned `wheels` are added to
mmdebstrap's tarball (orchestrator/bootstrap). A toolchain that names an existing image uses it as is
(no registry is assumed reachable).
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

from orchestrator.bootstrap import debian, rootfs, wheels
from orchestrator.bootstrap.debian import foreign_architectures
from orchestrator.engine import Engine
from orchestrator.errors import ToolchainError
from orchestrator.recipe.model import Bootstrap, Toolchain

# Bump when the way images are bootstrapped changes, so old images are not reused.
BOOTSTRAP_FORMAT = 1
IMAGE_REPOSITORY = "osless-toolchain"
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


def bootstrap_packages(toolchain: Toolchain) -> list[str]:
    """Base packages plus every platform's cross packages: one image serves all the toolchain's platforms."""
    assert toolchain.bootstrap is not None
    return _sorted_union(toolchain.bootstrap.packages, (p.packages for p in toolchain.platforms.values()))


def unpack_packages(toolchain: Toolchain) -> list[str]:
    """The bootstrap's and every platform's `unpack` packages, sorted, each once."""
    assert toolchain.bootstrap is not None
    return _sorted_union(toolchain.bootstrap.unpack, (p.unpack for p in toolchain.platforms.values()))


def _sorted_union(base: Iterable[str], per_platform: Iterable[Iterable[str]]) -> list[str]:
    return sorted({*base, *(package for packages in per_platform for package in packages)})


def spec_hash(toolchain: Toolchain) -> str:
    """A short hash of everything that shapes the bootstrapped image (not of build-time env)."""
    assert toolchain.bootstrap is not None
    spec = {
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
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def image_reference(toolchain: Toolchain) -> str:
    """The tag of a bootstrapped toolchain image: `osless-toolchain/<name>:<spec hash>`."""
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
    engine: Engine, toolchain: Toolchain, work_dir: Path, progress: Progress, source: Engine | None = None
) -> ToolchainImage:
    """Make sure the toolchain's image is in the engine: already there, copied from `source` (another
    engine that has it: the same image id everywhere), or bootstrapped."""
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
        image_id = _bootstrap(engine, toolchain, reference, work_dir, progress)
    return ToolchainImage(name=toolchain.name, reference=reference, image_id=image_id, bootstrapped=True)


def _bootstrap(
    engine: Engine, toolchain: Toolchain, reference: str, work_dir: Path, progress: Progress
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
        engine.import_image(
            tarball, reference, changes=[f"ENV PATH={IMAGE_PATH}", f"LABEL osless.toolchain={toolchain.name}"]
        )
    finally:
        tarball.unlink(missing_ok=True)
    image_id = engine.image_id(reference)
    if image_id is None:
        raise ToolchainError(f"toolchain {toolchain.name}: docker import did not produce {reference}")
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
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
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
