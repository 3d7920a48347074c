"""What shapes a toolchain image, and so names it: the packages it is made of, its spec hash, tag, labels.

A bootstrapped toolchain's image is tagged `osless-toolchain/<name>:<spec hash>`, a hash of everything
that shapes it: its suite, mirror, components, variant, packages (the base's plus every platform's),
`unpack` packages, wheels, libraries and the digest of its lock: a changed spec gives a new tag, so a
new image; the toolchain stage reuses an unchanged one. A toolchain that extends another hashes its
base's identity and its own additions, so changing them rebuilds only its layer. Every date in an
image is TOOLCHAIN_EPOCH: the same spec and package versions give the same image id on every machine
(make.py writes it). The mmdebstrap call is decided here too, as data. Pure: no processes, no engine,
no files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from orchestrator.bootstrap.debian import foreign_architectures
from orchestrator.bootstrap.lock import include_specs
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import Bootstrap, Layer, Toolchain

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
# Documentation, manual pages and locales are never needed to compile: leaving them out saves ~15%.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")


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
