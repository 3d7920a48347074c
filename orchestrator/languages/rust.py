"""Rust: built by cargo/rustc with `+crt-static` against glibc, the per-architecture std from Debian.

A Rust binary is a static glibc binary (C's runtime traps and libc apply: languages.c) with Rust's
standard library linked in. It is recognised, stripped or not, by what that library leaves in it:

- the `.comment` string "rustc version 1.85.1 (...)" that rustc's linker invocation adds (strip keeps it);
- the name of the variable std's panic hook reads, RUST_BACKTRACE, and the source paths of std's and
  core's panic locations ("/usr/src/rustc-1.85.1/library/std/src/..." with Debian's std, whose paths say
  its version; "/rustc/<commit>/library/core/src/..." with rustup's), in every binary linking std;
- with a symbol table, std's unmangled entry points (`rust_eh_personality`, `rust_begin_unwind`,
  `__rust_alloc`), or the `__rustc` namespace that Rust >= 1.88 mangles them into.

What it is made of: the crates of the service's Cargo.lock (source_components), or, when the binary
was built with `cargo auditable`, the crates its `.dep-v0` section lists (zlib-compressed JSON, the
exact set linked in); the std at the binary's Rust version (Debian's libstd-rust-dev for the platform's
architecture, whose version the toolchain bootstrap pins to rustc's); the libc.
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.component import Component, ComponentType
from packageurl import PackageURL

from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf, one_line
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages.c import CLanguage
from orchestrator.languages.proposals import (
    RANK_BUILD_SYSTEM,
    BuildProposal,
    LibraryNeed,
    first_match,
    read_source_file,
    smoke_proposal,
    texts,
    walk,
)
from orchestrator.outputs.components import SERVICE_SOURCE, DebianPackage, deb_component, properties
from orchestrator.platforms import Platform
from orchestrator.verify.findings import Finding, info

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from orchestrator.verify.context import ElfContext

COMMENT_SECTION = ".comment"
AUDITABLE_SECTION = ".dep-v0"  # cargo auditable's dependency list: zlib-compressed JSON
# Marks of std in the loaded bytes of every binary linking it, stripped or not.
STD_STRINGS = (b"RUST_BACKTRACE", b"/library/std/src/", b"/library/core/src/")
# std's unmangled functions (Rust <= 1.87; rust_eh_personality still so in 1.95).
STD_FUNCTIONS = frozenset({"rust_eh_personality", "rust_begin_unwind", "__rust_alloc", "rust_panic"})
RUSTC_NAMESPACE = "___rustc"  # v0-mangled `__rustc::` (Rust >= 1.88): _RNv..7___rustc12___rust_alloc
_RUSTC_COMMENT = re.compile(rb"rustc version ([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*)")
_SHA256 = re.compile("[0-9a-f]{64}")
_DEBIAN_STD_PATH = re.compile(rb"/usr/src/rustc-([0-9]+\.[0-9]+\.[0-9]+)/library/")
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
CRATES_IO_SPARSE = "sparse+https://index.crates.io/"
MAX_CARGO_LOCK = 16 * 1024**2  # bytes: real lock files are well under 1 MiB
MAX_AUDIT_DATA = 8 * 1024**2  # decompressed bytes of .dep-v0 (cargo auditable's own reader's limit)
STD_PACKAGE = "libstd-rust-dev"
DEBIAN_CRATE_REGISTRY = "/usr/share/cargo/registry"  # where Debian's librust-*-dev packages put crates


@dataclass(frozen=True, kw_only=True)
class Crate:
    """One package of a Cargo.lock or of cargo auditable data."""

    name: str
    version: str
    source: str | None  # Cargo.lock's `source` ("registry+...", "git+..."); None: a local package
    checksum: str | None = None  # sha256 of the .crate file (Cargo.lock)
    kind: str = "runtime"  # cargo auditable's: "runtime", or "build" (build scripts and proc-macros)


class RustLanguage(CLanguage):
    name = "rust"
    build_records = ("Cargo.lock",)  # written by cargo when the source has none

    def build_env(self, cache_dir: str, target_cache: str) -> dict[str, str]:
        """cargo's home in the builder's /tmp (offline: nothing to keep there), its target directory
        kept per service and platform, so that a rebuild of unchanged sources compiles nothing."""
        return {
            "CARGO_HOME": "/tmp/cargo-home",
            "CARGO_TARGET_DIR": f"{target_cache}/cargo",
            "CARGO_NET_OFFLINE": "true",
        }

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        """rustc's .comment, std's strings, or (unstripped) std's functions."""
        if contents is None:  # too large to scan: the .comment section alone
            section = binary.section_range(COMMENT_SECTION)
            return section is not None and b"rustc version" in binary.read(
                section[0], min(section[1], 1 << 16)
            )
        return (
            b"rustc version" in (contents.section(COMMENT_SECTION) or b"")
            or any(contents.contains(mark) for mark in STD_STRINGS)
            or (
                contents.functions is not None
                and (
                    not STD_FUNCTIONS.isdisjoint(contents.functions)
                    or any(RUSTC_NAMESPACE in name for name in contents.functions)
                )
            )
        )

    def cross_compiler(self, platform: Platform) -> str:
        return f"cargo --target {platform.rust_target}"

    def info_findings(self, context: ElfContext) -> tuple[Finding, ...]:
        """The Rust version, and what cargo auditable data says when the binary has it."""
        version = rust_version(context.contents)
        crates = auditable_crates(context.contents)
        what = f"Rust {version}" if version else "Rust (version not recorded)"
        if crates is not None:
            linked = [crate for crate in crates if crate.kind != "build"]
            what += f", cargo auditable data: {len(linked)} packages linked"
        return (info("rust.version", one_line(what)),)

    def sbom_properties(self, context: ElfContext) -> dict[str, str | None]:
        return {
            "rust:version": rust_version(context.contents),
            "rust:crates": "cargo-auditable" if auditable_crates(context.contents) is not None else None,
        }

    def sbom_components(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[Component]:
        """The crates cargo auditable recorded (when it did), Rust's std, the libc."""
        crates = auditable_crates(context.contents) or []
        return [
            *crate_components(crate for crate in crates if crate.kind != "build"),
            *_std_components(rust_version(context.contents), platform, packages),
            *super().sbom_components(context, libc, platform, packages),
        ]

    def source_components(self, context: ElfContext, source: Path, records: Path) -> list[Component]:
        """The crates of the service's Cargo.lock, else of the one cargo wrote in the workspace, unless
        the binary lists its own (cargo auditable)."""
        if auditable_crates(context.contents) is not None:
            return []
        crates = read_cargo_lock(source / "Cargo.lock") or read_cargo_lock(records / "Cargo.lock")
        return crate_components(crates or [], crates_io_directory(source))

    def propose_build(self, source: Path, project: Path, name: str) -> BuildProposal | None:
        return propose_cargo_build(source, name)

    def tool_packages(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[DebianPackage]:
        """rustc and cargo, then the gcc that linked (C's); the std is a component (linked in)."""
        rust = [packages[name] for name in ("rustc", "cargo") if name in packages]
        return rust + super().tool_packages(context, libc, platform, packages)


RUST = RustLanguage()


def rust_version(contents: Contents | None) -> str | None:
    """The rustc version: from .comment ("rustc version 1.85.1 (4eb161250 2025-03-15)"), else from the
    path of Debian's std sources in panic locations ("/usr/src/rustc-1.85.1/library/")."""
    if contents is None:
        return None
    found = _RUSTC_COMMENT.search(contents.section(COMMENT_SECTION) or b"")
    if found is None:
        found = _DEBIAN_STD_PATH.search(contents.loaded)
    return found.group(1).decode("ascii") if found else None


# ---------------------------------------------------------------------------------------------------
# Crates


def parse_cargo_lock(text: str) -> list[Crate] | None:
    """The packages of a Cargo.lock (any version of its format), None when it is not one."""
    try:
        document = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return None
    entries = document.get("package")
    if not isinstance(entries, list):
        return None
    crates = []
    for entry, name, version in _named_entries(entries):
        source, checksum = entry.get("source"), entry.get("checksum")
        crates.append(
            Crate(
                name=name,
                version=version,
                source=source if isinstance(source, str) and source else None,
                checksum=checksum if isinstance(checksum, str) and _SHA256.fullmatch(checksum) else None,
            )
        )
    return crates


def _named_entries(entries: list[Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    """The entries of a package list (Cargo.lock's, cargo auditable's) that are tables with a non-empty
    name and version, with those two; anything else is skipped."""
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name, version = entry.get("name"), entry.get("version")
        if isinstance(name, str) and isinstance(version, str) and name and version:
            yield entry, name, version


def read_cargo_lock(path: Path) -> list[Crate] | None:
    """A service's Cargo.lock, when it is a regular file (not followed when a symbolic link) of at most
    MAX_CARGO_LOCK bytes; None when there is none or it cannot be read (the SBOM then lists no crates)."""
    text = _read_text(path)
    return None if text is None else parse_cargo_lock(text)


def _read_text(path: Path) -> str | None:
    """A UTF-8 file of the source as `read_cargo_lock` reads it; None when it is not such a file."""
    data = read_source_file(path, MAX_CARGO_LOCK)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _read_toml(path: Path) -> dict[str, Any] | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return None


def parse_auditable(data: bytes) -> list[Crate] | None:
    """cargo auditable's `.dep-v0` section: zlib-compressed JSON `{"packages": [{"name", "version",
    "source", "kind", "root", "dependencies"}], "format": N}`; None when it is not that."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, MAX_AUDIT_DATA + 1)
        if len(raw) > MAX_AUDIT_DATA or not inflater.eof:
            return None
        document = json.loads(raw)
    except (zlib.error, ValueError, RecursionError):
        return None
    entries = document.get("packages") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return None
    crates = []
    for entry, name, version in _named_entries(entries):
        kind = entry.get("kind")
        crates.append(
            Crate(
                name=name,
                version=version,
                source=_auditable_source(entry.get("source")),
                kind="build" if kind == "build" else "runtime",
            )
        )
    return crates


def auditable_crates(contents: Contents | None) -> list[Crate] | None:
    """The crates the binary's cargo auditable data lists, None when it has none (or unreadable)."""
    data = contents.section(AUDITABLE_SECTION) if contents is not None else None
    return parse_auditable(data) if data else None


def _auditable_source(value: Any) -> str | None:
    """cargo auditable's source ("crates.io", "CratesIo", "git", "registry", {"Other": ...}) in
    Cargo.lock's terms where it can be (crates.io); else the kind alone ("git": it records no URL);
    None for a local package."""
    if isinstance(value, dict):
        return "other"
    text = re.sub("[^a-z]", "", str(value).lower())
    if text == "cratesio":
        return CRATES_IO
    return None if text == "local" else text or "other"


def crate_components(crates: Iterable[Crate], directory: str | None = None) -> list[Component]:
    """The crates as SBOM libraries: `pkg:cargo/<name>@<version>` for crates from a registry or git
    (with the registry or repository as a qualifier unless it is crates.io); no purl for the local
    packages of the workspace (their names are nobody's registry entry), nor for a source known only by
    its kind (cargo auditable's "git", "registry"). `directory`: the directory source that replaces
    crates.io in the service's cargo configuration (`crates_io_directory`), which their origin says."""
    components = []
    for crate in crates:
        purl = _purl(crate)
        kind = "local" if crate.source is None else crate.source.split("+", 1)[0]
        ref = purl.to_string() if purl else f"cargo-{kind}:{crate.name}@{crate.version}"
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=crate.name,
                version=crate.version,
                purl=purl,
                bom_ref=ref,
                hashes=_hashes(crate),
                properties=properties(
                    {
                        "cargo:package": "dependency" if crate.source else "local",
                        "cargo:source": crate.source,
                        "origin": _crate_origin(crate, directory),
                        "cargo:directory": directory if _from_crates_io(crate) else None,
                    }
                ),
            )
        )
    return components


def _crate_origin(crate: Crate, directory: str | None) -> str | None:
    """Where a crate's code came from: the workspace's own packages and crates.io's crates replaced by a
    directory of the source (`cargo vendor`) are the service's source; Debian's crate registry is
    Debian's packages (librust-*-dev); unknown otherwise (None)."""
    if crate.source is None:
        return SERVICE_SOURCE
    if directory is None or not _from_crates_io(crate):
        return None
    if not directory.startswith("/"):
        return SERVICE_SOURCE
    return "debian-package" if directory.rstrip("/") == DEBIAN_CRATE_REGISTRY else "directory"


def _from_crates_io(crate: Crate) -> bool:
    return crate.source in (CRATES_IO, CRATES_IO_SPARSE)


def crates_io_directory(source: Path) -> str | None:
    """The directory that replaces crates.io in the service's `.cargo/config.toml` (or `.cargo/config`):
    `[source.crates-io] replace-with = "<name>"` and `[source.<name>] directory = "<dir>"`, followed
    through at most a few replacements; None when crates.io is not replaced by a directory."""
    for name in (".cargo/config.toml", ".cargo/config"):
        document = _read_toml(source / name)
        if document is None:
            continue
        sources = document.get("source")
        if not isinstance(sources, dict):
            return None
        current = sources.get("crates-io")
        for _ in range(8):
            if not isinstance(current, dict):
                return None
            directory = current.get("directory")
            if isinstance(directory, str) and directory:
                return directory
            current = sources.get(current.get("replace-with"))
        return None
    return None


def _hashes(crate: Crate) -> list[HashType]:
    return [HashType(alg=HashAlgorithm.SHA_256, content=crate.checksum)] if crate.checksum else []


def _purl(crate: Crate) -> PackageURL | None:
    source = crate.source
    if source is None or "+" not in source:
        return None
    qualifiers: dict[str, str] = {}
    if source.startswith("git+"):
        qualifiers["vcs_url"] = source.removeprefix("git+").split("?", 1)[0] + (
            "@" + source.rsplit("#", 1)[1] if "#" in source else ""
        )
    elif source not in (CRATES_IO, CRATES_IO_SPARSE) and source.startswith(("registry+", "sparse+")):
        qualifiers["repository_url"] = source.split("+", 1)[1]
    return PackageURL(type="cargo", name=crate.name, version=crate.version, qualifiers=qualifiers or None)


def _std_components(
    version: str | None, platform: Platform, packages: Mapping[str, DebianPackage]
) -> list[Component]:
    """Rust's standard library as linked: Debian's libstd-rust-dev for the platform's architecture at the
    native package's version (the bootstrap unpacks the foreign one at exactly that version), when the
    toolchain's rustc is the binary's; else `std` at the binary's Rust version."""
    if version is None:
        return []
    native = packages.get(STD_PACKAGE)
    if native is not None and re.match(rf"(?:[0-9]+:)?{re.escape(version)}[+~-]", native.version):
        linked = DebianPackage(
            name=STD_PACKAGE, version=native.version, architecture=platform.debian_arch, distro=native.distro
        )
        return [deb_component(linked, ComponentType.LIBRARY, **{"rust:std": version})]
    return [
        Component(
            type=ComponentType.LIBRARY,
            name="std",
            version=version,
            bom_ref=f"rust-std:{version}",
            properties=properties({"rust:std": version}),
        )
    ]


# ---------------------------------------------------------------------------------------------------
# osless init: how a cargo package is built

_DEPENDENCY_TABLES = ("dependencies", "build-dependencies", "dev-dependencies")
_SERVER = re.compile(r"\b(?:TcpListener|UnixListener)::bind\b")
_CLAP_VERSION = re.compile(r"\.version\s*\(|#\[(?:command|clap)\([^]]*\bversion\b")
_VENDOR_CONFIG = (
    "--config",
    "source.crates-io.replace-with = 'vendored-sources'",
    "--config",
    "source.vendored-sources.directory = 'vendor'",
)
_DEBIAN_CONFIG = (
    "--config",
    "source.crates-io.replace-with = 'debian'",
    "--config",
    f"source.debian.directory = '{DEBIAN_CRATE_REGISTRY}'",
)


def propose_cargo_build(source: Path, name: str) -> BuildProposal | None:
    """`cargo build --release --offline` of the package's binary, crates from where the source's
    .cargo/config.toml says, else from its vendor/ directory, else (dependencies and neither) from
    Debian's crate registry, which a toolchain extending rust installs (librust-*-dev)."""
    manifest = _read_toml(source / "Cargo.toml")
    if manifest is None:
        return None
    package = manifest.get("package")
    package_name = package.get("name") if isinstance(package, dict) else None
    binaries = _binaries(source, manifest, package_name if isinstance(package_name, str) else None)
    notes: list[str] = []
    binary = next((b for b in binaries if b in (name, package_name)), binaries[0] if binaries else name)
    if not binaries:
        notes.append(f"no binary target found (src/main.rs, src/bin/, [[bin]]): check `artifact` ({name})")
    dependencies = _dependencies(manifest)
    locked = (source / "Cargo.lock").is_file()
    configured = crates_io_directory(source)
    needs: tuple[LibraryNeed, ...] = ()
    toolchain_comment = "Crates: none to fetch (no dependencies)."
    options: tuple[str, ...] = ()
    if configured is not None:
        toolchain_comment = f"Crates: from {configured}, as the source's .cargo/config.toml says."
    elif (source / "vendor").is_dir():
        options = _VENDOR_CONFIG
        toolchain_comment = "Crates: from the source's vendor/ directory (the two --config options)."
    elif dependencies:
        options = _DEBIAN_CONFIG
        locked = False  # a Cargo.lock made against crates.io may name versions the registry lacks
        needs = tuple(
            LibraryNeed(
                what=f"crate {crate} (Cargo.toml)",
                package=rf"librust-{re.escape(crate.replace('_', '-'))}(?:-[0-9][0-9.]*)?-dev",
                example=f"librust-{crate.replace('_', '-')}-dev",
            )
            for crate in dependencies
        )
        toolchain_comment = (
            "Crates: from Debian's crate registry (the two --config options), which the toolchain's "
            "librust-<crate>-dev packages fill; without a Cargo.lock cargo resolves what it has, offline."
        )
    sources = texts(walk(source, (".rs",)))
    serves = "binds a TcpListener" if first_match(_SERVER, sources) else None
    version = "--version" if "clap" in dependencies and first_match(_CLAP_VERSION, sources) else None
    command = (
        "cargo",
        "build",
        "--release",
        "--offline",
        *(["--locked"] if locked else []),
        *(["--bin", binary] if len(binaries) > 1 else []),
        *options,
    )
    return BuildProposal(
        language=RUST.name,
        found="Cargo.toml (cargo)",
        rank=RANK_BUILD_SYSTEM,
        toolchain="rust",
        needs=needs,
        command=command,
        artifact=f"{{CARGO_TARGET_DIR}}/{{RUST_TARGET}}/release/{binary}",
        comments=(
            "cargo builds for the platform (CARGO_BUILD_TARGET: {RUST_TARGET}, +crt-static: static glibc)",
            "into osless's per-target CARGO_TARGET_DIR, where `artifact` finds the binary.",
            *(["--locked: Cargo.lock as it is."] if locked else []),
            toolchain_comment,
        ),
        notes=tuple(notes),
        smoke=smoke_proposal(sources, serves=serves, version=version),
    )


def _binaries(source: Path, manifest: dict[str, Any], package: str | None) -> list[str]:
    """The package's binary targets: [[bin]] names, src/main.rs (the package's name), src/bin/*."""
    declared = manifest.get("bin")
    names = (
        [b["name"] for b in declared if isinstance(b, dict) and isinstance(b.get("name"), str)]
        if isinstance(declared, list)
        else []
    )
    if package and (source / "src" / "main.rs").is_file():
        names.append(package)
    bin_directory = source / "src" / "bin"
    if bin_directory.is_dir():
        names += sorted(p.stem for p in bin_directory.glob("*.rs"))
        names += sorted(p.parent.name for p in bin_directory.glob("*/main.rs"))
    return list(dict.fromkeys(names))


def _dependencies(manifest: dict[str, Any]) -> list[str]:
    """The crates the package depends on from a registry (its own name when renamed), for every
    target: path and git dependencies come with the source or not at all."""
    tables = [manifest.get(table) for table in _DEPENDENCY_TABLES]
    targets = manifest.get("target")
    if isinstance(targets, dict):
        tables += [
            t.get(table) for t in targets.values() if isinstance(t, dict) for table in _DEPENDENCY_TABLES
        ]
    crates = []
    for table in tables:
        if not isinstance(table, dict):
            continue
        for key, value in table.items():
            if isinstance(value, dict) and ("path" in value or "git" in value):
                continue
            crate = value.get("package", key) if isinstance(value, dict) else key
            if isinstance(crate, str):
                crates.append(crate)
    return sorted(set(crates))
