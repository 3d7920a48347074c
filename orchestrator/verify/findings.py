"""The verifier's vocabulary: a Finding (stable id, severity, one-line message), a Verdict (one file's
facts and findings), the constructors checks and languages use to make findings, and FINDING_IDS, the one
registry of the ids a finding may have.

Finding ids name what was noticed: `linkage.*`, `arch.*`, `elf.*`, `runtime.*`, `needs.<extra>` (a file
the program reads that a scratch image lacks unless the recipe adds the image extra), `hardening.*`,
`size.budget`, language ids (`go.*`, `cxx.*`, `rust.*`, `zig.*`), and INTERNAL_FINDING.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from orchestrator.elf.facts import ElfFacts
from orchestrator.image.extras import EXTRAS
from orchestrator.platforms import PLATFORMS

INTERNAL_FINDING = "verify.internal"
"""The id of the finding a check that raised leaves: a bug in the verifier, never a verdict on the file
(malformed input is `elf.*`). The property tests assert it never appears."""

FINDING_IDS: frozenset[str] = frozenset(
    {
        # linkage: how the program starts (checks.linkage)
        "linkage.static",
        "linkage.static-pie",
        "linkage.dynamic",
        "linkage.shared-object",
        "linkage.ambiguous",
        # the file: unreadable as ELF (elf/load.py), not a whole program, what it carries
        "elf.not-elf",
        "elf.corrupt",
        "elf.unreadable",
        "elf.not-regular",
        "elf.not-executable",
        "elf.entry",
        "elf.too-large",
        "elf.rpath",
        "elf.textrel",
        "elf.size",
        "elf.stripped",
        "elf.debug-info",
        "elf.build-id",
        # architecture: the ELF header, ARM's attributes, Go's build info; e_flags rules below
        "arch.identified",
        "arch.unsupported",
        "arch.machine",
        "arch.class",
        "arch.endian",
        "arch.arm-version",
        "arch.go-goarch",
        *(rule.finding for platform in PLATFORMS.values() for rule in platform.flag_rules),
        # hardening, run-time traps, files a scratch image lacks (one per image extra), the policy's
        "hardening.nx-stack",
        "hardening.relro",
        "runtime.nss",
        "runtime.gconv",
        *(extra.finding for extra in EXTRAS.values()),
        "size.budget",
        # what a language says of its binaries (languages/)
        "go.buildinfo",
        "go.fallback-roots",
        "go.tzdata-embedded",
        "cxx.runtime",
        "rust.version",
        "zig.std",
        INTERNAL_FINDING,
    }
)
"""Every id a finding may have; constructing a Finding with another is a bug of ours (ValueError).
docs/findings.md explains each, under a heading that is the id (a test compares the two)."""

FINDINGS_DOC = "docs/findings.md"


def doc_link(finding_id: str) -> str:
    """Where docs/findings.md explains `finding_id`: its heading's anchor, as GitHub makes it."""
    return f"{FINDINGS_DOC}#{heading_anchor(finding_id)}"


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation but `-` and `_` dropped, spaces as
    `-` ("linkage.dynamic" is `#linkagedynamic`)."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One thing the verifier noticed; `id` is stable (e.g. "linkage.dynamic"), `message` one line.

    `extra` names the image extra that satisfies a `needs.*` finding ("ca-certificates", "tzdata",
    "passwd", "tmp"); `allowed` is the policy's reason when it accepted an error or warning.
    """

    id: str
    severity: Severity
    message: str
    hint: str | None = None
    extra: str | None = None
    allowed: str | None = None

    def __post_init__(self) -> None:
        if self.id not in FINDING_IDS:
            raise ValueError(f"finding id {self.id!r} is not in FINDING_IDS (and docs/findings.md)")


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The verifier's answer for one file: its facts (None when unreadable) and findings."""

    path: str
    facts: ElfFacts | None
    findings: tuple[Finding, ...]
    language: str | None = None  # the name of the language that recognised the binary: "go", "c++", "c"

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def reason(self) -> str | None:
        """The first error's message: why the file cannot go into an image."""
        return self.errors[0].message if self.errors else None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)


def error(id: str, message: str, hint: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.ERROR, message=message, hint=hint)


def warning(id: str, message: str, hint: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.WARNING, message=message, hint=hint)


def info(id: str, message: str, hint: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.INFO, message=message, hint=hint)


def need(extra: str, message: str, alternative: str | None = None) -> Finding:
    """A file a scratch image lacks (WARNING until the image extra `extra` provides it)."""
    provider = EXTRAS[extra]
    hint = provider.hint + (f", or {alternative}" if alternative else "")
    return Finding(
        id=provider.finding,
        severity=Severity.WARNING,
        message=f"{message} — absent in scratch",
        hint=hint,
        extra=extra,
    )


def endianness(little_endian: bool) -> str:
    return "little-endian" if little_endian else "big-endian"
