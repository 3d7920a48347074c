"""The language seam: everything osless knows about one programming language lives in one module here.

A `Language` owns its builds' environment defaults, how to recognise its binaries, the findings only
its binaries get (architecture settings such as GOARM, runtime traps, files the program reads), and
what its binaries add to an SBOM (modules, libc, the toolchain packages that built them). The generic
code (stages/build.py, verify/, outputs/sbom.py, the CLI) asks the registry, LANGUAGES, and never
names a language.

Adding a language is three things: a module here defining a Language and listed in LANGUAGES, a
toolchain recipe (recipes/toolchains/<name>.toml, using the platform placeholders such as
`{GNU_TRIPLE}` or `{RUST_TARGET}`), and a sample recipe under recipes/ that the integration tests build
for every platform.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cyclonedx.model.component import Component

from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages import c, cxx, go, rust, zig
from orchestrator.platforms import Platform

if TYPE_CHECKING:
    from orchestrator.languages.fetching import FetchPlan
    from orchestrator.languages.proposals import BuildProposal
    from orchestrator.outputs.components import DebianPackage
    from orchestrator.recipe.model import FetchSpec
    from orchestrator.verify.context import ElfContext
    from orchestrator.verify.findings import Finding


class Language(Protocol):
    """One programming language's knowledge, as the generic code asks for it."""

    @property
    def name(self) -> str:
        """Short lower-case name, as platform flag rules' `exempt_languages` spell it: "go", "c"."""
        ...

    @property
    def build_records(self) -> tuple[str, ...]:
        """Files a build may write at the top of its workspace that say what the binary is made of
        (Rust: the Cargo.lock cargo writes when the source has none); osless keeps them for the SBOM."""
        ...

    def build_env(self, cache_dir: str, target_cache: str) -> dict[str, str]:
        """Environment defaults for every build (a recipe's env wins): offline, caches shared by the
        toolchain's builds in `cache_dir`, what belongs to one (service, platform) in `target_cache`."""
        ...

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        """Whether `binary` is this language's; `contents` are its scanned contents, None when it was
        too large to be read in full."""
        ...

    def cross_compiler(self, platform: Platform) -> str:
        """How to build for `platform` with this language, for hints: "GOARCH=arm64"."""
        ...

    def arch_findings(self, context: ElfContext, platform: Platform) -> tuple[Finding, ...]:
        """What the language's own records say the binary was built for, against `platform`."""
        ...

    def runtime_findings(self, context: ElfContext, contents: Contents) -> tuple[Finding, ...]:
        """What the program will look for once running: runtime traps, then `needs.*`."""
        ...

    def info_findings(self, context: ElfContext) -> tuple[Finding, ...]:
        """INFO findings that describe the binary (e.g. its Go version and module)."""
        ...

    def build_report(self, facts: ElfFacts, name: str) -> str | None:
        """The language's own report on a binary named `name`, printed verbatim (`go version -m`)."""
        ...

    def libc(self, context: ElfContext, packages: Collection[str]) -> str:
        """The libc linked in: "glibc", "musl", "none" or "unknown"; `packages` are the toolchain's."""
        ...

    def sbom_properties(self, context: ElfContext) -> dict[str, str | None]:
        """The binary component's language properties (`osless:<key>`; unset values are left out)."""
        ...

    def sbom_components(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[Component]:
        """The components the binary is made of (its modules, its libc)."""
        ...

    def tool_packages(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[DebianPackage]:
        """The toolchain image's packages that built the binary (compiler, its versioned package)."""
        ...

    def source_components(self, context: ElfContext, source: Path, records: Path) -> list[Component]:
        """The components the service's source directory `source` (or, when it has none, the build's
        `records` directory: `build_records`) declares and the binary does not record itself (Rust:
        the crates of its Cargo.lock); files there are read, never run."""
        ...

    def fetch_plan(
        self, fetch: FetchSpec, sources: tuple[str, ...], env: Mapping[str, str]
    ) -> FetchPlan | None:
        """How this language fetches what a service's `[fetch]` names, None when it names nothing of
        this language's: `sources` are its fetch sources as the fetch container sees them (a project
        directory under /project), `env` the build's environment."""
        ...

    def propose_build(self, source: Path, project: Path, name: str) -> BuildProposal | None:
        """How this language's toolchain would build the source directory `source` (inside the project
        root `project`) as the service `name`, for `osless init`; None when it is not this language's."""
        ...


def language_of(
    binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
) -> Language:
    """The first language in LANGUAGES that recognises the binary (C recognises every binary)."""
    return next(
        language for language in LANGUAGES if language.recognises(binary, facts, notes, contents=contents)
    )


def build_env_defaults(cache_dir: str, target_cache: str) -> dict[str, str]:
    """Every language's build environment defaults: shared compiler caches under `cache_dir`, one
    target's (a cargo target directory) under `target_cache`."""
    return {
        name: value
        for language in LANGUAGES
        for name, value in language.build_env(cache_dir, target_cache).items()
    }


def build_records(languages: Collection[str]) -> tuple[str, ...]:
    """The `build_records` of these languages (a toolchain's): the workspace files a build leaves for
    the SBOM."""
    return tuple(
        sorted(
            {name for language in LANGUAGES if language.name in languages for name in language.build_records}
        )
    )


def fetch_plan(fetch: FetchSpec, sources: tuple[str, ...], env: Mapping[str, str]) -> FetchPlan | None:
    """The plan of the first language that fetches what `fetch` names, None when none does."""
    return next(
        (plan for language in LANGUAGES if (plan := language.fetch_plan(fetch, sources, env)) is not None),
        None,
    )


def build_proposals(source: Path, project: Path, name: str) -> list[BuildProposal]:
    """What every language that recognises the source directory proposes, in LANGUAGES' order."""
    return [
        proposal
        for language in LANGUAGES
        if (proposal := language.propose_build(source, project, name)) is not None
    ]


def build_report(facts: ElfFacts, name: str) -> str | None:
    """The report of the language that has one for this binary (`go version -m`), else None."""
    return next((text for language in LANGUAGES if (text := language.build_report(facts, name))), None)


LANGUAGES: tuple[Language, ...] = (go.GO, rust.RUST, zig.ZIG, cxx.CXX, c.C)
"""Asked in this order: C last, since it recognises every binary no other language claims; C++ before
it, since a C++ binary is a C binary too (same libc, same traps); Rust and Zig before C++, since their
binaries may link a C++ runtime or C code."""
