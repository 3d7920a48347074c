"""Go: built by the go toolchain, cross-compiling by GOARCH/GOARM alone, offline.

A Go binary is recognised by its build ID note, its `.go.buildinfo` section or the build-info magic in
a writable segment. Its build info (elf.goinfo) says what it was built for (GOARCH, GOARM) and which
modules it links, for the SBOM. What it looks for at run time is read from function names (pclntab keeps
them in stripped binaries), never from bare paths: "/usr/share/zoneinfo" is in every binary using
time.Local, which needs no zone database in scratch (it is then UTC). With cgo it links glibc, whose
traps are C's (languages.c).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cyclonedx.model.component import Component, ComponentType
from packageurl import PackageURL

from orchestrator.elf import scan as elfscan
from orchestrator.elf.facts import GO_BUILDINFO_SECTION, ElfFacts
from orchestrator.elf.goinfo import (
    BUILDINFO_MAGIC,
    GoBuildInfo,
    Module,
    format_like_go_version_m,
    goarm_version,
)
from orchestrator.elf.load import PF_W, LoadedElf, one_line
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages.c import libc_components, libc_findings, library_components
from orchestrator.languages.fetching import FetchPlan
from orchestrator.languages.proposals import (
    RANK_BUILD_SYSTEM,
    RANK_SOURCES,
    BuildProposal,
    first_match,
    read_text,
    read_texts,
    relative,
    smoke_proposal,
    walk,
)
from orchestrator.outputs.components import SERVICE_SOURCE, DebianPackage, properties
from orchestrator.platforms import Platform
from orchestrator.recipe.model import FetchSpec
from orchestrator.verify.findings import Finding, error, info, need

if TYPE_CHECKING:
    from orchestrator.verify.context import ElfContext

GO_LOCK_FILES = ("go.mod", "go.sum")  # what pins a module's dependencies: the key of their fetch


class GoLanguage:
    name = "go"
    build_records: tuple[str, ...] = ()  # the build info lists every module

    def build_env(self, cache_dir: str, target_cache: str) -> dict[str, str]:
        """Compilers want a writable cache and GOPATH, and must never fetch a toolchain or a module."""
        return {
            "GOCACHE": f"{cache_dir}/go-build",
            "GOPATH": "/tmp/go",
            "GOTOOLCHAIN": "local",
            "GOPROXY": "off",
            "GOFLAGS": "-buildvcs=false",
        }

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        """Build info, a note owned by "Go" (its build ID), a `.go.buildinfo` section or, when scanned
        (`contents`), Go's build-info magic in a writable segment."""
        if facts.go is not None or any(note.owner == b"Go" for note in notes):
            return True
        if binary.section_range(GO_BUILDINFO_SECTION) is not None:
            return True
        return contents is not None and any(
            segment["p_flags"] & PF_W
            and BUILDINFO_MAGIC in binary.read(segment["p_offset"], segment["p_filesz"])
            for segment in binary.segments_of("PT_LOAD")
        )

    def cross_compiler(self, platform: Platform) -> str:
        return f"GOARCH={platform.goarch}"

    def arch_findings(self, context: ElfContext, platform: Platform) -> tuple[Finding, ...]:
        """What the Go build info says the binary was built for: GOARCH, and GOARM on ARM.

        A GOARCH mismatch is also an e_machine, class or byte-order mismatch; it is reported as well
        because it names the setting to change. GOARM is compared only when recorded (Go >= 1.18).
        """
        go = context.facts.go
        if go is None:
            return ()
        if go.goarch is not None and go.goarch != platform.goarch:
            return (
                error(
                    "arch.go-goarch",
                    one_line(
                        f"built with GOARCH={go.goarch}, recipe says {platform.name} "
                        f"— set GOARCH={platform.goarch}"
                    ),
                ),
            )
        needed = goarm_version(platform.goarm)
        if needed is not None and go.arm_version is not None and go.arm_version < needed:
            return (
                error(
                    "arch.arm-version",
                    one_line(
                        f"built with GOARM={go.goarm} (ARMv{go.arm_version}), {platform.name} needs "
                        f"ARMv{needed} or later — set GOARM={platform.goarm}"
                    ),
                ),
            )
        return ()

    def runtime_findings(self, context: ElfContext, contents: Contents) -> tuple[Finding, ...]:
        return (*libc_findings(contents), *_needs(contents))

    def info_findings(self, context: ElfContext) -> tuple[Finding, ...]:
        go = context.facts.go
        return () if go is None else (info("go.buildinfo", _summary(go)),)

    def build_report(self, facts: ElfFacts, name: str) -> str | None:
        """What `go version -m NAME` prints, byte for byte."""
        return format_like_go_version_m(facts.go, name) if facts.go else None

    def libc(self, context: ElfContext, packages: Collection[str]) -> str:
        if context.contents is not None and context.contents.glibc:
            return "glibc"
        go = context.facts.go
        return "none" if go is not None and go.cgo_enabled is not True else "unknown"

    def sbom_properties(self, context: ElfContext) -> dict[str, str | None]:
        go = context.facts.go
        return {"go:version": go.go_version if go else None}

    def sbom_components(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[Component]:
        """The standard library at the binary's Go version, the main module, every dependency module,
        and the libc cgo linked."""
        go = context.facts.go
        return [
            *(_modules(go) if go else []),
            *libc_components(libc, platform, packages),
            *library_components(libc, platform, packages),  # cgo's
        ]

    def source_components(self, context: ElfContext, source: Path, records: Path) -> list[Component]:
        return []  # the build info lists every module linked in

    def fetch_plan(
        self, fetch: FetchSpec, sources: tuple[str, ...], env: Mapping[str, str]
    ) -> FetchPlan | None:
        """`go mod download` from the recipe's GOPROXY into a module cache of its own, which the build
        then reads alone (GOPROXY=off). go.sum is the trust anchor both times: the download checks every
        module against it, the build (-mod=readonly: go.mod and go.sum as they are, vendor/ unused)
        refuses a module go.sum does not list. No checksum database is asked (GOSUMDB=off): it would
        need the network, and a complete go.sum already pins every module."""
        if not fetch.goproxy:
            return None
        goflags = f"{env.get('GOFLAGS', '')} -mod=readonly".strip()  # the last -mod in GOFLAGS wins
        return FetchPlan(
            description="go mod download",
            lock_files=GO_LOCK_FILES,
            sources=fetch.goproxy,
            command=("go", "mod", "download", "-x"),  # -x: the log shows every proxy request
            env={"GOPROXY": ",".join(sources), "GOSUMDB": "off", "GOFLAGS": goflags, "GOTOOLCHAIN": "local"},
            build_env={"GOPROXY": "off", "GOSUMDB": "off", "GOFLAGS": goflags},
            directory_variable="GOMODCACHE",
        )

    def propose_build(self, source: Path, project: Path, name: str) -> BuildProposal | None:
        return propose_go_build(source, project, name)

    def tool_packages(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[DebianPackage]:
        """Debian's golang-go and the golang-X.Y-go it depends on, when the toolchain has them."""
        go = context.facts.go
        if go is None:
            return []
        minor = ".".join(_version(go).split(".")[:2])
        return [packages[name] for name in ("golang-go", f"golang-{minor}-go") if name in packages]


GO = GoLanguage()


def _summary(go: GoBuildInfo) -> str:
    """The go.buildinfo message: Go version, then the main module (or main package when no module)."""
    main = go.main.path if go.main and go.main.path else None
    where = f", module {main}" if main else f", package {go.path}" if go.path else ""
    return one_line(f"Go {go.go_version}{where}")


def _needs(contents: Contents) -> tuple[Finding, ...]:
    """Files a scratch image lacks, by the functions that read them."""
    findings: list[Finding] = []
    ca = contents.first_go_function(elfscan.GO_CA_FUNCTIONS)
    if ca and contents.first_go_function((elfscan.GO_FALLBACK_ROOTS,)):
        findings.append(
            info(
                "go.fallback-roots",
                f"uses {ca} with fallback roots (crypto/x509.SetFallbackRoots): "
                "TLS works without a CA bundle",
            )
        )
    elif ca:
        message = f"uses {ca}: the system CA pool is read from /etc/ssl/certs"
        findings.append(need("ca-certificates", message))
    zones = contents.first_go_function(elfscan.GO_ZONE_FUNCTIONS)
    if zones and contents.first_go_function((elfscan.GO_EMBEDDED_ZONES,)):
        findings.append(
            info("go.tzdata-embedded", f"calls {zones} with the zone database embedded (time/tzdata)")
        )
    elif zones:
        findings.append(
            need(
                "tzdata",
                f"calls {zones}: zones are read from /usr/share/zoneinfo",
                alternative='embed them: import _ "time/tzdata"',
            )
        )
    user = contents.first_go_function(elfscan.GO_USER_FUNCTIONS)
    if user:
        findings.append(need("passwd", f"uses os/user ({user}): it reads /etc/passwd and /etc/group"))
    tmp = contents.first_go_function(elfscan.GO_TMP_FUNCTIONS)
    if tmp:
        findings.append(need("tmp", f"calls {tmp}: temporary files go to $TMPDIR, else /tmp"))
    return tuple(findings)


def _version(info: GoBuildInfo) -> str:
    """The Go version as purls and OSV name it: "1.24.4" from "go1.24.4 X:nocoverageredesign"."""
    return info.go_version.split(" ", 1)[0].removeprefix("go")


def _purl(path: str, version: str | None) -> PackageURL:
    namespace, _, name = path.rpartition("/")
    return PackageURL(type="golang", namespace=namespace or None, name=name, version=version)


def _module(module: Module, role: str) -> Component:
    """A module as linked: a replacement by another module version is that version; a replacement by a
    directory keeps the original path, without a version in its purl (the code is not that version)."""
    replace = module.replace
    linked = replace if replace is not None and replace.version and replace.version != "(devel)" else module
    by_directory = replace is not None and linked is module
    version = None if by_directory or linked.version in ("", "(devel)") else linked.version
    purl = _purl(linked.path, version)
    values = {
        "go:module": role,
        "origin": _origin(module, role, by_directory),
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
        properties=properties(values),
    )


def _origin(module: Module, role: str, by_directory: bool) -> str:
    """Where a module's code came from, as the build info tells it: the main module, a module vendored
    in vendor/ (the build info then records no go.sum hash) and a module replaced by a relative
    directory are the service's own source; a module with a hash came from the module cache (a fetch
    step), verified against go.sum; an absolute directory is whatever the builder had there."""
    if role == "main":
        return SERVICE_SOURCE
    if by_directory and module.replace is not None:
        return "directory" if module.replace.path.startswith("/") else SERVICE_SOURCE
    linked = module.replace or module
    return "go-module-cache" if linked.sum else SERVICE_SOURCE


def _modules(info: GoBuildInfo) -> list[Component]:
    """The standard library at the binary's Go version, the main module and every dependency module."""
    version = _version(info)
    stdlib = _purl("stdlib", version)
    components = [
        Component(
            type=ComponentType.LIBRARY,
            name="stdlib",
            version=version,
            purl=stdlib,
            bom_ref=stdlib.to_string(),
            properties=properties({"go:module": "stdlib", "origin": "toolchain"}),
        )
    ]
    if info.main is not None and info.main.path:
        components.append(_module(info.main, "main"))
    components.extend(_module(dep, "dep") for dep in info.deps)
    return components


# ---------------------------------------------------------------------------------------------------
# osless init: how a Go tree is built


_PACKAGE_MAIN = re.compile(r"^package\s+main\b", re.MULTILINE)
_REQUIRE = re.compile(r"^\s*(?:require\s+)?([\w.~-]+(?:/[\w.~-]+)+)\s+(v[\w.+-]+)", re.MULTILINE)
_SERVER = re.compile(r"\b(?:ListenAndServe(?:TLS)?|net\.Listen|http\.Serve)\s*\(")
_IMPORTS_FLAG = re.compile(r'^\s*(?:import\s+)?"flag"', re.MULTILINE)
_CA = re.compile(r'"(?:crypto/tls|net/http)"')
_ZONES = re.compile(r"\btime\.LoadLocation\s*\(")
_EMBEDDED_ZONES = re.compile(r'_\s+"time/tzdata"')
_USER = re.compile(r'"os/user"')
GO_SOURCES = (".go",)
GOPROXY_DEPTH = 3  # directories of the project searched for a GOPROXY directory holding a module


def propose_go_build(source: Path, project: Path, name: str) -> BuildProposal | None:
    """`go build` of the main package (the top directory's, cmd/<name>, or the only one), offline:
    modules from vendor/ (-mod=vendor), or fetched from a GOPROXY directory of the project that holds
    the first module go.mod requires ([fetch]); without go.mod, the top directory's files."""
    files = [path for path in walk(source, GO_SOURCES) if not path.name.endswith("_test.go")]
    if not files:
        return None
    contents = read_texts(files)
    mains = sorted(
        {relative(path.parent, source) for path, text in contents.items() if _PACKAGE_MAIN.search(text)}
    )
    if not mains:
        return None
    module = read_text(source / "go.mod")
    notes: list[str] = []
    if module is None:
        if "." not in mains:
            return None
        package_files = [
            relative(p, source) for p, t in contents.items() if p.parent == source and _PACKAGE_MAIN.search(t)
        ]
        target: tuple[str, ...] = tuple(package_files)
        found = f"{len(package_files)} Go file{'s' if len(package_files) != 1 else ''} (no go.mod)"
    else:
        main = next((m for m in (".", f"cmd/{name}") if m in mains), mains[0])
        if len(mains) > 1 and main != ".":
            others = ", ".join(m for m in mains if m != main)
            notes.append(
                f"main packages found: {main} (built) and {others}: change the package built if needed"
            )
        target = ("." if main == "." else f"./{main}",)
        found = "go.mod (go build)"
    vendored = (source / "vendor" / "modules.txt").is_file()
    requirements = _REQUIRE.findall(_require_blocks(module or ""))
    fetch = None
    comments = ["-ldflags=-s -w: no symbol table nor DWARF (smaller); -buildid=: reproducible."]
    if vendored:
        comments.append("-mod=vendor: the modules go.mod requires come from vendor/, offline.")
    elif requirements:
        goproxy = _goproxy_directory(project, requirements[0][0])
        if goproxy is not None:
            fetch = FetchSpec(goproxy=(f"file://{goproxy}",))
            comments.append(
                f"Modules: fetched from the project's GOPROXY directory {goproxy} before the build."
            )
        else:
            notes.append(
                f"go.mod requires {len(requirements)} module(s) and the source has no vendor/: builds are "
                "offline, so run `go mod vendor`, or name a GOPROXY directory in [fetch] goproxy "
                "(docs/recipes.md, [fetch])"
            )
        if not (source / "go.sum").is_file():
            notes.append("go.mod requires modules but there is no go.sum: `go mod tidy` writes it")
    sources = list(contents.values())
    serves = "calls ListenAndServe or net.Listen" if first_match(_SERVER, sources) else None
    quick_exit = "-h" if first_match(_IMPORTS_FLAG, sources) else None
    return BuildProposal(
        language=GO.name,
        found=found,
        rank=RANK_BUILD_SYSTEM if module is not None else RANK_SOURCES,
        toolchain="go",
        command=(
            "go",
            "build",
            "-trimpath",
            "-ldflags=-s -w -buildid=",
            *(["-mod=vendor"] if vendored else []),
            "-o",
            "{output}",
            *target,
        ),
        fetch=fetch,
        extras=_extras(sources),
        comments=tuple(comments),
        notes=tuple(notes),
        smoke=smoke_proposal(sources, serves=serves, quick_exit=quick_exit),
    )


def _require_blocks(module: str) -> str:
    """go.mod's require directives and blocks, one requirement a line (the rest of go.mod dropped)."""
    lines = []
    for block in re.finditer(r"^require\s*\(([^)]*)\)|^require\s+([^\n(]+)$", module, re.MULTILINE):
        lines.append(block.group(1) or block.group(2) or "")
    return "\n".join(lines)


def _goproxy_directory(project: Path, module: str) -> str | None:
    """A directory of the project in the GOPROXY layout holding `module` (`<dir>/<module>/@v/list`, the
    module path escaped as Go does), as a path relative to the project; None when there is none."""
    escaped = re.sub("[A-Z]", lambda upper: "!" + upper.group(0).lower(), module)
    for depth in range(1, GOPROXY_DEPTH + 1):
        for listing in sorted(project.glob("/".join(["*"] * depth) + f"/{escaped}/@v/list")):
            directory = Path(str(listing)[: -len(f"/{escaped}/@v/list")])
            if not any(part.startswith(".") for part in directory.relative_to(project).parts):
                return directory.relative_to(project).as_posix()
    return None


def _extras(sources: list[str]) -> tuple[tuple[str, str], ...]:
    """The image extras what the program imports reads at run time (the verifier's needs, foreseen)."""
    extras = []
    if first_match(_CA, sources):
        extras.append(
            (
                "ca-certificates",
                "imports crypto/tls or net/http: TLS peers are verified against the CA bundle",
            )
        )
    if first_match(_ZONES, sources) and not first_match(_EMBEDDED_ZONES, sources):
        extras.append(("tzdata", "calls time.LoadLocation: zones are read from /usr/share/zoneinfo"))
    if first_match(_USER, sources):
        extras.append(("passwd", "imports os/user: it reads /etc/passwd and /etc/group"))
    return tuple(extras)
