"""The SBOM of each service image (CycloneDX JSON), listing what is really inside each platform's binary.

What a binary holds is read from the binary itself, never from the recipe, by its language
(orchestrator/languages/): a Go binary's embedded build info names the Go version (the standard
library) and every module linked in; a C binary's contents say which libc it was linked against. The
libc's and the compiler's versions come from the toolchain image's package database, read once per
toolchain image per run.

One SBOM per service image (index): the image is what people pull, and one document lists every platform
binary as its own `application` component with the modules or libc it depends on. Platforms mostly share
their Go modules, which then appear once and are depended on by each binary.

The bytes are deterministic: the timestamp is SOURCE_DATE_EPOCH, the serial number a UUIDv5 of the rest
of the document, components are sorted, and keys are sorted. No host path goes in, so two clean builds
in different output directories give the same SBOM (and the same index digest).

The SBOM is not in the image's layer: it is a blob of the OCI layout named by the index's annotations
(`oci.SBOM_DIGEST_ANNOTATION`). It cannot name the index digest itself, which depends on it: its
metadata component has a `pkg:oci` purl only when a caller passes an index digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot5
from cyclonedx.schema import SchemaVersion
from packageurl import PackageURL

from orchestrator import __version__
from orchestrator.engine import ContainerSpec, Engine
from orchestrator.errors import EngineError, OslessError
from orchestrator.image import oci
from orchestrator.image.extras import EXTRAS
from orchestrator.outputs.atomic import write_atomic
from orchestrator.outputs.components import (
    SERVICE_SOURCE,
    DebianPackage,
    deb_component,
    properties,
    wheel_key,
)
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import Platform
from orchestrator.recipe.model import Service
from orchestrator.stages.toolchain import TOOLCHAIN_WORK_DIR, ToolchainImage
from orchestrator.verify.context import read_context

SBOM_FILE = "sbom.cdx.json"  # in out/<service>/
MEDIA_TYPE = "application/vnd.cyclonedx+json"
SCHEMA_VERSION = SchemaVersion.V1_5
# Serial numbers are uuid5(this, sha256 of the document without them): same content, same serial.
SERIAL_NAMESPACE = uuid.UUID("956477f7-dd3f-40b3-bd7d-6ca967652bea")
_PLACEHOLDER_SERIAL = uuid.UUID(int=0)
# Installed packages ("ii"), then the distribution as purls name it ("debian-13"), then the name and
# version of each wheel the bootstrap unpacked under /opt/wheels (its .dist-info/METADATA), then the
# `-dev` packages whose file lists name a static archive (`<name>:<arch>.list` or `<name>.list` in dpkg's
# database), in one short container.
_PACKAGES_SCRIPT = (
    "dpkg-query -W -f '${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n' && "
    "if [ -r /etc/os-release ]; then . /etc/os-release; "
    'printf "#distro\\t%s-%s\\n" "$ID" "${VERSION_ID:-$VERSION_CODENAME}"; fi && '
    'for m in /opt/wheels/*.dist-info/METADATA; do if [ -f "$m" ]; then '
    "printf '#wheel\\t%s\\t%s\\n' \"$(sed -n 's/^Name: *//p' \"$m\" | head -n 1)\" "
    '"$(sed -n \'s/^Version: *//p\' "$m" | head -n 1)"; fi; done && '
    "for l in /var/lib/dpkg/info/*-dev.list /var/lib/dpkg/info/*-dev:*.list; do "
    'if [ -f "$l" ] && grep -q "[.]a\\$" "$l"; then l=${l##*/}; printf "#static\\t%s\\n" "${l%.list}"; fi; '
    "done"
)
_WHEEL_FIELD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,127}")  # a wheel's name or version
_cache: dict[str, dict[str, DebianPackage]] = {}  # toolchain image id -> its packages
_cache_lock = threading.Lock()


@dataclass(frozen=True, kw_only=True)
class PlatformBinary:
    """One platform's binary as it went into the image."""

    platform: Platform
    path: Path  # on the host; only its bytes go into the SBOM
    image_digest: str | None = None  # the platform image's manifest digest
    records: Path | None = None  # the files the build kept for the SBOM (Language.build_records)


