"""The few files a real service needs beside its binary, added to the scratch image on request.

CA certificates and time zones are taken from the service's toolchain image, so they are pinned with
it (same toolchain image, same bytes); the user database is written here; `/tmp` is an empty,
world-writable directory. Extra files from the source tree are copied as they are.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Sequence
from pathlib import Path

from orchestrator.engine import Engine
from orchestrator.errors import EngineError
from orchestrator.image import oci
from orchestrator.recipe.loader import ImageSpec

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ZONEINFO = "/usr/share/zoneinfo"
# What each extra puts in the image; the verifier's `needs.*` findings name these extras.
EXTRAS = {
    "ca-certificates": f"the CA bundle {CA_BUNDLE} (for TLS clients)",
    "tzdata": f"time zones under {ZONEINFO} (all, or the zones listed in image.zones)",
    "passwd": "/etc/passwd and /etc/group with root, nonroot (65532) and nobody (65534)",
    "tmp": "an empty, world-writable /tmp",
}
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n"


def extra_files(engine: Engine, toolchain_image: str, image: ImageSpec, source: Path) -> list[oci.FileEntry]:
    """Every file the recipe's extras and `files` add to the image."""
    entries: list[oci.FileEntry] = []
    if "ca-certificates" in image.extras:
        entries += _from_toolchain(engine, toolchain_image, CA_BUNDLE, ())
    if "tzdata" in image.extras:
        entries += _from_toolchain(engine, toolchain_image, ZONEINFO, image.zones)
    if "passwd" in image.extras:
        entries += [
            oci.FileEntry(path="/etc/passwd", data=PASSWD.encode(), mode=0o644),
            oci.FileEntry(path="/etc/group", data=GROUP.encode(), mode=0o644),
        ]
    if "tmp" in image.extras:
        entries.append(oci.FileEntry(path="/tmp", mode=0o1777, is_dir=True))
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
