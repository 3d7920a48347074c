"""The verdict on one binary: its checks' findings, then the recipe's VerifyPolicy applied last.

A policy raises findings to errors, accepts them with a reason, marks `needs.*` as provided by the
image's extras, and sets a size budget. Bad input (not ELF, truncated, corrupt) never raises out of
`verify_binary`: it becomes an ERROR finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.elf.load import MAX_FILE_SIZE, ElfReadError, one_line
from orchestrator.outputs.sizes import human_size
from orchestrator.platforms import Platform
from orchestrator.verify.checks import internal_message, run_checks
from orchestrator.verify.context import read_context
from orchestrator.verify.findings import INTERNAL_FINDING, Finding, Severity, Verdict, error


@dataclass(frozen=True, kw_only=True)
class VerifyPolicy:
    """A recipe's [verify] table plus the image's extras, applied to the findings last."""

    # Finding ids whose WARNINGs become ERRORs (e.g. "needs.tzdata"). INFOs stay: some ids are INFO when
    # all is well (hardening.nx-stack, hardening.relro) and must not fail then.
    errors: frozenset[str] = frozenset()
    allowed: Mapping[str, str] = field(default_factory=dict)  # id -> reason: ERROR/WARNING become INFO
    max_size: int | None = None  # bytes; a larger binary gets the ERROR "size.budget"
    provided: frozenset[str] = frozenset()  # image extras present: their needs.* findings become INFO


DEFAULT_POLICY = VerifyPolicy()


def verify_binary(
    path: Path, platform: Platform | None = None, policy: VerifyPolicy = DEFAULT_POLICY
) -> Verdict:
    """Whether `path` can run alone in an empty image for `platform` (any platform when None), under
    `policy`.

    Never raises for bad input: unreadable, non-ELF and corrupt files become ERROR findings, and a check
    that fails anyway leaves the ERROR `verify.internal`. Contents are scanned only up to MAX_FILE_SIZE
    and, unless the policy allows `size.budget`, `policy.max_size` (judged by stat, before reading).
    """
    limit = MAX_FILE_SIZE
    if policy.max_size is not None and "size.budget" not in policy.allowed:
        limit = min(limit, policy.max_size)
    return apply_policy(_verdict(path, platform, limit), policy)


def apply_policy(verdict: Verdict, policy: VerifyPolicy) -> Verdict:
    """The verdict as `policy` sees it: the size budget checked, then each finding in turn, by precedence:
    a need the image provides becomes INFO, an allowed ERROR or WARNING becomes INFO (with the reason),
    a WARNING whose id is in `errors` becomes ERROR.
    """
    findings = list(verdict.findings)
    size = verdict.facts.size if verdict.facts else None
    if policy.max_size is not None and size is not None and size > policy.max_size:
        shown, budget = _sizes_apart(size, policy.max_size)
        findings.append(error("size.budget", f"binary is {shown}, budget {budget} (max_size)"))

    def judged(finding: Finding) -> Finding:
        if finding.extra is not None and finding.extra in policy.provided:
            message = f"{finding.message} (provided by the image extra {finding.extra})"
            return replace(finding, severity=Severity.INFO, message=message)
        reason = policy.allowed.get(finding.id)
        if reason is not None and finding.severity is not Severity.INFO:
            message = f"{finding.message} (allowed: {one_line(reason)})"
            return replace(finding, severity=Severity.INFO, message=message, allowed=reason)
        if finding.id in policy.errors and finding.severity is Severity.WARNING:
            return replace(finding, severity=Severity.ERROR)
        return finding

    return replace(verdict, findings=tuple(judged(f) for f in findings))


def _verdict(path: Path, platform: Platform | None, limit: int) -> Verdict:
    """The findings before any policy; contents are scanned only when the file is at most `limit` bytes."""
    try:
        context = read_context(path, limit)
    except ElfReadError as exc:
        return _unreadable(path, exc.finding_id, exc.message)
    except Exception as exc:  # last resort: bad input must never end in a traceback
        return _unreadable(path, INTERNAL_FINDING, internal_message(exc))
    return Verdict(
        path=str(path),
        facts=context.facts,
        findings=run_checks(context, platform),
        language=context.language.name,
    )


def _unreadable(path: Path, finding_id: str, message: str) -> Verdict:
    return Verdict(path=str(path), facts=None, findings=(error(finding_id, message),))


def _sizes_apart(size: int, budget: int) -> tuple[str, str]:
    """Both sizes readable, in bytes when rounding would make them look equal."""
    shown, limit = human_size(size), human_size(budget)
    return (shown, limit) if shown != limit else (f"{size} bytes", f"{budget} bytes")