def parse_packages(text: str) -> dict[str, DebianPackage]:
    """`_PACKAGES_SCRIPT`'s output: installed packages by name (the first of a name installed twice), and
    each also by `name:architecture`, which tells a multiarch package's copies apart (musl-dev:arm64),
    marked when they ship a static archive; the wheels under /opt/wheels by `wheel_key(name)`
    ("pypi/ziglang")."""
    distro = None
    rows: list[list[str]] = []
    wheels: list[DebianPackage] = []
    static: set[str] = set()  # "name:arch" or "name" of the -dev packages shipping a static archive
    for line in text.splitlines():
        fields = line.rstrip("\r").split("\t")
        if fields[0] == "#distro" and len(fields) == 2 and not fields[1].endswith("-"):
            distro = fields[1]
        elif fields[0] == "#static" and len(fields) == 2:
            static.add(fields[1])
        elif fields[0] == "#wheel" and len(fields) == 3 and all(map(_WHEEL_FIELD.fullmatch, fields[1:])):
            wheels.append(DebianPackage(name=fields[1], version=fields[2], architecture="", purl_type="pypi"))
        elif len(fields) == 4 and fields[0].startswith("ii") and fields[1] and fields[2]:
            rows.append(fields[1:])
    packages: dict[str, DebianPackage] = {}
    for name, version, architecture in rows:
        package = DebianPackage(
            name=name,
            version=version,
            architecture=architecture,
            distro=distro,
            static_archive=f"{name}:{architecture}" in static or name in static,
        )
        packages.setdefault(name, package)
        packages.setdefault(f"{name}:{architecture}", package)
    for wheel in wheels:
        packages.setdefault(wheel_key(wheel.name), wheel)
    return packages


def toolchain_packages(
    engine: Engine, image: ToolchainImage, kept: Path | None = None
) -> dict[str, DebianPackage]:
    """The toolchain image's installed Debian packages, read once per image id (a short container): per
    run, and with `kept` (out/.toolchains) across runs, its listing kept there under the image id,
    which names the image's content, so a later SBOM costs no container start.

    Empty when the image has no dpkg (not Debian) or the container cannot run: the SBOM then names
    the libc without a version rather than failing the run.
    """
    with _cache_lock:
        if image.image_id in _cache:
            return _cache[image.image_id]
    listing = kept / f"{image.image_id.removeprefix('sha256:')}.packages" if kept else None
    try:
        text = listing.read_text() if listing else None
    except (OSError, UnicodeDecodeError):
        text = None
    if text is None:
        try:
            result = engine.run(
                ContainerSpec(
                    image=image.reference, command=["sh", "-c", _PACKAGES_SCRIPT], role="sbom", timeout=120
                )
            )
        except EngineError:
            return {}
        if result.exit_code != 0 or result.timed_out:
            return {}
        text = result.stdout.decode("utf-8", "replace")
        if listing:
            with contextlib.suppress(OSError):  # only the next run's shortcut is lost
                listing.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(listing, text.encode())
    packages = parse_packages(text)
    with _cache_lock:
        return _cache.setdefault(image.image_id, packages)


# ---------------------------------------------------------------------------------------------------
# The document


def sbom_for(
    service: Service,
    binaries: Sequence[PlatformBinary],
    *,
    packages: Mapping[str, DebianPackage],
    provenance: Provenance,
    index_digest: str | None = None,
) -> bytes:
    """The CycloneDX 1.5 JSON SBOM of one service image: the same inputs give the same bytes."""
    components: dict[str, Component] = {}  # bom-ref -> component, shared between platforms
    depends: dict[str, list[str]] = {}
    tools: dict[str, Component] = {}
    osless = Component(type=ComponentType.APPLICATION, name="osless", version=__version__, bom_ref="osless")
    tools["osless"] = osless

    image = Component(
        type=ComponentType.CONTAINER,
        name=service.name,
        version=service.image.tag,
        bom_ref=f"image:{service.image.repository}:{service.image.tag}",
        purl=_oci_purl(service, index_digest),
        properties=properties(
            {"image:repository": service.image.repository, "source:revision": provenance.revision}
        ),
    )
    depends[_ref(image)] = []
    source = _source_component(service, provenance)
    linked_by: dict[str, set[str]] = {}  # bom-ref of what a binary holds -> the platforms holding it

    for binary in sorted(binaries, key=lambda b: b.platform.name):
        platform = binary.platform
        context = read_context(binary.path)  # what the binary holds, never what the recipe says
        sha256 = hashlib.sha256(binary.path.read_bytes()).hexdigest()
        language = context.language
        libc = language.libc(context, packages)
        component = Component(
            type=ComponentType.APPLICATION,
            name=service.build.output,
            bom_ref=f"binary:{platform.name}:/{service.build.output}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)],
            properties=properties(
                {
                    "platform": platform.name,
                    "linkage": context.facts.linkage.value,
                    "libc": libc,
                    "image:path": f"/{service.build.output}",
                    "image:manifest-digest": binary.image_digest,
                    **language.sbom_properties(context),
                }
            ),
        )
        inside = [
            source,
            *language.sbom_components(context, libc, platform, packages),
            *language.source_components(context, service.source, binary.records or service.source),
        ]
        tool_packages = language.tool_packages(context, libc, platform, packages)
        for tool in tool_packages:
            tools.setdefault(tool.purl.to_string(), deb_component(tool, ComponentType.APPLICATION))
        for part in inside:
            components.setdefault(_ref(part), part)
            depends.setdefault(_ref(part), [])
            linked_by.setdefault(_ref(part), set()).add(platform.name)
        components[_ref(component)] = component
        depends[_ref(component)] = sorted({_ref(part) for part in inside})
        depends[_ref(image)].append(_ref(component))

    for ref, platforms in linked_by.items():  # the same module or package, in which platforms' binaries
        components[ref].properties.add(Property(name="osless:platforms", value=",".join(sorted(platforms))))

    for extra in service.image.extras:
        package = packages.get(EXTRAS[extra].package or "")  # an extra made of a toolchain package
        if package is not None:
            data = deb_component(package, ComponentType.DATA, **{"image:extra": extra})
            components.setdefault(_ref(data), data)
            depends.setdefault(_ref(data), [])
            depends[_ref(image)].append(_ref(data))

    bom = Bom(
        components=components.values(),
        serial_number=_PLACEHOLDER_SERIAL,
        metadata=BomMetaData(
            component=image,
            tools=ToolRepository(components=tools.values()),
            timestamp=datetime.fromtimestamp(provenance.source_date_epoch, tz=timezone.utc),
        ),
    )
    by_ref = {**components, _ref(image): image}
    for ref, refs in depends.items():
        bom.register_dependency(by_ref[ref], [by_ref[r] for r in refs])
    draft = _serialize(bom)
    bom.serial_number = uuid.uuid5(SERIAL_NAMESPACE, hashlib.sha256(draft).hexdigest())
    return _serialize(bom)


