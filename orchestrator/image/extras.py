"""The one registry of image extras: the few files a real service needs beside its binary.

Each extra (`[image] extras` in a recipe) says what it adds to the scratch image, how `osless inspect`
tells an image has it, the Debian package its files come from (an SBOM component), and the `needs.*`
finding it satisfies (the verifier names the extra a binary needs). The recipe reader takes the names
from here, so an extra is one entry in EXTRAS.

CA certificates and time zones are taken from the service's toolchain image, so they are pinned with
it (same toolchain image, same bytes); the user database is written here; `/tmp` is an empty,
world-writable directory. Extra files from the source tree are copied as they are.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import EngineError
from orchestrator.image import oci

if TYPE_CHECKING:  # the recipe reader imports this registry: no import of recipes or engine at run time
    from orchestrator.engine import Engine
    from orchestrator.image.reader import ImageContents
    from orchestrator.recipe.model import ImageSpec

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ZONEINFO = "/usr/share/zoneinfo"
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n"

# What an extra adds, from the engine, the service's toolchain image and its [image] table.
Files = Callable[["Engine", str, "ImageSpec"], list[oci.FileEntry]]


@dataclass(frozen=True, kw_only=True)
class Extra:
    """One image extra: what it adds, how an image shows it, where it comes from, what it satisfies."""

    name: str
    description: str  # what an image holding it has, as inspect says it
    files: Files
    provided_by: Callable[[ImageContents], bool]
    package: str | None = None  # the Debian package its files come from (toolchain image)

    @property
    def finding(self) -> str:
        """The verifier's finding id for a binary that needs this extra."""
        return f"needs.{self.name}"

    @property
    def hint(self) -> str:
        """How a recipe adds it."""
        return f'add extras = ["{self.name}"] to [image]'


def _ca_bundle(engine: Engine, toolchain_image: str, image: ImageSpec) -> list[oci.FileEntry]:
    return _from_toolchain(engine, toolchain_image, CA_BUNDLE, ())


def _zoneinfo(engine: Engine, toolchain_image: str, image: ImageSpec) -> list[oci.FileEntry]:
    return _from_toolchain(engine, toolchain_image, ZONEINFO, image.zones)


def _passwd(engine: Engine, toolchain_image: str, image: ImageSpec) -> list[oci.FileEntry]:
    return [
        oci.FileEntry(path="/etc/passwd", data=PASSWD.encode(), mode=0o644),
        oci.FileEntry(path="/etc/group", data=GROUP.encode(), mode=0o644),
    ]


def _tmp(engine: Engine, toolchain_image: str, image: ImageSpec) -> list[oci.FileEntry]:
    return [oci.FileEntry(path="/tmp", mode=0o1777, is_dir=True)]


EXTRAS: dict[str, Extra] = {
    extra.name: extra
    for extra in (
        Extra(
            name="ca-certificates",
            description=f"CA bundle ({CA_BUNDLE})",
            files=_ca_bundle,
            provided_by=lambda contents: contents.has_file(CA_BUNDLE),
            package="ca-certificates",
        ),
        Extra(
            name="tzdata",
            description=f"time zone database ({ZONEINFO}/)",
            files=_zoneinfo,
            provided_by=lambda contents: contents.has_directory(ZONEINFO, populated=True),
            package="tzdata",
        ),
        Extra(
            name="passwd",
            description="user database (/etc/passwd)",
            files=_passwd,
            provided_by=lambda contents: contents.has_file("/etc/passwd"),
        ),
        Extra(
            name="tmp",
            description="temporary directory (/tmp)",
            files=_tmp,
            provided_by=lambda contents: contents.has_directory("/tmp"),
        ),
    )
}


def extra_files(engine: Engine, toolchain_image: str, image: ImageSpec, source: Path) -> list[oci.FileEntry]:
    """Every file the recipe's extras and `files` add to the image."""
    entries: list[oci.FileEntry] = []
    for extra in EXTRAS.values():
        if extra.name in image.extras:
            entries += extra.files(engine, toolchain_image, image)
    for target, relative in sorted(image.files.items()):
        file = source / relative
        entries.append(
            oci.FileEntry(path=target, data=file.read_bytes(), mode=0o755 if _executable(file) else 0o644)
        )
    return entries


def _executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)


def _from_toolchain(engine: Engine, image: str, path: str, only: Sequence[str]) -> list[oci.FileEntry]:
    """Regular files under path in the toolchain image; symbolic links inside it are copied as files.

    `only` narrows a directory to the named entries (e.g. time zones "Europe/Paris").
    """
    archive = engine.read_from_image(image, path)
    base = posixpath.dirname(path)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        top = posixpath.basename(path)
        wanted = {posixpath.join(top, zone) for zone in only}
        entries = []
        for name, member in sorted(members.items()):
            if wanted and not any(name == w or name.startswith(w + "/") for w in wanted):
                continue
            target = _resolve(member, members)
            if target is None:
                continue
            data = tar.extractfile(target)
            if data is not None:
                entries.append(oci.FileEntry(path=posixpath.join(base, name), data=data.read(), mode=0o644))
    if only and not entries:
        raise EngineError(f"none of {', '.join(only)} exists under {path} in {image}")
    return entries


def _resolve(member: tarfile.TarInfo, members: dict[str, tarfile.TarInfo]) -> tarfile.TarInfo | None:
    """The regular file a member is or links to in the archive; None for directories, dangling links."""
    seen = 0
    while member.issym() and seen < 16:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
        found = members.get(target)
        if found is None:
            return None
        member, seen = found, seen + 1
    return member if member.isfile() else None
