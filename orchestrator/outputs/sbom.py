"""The SBOM of each service image (CycloneDX JSON), listing what is really inside each platform's binary.

What a binary holds is read from the binary itself, never from the recipe: a Go binary's embedded build
info names the Go version (the standard library) and every module linked in; a C binary's contents say
which libc it was linked against (glibc's tunables string or ABI-tag note; a C binary without them is
taken for musl when the toolchain has musl-dev). The libc's and the compiler's versions come from the
toolchain image's package database, read once per toolchain image per run.

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

import hashlib
import io
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
from elftools.elf.elffile import ELFFile
from packageurl import PackageURL

from orchestrator import __version__
from orchestrator.elf import scan as elfscan
from orchestrator.elf.goinfo import GoBuildInfo, Module
from orchestrator.engine import ContainerSpec, Engine
from orchestrator.errors import EngineError, OslessError
from orchestrator.image import oci
from orchestrator.outputs.report import write_atomic
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import Platform
from orchestrator.recipe.loader import Service
from orchestrator.stages.toolchain import ToolchainImage
from orchestrator.verify import verifier as verify

SBOM_FILE = "sbom.cdx.json"  # in out/<service>/
MEDIA_TYPE = "application/vnd.cyclonedx+json"
SCHEMA_VERSION = SchemaVersion.V1_5
# Serial numbers are uuid5(this, sha256 of the document without them): same content, same serial.
SERIAL_NAMESPACE = uuid.UUID("956477f7-dd3f-40b3-bd7d-6ca967652bea")
_PLACEHOLDER_SERIAL = uuid.UUID(int=0)
# Installed packages ("ii"), then the distribution as purls name it ("debian-13"), in one short container.
_PACKAGES_SCRIPT = (
    "dpkg-query -W -f '${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n' && "
    "if [ -r /etc/os-release ]; then . /etc/os-release; "
    'printf "#distro\\t%s-%s\\n" "$ID" "${VERSION_ID:-$VERSION_CODENAME}"; fi'
)
# Image extras that are files of a Debian package of the toolchain image.
EXTRA_PACKAGES = {"ca-certificates": "ca-certificates", "tzdata": "tzdata"}

_cache: dict[str, dict[str, DebianPackage]] = {}  # toolchain image id -> its packages
_cache_lock = threading.Lock()


@dataclass(frozen=True, kw_only=True)
class DebianPackage:
    """An installed package of a toolchain image."""

    name: str
    version: str
    architecture: str  # the package's own: "amd64", or "all" (e.g. libc6-dev-arm64-cross)
    distro: str | None = None  # "debian-13": the purl qualifier vulnerability scanners match on

    @property
    def purl(self) -> PackageURL:
        qualifiers = {"arch": self.architecture} | ({"distro": self.distro} if self.distro else {})
        return PackageURL(
            type="deb", namespace="debian", name=self.name, version=self.version, qualifiers=qualifiers
        )


@dataclass(frozen=True, kw_only=True)
class PlatformBinary:
    """One platform's binary as it went into the image."""

    platform: Platform
    path: Path  # on the host; only its bytes go into the SBOM
    image_digest: str | None = None  # the platform image's manifest digest


def parse_packages(text: str) -> dict[str, DebianPackage]:
    """`_PACKAGES_SCRIPT`'s output: installed packages by name (the first of a name installed twice)."""
    distro = None
    rows: list[list[str]] = []
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "#distro" and len(fields) == 2 and not fields[1].endswith("-"):
            distro = fields[1]
        elif len(fields) == 4 and fields[0].startswith("ii") and fields[1] and fields[2]:
            rows.append(fields[1:])
    packages: dict[str, DebianPackage] = {}
    for name, version, architecture in rows:
        packages.setdefault(
            name, DebianPackage(name=name, version=version, architecture=architecture, distro=distro)
        )
    return packages


def toolchain_packages(engine: Engine, image: ToolchainImage) -> dict[str, DebianPackage]:
    """The toolchain image's installed Debian packages, read once per image id per run (a short container).

    Empty when the image has no dpkg (not Debian) or the container cannot run: the SBOM then names
    the libc without a version rather than failing the run.
    """
    with _cache_lock:
        if image.image_id in _cache:
            return _cache[image.image_id]
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
    packages = parse_packages(result.stdout.decode("utf-8", "replace"))
    with _cache_lock:
        return _cache.setdefault(image.image_id, packages)


