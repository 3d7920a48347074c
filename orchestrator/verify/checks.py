"""The registry of checks: each a function of one ElfContext (and the recipe's platform, None for any)
returning findings, registered with @check and run in the order they are defined here.

Language-specific findings come from the binary's Language (languages/): the checks here ask it and
never name a language. A check that raises leaves the ERROR `verify.internal` (a bug in the verifier,
never a verdict on the file) after the descriptive INFO findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from orchestrator.elf.arm import arm_arch_name
from orchestrator.elf.facts import (
    DF_1_NOW,
    DF_BIND_NOW,
    DF_TEXTREL,
    PROGRAM_TYPES,
    ElfFacts,
    Linkage,
    machine_constant,
)
from orchestrator.elf.load import MAX_FILE_SIZE, PF_X, exception_text, of_type, one_line
from orchestrator.outputs.sizes import human_size
from orchestrator.platforms import EM_ARM, EM_X86_64, PLATFORMS, Platform
from orchestrator.verify.context import ElfContext
from orchestrator.verify.findings import (
    INTERNAL_FINDING,
    Finding,
    endianness,
    error,
    info,
    warning,
)

Check = Callable[[ElfContext, Platform | None], tuple[Finding, ...]]
CHECKS: list[Check] = []


def check(function: Check) -> Check:
    """Register a check: it runs after those defined before it."""
    CHECKS.append(function)
    return function


def run_checks(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    """Every check's findings, in registration order; a check that raises is reported, never raised."""
    try:
        return tuple(finding for each in CHECKS for finding in each(context, platform))
    except Exception as exc:  # a check that raises is a bug: said so, never a traceback
        return (
            *describe(replace(context, contents=None), platform),
            error(INTERNAL_FINDING, internal_message(exc)),
        )


def internal_message(exc: BaseException) -> str:
    return f"the verifier could not check this file: {type(exc).__name__}: {exception_text(exc)}"


