"""The verifier's vocabulary: a Finding (stable id, severity, one-line message), a Verdict (one file's
facts and findings), and the constructors checks and languages use to make findings.

Finding ids name what was noticed: `linkage.*`, `arch.*`, `elf.*`, `runtime.*`, `needs.<extra>` (a file
the program reads that a scratch image lacks unless the recipe adds the image extra), `hardening.*`,
`size.budget`, language ids (`go.*`, `cxx.*`), and INTERNAL_FINDING.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from orchestrator.elf.facts import ElfFacts
from orchestrator.image.extras import EXTRAS

INTERNAL_FINDING = "verify.internal"
"""The id of the finding a check that raised leaves: a bug in the verifier, never a verdict on the file
(malformed input is `elf.*`). The property tests assert it never appears."""


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