# ---------------------------------------------------------------------------------------------------
# What a binary holds


@dataclass(frozen=True, kw_only=True)
class _Binary:
    sha256: str
    linkage: str
    libc: str  # "glibc", "musl", "none" (a Go binary without cgo) or "unknown"
    go: GoBuildInfo | None


def _read_binary(path: Path, packages: Mapping[str, DebianPackage]) -> _Binary:
    data = path.read_bytes()
    facts = verify.read_elf_facts(path)
    contents = elfscan.read_contents(ELFFile(io.BytesIO(data)), data)
    if contents.glibc:
        libc = "glibc"
    elif facts.go is not None:
        libc = "none" if facts.go.cgo_enabled is not True else "unknown"
    else:
        # musl leaves no mark in a static binary; a C toolchain that has it is the evidence.
        libc = "musl" if "musl-dev" in packages else "unknown"
    return _Binary(
        sha256=hashlib.sha256(data).hexdigest(), linkage=facts.linkage.value, libc=libc, go=facts.go
    )


# ---------------------------------------------------------------------------------------------------
# Components


def _properties(values: Mapping[str, str | None]) -> list[Property]:
    return [Property(name=f"osless:{key}", value=value) for key, value in values.items() if value]


def _deb_component(
    package: DebianPackage, kind: ComponentType = ComponentType.LIBRARY, **properties: str
) -> Component:
    purl = package.purl
    return Component(
        type=kind,
        name=package.name,
        version=package.version,
        purl=purl,
        bom_ref=purl.to_string(),
        properties=_properties(properties),
    )


def _native(packages: Mapping[str, DebianPackage], name: str, platform: Platform) -> DebianPackage | None:
    """A package built for the platform's own architecture (what the native compiler links)."""
    package = packages.get(name)
    return package if package is not None and package.architecture == platform.debian_arch else None


def _libc_package(
    libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
) -> tuple[DebianPackage | None, bool]:
    """The package that provided the linked libc, and whether it is a cross package."""
    if libc == "musl":
        return _native(packages, "musl-dev", platform), False
    native = _native(packages, "libc6-dev", platform)
    if native is not None:
        return native, False
    return packages.get(f"libc6-dev-{platform.debian_arch}-cross"), True


def _libc_component(libc: str, platform: Platform, packages: Mapping[str, DebianPackage]) -> Component:
    package, _ = _libc_package(libc, platform, packages)
    if package is not None:
        return _deb_component(package, libc=libc)
    # Linked in, version unknown (a toolchain image without the package database): still listed.
    return Component(
        type=ComponentType.LIBRARY,
        name=libc,
        bom_ref=f"libc:{libc}:{platform.debian_arch}",
        properties=_properties({"libc": libc, "platform": platform.name}),
    )


def _compiler_packages(
    libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
) -> list[DebianPackage]:
    """gcc (native) or gcc-<triple> (cross), and the versioned gcc-N[-<triple>] it depends on; musl-gcc's
    musl-tools wraps the native gcc."""
    _, cross = _libc_package(libc, platform, packages)
    suffix = f"-{platform.gnu_triple}" if cross else ""
    names = ([f"gcc{suffix}"] if libc == "glibc" else ["musl-tools", "gcc"]) if libc != "unknown" else []
    found = [packages[name] for name in names if name in packages]
    gcc = packages.get(f"gcc{suffix}") if names else None
    major = re.match(r"(?:[0-9]+:)?([0-9]+)\.", gcc.version) if gcc else None
    versioned = packages.get(f"gcc-{major.group(1)}{suffix}") if major else None
    return found + ([versioned] if versioned else [])


def _go_version(info: GoBuildInfo) -> str:
    """The Go version as purls and OSV name it: "1.24.4" from "go1.24.4 X:nocoverageredesign"."""
    return info.go_version.split(" ", 1)[0].removeprefix("go")


