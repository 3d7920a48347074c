"""C (and any native binary no other language claims: Rust... follows C's libc conventions; C++ is C
with its own recognition, languages.cxx).

Built with gcc (native, Debian's cross compilers gcc-<triple>), statically linked against glibc, or
with the <musl triple>-gcc wrapper that musl-dev:<arch> puts over that same gcc, against musl (every
platform). The glibc runtime traps (NSS, gconv) are here; Go binaries built with cgo link glibc too
and get them from here.

Runtime traps of static glibc. dlopen is no evidence of any: since glibc 2.34 it is linked into every
static binary (and its strings "gconv", "GCONV_PATH", "ld.so.cache" too). musl and pure Go binaries
have neither NSS nor gconv, and are recognised as not glibc (no GLIBC_TUNABLES, no ABI-tag note).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cyclonedx.model.component import Component, ComponentType

from orchestrator.elf import scan as elfscan
from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages import cfamily
from orchestrator.languages.proposals import BuildProposal
from orchestrator.outputs.components import DebianPackage, deb_component, properties, wheel_key
from orchestrator.platforms import Platform
from orchestrator.verify.findings import Finding, error, info, need

if TYPE_CHECKING:
    from orchestrator.languages.fetching import FetchPlan
    from orchestrator.recipe.model import FetchSpec
    from orchestrator.verify.context import ElfContext

_MUSL_HINT = "link against musl ({MUSL_CC} in the gcc toolchain), use a pure implementation"
_NSS_HINT = f"{_MUSL_HINT}, or allow it in [verify] with a reason"
GCONV_FINDING = "runtime.gconv"
MUSL_BUNDLES = (wheel_key("ziglang"),)
"""Toolchain packages (keys of the image's packages) whose compiler brings its own musl, the only static
libc it links: the ziglang wheel (`zig cc -target <arch>-linux-musl`, languages.zig)."""


class CLanguage:
    name = "c"
    build_records: tuple[str, ...] = ()

    def build_env(self, cache_dir: str, target_cache: str) -> dict[str, str]:
        return {"CCACHE_DIR": f"{cache_dir}/ccache"}

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        return True

    def cross_compiler(self, platform: Platform) -> str:
        return f"{platform.gnu_triple}-gcc"

    def arch_findings(self, context: ElfContext, platform: Platform) -> tuple[Finding, ...]:
        return ()  # the ELF header and .ARM.attributes say it all: the generic arch checks

    def runtime_findings(self, context: ElfContext, contents: Contents) -> tuple[Finding, ...]:
        return (*libc_findings(contents), *_needs(contents))

    def info_findings(self, context: ElfContext) -> tuple[Finding, ...]:
        return ()

    def build_report(self, facts: ElfFacts, name: str) -> str | None:
        return None

    def libc(self, context: ElfContext, packages: Collection[str]) -> str:
        if context.contents is not None and context.contents.glibc:
            return "glibc"
        # musl leaves no mark in a static binary; a C toolchain that has it is the evidence.
        has_musl = "musl-dev" in packages or any(bundle in packages for bundle in MUSL_BUNDLES)
        return "musl" if has_musl else "unknown"

    def sbom_properties(self, context: ElfContext) -> dict[str, str | None]:
        return {}

    def sbom_components(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[Component]:
        """The libc, and the platform's libraries the toolchain image holds (`library_components`)."""
        return [*libc_components(libc, platform, packages), *library_components(libc, platform, packages)]

    def source_components(self, context: ElfContext, source: Path, records: Path) -> list[Component]:
        return []

    def fetch_plan(
        self, fetch: FetchSpec, sources: tuple[str, ...], env: Mapping[str, str]
    ) -> FetchPlan | None:
        return None  # libraries come from the toolchain image's packages or the source tree

    def propose_build(self, source: Path, project: Path, name: str) -> BuildProposal | None:
        """The tree's build system (languages.cfamily), for the trees of this language (C or C++)."""
        return cfamily.propose(source, name, self.name)

    def tool_packages(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[DebianPackage]:
        """gcc (native) or gcc-<triple> (cross), and the versioned gcc-N[-<triple>] it depends on; the
        musl compilers (musl-dev's <musl triple>-gcc, musl-tools' musl-gcc) are wrappers over that gcc.
        Without gcc, the compiler that brings its own musl (`zig cc`: the ziglang wheel)."""
        if libc not in ("glibc", "musl"):
            return []
        bundle = bundled_musl(packages)
        return compiler_packages("gcc", platform, packages) or ([bundle] if bundle else [])


C = CLanguage()


def libc_findings(contents: Contents) -> tuple[Finding, ...]:
    """The runtime traps of a binary statically linked against glibc."""
    if not contents.glibc:
        return ()
    return (*_nss_findings(contents), *_gconv_findings(contents))


def libc_components(libc: str, platform: Platform, packages: Mapping[str, DebianPackage]) -> list[Component]:
    """The linked libc as an SBOM component: its Debian package, or its name alone when the toolchain
    image has no package database; none for a binary without libc."""
    if libc not in ("glibc", "musl"):
        return []
    package = _libc_package(libc, platform, packages)
    if package is not None:
        return [deb_component(package, libc=libc)]
    # Linked in, version unknown (a toolchain image without the package database): still listed.
    return [
        Component(
            type=ComponentType.LIBRARY,
            name=libc,
            bom_ref=f"libc:{libc}:{platform.debian_arch}",
            properties=properties({"libc": libc, "platform": platform.name}),
        )
    ]


# The C runtime's own -dev packages: the libc and the C++ standard library have components of their own
# (libc_components, languages.cxx); libcrypt-dev comes with libc6-dev; Rust's std is languages.rust's.
_RUNTIME_DEV = re.compile(
    r"(?:libc6|libcrypt|musl|linux-libc|libstd-rust)-dev|lib(?:gcc|stdc\+\+)-[0-9]+-dev"
)


def library_packages(platform: Platform, packages: Mapping[str, DebianPackage]) -> list[DebianPackage]:
    """The libraries a static binary for `platform` may have linked from the toolchain image: its `-dev`
    packages of the platform's Debian architecture (installed by multiarch as `<name>:<arch>`, or
    native) that ship a static archive, but the C runtime's own (_RUNTIME_DEV). Which of them the linker
    took cannot be read back from a stripped binary, so all are listed: the rule docs/report.md states."""
    chosen = {
        package
        for key, package in packages.items()
        if key == f"{package.name}:{package.architecture}"
        and package.architecture == platform.debian_arch
        and package.static_archive
        and package.name.endswith("-dev")
        and not _RUNTIME_DEV.fullmatch(package.name)
    }
    return sorted(chosen, key=lambda package: package.name)


def library_components(
    libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
) -> list[Component]:
    """`library_packages` as SBOM libraries, for a binary that links a libc (a static C-style link)."""
    if libc not in ("glibc", "musl"):
        return []
    return [
        deb_component(package, ComponentType.LIBRARY, origin="debian-package")
        for package in library_packages(platform, packages)
    ]


def compiler_packages(
    driver: str, platform: Platform, packages: Mapping[str, DebianPackage]
) -> list[DebianPackage]:
    """A compiler driver's packages for `platform`: `driver` ("gcc", "g++") when the toolchain image's
    gcc is the platform's own, else `driver`-<triple> (Debian's cross compiler), then the versioned
    package it depends on (gcc-14, g++-14-aarch64-linux-gnu)."""
    suffix = f"-{platform.gnu_triple}" if is_cross(platform, packages) else ""
    compiler = packages.get(f"{driver}{suffix}")
    if compiler is None:
        return []
    major = re.match(r"(?:[0-9]+:)?([0-9]+)\.", compiler.version)
    versioned = packages.get(f"{driver}-{major.group(1)}{suffix}") if major else None
    return [compiler, *([versioned] if versioned else [])]


def is_cross(platform: Platform, packages: Mapping[str, DebianPackage]) -> bool:
    """Whether the toolchain image builds for `platform` with a cross compiler: its gcc package is for
    another architecture (without gcc: it has no libc6-dev of the platform's architecture)."""
    gcc = packages.get("gcc")
    if gcc is not None:
        return gcc.architecture != platform.debian_arch
    return _native(packages, "libc6-dev", platform) is None


def bundled_musl(packages: Mapping[str, DebianPackage]) -> DebianPackage | None:
    """The toolchain package whose compiler links a musl of its own (MUSL_BUNDLES), None without one."""
    return next((packages[bundle] for bundle in MUSL_BUNDLES if bundle in packages), None)


def _native(packages: Mapping[str, DebianPackage], name: str, platform: Platform) -> DebianPackage | None:
    """A package built for the platform's own architecture: the native compiler's, or a multiarch one
    (musl-dev:arm64)."""
    package = packages.get(f"{name}:{platform.debian_arch}") or packages.get(name)
    return package if package is not None and package.architecture == platform.debian_arch else None


def _libc_package(
    libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
) -> DebianPackage | None:
    """The package that provided the linked libc: musl-dev of the platform's architecture (native or
    multiarch) for musl; for glibc, libc6-dev with the native compiler and libc6-dev-<arch>-cross with a
    cross compiler (a foreign libc6-dev, if installed, is not what the cross compiler links)."""
    if libc == "musl":
        return _native(packages, "musl-dev", platform) or bundled_musl(packages)
    if not is_cross(platform, packages):
        return _native(packages, "libc6-dev", platform)
    return packages.get(f"libc6-dev-{platform.debian_arch}-cross")


def _nss_use(contents: Contents) -> tuple[str, ...] | None:
    """The NSS functions a glibc binary defines (unstripped: the symbols decide), () for a stripped one
    linking NSS (the dlopen name pattern `libnss_`), None when it does not use NSS."""
    if not contents.glibc:
        return None
    if contents.functions is not None:
        return contents.called(elfscan.NSS_FUNCTIONS) or None
    return () if contents.contains(elfscan.NSS_STRING) else None


def _nss_findings(contents: Contents) -> tuple[Finding, ...]:
    """Before glibc 2.34 every NSS lookup loads libnss_<service>.so: it fails in scratch (ERROR).

    Since 2.34 the files and dns services are built into static binaries: lookups work in scratch once the
    files exist (a static getpwuid, run here in scratch with the passwd extra, found its user), so NSS
    is only INFO, and the user and group functions need the passwd extra.
    """
    calls = _nss_use(contents)
    if calls is None:
        return ()
    what = f"calls {_names(calls)}" if calls else "uses glibc's NSS (stripped; it holds libnss_)"
    if not any(contents.contains(marker) for marker in elfscan.NSS_BUILTIN_STRINGS):
        message = f"{what}, which loads libnss_*.so at run time (absent in scratch): the lookup fails"
        return (error("runtime.nss", message, hint=_NSS_HINT),)
    findings = [
        info(
            "runtime.nss",
            f"{what}: glibc >= 2.34 answers with its built-in files and dns services; other services "
            "an /etc/nsswitch.conf names would load libnss_*.so, absent in scratch",
        )
    ]
    users = tuple(name for name in calls if name in elfscan.NSS_USER_FUNCTIONS)
    if users or not calls:
        findings.append(
            need(
                "passwd",
                f"{f'calls {_names(users)}' if users else what}: user and group lookups read "
                "/etc/passwd and /etc/group",
            )
        )
    return tuple(findings)


def _gconv_findings(contents: Contents) -> tuple[Finding, ...]:
    """iconv_open, from the symbol table only: the gconv strings are in every static glibc binary."""
    if not contents.called((elfscan.ICONV_FUNCTION,)):
        return ()
    return (
        error(
            GCONV_FINDING,
            "uses iconv_open: conversions other than UTF-8/ASCII/UCS need gconv modules absent in scratch",
            hint=f"convert only between UTF-8, ASCII and UCS-2/UCS-4, {_MUSL_HINT}, "
            "or allow it in [verify] with a reason",
        ),
    )


def _needs(contents: Contents) -> tuple[Finding, ...]:
    """The paths the program's strings name, and libc's temporary-file functions."""
    findings: list[Finding] = []
    ca = contents.first_string(elfscan.CA_STRINGS)
    if ca:
        findings.append(
            need("ca-certificates", f"refers to {ca}: TLS peers are verified against a CA bundle")
        )
    zones = contents.first_string(elfscan.ZONEINFO_STRINGS)
    if zones:
        findings.append(
            need(
                "tzdata",
                f"refers to {zones}: a TZ naming a zone (TZ=Europe/Paris) reads the zone database, "
                "else times are UTC",
            )
        )
    users = contents.first_string(elfscan.USER_DATABASE_STRINGS)
    if users and _nss_use(contents) is None:  # with glibc's NSS, _nss_findings decides
        findings.append(need("passwd", f"refers to {users}: user and group lookups read it"))
    tmp_calls = contents.called(elfscan.TMP_FUNCTIONS)
    tmp = f"calls {_names(tmp_calls)}" if tmp_calls else _tmp_reference(contents)
    if tmp:
        findings.append(need("tmp", f"{tmp}: temporary files go to /tmp (or $TMPDIR)"))
    return tuple(findings)


def _names(names: tuple[str, ...]) -> str:
    """Function names for a message, without the variants of a name also listed (getpwnam_r, mkstemp64)."""
    names = tuple(n for n in names if n.removesuffix("_r").removesuffix("64") == n or n[:-2] not in names)
    shown = ", ".join(names[:3])
    return shown if len(names) <= 3 else f"{shown} and {len(names) - 3} more"


def _tmp_reference(contents: Contents) -> str | None:
    """The string /tmp (also as the end of a longer one, where linkers merge it), else a path under /tmp."""
    found = contents.first_ending((elfscan.TMP_STRING,), ignore=elfscan.LIBRARY_TMP_LITERALS)
    if found is not None and not found.whole:
        return f"refers to {found.text} (or to /tmp, which linkers store as the end of a longer string)"
    if found is not None:
        return f"refers to {found.text}"
    return _refers(contents.first_match(elfscan.TMP_PATH))


def _refers(string: str | None) -> str | None:
    return f"refers to {string}" if string else None