def _source_component(service: Service, provenance: Provenance) -> Component:
    """The service's own source tree, which every binary is built from: what the toolchain image and the
    fetched dependencies do not account for (a C program's own files, and whatever it vendors)."""
    return Component(
        type=ComponentType.FILE,  # its files; `application` is what each binary is
        name=f"{service.name} source",
        version=provenance.revision,
        bom_ref=f"source:{service.name}",
        properties=properties(
            {
                "origin": SERVICE_SOURCE,
                "source:revision": provenance.revision,
                "source:url": provenance.source_url,
            }
        ),
    )


def write_sbom(out_root: Path, service: Service, document: bytes) -> Path:
    """out/<service>/sbom.cdx.json, written atomically."""
    path = out_root / service.name / SBOM_FILE
    write_atomic(path, document)
    return path


def _oci_purl(service: Service, index_digest: str | None) -> PackageURL | None:
    if index_digest is None:
        return None
    return PackageURL(
        type="oci",
        name=service.image.repository.rsplit("/", 1)[-1].lower(),
        version=index_digest,
        qualifiers={"tag": service.image.tag},
    )


def _ref(component: Component) -> str:
    return str(component.bom_ref.value)


def _serialize(bom: Bom) -> bytes:
    """The library's JSON with sorted keys and two-space indents: stable whatever its key order."""
    text = JsonV1Dot5(bom).output_as_string()
    return (json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_service_sbom(
    engine: Engine,
    service: Service,
    *,
    toolchain: ToolchainImage | OslessError,
    binaries: Sequence[PlatformBinary],
    provenance: Provenance,
    out_root: Path,
    inputs_key: str,
) -> tuple[Path, oci.Blob]:
    """The service image's SBOM, written to out/<service>/sbom.cdx.json, as a blob for its OCI layout.

    `toolchain` is the run's entry for the service's toolchain (an error when it could not be
    provisioned, which cannot happen when a target passed): its packages give the versions.
    `inputs_key` stands for everything the SBOM is made of (its targets' cache keys): when the SBOM
    on disk was made from the same, it is reused instead of asking the toolchain image again.
    """
    path = out_root / service.name / SBOM_FILE
    key_file = path.with_name(path.name + ".key")
    if path.is_file() and key_file.is_file() and key_file.read_text() == inputs_key:
        return path, oci.Blob(media_type=MEDIA_TYPE, data=path.read_bytes())
    key_file.unlink(missing_ok=True)
    packages = (
        toolchain_packages(engine, toolchain, out_root / TOOLCHAIN_WORK_DIR)
        if isinstance(toolchain, ToolchainImage)
        else {}
    )
    document = sbom_for(service, binaries, packages=packages, provenance=provenance)
    written = write_sbom(out_root, service, document)
    write_atomic(key_file, inputs_key.encode())
    return written, oci.Blob(media_type=MEDIA_TYPE, data=document)