def _go_purl(path: str, version: str | None) -> PackageURL:
    namespace, _, name = path.rpartition("/")
    return PackageURL(type="golang", namespace=namespace or None, name=name, version=version)


def _go_module(module: Module, role: str) -> Component:
    """A module as linked: a replacement by another module version is that version; a replacement by a
    directory keeps the original path, without a version in its purl (the code is not that version)."""
    replace = module.replace
    linked = replace if replace is not None and replace.version and replace.version != "(devel)" else module
    by_directory = replace is not None and linked is module
    version = None if by_directory or linked.version in ("", "(devel)") else linked.version
    purl = _go_purl(linked.path, version)
    properties = {
        "go:module": role,
        "go:sum": linked.sum,
        "go:replaces": f"{module.path} {module.version}" if linked is not module else None,
        "go:replaced-by": replace.path if by_directory and replace is not None else None,
    }
    return Component(
        type=ComponentType.LIBRARY,
        name=linked.path,
        version=(replace.version if by_directory and replace is not None else linked.version) or None,
        purl=purl,
        bom_ref=purl.to_string(),
        properties=_properties(properties),
    )


def _go_components(info: GoBuildInfo) -> list[Component]:
    """The standard library at the binary's Go version, the main module and every dependency module."""
    version = _go_version(info)
    stdlib = _go_purl("stdlib", version)
    components = [
        Component(
            type=ComponentType.LIBRARY,
            name="stdlib",
            version=version,
            purl=stdlib,
            bom_ref=stdlib.to_string(),
            properties=_properties({"go:module": "stdlib"}),
        )
    ]
    if info.main is not None and info.main.path:
        components.append(_go_module(info.main, "main"))
    components.extend(_go_module(dep, "dep") for dep in info.deps)
    return components


def _go_tools(info: GoBuildInfo, packages: Mapping[str, DebianPackage]) -> list[DebianPackage]:
    """Debian's golang-go and the golang-X.Y-go it depends on, when the toolchain has them."""
    minor = ".".join(_go_version(info).split(".")[:2])
    return [packages[name] for name in ("golang-go", f"golang-{minor}-go") if name in packages]


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
        properties=_properties(
            {"image:repository": service.image.repository, "source:revision": provenance.revision}
        ),
    )
    depends[_ref(image)] = []

    for binary in sorted(binaries, key=lambda b: b.platform.name):
        platform = binary.platform
        facts = _read_binary(binary.path, packages)
        component = Component(
            type=ComponentType.APPLICATION,
            name=service.build.output,
            bom_ref=f"binary:{platform.name}:/{service.build.output}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=facts.sha256)],
            properties=_properties(
                {
                    "platform": platform.name,
                    "linkage": facts.linkage,
                    "libc": facts.libc,
                    "image:path": f"/{service.build.output}",
                    "image:manifest-digest": binary.image_digest,
                    "go:version": facts.go.go_version if facts.go else None,
                }
            ),
        )
        inside: list[Component] = []
        if facts.go is not None:
            inside += _go_components(facts.go)
            tool_packages = _go_tools(facts.go, packages)
        else:
            tool_packages = _compiler_packages(facts.libc, platform, packages)
        if facts.libc in ("glibc", "musl"):
            inside.append(_libc_component(facts.libc, platform, packages))
        for tool in tool_packages:
            tools.setdefault(tool.purl.to_string(), _deb_component(tool, ComponentType.APPLICATION))
        for part in inside:
            components.setdefault(_ref(part), part)
            depends.setdefault(_ref(part), [])
        components[_ref(component)] = component
        depends[_ref(component)] = sorted({_ref(part) for part in inside})
        depends[_ref(image)].append(_ref(component))

    for extra in service.image.extras:
        package = packages.get(EXTRA_PACKAGES.get(extra, ""))
        if package is not None:
            data = _deb_component(package, ComponentType.DATA, **{"image:extra": extra})
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
    packages = toolchain_packages(engine, toolchain) if isinstance(toolchain, ToolchainImage) else {}
    document = sbom_for(service, binaries, packages=packages, provenance=provenance)
    written = write_sbom(out_root, service, document)
    write_atomic(key_file, inputs_key.encode())
    return written, oci.Blob(media_type=MEDIA_TYPE, data=document)