@check
def linkage(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    """Only a statically linked program (plain or PIE) can start in an empty image."""
    facts = context.facts
    if facts.elf_type not in PROGRAM_TYPES:
        return (
            error(
                "elf.not-executable",
                f"not a program (ELF type {facts.elf_type}) — "
                "point the recipe's output at the linked executable",
            ),
        )
    if facts.linkage is Linkage.STATIC:
        return (info("linkage.static", "statically linked"),)
    if facts.linkage is Linkage.STATIC_PIE:
        return (info("linkage.static-pie", "statically linked, position-independent (static-pie)"),)
    if facts.linkage in (Linkage.DYNAMIC, Linkage.DYNAMIC_PIE):
        return (
            error(
                "linkage.dynamic",
                _dynamic_message(facts),
                hint="C: -static; Go: CGO_ENABLED=0; Rust: a *-linux-musl target or +crt-static",
            ),
        )
    if facts.linkage is Linkage.SHARED_OBJECT:
        return (
            error(
                "linkage.shared-object",
                "a shared library, not a program — build an executable "
                "(no -shared, a binary rather than a library target)",
            ),
        )
    return (
        error(
            "linkage.ambiguous",
            "position-independent ELF with neither an interpreter nor the "
            "PIE flag (DF_1_PIE): neither a known program nor a library — link with -static or "
            "-static-pie",
        ),
    )


def _dynamic_message(facts: ElfFacts) -> str:
    if not facts.needed:  # e.g. CGO_ENABLED=0 go build -buildmode=pie, Debian's musl-gcc -static-pie
        return (
            f"has an ELF interpreter ({facts.interpreter}) — it cannot start in an empty image; "
            "build without -buildmode=pie or link fully static"
        )
    interpreter = f"interpreter {facts.interpreter}" if facts.interpreter else "no interpreter"
    return f"dynamically linked: needs {', '.join(facts.needed)} ({interpreter}) — link with -static"


@check
def architecture(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    """The header must say the recipe's platform; its ABI flag rules only make sense once it does.
    Without a platform it must say one of osless's."""
    if platform is None:
        return _unsupported(context.facts)
    return _identity_mismatches(context, platform) or _abi_findings(context, platform)


def _unsupported(facts: ElfFacts) -> tuple[Finding, ...]:
    """An ELF whose machine, class and byte order no platform has (MIPS, big-endian ppc64, x32...) can
    go into no image osless builds. The ARM variant is not judged here: without a recipe's platform an
    ARMv6 binary is still an ARM one (`--platform linux/arm/v7` says whether v7 is needed)."""
    identity = (facts.machine, facts.elf_class, facts.little_endian)
    if any((p.elf_machine, p.elf_class, p.little_endian) == identity for p in PLATFORMS.values()):
        return ()
    return (
        error(
            "arch.unsupported",
            f"{machine_constant(facts.machine)} ({facts.machine_name}), {facts.elf_class}-bit "
            f"{endianness(facts.little_endian)}: osless supports {', '.join(PLATFORMS)}",
            hint="build it for one of these platforms",
        ),
    )


def _identity_mismatches(context: ElfContext, platform: Platform) -> tuple[Finding, ...]:
    """e_machine, then class and byte order (only meaningful for the right machine); the hint names how
    the binary's language builds for the platform."""
    facts = context.facts
    cross = f"cross-compile for it ({context.language.cross_compiler(platform)})"
    if facts.machine != platform.elf_machine:
        return (
            error("arch.machine", f"built for {facts.machine_name}, recipe says {platform.name} — {cross}"),
        )
    findings: list[Finding] = []
    if facts.elf_class != platform.elf_class:
        what = (
            "x32 ABI (32-bit ELF for x86-64)"
            if (facts.machine, facts.elf_class) == (EM_X86_64, 32)
            else f"{facts.elf_class}-bit ELF"
        )
        findings.append(
            error("arch.class", f"{what}, {platform.name} needs {platform.elf_class}-bit — {cross}")
        )
    if facts.little_endian != platform.little_endian:
        findings.append(
            error(
                "arch.endian",
                f"{endianness(facts.little_endian)} ELF, {platform.name} "
                f"needs {endianness(platform.little_endian)} — {cross}",
            )
        )
    return tuple(findings)


def _abi_findings(context: ElfContext, platform: Platform) -> tuple[Finding, ...]:
    """The platform's e_flags rules (those that apply to the binary's language), then on ARM a new
    enough Tag_CPU_arch (Go writes no attributes: its GOARM is the language's check)."""
    facts = context.facts
    findings = [
        error(rule.finding, rule.problem(facts.flags, platform))
        for rule in platform.flag_rules
        if context.language.name not in rule.exempt_languages and not rule.allows(facts.flags)
    ]
    minimum = platform.arm_min_arch
    if facts.arm_cpu_arch is not None and minimum is not None and facts.arm_cpu_arch < minimum:
        findings.append(
            error(
                "arch.arm-version",
                f"built for {arm_arch_name(facts.arm_cpu_arch)}, "
                f"{platform.name} needs {arm_arch_name(minimum)} or later — raise -march",
            )
        )
    return tuple(findings)


@check
def language_architecture(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    """What the language's own records (Go's build info) say the binary was built for."""
    return () if platform is None else context.language.arch_findings(context, platform)


@check
def entry_point(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    """A program's entry point must be code the loader maps executable, or it dies at its first step."""
    facts = context.facts
    if facts.elf_type not in PROGRAM_TYPES or facts.linkage is Linkage.SHARED_OBJECT:
        return ()
    entry = context.entry & ~1 if facts.machine == EM_ARM else context.entry  # bit 0: Thumb
    if any(
        segment["p_flags"] & PF_X and segment["p_vaddr"] <= entry < segment["p_vaddr"] + segment["p_filesz"]
        for segment in of_type(context.segments, "PT_LOAD")
    ):
        return ()
    return (
        error(
            "elf.entry",
            f"entry point {entry:#x} is not in an executable PT_LOAD segment — "
            "the file is damaged or not a complete program; rebuild it",
        ),
    )


@check
def runtime(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    """What the program looks for once running (the language's findings on the contents), or why the
    contents were not read."""
    facts, contents = context.facts, context.contents
    if contents is not None:
        return context.language.runtime_findings(context, contents)
    if facts.size > MAX_FILE_SIZE:
        return (
            error(
                "elf.too-large",
                f"file is {human_size(facts.size)}, more than the {human_size(MAX_FILE_SIZE)} osless "
                "reads: only its headers were checked",
                hint="a program this large is not meant for an image; check the recipe's output",
            ),
        )
    return ()  # over the policy's max_size: `size.budget` says so


@check
def hardening(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    if context.facts.elf_type not in PROGRAM_TYPES:
        return ()
    return (*_stack_findings(context), *_relro_findings(context), *_dynamic_hygiene(context))


def _stack_findings(context: ElfContext) -> tuple[Finding, ...]:
    """PT_GNU_STACK without PF_X keeps the stack non-executable. gcc, musl-gcc and Go (1.19, 1.24) all
    write it RW, so Go needs no exception; without it the kernel may map the stack executable
    (READ_IMPLIES_EXEC on 32-bit x86)."""
    stack = next(of_type(context.segments, "PT_GNU_STACK"), None)
    hint = "link with -Wl,-z,noexecstack"
    if stack is None:
        message = "no PT_GNU_STACK header: the kernel may map the stack executable"
        return (warning("hardening.nx-stack", message, hint=hint),)
    if stack["p_flags"] & PF_X:
        hint += " and find the object asking for it (assembly without .note.GNU-stack, nested functions)"
        return (warning("hardening.nx-stack", "executable stack (PT_GNU_STACK has PF_X)", hint=hint),)
    return (info("hardening.nx-stack", "non-executable stack (PT_GNU_STACK without PF_X)"),)


def _relro_findings(context: ElfContext) -> tuple[Finding, ...]:
    """A static-pie relocates itself at startup, then makes PT_GNU_RELRO read-only; the GOT is in it only
    with BIND_NOW (gcc's default -static-pie has RELRO without BIND_NOW: partial)."""
    dynamic = context.dynamic
    if context.facts.linkage is not Linkage.STATIC_PIE:
        return ()
    if not any(True for _ in of_type(context.segments, "PT_GNU_RELRO")):
        return (
            warning(
                "hardening.relro",
                "static-pie without RELRO (no PT_GNU_RELRO): relocated data stays writable",
                hint="drop -Wl,-z,norelro; link with -Wl,-z,relro,-z,now",
            ),
        )
    if dynamic.bind_now or dynamic.flags & DF_BIND_NOW or dynamic.flags_1 & DF_1_NOW:
        return (info("hardening.relro", "full RELRO (PT_GNU_RELRO and BIND_NOW)"),)
    return (
        info(
            "hardening.relro",
            "partial RELRO: PT_GNU_RELRO without BIND_NOW, the GOT stays writable",
            hint="link with -Wl,-z,now for full RELRO",
        ),
    )


def _dynamic_hygiene(context: ElfContext) -> tuple[Finding, ...]:
    facts, dynamic = context.facts, context.dynamic
    findings: list[Finding] = []
    if dynamic.search_paths:
        paths = ", ".join(f"{tag} {value}" for tag, value in dynamic.search_paths)
        findings.append(
            warning(
                "elf.rpath",
                f"library search path ({paths}): meaningless without shared libraries",
                hint="drop -Wl,-rpath (and LD_RUN_PATH) from the link",
            )
        )
    if dynamic.textrel or dynamic.flags & DF_TEXTREL:
        hint = "compile every object with -fPIE (assembly: no absolute addresses in .text), or link -static"
        if facts.linkage is Linkage.STATIC_PIE:  # measured: glibc's static-pie start-up segfaults
            message = "text relocations (DT_TEXTREL) in a static-pie: start-up writes to read-only code"
            findings.append(error("elf.textrel", message, hint=hint))
        else:
            message = "text relocations (DT_TEXTREL): code pages are written at start-up"
            findings.append(warning("elf.textrel", message, hint=hint))
    return tuple(findings)


@check
def describe(context: ElfContext, platform: Platform | None) -> tuple[Finding, ...]:
    """INFO findings that describe the binary: platform, language, size, symbols, debug info, build IDs."""
    facts, contents = context.facts, context.contents
    identified = (
        facts.platform
        if facts.platform
        else f"{facts.machine_name}, {facts.elf_class}-bit {endianness(facts.little_endian)}, "
        "no known platform"
    )
    findings = [info("arch.identified", f"built for {identified}")]
    findings.extend(context.language.info_findings(context))
    findings.append(info("elf.size", f"{facts.size} bytes ({human_size(facts.size)})"))
    if facts.stripped:
        findings.append(info("elf.stripped", "stripped (no symbol table)"))
    if contents is not None and contents.debug_sections:
        size = sum(size for _, size in contents.debug_sections)
        findings.append(
            info(
                "elf.debug-info",
                f"debug information: {len(contents.debug_sections)} .debug_* sections, {human_size(size)}",
                hint="strip it (-s, or strip --strip-debug) for a smaller image",
            )
        )
    if contents is not None and contents.build_ids:
        ids = "; ".join(f"{kind} build ID {one_line(value)}" for kind, value in contents.build_ids)
        findings.append(info("elf.build-id", ids))
    return tuple(findings)
