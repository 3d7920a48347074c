"""Everything osless prints for people: tables, verdicts, a run's outcome, CI workflow commands.

User text (service names, paths, reasons, strings read from files and images) is never parsed as rich
markup: it is escaped, printed as rich Text, or printed with markup off, so "[/x]" or "[bold]" shows as
written. Markup appears only in the fixed words osless adds (ok, FAIL, colours).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator.host.doctor import Check
from orchestrator.image import registry
from orchestrator.image.inspect import BinaryReport, ImageReport
from orchestrator.languages import build_report
from orchestrator.outputs import github, profile, summary
from orchestrator.outputs.report import Profile, RunReport, Status, TargetReport
from orchestrator.outputs.sizes import human_size
from orchestrator.pipeline.reproduce import ReproducibilityReport
from orchestrator.recipe.model import Project
from orchestrator.verify.findings import Finding, Severity, Verdict, doc_link


def workflow_commands(console: Console, lines: Sequence[str]) -> None:
    """GitHub Actions workflow commands, on stdout as they are (no markup, emoji or wrapping)."""
    for line in lines:
        console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------------
# A run: `build` and `assemble`


def print_run(
    console: Console, report: RunReport, out_root: Path, *, quiet: bool = False, verbose: bool = False
) -> None:
    """A run's summary table, failures, what was not built and why, CI annotations and job summary.

    The table lists what this run did; the targets it reused from out/ unchanged are one line (at a
    few hundred targets, their rows would cost more than the run; report.json and the job summary list
    them all). quiet: the run in one line and the failures; verbose: each target's build steps too.
    """
    if quiet:
        console.print(run_line(report, out_root), markup=False)
        print_failures(console, report.targets)
    else:
        _print_run_summary(console, report, out_root, verbose=verbose)
    if github.active():
        workflow_commands(console, github.target_annotations(report.targets))
    github.append_step_summary(summary.markdown(report))


def run_line(report: RunReport, out_root: Path) -> str:
    """The run in one line, for -q: `3 targets: 2 passed, 1 failed (1 reused from out/); report: PATH`."""
    statuses = ", ".join(
        f"{count} {status.value}"
        for status in Status
        if (count := sum(t.status is status for t in report.targets))
    )
    reused = sum(t.result_from == "local-cache" for t in report.targets)
    return (
        f"{len(report.targets)} {'target' if len(report.targets) == 1 else 'targets'}: {statuses or 'none'}"
        f"{f' ({reused} reused from out/)' if reused else ''}; report: {out_root / 'report.json'}"
    )


def _print_run_summary(console: Console, report: RunReport, out_root: Path, *, verbose: bool) -> None:
    reused = [t for t in report.targets if t.result_from == "local-cache"]
    done = [t for t in report.targets if t.result_from != "local-cache"]
    if done:
        console.print(summary_table(done))
    if verbose:
        for target in done:
            for step in target.steps:
                line = f"  {target.service} {target.platform}: {step.label} {step.seconds:.2f}s"
                console.print(line + (f" (exit {step.exit_code})" if step.exit_code else ""), markup=False)
    if reused:
        services = len({t.service for t in reused})
        console.print(
            f"{len(reused)} {'target' if len(reused) == 1 else 'targets'} of {services} "
            f"{'service' if services == 1 else 'services'} unchanged: reused from out/ (inputs the same)",
            markup=False,
        )
    print_failures(console, report.targets)
    for u in report.unsupported:
        console.print(f"{u.service} is not built for {u.platform}: {u.reason}", markup=False)
    console.print(f"report: {out_root / 'report.json'}", markup=False)


def summary_table(targets: Sequence[TargetReport]) -> Table:
    """Service, platform, sizes, linkage, smoke result and time, one row per target."""
    table = Table(title="osless build", title_justify="left")
    for column in ("service", "platform", "binary", "image", "on slim", "linkage", "smoke", "time", "result"):
        table.add_column(
            column, justify="right" if column in {"binary", "image", "on slim", "time"} else "left"
        )
    for target in targets:
        smoke = "-"
        if target.smoke:
            smoke = "ok" if target.smoke.passed else "FAIL"
            if len(target.smoke.checks) > 1:
                passed = sum(check.passed for check in target.smoke.checks)
                smoke += f" {passed}/{len(target.smoke.checks)}"
            smoke += " (qemu)" if target.smoke.emulated else ""
        result = "[green]passed[/]" if target.status is Status.PASSED else f"[red]{target.status.value}[/]"
        if target.cached:
            result += (
                " [dim](remote cache)[/]" if target.result_from == "remote-cache" else " [dim](cached)[/]"
            )
        if target.failed_stage:
            result += f" [red]at {target.failed_stage}[/]"
        table.add_row(
            Text(target.service),  # user text: never markup
            Text(target.platform),
            human_size(target.binary.size) if target.binary else "-",
            human_size(target.image.size) if target.image else "-",
            human_size(target.image.on_debian_slim) if target.image and target.image.on_debian_slim else "-",
            target.binary.linkage or "-" if target.binary else "-",
            smoke,
            f"{profile.work_seconds(target):.1f}s",
            result,
        )
    return table


def print_profile(console: Console, report: RunReport) -> None:
    """`--profile`: where the run's wall time went (its phases), whose work the targets' time was
    (compilers, qemu, the programs, osless's own stages), osless's overhead per built target, peak
    memory, and the slowest targets stage by stage."""
    run = report.profile
    if run is None:  # a report `osless assemble` merged
        return
    console.print(Text(f"profile: where the {run.wall:.1f}s wall time went", "bold"))
    phases = Table()
    phases.add_column("phase")
    phases.add_column("seconds", justify="right")
    phases.add_column("share", justify="right")
    for name, seconds in run.phases.items():
        phases.add_row(Text(name), f"{seconds:.2f}", f"{seconds / run.wall:.0%}" if run.wall else "-")
    console.print(phases)
    console.print(
        Text(f"target stages, summed over {run.targets} targets ({run.built} built; they overlap)", "bold")
    )
    console.print(_work_table(report, run))
    per_target = "-" if run.osless_per_target_ms is None else f"{run.osless_per_target_ms:.0f} ms"
    memory = "unknown" if run.peak_rss_bytes is None else human_size(run.peak_rss_bytes)
    console.print(f"osless's own time per built target: {per_target}; peak memory (RSS): {memory}")
    console.print(Text("slowest targets (waits left out)", "bold"))
    console.print(_slowest_table(report.targets))


def _work_table(report: RunReport, run: Profile) -> Table:
    """The targets' seconds by whose work they were, osless's own stage by stage, then the waits."""
    totals = profile.stage_totals(report.targets)
    table = Table()
    table.add_column("whose work")
    table.add_column("seconds", justify="right")
    table.add_row("compile (build steps)", f"{run.compile:.2f}")
    table.add_row("smoke tests under qemu", f"{run.emulated_smoke:.2f}")
    table.add_row("native smoke tests", f"{run.native_smoke:.2f}")
    table.add_section()
    table.add_row("osless's own stages", f"{run.osless:.2f}")
    for name, seconds in totals.items():
        if name not in profile.NOT_OSLESS:
            table.add_row(Text(f"  {name}"), f"{seconds:.2f}")
    table.add_section()
    table.add_row("waiting for a build slot", f"{totals.get('queued', 0.0):.2f}")
    table.add_row("waiting for a smoke slot", f"{totals.get('smoke-queued', 0.0):.2f}")
    return table


def _slowest_table(targets: Sequence[TargetReport]) -> Table:
    """The targets that took longest, with the {JOBS} they were given and their stages."""
    table = Table()
    for column in ("service", "platform", "jobs", "seconds", "stages"):
        table.add_column(column, justify="right" if column in {"jobs", "seconds"} else "left")
    for target in profile.slowest(targets):
        stages = [(name, s) for name, s in profile.breakdown(target) if name not in profile.WAITS]
        table.add_row(
            Text(target.service),
            Text(target.platform),
            "-" if target.jobs is None else str(target.jobs),
            f"{profile.work_seconds(target):.2f}",
            Text(", ".join(f"{name} {seconds:.2f}" for name, seconds in stages)),
        )
    return table


def print_failures(console: Console, targets: Sequence[TargetReport]) -> None:
    """Each failure's reason, and the stdout diff for smoke mismatches, below the table."""
    for target in targets:
        if target.status is Status.PASSED:
            continue
        where = escape(f"{target.service} {target.platform}")
        reason = escape(target.reason or "")
        console.print(f"[red]✗ {where}[/] {target.failed_stage or ''}: {reason}", highlight=False)
        if target.smoke and target.smoke.diff:
            console.print(target.smoke.diff, markup=False, highlight=False)


def print_reproducibility(console: Console, report: ReproducibilityReport, out_root: Path) -> None:
    """Each difference between the two clean builds, then the verdict."""
    for comparison in report.targets:
        if not comparison.same:
            console.print(
                f"✗ {comparison.service} {comparison.platform}: {comparison.difference}", markup=False
            )
    for service, (first, second) in report.indexes.items():
        if first != second:
            console.print(f"✗ {service}: index {first} vs {second}", markup=False)
    verdict = "reproducible" if report.reproducible else "NOT reproducible"
    details = out_root / "reproducible.json"
    console.print(
        f"{len(report.targets)} targets built twice from clean state: {verdict} ({details})", markup=False
    )


# ---------------------------------------------------------------------------------------------------
# `list`, `doctor`, `push`


def services_table(project: Project) -> Table:
    table = Table("service", "toolchain", "languages", "platforms", "source", title_justify="left")
    for service in sorted(project.services.values(), key=lambda s: s.name):
        table.add_row(
            Text(service.name),
            Text(_toolchain_name(project, service.toolchain)),
            Text(" ".join(project.toolchains[service.toolchain].languages)),
            Text(" ".join(service.platforms)),
            Text(str(service.source.relative_to(project.root))),
        )
    return table


def _toolchain_name(project: Project, name: str) -> str:
    """`gcc-more (extends gcc)` for a derived toolchain: what its image is layered on."""
    chain = []
    toolchain = project.toolchains[name].base
    while toolchain is not None:
        chain.append(toolchain.name)
        toolchain = toolchain.base
    return f"{name} (extends {' < '.join(chain)})" if chain else name


def print_unsupported(console: Console, project: Project) -> None:
    """The services that cannot be built and the platforms `platforms = ["all"]` left out, and why."""
    for service in sorted(project.services.values(), key=lambda s: s.name):
        if service.unbuildable is not None:
            console.print(f"{service.name} cannot be built: {service.unbuildable}", markup=False)
        for platform, reason in service.unsupported.items():
            console.print(f"{service.name} is not built for {platform}: {reason}", markup=False)


def checks_table(checks: Iterable[Check]) -> Table:
    table = Table("check", "", "detail", "fix", title_justify="left")
    for check in checks:
        table.add_row(
            Text(check.name),
            "[green]ok[/]" if check.ok else "[red]FAIL[/]",
            Text(check.detail),
            Text(check.fix or ""),
        )
    return table


def transfer_line(transfer: registry.Transfer) -> str:
    """One blob or manifest of a push: uploaded or skipped, its kind, digest, size and what it is."""
    state = "uploaded" if transfer.uploaded else "skipped "
    return f"{state} {transfer.kind:8} {transfer.digest[:19]} {human_size(transfer.size):>9}  {transfer.what}"


def push_summary(result: registry.PushResult) -> str:
    return (
        f"pushed {result.reference}@{result.digest} ({result.platforms} platforms): "
        f"{result.blobs_uploaded} blobs uploaded ({human_size(result.bytes_uploaded)}), "
        f"{result.blobs_skipped} skipped ({human_size(result.bytes_skipped)})"
    )


# ---------------------------------------------------------------------------------------------------
# `verify` and `inspect`


def print_verdicts(console: Console, verdicts: Sequence[Verdict], *, verbose: bool) -> None:
    """One line per file (platform, linkage, language), its findings (`_print_findings`), and its Go
    build info byte for byte as `go version -m` prints it."""
    for verdict in verdicts:
        facts = verdict.facts
        identified = (
            f"{facts.platform or 'unknown platform'}, {facts.linkage.value}" if facts else "not an ELF"
        )
        if verdict.language:
            identified += f", {verdict.language}"
        if verdict.ok:
            console.print(f"{escape(verdict.path)}: [green]ok[/] ({identified})")
        else:
            console.print(f"{escape(verdict.path)}: [red]FAIL[/] — {escape(verdict.reason or '')}")
        _print_findings(console, verdict.findings, verbose=verbose)
        report = build_report(facts, verdict.path) if facts else None
        if report:
            console.file.write(report)  # rich would expand tabs


def print_binary(console: Console, report: BinaryReport, *, verbose: bool) -> None:
    """The verdict, what the ELF header says, the findings (`_print_findings`) and the Go build info."""
    verdict, facts = report.verdict, report.verdict.facts
    console.print(Text.assemble((report.path, "bold"), ": ", _result(report.ok)), highlight=False)
    if facts is not None:
        console.print(
            Text(
                f"  platform: {facts.platform or 'unknown'}, {facts.machine_name}, "
                f"{facts.elf_class}-bit {'LSB' if facts.little_endian else 'MSB'}; "
                f"linkage: {facts.linkage.value}"
                + (f"; interpreter {facts.interpreter}" if facts.interpreter else "")
                + (f"; language: {verdict.language}" if verdict.language else "")
            ),
            highlight=False,
        )
    _print_findings(console, verdict.findings, verbose=verbose)
    if report.go_version_m:
        console.file.write(report.go_version_m)  # tabs kept, byte for byte as `go version -m`


_COLOURS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


def _print_findings(console: Console, findings: Sequence[Finding], *, verbose: bool) -> None:
    """The errors, then the warnings (then, `verbose`, the INFO findings), one line each with its hint
    and where docs/findings.md explains it: what to do about a file, not only whether it passed."""
    for severity in list(Severity) if verbose else [Severity.ERROR, Severity.WARNING]:
        for finding in (f for f in findings if f.severity is severity):
            line = Text.assemble(
                "  ", (severity.value, _COLOURS[severity]), f" {finding.id}: {finding.message}"
            )
            console.print(line, highlight=False)
            if finding.hint:
                console.print(Text(f"    hint: {finding.hint}"), highlight=False)
            console.print(Text(f"    see {doc_link(finding.id)}"), highlight=False)


def print_image(console: Console, report: ImageReport, *, verbose: bool) -> None:
    title = Text.assemble((report.source, "bold"), f" ({report.platform}): ", _result(report.ok))
    console.print(title, highlight=False)
    console.print(_settings_table(report))
    files = Table("mode", "type", "owner", "size", "path", title="files", title_justify="left")
    for row in report.files:
        files.add_row(
            row.permissions,
            row.type.value,
            f"{row.uid}:{row.gid}",
            str(row.size),
            Text(row.path + (f" -> {row.link}" if row.link else "")),
        )
    console.print(files)
    console.print(
        Text(
            f"total: {len(report.files)} entries, {report.total_size} bytes "
            f"({human_size(report.total_size)}) in regular files, {report.layers} layer(s)"
        ),
        highlight=False,
    )
    for binary in report.binaries:
        print_binary(console, binary, verbose=verbose)
    if report.needs:
        console.print(Text("what the binaries need", "bold"))
        for need in report.needs:
            console.print(
                Text.assemble("  ", (need.message, "green" if need.provided else "red")), highlight=False
            )
    for problem in report.problems:
        console.print(Text.assemble(("✗", "red"), " ", problem), highlight=False)


def _result(ok: bool) -> Text:
    return Text("ok", "green") if ok else Text("FAIL", "red")


def _settings_table(report: ImageReport) -> Table:
    settings = report.settings
    table = Table("setting", "value", title="config", title_justify="left")
    rows = {
        "image id": report.image_id,
        "platform": settings.platform
        + (f" (source holds {', '.join(report.platforms)})" if len(report.platforms) > 1 else ""),
        "created": settings.created or "",
        "entrypoint": json.dumps(list(settings.entrypoint)),
        "cmd": json.dumps(list(settings.cmd)),
        "user": settings.user or "(root)",
        "working dir": settings.working_dir,
        "env": "\n".join(settings.env),
        "labels": "\n".join(f"{key}={value}" for key, value in sorted(settings.labels.items())),
    }
    for key, value in rows.items():
        table.add_row(key, Text(value))
    return table
