"""The run as a Markdown summary: out/summary.md, and the GitHub Actions job summary.

One row per target (service, platform, result, failed stage, reason, binary size, image size), then
the totals and, briefly, the run's profile (where the time went), then each check of the targets with
several smoke checks. Pure: made from the RunReport alone (`outputs.writers` writes it).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from orchestrator.errors import RecipeProblem
from orchestrator.outputs.report import Profile, RunReport, Status, TargetReport
from orchestrator.outputs.sizes import human_size

COLUMNS = ("service", "platform", "result", "failed stage", "reason", "binary size", "image size")


def markdown(report: RunReport) -> str:
    """The summary as GitHub-flavoured Markdown, ending with a newline."""
    targets = report.targets
    failed = [t for t in targets if t.status is Status.FAILED]
    cancelled = len(report.failed) - len(failed)
    title = f"{len(targets)} target{'s' if len(targets) != 1 else ''}"
    if failed:
        title += f", {len(failed)} failed"
    if cancelled:
        title += f", {cancelled} cancelled"
    if not report.failed:
        title += ", all passed"
    lines = [
        f"## osless build: {title}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if c.endswith("size") else "---" for c in COLUMNS) + "|",
    ]
    lines += [_row(target) for target in targets]
    lines += ["", _totals(report)]
    if report.profile is not None:
        lines += ["", _profile(report.profile)]
    checked = [t for t in targets if t.smoke and len(t.smoke.checks) > 1 and not t.cached]
    if checked:
        lines += ["", "Smoke checks:", ""]
        lines += [_checks(target) for target in checked]
    if report.unsupported:
        lines += ["", "Not built, and why:", ""]
        lines += [f"- {_cell(u.service)} {_cell(u.platform)}: {_cell(u.reason)}" for u in report.unsupported]
    return "\n".join(lines) + "\n"


def recipe_markdown(problems: Sequence[RecipeProblem]) -> str:
    """Invalid recipes, for the job summary: nothing was built."""
    count = len(problems)
    lines = [f"## osless: {count} problem{'s' if count != 1 else ''} in recipes, nothing was built", ""]
    lines += [f"- {_cell(str(problem))}" for problem in problems]
    return "\n".join(lines) + "\n"


def _row(target: TargetReport) -> str:
    if target.status is Status.PASSED:
        result = "✅ passed" + (f" ({_reused(target)})" if target.cached else "")
    elif target.status is Status.FAILED:
        result = "❌ **failed**"
    else:
        result = "⏹️ cancelled"
    stopped = target.status is not Status.PASSED
    cells = (
        _cell(target.service),
        _cell(target.platform),
        result,
        _cell(target.failed_stage or "") if target.status is Status.FAILED else "",
        _cell(target.reason or "") if stopped else "",
        human_size(target.binary.size) if target.binary else "-",
        human_size(target.image.size) if target.image else "-",
    )
    return "| " + " | ".join(cells) + " |"


def _reused(target: TargetReport) -> str:
    """Where a reused result comes from: out/ ("cached") or a --cache-from registry."""
    return "remote cache" if target.result_from == "remote-cache" else "cached"


def _checks(target: TargetReport) -> str:
    """`- service platform: ✅ name, ❌ name (reason)` for a target with several smoke checks."""
    assert target.smoke is not None
    results = [
        f"✅ {_cell(check.name)}" if check.passed else f"❌ {_cell(check.name)} ({_cell(check.reason or '')})"
        for check in target.smoke.checks
    ]
    return f"- {_cell(target.service)} {_cell(target.platform)}: {', '.join(results)}"


def _totals(report: RunReport) -> str:
    targets = report.targets
    passed = [t for t in targets if t.status is Status.PASSED]
    cached = sum(t.cached for t in passed)
    remote = sum(t.result_from == "remote-cache" for t in passed)
    failed = sum(t.status is Status.FAILED for t in targets)
    cancelled = sum(t.status is Status.CANCELLED for t in targets)
    binaries = sum(t.binary.size for t in passed if t.binary)
    images = sum(t.image.size for t in passed if t.image)
    counts = f"{len(passed)} passed ({cached} cached" + (f", {remote} from a remote cache" if remote else "")
    counts += f"), {failed} failed"
    counts += f", {cancelled} cancelled" if cancelled else ""
    return (
        f"**Total:** {len(targets)} target{'s' if len(targets) != 1 else ''}: {counts}; "
        f"binaries {human_size(binaries)}, images {human_size(images)} (passed targets); "
        f"{report.seconds:.1f}s"
    )


def _profile(profile: Profile) -> str:
    """Where the wall time went by phase, and whose work the targets' summed seconds were."""
    phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in profile.phases.items())
    per_target = (
        f" ({profile.osless_per_target_ms:.0f} ms per built target)"
        if profile.osless_per_target_ms is not None
        else ""
    )
    memory = f"; peak RSS {human_size(profile.peak_rss_bytes)}" if profile.peak_rss_bytes is not None else ""
    return (
        f"**Profile:** {profile.wall:.1f}s wall: {phases}. Target stages, summed: compile "
        f"{profile.compile:.1f}s, smoke under qemu {profile.emulated_smoke:.1f}s, native smoke "
        f"{profile.native_smoke:.1f}s, osless {profile.osless:.1f}s{per_target}{memory}"
    )


def _cell(text: str) -> str:
    """Text that stays inside one table cell: one line, no `|`, no HTML."""
    one_line = " ".join(text.split())
    return html.escape(one_line, quote=False).replace("|", "\\|")
