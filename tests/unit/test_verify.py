"""The ELF verifier on real binaries built here (gcc; arm-linux-gnueabihf-gcc and go when present), on
byte-patched copies of them, on small crafted ELF files, and on random garbage (hypothesis). Runtime traps,
needs, hardening findings and the policy are checked on real programs that do what each finding is about."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.elf import scan as elfscan
from orchestrator.elf.facts import ElfFacts, Linkage, read_elf_facts
from orchestrator.elf.load import MAX_FILE_SIZE, CorruptElf, NotAnElf
from orchestrator.platforms import (
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_X86_64,
    PLATFORMS,
)
from orchestrator.verify import checks
from orchestrator.verify.context import read_context
from orchestrator.verify.findings import INTERNAL_FINDING, Finding, Severity, Verdict
from orchestrator.verify.policy import VerifyPolicy, verify_binary
from tests.blocking import outcome_within

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
FREESTANDING_C = "void _start(void) { for (;;) {} }\n"  # links without any libc
HELLO_GO = 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("hello\\n") }\n'

GCC = shutil.which("gcc")
ARM_GCC = shutil.which("arm-linux-gnueabihf-gcc")
GO = shutil.which("go")

AMD64, ARM64, ARMV7 = PLATFORMS["linux/amd64"], PLATFORMS["linux/arm64"], PLATFORMS["linux/arm/v7"]
ET_EXEC, ET_DYN, ET_REL = 2, 3, 1
PT_NULL, PT_LOAD, PT_NOTE = 0, 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
LOAD_ADDRESS = 0x10000
CORRUPT = "truncated or corrupt ELF: "


def run_compiler(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed (static glibc needs libc6-dev):\n{result.stderr}")


def error_ids(verdict: Verdict) -> list[str]:
    return [f.id for f in verdict.findings if f.severity is Severity.ERROR]


def problems(verdict: Verdict) -> dict[str, Severity]:
    """The findings that are not INFO, by id."""
    return {f.id: f.severity for f in verdict.findings if f.severity is not Severity.INFO}


def finding(verdict: Verdict, finding_id: str) -> Finding:
    matches = [f for f in verdict.findings if f.id == finding_id]
    assert len(matches) == 1, (finding_id, verdict.findings)
    return matches[0]


def facts_of(verdict: Verdict) -> ElfFacts:
    assert verdict.facts is not None, verdict.reason
    return verdict.facts


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """A copy of `data` with one little-endian field replaced."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------
# Real x86-64 binaries from the host's gcc

GCC_VARIANTS = {
    "static": ["-static"],
    "static-pie": ["-static-pie"],
    "dynamic-pie": ["-pie"],
    "dynamic": ["-no-pie"],
    "shared": ["-shared", "-fPIC"],
}


@pytest.fixture(scope="session")
def gcc_binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if GCC is None:
        pytest.skip("gcc is not installed (apt-get install -y gcc libc6-dev)")
    directory = tmp_path_factory.mktemp("gcc")
    (directory / "hello.c").write_text(HELLO_C)
    for name, flags in GCC_VARIANTS.items():
        run_compiler([GCC, *flags, "-o", name, "hello.c"], directory)
    return {name: directory / name for name in GCC_VARIANTS}


@pytest.fixture(scope="session")
def static_bytes(gcc_binaries: dict[str, Path]) -> bytes:
    return gcc_binaries["static"].read_bytes()


def test_static_binary_passes(gcc_binaries: dict[str, Path]) -> None:
    verdict = verify_binary(gcc_binaries["static"], AMD64)
    assert verdict.ok, verdict.reason
    assert verdict.reason is None
    facts = facts_of(verdict)
    assert (facts.linkage, facts.platform, facts.elf_type) == (Linkage.STATIC, "linux/amd64", "ET_EXEC")
    assert (facts.elf_class, facts.little_endian, facts.machine, facts.machine_name) == (
        64,
        True,
        EM_X86_64,
        "x86-64",
    )
    assert facts.interpreter is None and facts.needed == ()
    assert facts.osabi in (0, 3)  # glibc static binaries often say GNU/Linux (3)
    assert not facts.stripped
    assert "linkage.static" in [f.id for f in verdict.findings if f.severity is Severity.INFO]


def test_static_pie_passes(gcc_binaries: dict[str, Path]) -> None:
    verdict = verify_binary(gcc_binaries["static-pie"], AMD64)
    assert verdict.ok, verdict.reason
    assert (facts_of(verdict).linkage, facts_of(verdict).elf_type) == (Linkage.STATIC_PIE, "ET_DYN")


@pytest.mark.parametrize(
    ("variant", "linkage"), [("dynamic", Linkage.DYNAMIC), ("dynamic-pie", Linkage.DYNAMIC_PIE)]
)
def test_dynamic_binary_fails_naming_its_libraries(
    gcc_binaries: dict[str, Path], variant: str, linkage: Linkage
) -> None:
    verdict = verify_binary(gcc_binaries[variant], AMD64)
    assert not verdict.ok
    assert error_ids(verdict) == ["linkage.dynamic"]
    assert verdict.reason is not None
    assert "libc.so.6" in verdict.reason and "-static" in verdict.reason
    assert "/lib64/ld-linux-x86-64.so.2" in verdict.reason
    facts = facts_of(verdict)
    assert facts.linkage is linkage
    assert facts.needed == ("libc.so.6",)


def test_shared_object_fails(gcc_binaries: dict[str, Path]) -> None:
    verdict = verify_binary(gcc_binaries["shared"], AMD64)
    assert error_ids(verdict) == ["linkage.shared-object"]
    assert facts_of(verdict).linkage is Linkage.SHARED_OBJECT


def test_wrong_architecture_fails(gcc_binaries: dict[str, Path]) -> None:
    verdict = verify_binary(gcc_binaries["static"], ARM64)
    assert error_ids(verdict) == ["arch.machine"]
    assert verdict.reason is not None
    assert verdict.reason.startswith("built for x86-64, recipe says linux/arm64")


def test_no_platform_means_any_platform(gcc_binaries: dict[str, Path]) -> None:
    assert verify_binary(gcc_binaries["static"]).ok


def test_read_elf_facts_agrees_with_verify(gcc_binaries: dict[str, Path]) -> None:
    assert read_elf_facts(gcc_binaries["static-pie"]) == verify_binary(gcc_binaries["static-pie"]).facts


def test_stripped_binary_is_recognised(gcc_binaries: dict[str, Path], tmp_path: Path) -> None:
    strip = shutil.which("strip")
    if strip is None:
        pytest.skip("strip (binutils) is not installed")
    stripped = tmp_path / "stripped"
    subprocess.run([strip, "-o", str(stripped), str(gcc_binaries["static"])], check=True)
    verdict = verify_binary(stripped, AMD64)
    assert verdict.ok and facts_of(verdict).stripped
    assert "elf.stripped" in [f.id for f in verdict.findings]


@pytest.mark.parametrize(
    ("variant", "linkage", "needed"),
    [
        ("static", Linkage.STATIC, ()),
        ("static-pie", Linkage.STATIC_PIE, ()),
        ("dynamic-pie", Linkage.DYNAMIC_PIE, ("libc.so.6",)),
    ],
)
def test_linkage_needs_no_section_headers(
    gcc_binaries: dict[str, Path], tmp_path: Path, variant: str, linkage: Linkage, needed: tuple[str, ...]
) -> None:
    """What sstrip does: e_shoff, e_shnum and e_shstrndx zeroed; program headers still tell everything."""
    data = patched(gcc_binaries[variant].read_bytes(), 0x28, "<Q", 0)  # e_shoff
    data = patched(patched(data, 0x3C, "<H", 0), 0x3E, "<H", 0)  # e_shnum, e_shstrndx
    facts = read_elf_facts(write(tmp_path, variant, data))
    assert (facts.linkage, facts.needed, facts.stripped) == (linkage, needed, True)


# ---------------------------------------------------------------------------------------------------
# Not ELF, truncated, byte-patched


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"#!/bin/sh\necho hello\n", "not an ELF file (starts with '#!/bin/sh')"),
        (b"", "not an ELF file (empty)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not an ELF file (starts with '\\x89PNG\\r')"),
        (b"\n\n\x1b[31mred", "not an ELF file (starts with '\\n\\n\\x1b[31mred')"),
    ],
)
def test_non_elf_input_is_rejected_with_its_first_bytes(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, "input", content)
    verdict = verify_binary(path, AMD64)
    assert (error_ids(verdict), verdict.reason, verdict.facts) == (["elf.not-elf"], message, None)
    with pytest.raises(NotAnElf, match="not an ELF file"):
        read_elf_facts(path)


def test_missing_file_is_a_finding(tmp_path: Path) -> None:
    verdict = verify_binary(tmp_path / "absent")
    assert error_ids(verdict) == ["elf.unreadable"]


@pytest.mark.parametrize("cut", [10, 40, 64, "half", "size-1"])
def test_truncated_binary_is_corrupt(static_bytes: bytes, tmp_path: Path, cut: int | str) -> None:
    length = {"half": len(static_bytes) // 2, "size-1": len(static_bytes) - 1}.get(str(cut), cut)
    assert isinstance(length, int)
    path = write(tmp_path, "cut", static_bytes[:length])
    verdict = verify_binary(path, AMD64)
    assert error_ids(verdict) == ["elf.corrupt"]
    assert verdict.reason is not None and "\n" not in verdict.reason
    assert verdict.reason.startswith(CORRUPT)
    with pytest.raises(CorruptElf):
        read_elf_facts(path)


def test_truncation_inside_program_headers_is_explained(static_bytes: bytes, tmp_path: Path) -> None:
    verdict = verify_binary(write(tmp_path, "cut", static_bytes[:100]))
    assert verdict.reason is not None
    assert verdict.reason.startswith(f"{CORRUPT}program header table extends past end of file (")
    assert verdict.reason.endswith(" > 100 bytes)")


def test_patched_machine_identifies_arm64(static_bytes: bytes, tmp_path: Path) -> None:
    path = write(tmp_path, "arm64", patched(static_bytes, 18, "<H", EM_AARCH64))
    facts = read_elf_facts(path)
    assert (facts.platform, facts.machine_name) == ("linux/arm64", "AArch64")
    assert verify_binary(path, ARM64).ok
    assert verify_binary(path, AMD64).reason == (
        "built for AArch64, recipe says linux/amd64 — cross-compile for it (x86_64-linux-gnu-gcc)"
    )


def test_patched_unknown_machine_is_named(static_bytes: bytes, tmp_path: Path) -> None:
    facts = read_elf_facts(write(tmp_path, "mips", patched(static_bytes, 18, "<H", 8)))  # EM_MIPS
    assert facts.platform is None
    assert "MIPS" in facts.machine_name


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (4, 3, f"{CORRUPT}unknown ELF class 3 in e_ident (1 is 32-bit, 2 is 64-bit)"),
        (5, 0, f"{CORRUPT}unknown byte order 0 in e_ident (1 is little-endian, 2 is big-endian)"),
    ],
)
def test_patched_identification_is_corrupt(
    static_bytes: bytes, tmp_path: Path, offset: int, value: int, message: str
) -> None:
    verdict = verify_binary(write(tmp_path, "bad", patched(static_bytes, offset, "B", value)))
    assert (error_ids(verdict), verdict.reason) == (["elf.corrupt"], message)


@pytest.mark.parametrize(("offset", "value"), [(4, 1), (5, 2)])  # EI_CLASS 32-bit, EI_DATA big-endian
def test_patched_class_or_byte_order_never_passes(
    static_bytes: bytes, tmp_path: Path, offset: int, value: int
) -> None:
    verdict = verify_binary(write(tmp_path, "bad", patched(static_bytes, offset, "B", value)), AMD64)
    assert not verdict.ok
    assert set(error_ids(verdict)) <= {
        "elf.corrupt",
        "arch.class",
        "arch.endian",
        "arch.machine",
        "elf.entry",
    }


def test_relocatable_type_is_not_executable(static_bytes: bytes, tmp_path: Path) -> None:
    verdict = verify_binary(write(tmp_path, "rel", patched(static_bytes, 16, "<H", ET_REL)), AMD64)
    assert error_ids(verdict) == ["elf.not-executable"]


def test_entry_point_outside_code_fails(static_bytes: bytes, tmp_path: Path) -> None:
    # 0x400000 is the start of the first PT_LOAD, which is read-only in a gcc -static binary.
    verdict = verify_binary(write(tmp_path, "entry", patched(static_bytes, 24, "<Q", 0x400000)), AMD64)
    assert error_ids(verdict) == ["elf.entry"]
    assert verdict.reason is not None
    assert verdict.reason.startswith("entry point 0x400000 is not in an executable")


# ---------------------------------------------------------------------------------------------------
# Crafted ELF files: one PT_LOAD holding everything, optional extra segments and .ARM.attributes


def craft_elf(
    *,
    machine: int,
    elf_class: int = 32,
    little_endian: bool = True,
    flags: int = 0,
    elf_type: int = ET_EXEC,
    attributes: bytes | None = None,
    entry_offset: int = 0,
    segments: Sequence[tuple[int, int, bytes]] = (),
) -> bytes:
    """A minimal but valid ELF executable.

    `segments` are extra (p_type, p_flags, contents), appended to the file; `attributes` becomes an
    `.ARM.attributes` section (with `.shstrtab` and section headers). The entry point is in the code
    PT_LOAD, `entry_offset` bytes past the program headers.
    """
    order = "<" if little_endian else ">"
    wide = elf_class == 64
    ehdr, phdr, shdr = (
        ("16sHHIQQQIHHHHHH", "IIQQQQQQ", "IIQQQQIIQQ")
        if wide
        else ("16sHHIIIIIHHHHHH", "IIIIIIII", "IIIIIIIIII")
    )
    ehsize, phentsize, shentsize = (struct.calcsize(order + f) for f in (ehdr, phdr, shdr))
    phnum = 1 + len(segments)
    body = bytearray(b"\0" * (ehsize + phentsize * phnum + 16))  # 16 bytes of "code" after the headers
    placed = []
    for p_type, p_flags, contents in segments:
        placed.append((p_type, p_flags, len(body), len(contents)))
        body += contents
    shoff = shnum = shstrndx = 0
    if attributes is not None:
        names = b"\0.ARM.attributes\0.shstrtab\0"
        attributes_offset = len(body)
        body += attributes
        names_offset = len(body)
        body += names
        body += b"\0" * (-len(body) % 8)
        shoff, shnum, shstrndx = len(body), 3, 2
        sections = [
            (0, 0, 0, 0),
            (1, 0x70000003, attributes_offset, len(attributes)),
            (17, 3, names_offset, len(names)),
        ]  # SHT_ARM_ATTRIBUTES, SHT_STRTAB
        for name, sh_type, offset, size in sections:  # the same field order in both classes
            body += struct.pack(order + shdr, name, sh_type, 0, 0, offset, size, 0, 0, 1, 0)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if little_endian else 2, 1, 0]) + b"\0" * 8
    entry = LOAD_ADDRESS + ehsize + phentsize * phnum + entry_offset
    struct.pack_into(
        order + ehdr,
        body,
        0,
        ident,
        elf_type,
        machine,
        1,
        entry,
        ehsize,
        shoff,
        flags,
        ehsize,
        phentsize,
        phnum,
        shentsize,
        shnum,
        shstrndx,
    )
    headers = [(PT_LOAD, PF_R | PF_X, 0, len(body)), *placed]
    for n, (p_type, p_flags, offset, size) in enumerate(headers):
        address = LOAD_ADDRESS + offset
        fields = (
            (p_type, p_flags, offset, address, address, size, size, 4)
            if wide
            else (p_type, offset, address, address, size, size, p_flags, 4)
        )
        struct.pack_into(order + phdr, body, ehsize + n * phentsize, *fields)
    return bytes(body)


def aeabi_attributes(cpu_arch: int, *, other_vendor_first: bool = True) -> bytes:
    """An `.ARM.attributes` section as GNU as writes it: Tag_CPU_name, Tag_CPU_arch, and more."""
    file_attributes = (
        bytes([5])
        + b"7-A\0"
        + bytes([6, cpu_arch, 7, 65, 8, 1])  # name, arch, profile, ISA
        + bytes([32, 0])
        + b"gnu\0"
        + bytes([67])
        + b"2.09\0"
        + bytes([68, 1])
    )
    scope = bytes([1]) + struct.pack("<I", 5 + len(file_attributes)) + file_attributes
    aeabi = b"aeabi\0" + scope
    other = b"gnu\0" + bytes([1]) + struct.pack("<I", 7) + bytes([6, 2])  # must not be mistaken for aeabi
    subsections = [other, aeabi] if other_vendor_first else [aeabi]
    return b"A" + b"".join(struct.pack("<I", 4 + len(s)) + s for s in subsections)


def craft_arm(*, flags: int = 0x05000400, cpu_arch: int | None = 10, thumb: bool = False) -> bytes:
    return craft_elf(
        machine=EM_ARM,
        flags=flags,
        entry_offset=1 if thumb else 0,
        attributes=None if cpu_arch is None else aeabi_attributes(cpu_arch),
    )


def verify_bytes(tmp_path: Path, data: bytes, platform_name: str | None) -> Verdict:
    platform = PLATFORMS[platform_name] if platform_name else None
    return verify_binary(write(tmp_path, "crafted", data), platform)


def test_crafted_arm_v7_hard_float_passes(tmp_path: Path) -> None:
    verdict = verify_bytes(tmp_path, craft_arm(), "linux/arm/v7")
    assert verdict.ok, verdict.reason
    facts = facts_of(verdict)
    assert (facts.platform, facts.arm_cpu_arch, facts.linkage) == ("linux/arm/v7", 10, Linkage.STATIC)


def test_crafted_arm_v6_fails_for_v7(tmp_path: Path) -> None:
    verdict = verify_bytes(tmp_path, craft_arm(cpu_arch=6), "linux/arm/v7")
    assert error_ids(verdict) == ["arch.arm-version"]
    assert verdict.reason is not None
    assert verdict.reason.startswith("built for ARMv6, linux/arm/v7 needs ARMv7 or later")
    assert facts_of(verdict).platform == "linux/arm/v6"


@pytest.mark.parametrize(
    ("cpu_arch", "platform"),
    [
        (4, "linux/arm/v5"),
        (9, "linux/arm/v6"),
        (14, "linux/arm/v7"),
        (None, "linux/arm"),
    ],
)
def test_crafted_arm_variant_follows_tag_cpu_arch(
    tmp_path: Path, cpu_arch: int | None, platform: str
) -> None:
    assert facts_of(verify_bytes(tmp_path, craft_arm(cpu_arch=cpu_arch), None)).platform == platform


def test_crafted_arm_soft_float_fails_for_v7(tmp_path: Path) -> None:
    verdict = verify_bytes(tmp_path, craft_arm(flags=0x05000200), "linux/arm/v7")
    assert error_ids(verdict) == ["arch.arm-float"]


def test_crafted_arm_like_go_passes(tmp_path: Path) -> None:
    """Go sets neither float flag (it writes 0x5000002) and has no .ARM.attributes."""
    verdict = verify_bytes(tmp_path, craft_arm(flags=0x05000002, cpu_arch=None), "linux/arm/v7")
    assert verdict.ok, verdict.reason


def test_crafted_arm_old_eabi_fails(tmp_path: Path) -> None:
    verdict = verify_bytes(tmp_path, craft_arm(flags=0x04000400), "linux/arm/v7")
    assert error_ids(verdict) == ["arch.arm-eabi"]


def test_crafted_arm_thumb_entry_point_passes(tmp_path: Path) -> None:
    assert verify_bytes(tmp_path, craft_arm(thumb=True), "linux/arm/v7").ok


def test_crafted_arm_bad_attributes_are_corrupt(tmp_path: Path) -> None:
    data = craft_elf(machine=EM_ARM, flags=0x05000400, attributes=b"A\xff\0\0\0aeabi")  # length past the end
    verdict = verify_bytes(tmp_path, data, "linux/arm/v7")
    assert error_ids(verdict) == ["elf.corrupt"]


GO_NOTE = struct.pack("<III", 3, 4, 4) + b"Go\0\0" + b"abcd"  # namesz, descsz, type, "Go", build ID
GO_BUILDINFO = b"\xff Go buildinf:\x08\x02" + b"\0" * 16


@pytest.mark.parametrize(
    ("flags", "segments", "ok"),
    [
        (0x5, (), True),  # RVC + double-float: what gcc writes
        (0x4, (), True),
        (0x1, (), False),  # soft-float
        (0x3, (), False),  # single-float
        (0x0, ((PT_NOTE, PF_R, GO_NOTE),), True),  # Go's build ID note
        (0x0, ((PT_LOAD, PF_R | PF_W, GO_BUILDINFO),), True),  # Go's build info
        (0x0, ((PT_LOAD, PF_R | PF_W, b"\0" * 32),), False),
    ],
)
def test_crafted_riscv_float_abi(
    tmp_path: Path, flags: int, segments: tuple[tuple[int, int, bytes], ...], ok: bool
) -> None:
    data = craft_elf(machine=EM_RISCV, elf_class=64, flags=flags, segments=segments)
    verdict = verify_bytes(tmp_path, data, "linux/riscv64")
    assert verdict.ok is ok, verdict.reason
    assert error_ids(verdict) == ([] if ok else ["arch.riscv-float-abi"])


@pytest.mark.parametrize(("flags", "ok"), [(2, True), (0, True), (1, False), (3, False)])
def test_crafted_ppc64le_abi_version(tmp_path: Path, flags: int, ok: bool) -> None:
    verdict = verify_bytes(tmp_path, craft_elf(machine=EM_PPC64, elf_class=64, flags=flags), "linux/ppc64le")
    assert error_ids(verdict) == ([] if ok else ["arch.ppc64-abi"])


def test_crafted_big_endian_ppc64_fails_for_ppc64le(tmp_path: Path) -> None:
    data = craft_elf(machine=EM_PPC64, elf_class=64, little_endian=False, flags=1)
    verdict = verify_bytes(tmp_path, data, "linux/ppc64le")
    assert error_ids(verdict) == ["arch.endian"]
    assert verdict.reason is not None
    assert verdict.reason.startswith("big-endian ELF, linux/ppc64le needs little-endian")
    assert facts_of(verdict).platform is None


def test_crafted_big_endian_s390x_passes(tmp_path: Path) -> None:
    data = craft_elf(machine=EM_S390, elf_class=64, little_endian=False)
    verdict = verify_bytes(tmp_path, data, "linux/s390x")
    assert verdict.ok, verdict.reason
    assert facts_of(verdict).platform == "linux/s390x"


def test_crafted_x32_fails_for_amd64(tmp_path: Path) -> None:
    verdict = verify_bytes(tmp_path, craft_elf(machine=EM_X86_64, elf_class=32), "linux/amd64")
    assert error_ids(verdict) == ["arch.class"]
    assert verdict.reason is not None and verdict.reason.startswith("x32 ABI")
    assert facts_of(verdict).platform is None


def test_crafted_i386_passes(tmp_path: Path) -> None:
    verdict = verify_bytes(tmp_path, craft_elf(machine=EM_386), "linux/386")
    assert verdict.ok, verdict.reason
    assert facts_of(verdict).stripped  # no section headers at all


def test_crafted_64_bit_arm_fails_for_armv7(tmp_path: Path) -> None:
    data = craft_elf(machine=EM_ARM, elf_class=64, flags=0x05000400)
    verdict = verify_bytes(tmp_path, data, "linux/arm/v7")
    assert error_ids(verdict) == ["arch.class"]


MIPS_BIG_ENDIAN = craft_elf(machine=8, elf_class=32, little_endian=False)  # EM_MIPS, like a mips static


@pytest.mark.parametrize(
    ("data", "machine"),
    [
        (MIPS_BIG_ENDIAN, "EM_MIPS (MIPS R3000), 32-bit big-endian"),
        (craft_elf(machine=EM_X86_64, elf_class=32), "EM_X86_64 (x86-64), 32-bit little-endian"),
        (
            craft_elf(machine=EM_PPC64, elf_class=64, little_endian=False, flags=1),
            "EM_PPC64 (PowerPC64), 64-bit big-endian",
        ),
    ],
    ids=["mips", "x32", "ppc64-big-endian"],
)
def test_crafted_unsupported_machine_fails_without_a_platform(
    tmp_path: Path, data: bytes, machine: str
) -> None:
    verdict = verify_bytes(tmp_path, data, None)
    assert error_ids(verdict) == ["arch.unsupported"]
    assert verdict.reason == f"{machine}: osless supports {', '.join(PLATFORMS)}"


@pytest.mark.parametrize(
    "data",
    [
        craft_arm(),
        craft_arm(cpu_arch=6),  # ARMv6: an ARM binary all the same; --platform linux/arm/v7 judges it
        craft_elf(machine=EM_386),
        craft_elf(machine=EM_S390, elf_class=64, little_endian=False),
        craft_elf(machine=EM_AARCH64, elf_class=64),
    ],
    ids=["armv7", "armv6", "386", "s390x", "arm64"],
)
def test_crafted_supported_machine_passes_without_a_platform(tmp_path: Path, data: bytes) -> None:
    verdict = verify_bytes(tmp_path, data, None)
    assert verdict.ok, verdict.reason


def test_osless_verify_fails_an_unsupported_machine(tmp_path: Path) -> None:
    path = write(tmp_path, "mips", MIPS_BIG_ENDIAN)
    result = run_osless_limited("verify", str(path))
    assert result.returncode == 7, (result.stdout, result.stderr)
    reason = f"EM_MIPS (MIPS R3000), 32-bit big-endian: osless supports {', '.join(PLATFORMS)}"
    assert result.stdout.splitlines()[:2] == [
        f"{path}: FAIL — {reason}",
        f"  error arch.unsupported: {reason}",
    ]


def test_crafted_pie_without_interpreter_or_flag_is_ambiguous(tmp_path: Path) -> None:
    data = craft_elf(machine=EM_X86_64, elf_class=64, elf_type=ET_DYN)
    verdict = verify_bytes(tmp_path, data, "linux/amd64")
    assert error_ids(verdict) == ["linkage.ambiguous"]


def test_crafted_huge_program_header_count_is_corrupt(tmp_path: Path) -> None:
    data = patched(craft_elf(machine=EM_386), 44, "<H", 0xFFF0)  # e_phnum
    verdict = verify_bytes(tmp_path, data, None)
    assert verdict.reason is not None
    assert verdict.reason.startswith(f"{CORRUPT}program header table extends past end of file")


# ---------------------------------------------------------------------------------------------------
# Real ARM binaries, when Debian's armhf cross compiler is installed


@pytest.fixture(scope="session")
def arm_binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if ARM_GCC is None:
        pytest.skip("arm-linux-gnueabihf-gcc is not installed (apt-get install -y gcc-arm-linux-gnueabihf)")
    directory = tmp_path_factory.mktemp("arm")
    (directory / "hello.c").write_text(HELLO_C)
    (directory / "start.c").write_text(FREESTANDING_C)
    # Linked against Debian's armhf libc.a, -march=armv6 still gives Tag_CPU_arch v7 (the linker takes
    # the highest of all objects): a real v6 or soft-float binary has to be built without libc.
    freestanding = ["-nostdlib", "-static", "-ffreestanding", "start.c"]
    variants = {
        "v7": ["-static", "hello.c"],
        "thumb": ["-march=armv7-a", "-mthumb", "-mfpu=vfpv3", *freestanding],
        "v6": ["-march=armv6", "-marm", "-mfpu=vfp", *freestanding],
        "soft": ["-march=armv7-a", "-marm", "-mfloat-abi=soft", *freestanding],
    }
    for name, flags in variants.items():
        run_compiler([ARM_GCC, *flags, "-o", name], directory)
    return {name: directory / name for name in variants}


@pytest.mark.parametrize(
    ("variant", "errors", "platform"),
    [
        ("v7", [], "linux/arm/v7"),
        ("thumb", [], "linux/arm/v7"),
        ("v6", ["arch.arm-version"], "linux/arm/v6"),
        ("soft", ["arch.arm-float"], "linux/arm/v7"),
    ],
)
def test_real_arm_binaries(
    arm_binaries: dict[str, Path], variant: str, errors: list[str], platform: str
) -> None:
    verdict = verify_binary(arm_binaries[variant], ARMV7)
    assert error_ids(verdict) == errors, verdict.reason
    assert facts_of(verdict).platform == platform


# ---------------------------------------------------------------------------------------------------
# Real Go binaries, when a Go toolchain is installed


@pytest.fixture(scope="session")
def go_binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if GO is None:
        pytest.skip("go is not installed (apt-get install -y golang-go)")
    directory = tmp_path_factory.mktemp("go")
    (directory / "main.go").write_text(HELLO_GO)
    (directory / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
    variants = {
        "riscv64": {"GOARCH": "riscv64"},
        "arm6": {"GOARCH": "arm", "GOARM": "6"},
        "arm7": {"GOARCH": "arm", "GOARM": "7"},
        "amd64": {"GOARCH": "amd64"},
        "pie": {"GOARCH": "amd64", "GOFLAGS": "-buildmode=pie"},
    }
    for name, env in variants.items():
        base = {"HOME": str(directory), **os.environ}  # go needs a HOME (or GOCACHE) for its build cache
        run_compiler([GO, "build", "-o", name, "."], directory, {**base, "CGO_ENABLED": "0", **env})
    return {name: directory / name for name in variants}


@pytest.mark.parametrize(
    ("variant", "platform", "linkage"),
    [
        ("riscv64", "linux/riscv64", Linkage.STATIC),
        ("arm7", "linux/arm/v7", Linkage.STATIC),  # no .ARM.attributes: the variant comes from GOARM
        ("pie", "linux/amd64", Linkage.DYNAMIC_PIE),
    ],
)
def test_real_go_binaries(
    go_binaries: dict[str, Path], variant: str, platform: str, linkage: Linkage
) -> None:
    verdict = verify_binary(go_binaries[variant], PLATFORMS[platform])
    assert facts_of(verdict).linkage is linkage
    assert facts_of(verdict).platform == platform
    assert "go.buildinfo" in [f.id for f in verdict.findings]
    if linkage is Linkage.STATIC:
        assert verdict.ok, verdict.reason
    else:  # PT_INTERP and no DT_NEEDED: `ldd` says "statically linked", the kernel says ENOENT
        assert facts_of(verdict).needed == ()
        assert verdict.reason is not None and verdict.reason.startswith("has an ELF interpreter (/lib")
        assert "-buildmode=pie" in verdict.reason


def test_go_goarm_6_fails_for_armv7(go_binaries: dict[str, Path]) -> None:
    verdict = verify_binary(go_binaries["arm6"], ARMV7)
    assert error_ids(verdict) == ["arch.arm-version"]
    assert verdict.reason is not None and "GOARM=6" in verdict.reason and "set GOARM=7" in verdict.reason
    facts = facts_of(verdict)
    assert facts.platform == "linux/arm/v6"
    assert facts.go is not None and facts.go.goarm == "6"


def test_go_goarch_mismatch_names_the_setting(go_binaries: dict[str, Path]) -> None:
    verdict = verify_binary(go_binaries["amd64"], ARM64)
    assert error_ids(verdict) == ["arch.machine", "arch.go-goarch"]  # the header's verdict comes first
    go_finding = next(f for f in verdict.errors if f.id == "arch.go-goarch")
    assert go_finding.message == "built with GOARCH=amd64, recipe says linux/arm64 — set GOARCH=arm64"


def test_go_build_info_message(go_binaries: dict[str, Path]) -> None:
    verdict = verify_binary(go_binaries["amd64"], AMD64)
    assert verdict.ok, verdict.reason
    info = next(f for f in verdict.findings if f.id == "go.buildinfo")
    assert info.severity is Severity.INFO
    assert info.message.startswith("Go go1.") and info.message.endswith(", module example.com/hello")


# ---------------------------------------------------------------------------------------------------
# Runtime traps, needs and hardening on real programs (host gcc: glibc >= 2.34; host go)

W, E, INFO = Severity.WARNING, Severity.ERROR, Severity.INFO


def fopen_c(path: str) -> str:
    return f'#include <stdio.h>\nint main(void) {{ printf("%d\\n", fopen("{path}", "r") != 0); return 0; }}\n'


def call_c(header: str, call: str) -> str:
    return (
        f'#include <{header}>\n#include <stdio.h>\nint main(void) {{ printf("%d\\n", {call}); return 0; }}\n'
    )


GETPWNAM_C = call_c("pwd.h", 'getpwnam("root") != 0')
GETADDRINFO_C = call_c("netdb.h", 'getaddrinfo("localhost", 0, 0, (struct addrinfo **)0)')
ICONV_C = call_c("iconv.h", 'iconv_open("UTF-8", "ISO-8859-1") == (iconv_t)-1')
MKSTEMP_C = call_c("stdlib.h", "mkstemp((char[]){'x', 'X', 'X', 'X', 'X', 'X', 'X', 0})")
# An absolute address in .text: a text relocation in a PIE (-z notext lets the link through).
TEXTREL_C = (
    "#include <stdio.h>\nextern const void *table[];\n"
    '__asm__(".section .text\\n.globl table\\n.p2align 3\\ntable: .quad puts\\n.previous\\n");\n'
    'int main(void) { printf("%p\\n", table[0]); return 0; }\n'
)
STATIC, STRIPPED, PIE = ["-static"], ["-static", "-s"], ["-static-pie"]
# "/tmp" and "/var/tmp" both used: GNU ld -O2 (gcc -O2 passes it) stores "/tmp" as the end of "/var/tmp".
TMP_MERGED_C = (
    "#include <stdio.h>\nint main(int argc, char **argv) {\n"
    '    printf("%d\\n", fopen(argc > 1 ? "/var/tmp" : "/tmp", "r") != 0);\n    return 0;\n}\n'
)
OPTIMIZED = ["-O2", "-static", "-s"]

# name: (source, flags, findings that are not INFO, INFO findings that must be there)
C_PROGRAMS: dict[str, tuple[str, list[str], dict[str, Severity], set[str]]] = {
    "hello": (HELLO_C, STRIPPED, {}, {"hardening.nx-stack", "elf.stripped", "elf.size", "elf.build-id"}),
    "getpwnam": (GETPWNAM_C, STATIC, {"needs.passwd": W}, {"runtime.nss"}),
    "getpwnam-stripped": (GETPWNAM_C, STRIPPED, {"needs.passwd": W}, {"runtime.nss"}),
    "getaddrinfo": (GETADDRINFO_C, STATIC, {}, {"runtime.nss"}),
    "iconv": (ICONV_C, STATIC, {"runtime.gconv": E}, set()),
    "iconv-stripped": (ICONV_C, STRIPPED, {}, set()),  # no reliable sign left: gconv strings are everywhere
    "ca-bundle": (
        fopen_c("/etc/ssl/certs/ca-certificates.crt"),
        STRIPPED,
        {"needs.ca-certificates": W},
        set(),
    ),
    "zoneinfo": (fopen_c("/usr/share/zoneinfo/Europe/Paris"), STRIPPED, {"needs.tzdata": W}, set()),
    "passwd-file": (fopen_c("/etc/passwd"), STRIPPED, {"needs.passwd": W}, set()),
    "mkstemp": (MKSTEMP_C, STATIC, {"needs.tmp": W}, set()),
    "tmp-path": (fopen_c("/tmp/app.lock"), STRIPPED, {"needs.tmp": W}, set()),
    "tmp-merged": (TMP_MERGED_C, OPTIMIZED, {"needs.tmp": W}, set()),
    "tmp-prefix": (fopen_c("/tmpfoo"), OPTIMIZED, {}, set()),  # starts with /tmp: not it
    "tmp-inner": (fopen_c("/home/me/tmp/app.lock"), OPTIMIZED, {}, set()),  # no /tmp path
    "debug": (HELLO_C, [*STATIC, "-g"], {}, {"elf.debug-info"}),
    "execstack": (HELLO_C, [*STATIC, "-Wl,-z,execstack"], {"hardening.nx-stack": W}, set()),
    "static-pie": (HELLO_C, PIE, {}, {"hardening.relro"}),
    "static-pie-now": (HELLO_C, [*PIE, "-Wl,-z,now"], {}, {"hardening.relro"}),
    "static-pie-norelro": (HELLO_C, [*PIE, "-Wl,-z,norelro"], {"hardening.relro": W}, set()),
    "rpath": (HELLO_C, [*PIE, "-Wl,--disable-new-dtags,-rpath,/opt/lib"], {"elf.rpath": W}, set()),
    "runpath": (HELLO_C, [*PIE, "-Wl,--enable-new-dtags,-rpath,/opt/lib"], {"elf.rpath": W}, set()),
    "textrel": (TEXTREL_C, [*PIE, "-Wl,-z,notext"], {"elf.textrel": E}, set()),
}


@pytest.fixture(scope="session")
def c_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if GCC is None:
        pytest.skip("gcc is not installed (apt-get install -y gcc libc6-dev)")
    directory = tmp_path_factory.mktemp("programs")
    for name, (source, flags, _, _) in C_PROGRAMS.items():
        (directory / f"{name}.c").write_text(source)
        run_compiler([GCC, *flags, "-o", name, f"{name}.c"], directory)
    return {name: directory / name for name in C_PROGRAMS}


@pytest.mark.parametrize("name", C_PROGRAMS)
def test_c_program_findings(c_programs: dict[str, Path], name: str) -> None:
    _, _, expected, infos = C_PROGRAMS[name]
    verdict = verify_binary(c_programs[name], AMD64)
    assert problems(verdict) == expected
    assert infos <= {f.id for f in verdict.findings if f.severity is Severity.INFO}


@pytest.mark.parametrize(
    ("name", "finding_id", "message"),
    [
        (
            "getpwnam",
            "needs.passwd",
            "calls getpwnam: user and group lookups read /etc/passwd and /etc/group",
        ),
        ("getpwnam", "runtime.nss", "calls getpwnam: glibc >= 2.34 answers with its built-in files and dns"),
        (
            "getpwnam-stripped",
            "needs.passwd",
            "uses glibc's NSS (stripped; it holds libnss_): user and group",
        ),
        ("getaddrinfo", "runtime.nss", "calls getaddrinfo"),
        (
            "iconv",
            "runtime.gconv",
            "uses iconv_open: conversions other than UTF-8/ASCII/UCS need gconv modules absent in scratch",
        ),
        ("ca-bundle", "needs.ca-certificates", "refers to /etc/ssl/certs/ca-certificates.crt: TLS peers"),
        ("zoneinfo", "needs.tzdata", "refers to /usr/share/zoneinfo/Europe/Paris: a TZ naming a zone"),
        ("passwd-file", "needs.passwd", "refers to /etc/passwd: user and group lookups read it"),
        ("mkstemp", "needs.tmp", "calls mkstemp: temporary files go to /tmp (or $TMPDIR)"),
        ("tmp-path", "needs.tmp", "refers to /tmp/app.lock: temporary files"),
        (
            "tmp-merged",
            "needs.tmp",
            "refers to /var/tmp (or to /tmp, which linkers store as the end of a longer string): temporary",
        ),
        ("hello", "elf.build-id", "GNU build ID "),
        ("hello", "hardening.nx-stack", "non-executable stack"),
        ("debug", "elf.debug-info", "debug information: "),
        ("execstack", "hardening.nx-stack", "executable stack (PT_GNU_STACK has PF_X)"),
        ("static-pie", "hardening.relro", "partial RELRO: PT_GNU_RELRO without BIND_NOW"),
        ("static-pie-now", "hardening.relro", "full RELRO (PT_GNU_RELRO and BIND_NOW)"),
        ("static-pie-norelro", "hardening.relro", "static-pie without RELRO"),
        ("rpath", "elf.rpath", "library search path (DT_RPATH /opt/lib)"),
        ("runpath", "elf.rpath", "library search path (DT_RUNPATH /opt/lib)"),
        ("textrel", "elf.textrel", "text relocations (DT_TEXTREL) in a static-pie"),
    ],
)
def test_c_finding_messages(c_programs: dict[str, Path], name: str, finding_id: str, message: str) -> None:
    assert finding(verify_binary(c_programs[name]), finding_id).message.startswith(message)


def test_the_merged_tmp_string_is_only_the_end_of_var_tmp(c_programs: dict[str, Path]) -> None:
    """The case needs.tmp missed: the linker merged the program's "/tmp" into its "/var/tmp"."""
    data = c_programs["tmp-merged"].read_bytes()
    assert b"\0/tmp\0" not in data
    assert b"/var/tmp\0" in data


def test_glibc_profile_output_default_is_no_tmp_use(gcc_binaries: dict[str, Path]) -> None:
    """glibc < 2.41 puts "/var/tmp\\0/var/profile" (LD_PROFILE_OUTPUT) in every static binary."""
    data = gcc_binaries["static"].read_bytes()
    assert b"/var/tmp\0/var/profile\0" in data, "the host's glibc no longer has it: test on glibc < 2.41"
    assert "needs.tmp" not in problems(verify_binary(gcc_binaries["static"], AMD64))


def test_cross_linker_merges_tmp_too(tmp_path: Path) -> None:
    if ARM_GCC is None:
        pytest.skip("arm-linux-gnueabihf-gcc is not installed (apt-get install -y gcc-arm-linux-gnueabihf)")
    (tmp_path / "merged.c").write_text(TMP_MERGED_C)
    run_compiler([ARM_GCC, *OPTIMIZED, "-o", "merged", "merged.c"], tmp_path)
    data = (tmp_path / "merged").read_bytes()
    assert b"\0/tmp\0" not in data and b"/var/tmp\0" in data
    assert problems(verify_binary(tmp_path / "merged", ARMV7)) == {"needs.tmp": W}


def _contents(loaded: bytes) -> elfscan.Contents:
    return elfscan.Contents(loaded=loaded, functions=None, notes=(), debug_sections=())


@pytest.mark.parametrize(
    ("loaded", "expected"),
    [
        (b"\0/tmp\0", elfscan.FoundString(text="/tmp", whole=True)),
        (b"\0/var/tmp\0", elfscan.FoundString(text="/var/tmp", whole=False)),
        (b"\0\0@@/var/tmp\0", elfscan.FoundString(text="/var/tmp", whole=False)),  # after a float
        (b"\x80\x01/tmp\0", elfscan.FoundString(text="/tmp", whole=True)),  # after unprintable data
        (b"\0/var/tmp\0x\0/tmp\0", elfscan.FoundString(text="/tmp", whole=True)),  # whole one first
        (b"/tmp\0", elfscan.FoundString(text="/tmp", whole=True)),
        (b"\0/tmpfoo\0/tmp.x\0/tmp", None),  # longer names, and no NUL at the end
        (b"\0/var/tmp\0/var/profile\0", None),  # glibc's LD_PROFILE_OUTPUT default
        (b"\0/var/tmp\0/var/profile\0\0/usr/tmp\0", elfscan.FoundString(text="/usr/tmp", whole=False)),
    ],
)
def test_tmp_is_found_whole_or_as_the_end_of_a_string(
    loaded: bytes, expected: elfscan.FoundString | None
) -> None:
    found = _contents(loaded).first_ending((elfscan.TMP_STRING,), ignore=elfscan.LIBRARY_TMP_LITERALS)
    assert found == expected


@pytest.mark.parametrize(
    ("loaded", "expected"),
    [
        (b"\0/tmp/app.lock\0", "/tmp/app.lock"),
        (b"\0\0@@/tmp/app.lock\0", "/tmp/app.lock"),
        (b"X_2.6\0\0\0/tmp/tmpnam_XXXX\x01\0", "/tmp/tmpnam_XXXX"),  # musl's, unterminated
        (b"unix:/tmp/s\0", "/tmp/s"),
        (b"\0/var/tmp/x\0/home/me/tmp/y\0/build.tmp/z\0", None),
    ],
)
def test_paths_under_tmp_start_a_string(loaded: bytes, expected: str | None) -> None:
    assert _contents(loaded).first_match(elfscan.TMP_PATH) == expected


# ---------------------------------------------------------------------------------------------------
# C++ from the host's g++: libstdc++'s locale code links iconv_open into every program using iostream

GXX = shutil.which("g++")
HELLO_CXX = """#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
int main() {
    std::string caught;
    std::thread worker([&] {
        try { throw std::runtime_error("boom"); } catch (const std::exception& e) { caught = e.what(); }
    });
    worker.join();
    std::cout << "caught " << caught << std::endl;
    return caught == "boom" ? 0 : 1;
}
"""
# libstdc++'s iconv-based codecvt (<ext/codecvt_specializations.h>): converts between charsets it names.
ICONV_CXX = """#include <ext/codecvt_specializations.h>
#include <iostream>
#include <locale>
typedef std::codecvt<char, char, __gnu_cxx::encoding_state> convert;
int main() {
    __gnu_cxx::encoding_state state("UTF-8", "ISO-8859-1");
    std::locale with(std::locale::classic(), new convert);
    char in[] = "x", out[8];
    const char* in_next;
    char* out_next;
    std::cout << std::use_facet<convert>(with).out(state, in, in + 1, in_next, out, out + 8, out_next);
    return 0;
}
"""
CXX_PROGRAMS = {
    "hello": (HELLO_CXX, STATIC),
    "hello-stripped": (HELLO_CXX, STRIPPED),
    "hello-pie": (HELLO_CXX, PIE),
    "iconv": (ICONV_CXX, STATIC),
    "c-iconv": (ICONV_C, STATIC),  # a C program calling iconv_open, linked by g++ with libstdc++
}


@pytest.fixture(scope="session")
def cxx_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if GXX is None:
        pytest.skip("g++ is not installed (apt-get install -y g++)")
    directory = tmp_path_factory.mktemp("cxx")
    for name, (source, flags) in CXX_PROGRAMS.items():
        (directory / f"{name}.cpp").write_text(source)
        run_compiler([GXX, *flags, "-O2", "-pthread", "-o", name, f"{name}.cpp"], directory)
    return {name: directory / name for name in CXX_PROGRAMS}


@pytest.mark.parametrize("name", ["hello", "hello-stripped", "hello-pie"])
def test_static_cxx_binaries_pass(cxx_programs: dict[str, Path], name: str) -> None:
    """iostream, std::thread and an exception: libstdc++ links iconv_open, the program never calls it."""
    path = cxx_programs[name]
    assert subprocess.run([path], capture_output=True, text=True, check=False).stdout == "caught boom\n"
    verdict = verify_binary(path, AMD64)
    assert verdict.ok, verdict.reason
    assert error_ids(verdict) == []
    assert read_context(path).language.name == "c++"
    assert finding(verdict, "cxx.runtime").severity is Severity.INFO


def test_libstdcxx_iconv_is_info_in_an_unstripped_cxx_binary(cxx_programs: dict[str, Path]) -> None:
    contents = read_context(cxx_programs["hello"]).contents
    assert contents is not None and contents.called((elfscan.ICONV_FUNCTION,)) == ("iconv_open",)
    gconv = finding(verify_binary(cxx_programs["hello"], AMD64), "runtime.gconv")
    assert gconv.severity is Severity.INFO
    assert gconv.message.startswith("iconv_open is linked by libstdc++'s locale code")


@pytest.mark.parametrize("name", ["hello", "hello-stripped"])
def test_libstdcxx_time_facets_make_the_zoneinfo_path_info(cxx_programs: dict[str, Path], name: str) -> None:
    """iostream links libstdc++'s time facets, whose strftime_l brings glibc's tzset and its zoneinfo path."""
    contents = read_context(cxx_programs[name]).contents
    assert contents is not None and contents.contains(b"/usr/share/zoneinfo")
    verdict = verify_binary(cxx_programs[name], AMD64)
    tzdata = finding(verdict, "needs.tzdata")
    assert (tzdata.severity, tzdata.extra) == (Severity.INFO, None)  # not a need: inspect asks for no tzdata
    assert "libstdc++'s time facets" in tzdata.message
    assert [f.id for f in verdict.findings if f.severity is not Severity.INFO] == []
    assert read_context(cxx_programs[name]).language.name == verdict.language == "c++"


def test_c_program_calling_iconv_open_still_fails(c_programs: dict[str, Path]) -> None:
    verdict = verify_binary(c_programs["iconv"], AMD64)
    assert read_context(c_programs["iconv"]).language.name == "c"
    assert error_ids(verdict) == ["runtime.gconv"]
    assert "cxx.runtime" not in {f.id for f in verdict.findings}


@pytest.mark.parametrize("name", ["iconv", "c-iconv"])
def test_cxx_program_converting_with_iconv_fails(cxx_programs: dict[str, Path], name: str) -> None:
    """libstdc++'s iconv codecvt instantiated by the program, or a C program linked by g++ (libstdc++'s
    iconv user is then absent): iconv_open is the program's."""
    verdict = verify_binary(cxx_programs[name], AMD64)
    assert error_ids(verdict) == ["runtime.gconv"]
    assert verdict.reason == (
        "uses iconv_open: conversions other than UTF-8/ASCII/UCS need gconv modules absent in scratch"
    )


def test_size_is_reported(c_programs: dict[str, Path]) -> None:
    size = c_programs["hello"].stat().st_size
    assert finding(verify_binary(c_programs["hello"]), "elf.size").message.startswith(f"{size} bytes (")


def test_dlopen_alone_is_no_nss_evidence(gcc_binaries: dict[str, Path]) -> None:
    """Every static glibc >= 2.34 binary defines dlopen, hello world too: it must not count as NSS."""
    contents = read_context(gcc_binaries["static"]).contents
    assert contents is not None
    assert contents.glibc and contents.functions is not None and "dlopen" in contents.functions
    assert not [f for f in verify_binary(gcc_binaries["static"]).findings if f.id.startswith("runtime.")]


@pytest.mark.parametrize(
    ("name", "what"), [("getpwnam", "calls getpwnam"), ("getpwnam-stripped", "uses glibc's NSS (stripped")]
)
def test_nss_without_built_in_services_is_an_error(
    c_programs: dict[str, Path], tmp_path: Path, name: str, what: str
) -> None:
    """glibc < 2.34 (simulated: the built-in files service and libc's dlopen blanked out) loads every NSS
    service with dlopen, so the lookup fails in scratch whatever files the image has."""
    data = c_programs[name].read_bytes()
    for marker in elfscan.NSS_BUILTIN_STRINGS:
        assert marker in data
        data = data.replace(marker, b"X" * len(marker))
    verdict = verify_binary(write(tmp_path, "old-glibc", data), AMD64)
    assert problems(verdict) == {"runtime.nss": E}
    nss = finding(verdict, "runtime.nss")
    assert nss.message.startswith(what)
    assert nss.message.endswith(", which loads libnss_*.so at run time (absent in scratch): the lookup fails")
    assert nss.hint is not None and nss.hint.startswith("link against musl ({MUSL_CC} in the gcc toolchain)")


GO_PROGRAMS = {
    "hello": ('"fmt"', 'fmt.Println("hello")'),
    "local-time": ('"fmt"\n\t"time"', "fmt.Println(time.Now().Format(time.Kitchen), time.Local)"),
    "certs": ('"crypto/x509"\n\t"fmt"', "fmt.Println(x509.SystemCertPool())"),
    "zones": ('"fmt"\n\t"time"', 'fmt.Println(time.LoadLocation("Europe/Paris"))'),
    "zones-embedded": (
        '"fmt"\n\t"time"\n\t_ "time/tzdata"',
        'fmt.Println(time.LoadLocation("Europe/Paris"))',
    ),
    "user": ('"fmt"\n\t"os/user"', "fmt.Println(user.Current())"),
    "tmp": ('"fmt"\n\t"os"', 'fmt.Println(os.CreateTemp("", "x"))'),
}
# name: (findings that are not INFO, first words of the message, INFO findings that must be there)
GO_EXPECTED: dict[str, tuple[dict[str, Severity], str | None, set[str]]] = {
    "hello": ({}, None, {"elf.stripped", "hardening.nx-stack"}),
    "local-time": ({}, None, set()),  # holds /usr/share/zoneinfo and time.loadLocation: not a need
    "certs": ({"needs.ca-certificates": W}, "uses crypto/x509.SystemCertPool: the system CA pool", set()),
    "zones": ({"needs.tzdata": W}, "calls time.LoadLocation: zones are read from /usr/share/zoneinfo", set()),
    "zones-embedded": ({}, None, {"go.tzdata-embedded"}),
    "user": (
        {"needs.passwd": W},
        "uses os/user (os/user.Current): it reads /etc/passwd and /etc/group",
        set(),
    ),
    "tmp": ({"needs.tmp": W}, "calls os.CreateTemp: temporary files go to $TMPDIR, else /tmp", set()),
}


@pytest.fixture(scope="session")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stripped the way recipes build them (-s -w): Go function names survive in pclntab."""
    if GO is None:
        pytest.skip("go is not installed (apt-get install -y golang-go)")
    directory = tmp_path_factory.mktemp("goprograms")
    (directory / "go.mod").write_text("module example.com/programs\n\ngo 1.19\n")
    for name, (imports, body) in GO_PROGRAMS.items():
        (directory / name).mkdir()
        (directory / name / "main.go").write_text(
            f"package main\n\nimport (\n\t{imports}\n)\n\nfunc main() {{ {body} }}\n"
        )
    env = {"HOME": str(directory), **os.environ, "CGO_ENABLED": "0", "GOARCH": "amd64", "GOFLAGS": ""}
    command = [GO, "build", "-trimpath", "-ldflags=-s -w", "-o", str(directory / "bin") + "/", "./..."]
    run_compiler(command, directory, env)
    return {name: directory / "bin" / name for name in GO_PROGRAMS}


@pytest.mark.parametrize("name", GO_PROGRAMS)
def test_go_program_findings(go_programs: dict[str, Path], name: str) -> None:
    expected, message, infos = GO_EXPECTED[name]
    verdict = verify_binary(go_programs[name], AMD64)
    assert problems(verdict) == expected
    assert infos <= {f.id for f in verdict.findings if f.severity is Severity.INFO}
    if message is not None:
        [need] = expected
        assert finding(verdict, need).message.startswith(message)


def test_every_need_names_its_extra(c_programs: dict[str, Path], go_programs: dict[str, Path]) -> None:
    needs = [
        f for path in [*c_programs.values(), *go_programs.values()] for f in verify_binary(path).findings
    ]
    needs = [f for f in needs if f.id.startswith("needs.")]
    assert {f.id for f in needs} == {"needs.ca-certificates", "needs.tzdata", "needs.passwd", "needs.tmp"}
    for need in needs:
        extra = need.id.removeprefix("needs.")
        assert (need.extra, need.severity, need.allowed) == (extra, Severity.WARNING, None)
        assert need.message.endswith(" — absent in scratch")
        assert need.hint is not None and need.hint.startswith(f'add extras = ["{extra}"] to [image]')


# ---------------------------------------------------------------------------------------------------
# Policy

MiB = 1 << 20


@pytest.mark.parametrize(
    ("name", "policy", "changed"),
    [
        # errors: a WARNING becomes an ERROR; an INFO never does (it can mean all is well)
        ("zoneinfo", VerifyPolicy(errors=frozenset({"needs.tzdata"})), {"needs.tzdata": E}),
        ("static-pie", VerifyPolicy(errors=frozenset({"hardening.relro", "hardening.nx-stack"})), {}),
        # allowed: an ERROR or WARNING becomes INFO, with the reason
        ("iconv", VerifyPolicy(allowed={"runtime.gconv": "UTF-8 only"}), {"runtime.gconv": INFO}),
        ("execstack", VerifyPolicy(allowed={"hardening.nx-stack": "JIT"}), {"hardening.nx-stack": INFO}),
        # provided: the image carries the extra
        ("ca-bundle", VerifyPolicy(provided=frozenset({"ca-certificates"})), {"needs.ca-certificates": INFO}),
        ("ca-bundle", VerifyPolicy(provided=frozenset({"tzdata"})), {"needs.ca-certificates": W}),
        # provided wins over errors, allowed over errors
        (
            "zoneinfo",
            VerifyPolicy(errors=frozenset({"needs.tzdata"}), provided=frozenset({"tzdata"})),
            {"needs.tzdata": INFO},
        ),
        (
            "zoneinfo",
            VerifyPolicy(errors=frozenset({"needs.tzdata"}), allowed={"needs.tzdata": "UTC is fine"}),
            {"needs.tzdata": INFO},
        ),
    ],
)
def test_policy_changes_severities(
    c_programs: dict[str, Path], name: str, policy: VerifyPolicy, changed: dict[str, Severity]
) -> None:
    before = verify_binary(c_programs[name], AMD64)
    after = verify_binary(c_programs[name], AMD64, policy)
    assert [f.id for f in after.findings] == [f.id for f in before.findings]  # same findings, same order
    severities = {f.id: f.severity for f in after.findings}
    assert {key: severities[key] for key in changed} == changed
    assert after.ok is (Severity.ERROR not in severities.values())


def test_allowed_finding_keeps_its_reason(c_programs: dict[str, Path]) -> None:
    policy = VerifyPolicy(allowed={"runtime.gconv": "converts UTF-8 only"})
    verdict = verify_binary(c_programs["iconv"], AMD64, policy)
    gconv = finding(verdict, "runtime.gconv")
    assert (gconv.severity, gconv.allowed) == (Severity.INFO, "converts UTF-8 only")
    assert gconv.message.endswith(" (allowed: converts UTF-8 only)")
    assert verdict.ok


def test_provided_need_says_so(go_programs: dict[str, Path]) -> None:
    verdict = verify_binary(
        go_programs["certs"], AMD64, VerifyPolicy(provided=frozenset({"ca-certificates"}))
    )
    need = finding(verdict, "needs.ca-certificates")
    assert (need.severity, need.extra, need.allowed) == (Severity.INFO, "ca-certificates", None)
    assert need.message.endswith("(provided by the image extra ca-certificates)")
    assert not problems(verdict)


@pytest.mark.parametrize(
    ("size", "max_size", "message"),
    [
        (2_202_009, 2 * MiB, "binary is 2.1 MiB, budget 2.0 MiB (max_size)"),
        (2 * MiB + 1, 2 * MiB, f"binary is {2 * MiB + 1} bytes, budget {2 * MiB} bytes (max_size)"),
        (3 * MiB, 500 << 10, "binary is 3.0 MiB, budget 500.0 KiB (max_size)"),
        (2 * MiB, 2 * MiB, None),
    ],
)
def test_size_budget(tmp_path: Path, size: int, max_size: int, message: str | None) -> None:
    data = craft_elf(machine=EM_X86_64, elf_class=64)
    data = craft_elf(
        machine=EM_X86_64, elf_class=64, segments=[(PT_NULL, PF_R, b"\0" * (size - len(data) - 56))]
    )
    assert len(data) == size
    verdict = verify_bytes_with(tmp_path, data, VerifyPolicy(max_size=max_size))
    assert [f.message for f in verdict.errors] == ([message] if message else [])
    assert [f.id for f in verdict.errors] == (["size.budget"] if message else [])


def test_size_budget_can_be_allowed(tmp_path: Path) -> None:
    policy = VerifyPolicy(max_size=100, allowed={"size.budget": "debug build"})
    verdict = verify_bytes_with(tmp_path, craft_elf(machine=EM_X86_64, elf_class=64), policy)
    assert verdict.ok and finding(verdict, "size.budget").allowed == "debug build"


@pytest.mark.parametrize(
    ("variant", "finding_id"), [("dynamic", "linkage.dynamic"), ("shared", "linkage.shared-object")]
)
def test_linkage_errors_can_be_allowed(gcc_binaries: dict[str, Path], variant: str, finding_id: str) -> None:
    verdict = verify_binary(gcc_binaries[variant], AMD64, VerifyPolicy(allowed={finding_id: "host tool"}))
    assert verdict.ok and finding(verdict, finding_id).allowed == "host tool"


def test_policy_applies_to_unreadable_files(tmp_path: Path) -> None:
    path = write(tmp_path, "script", b"#!/bin/sh\n")
    assert not verify_binary(path).ok
    assert verify_binary(path, policy=VerifyPolicy(allowed={"elf.not-elf": "a shell script"})).ok


def verify_bytes_with(tmp_path: Path, data: bytes, policy: VerifyPolicy) -> Verdict:
    return verify_binary(write(tmp_path, "crafted", data), AMD64, policy)


# ---------------------------------------------------------------------------------------------------
# Property: any bytes give a Verdict, never an exception


def assert_well_formed(verdict: Verdict) -> None:
    """A proper verdict: one-line messages, and never the catch-all of a check that crashed (malformed
    input must be an elf.* finding; verify.internal on generated input is a bug in the verifier)."""
    assert isinstance(verdict, Verdict)
    internal = [f.message for f in verdict.findings if f.id == INTERNAL_FINDING]
    assert not internal, internal
    for finding in verdict.findings:
        assert finding.message and "\n" not in finding.message and finding.message.isprintable()
    if verdict.facts is None:
        assert [f.id for f in verdict.findings] in (["elf.not-elf"], ["elf.corrupt"])


# OSLESS_FUZZ_EXAMPLES=20000 for a long hunt; the default keeps the unit suite quick.
FUZZ = settings(
    max_examples=int(os.environ.get("OSLESS_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)


@FUZZ
@given(
    prefix=st.sampled_from(
        [b"", b"\x7fELF", b"\x7fELF\x01\x01\x01", b"\x7fELF\x02\x01\x01", b"\x7fELF\x02\x02\x01"]
    ),
    rest=st.binary(max_size=600),
)
def test_random_bytes_never_raise(tmp_path: Path, prefix: bytes, rest: bytes) -> None:
    assert_well_formed(verify_binary(write(tmp_path, "random", prefix + rest), AMD64))


class Seeds(dict[str, bytes]):
    """Seed files by name; a short repr, for hypothesis' report of a failing example."""

    def __repr__(self) -> str:
        return f"Seeds({', '.join(self)})"


@pytest.fixture(scope="session")
def fuzz_seeds(gcc_binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    """Real binaries of every linkage (a dynamic one has PT_INTERP, PT_DYNAMIC and DT_NEEDED strings),
    a crafted ARM file with `.ARM.attributes`, and a Go binary (build info, notes) when go is here."""
    seeds = Seeds({name: gcc_binaries[name].read_bytes() for name in ("static", "static-pie", "dynamic")})
    seeds["arm"] = craft_arm()
    if GO is not None:
        directory = tmp_path_factory.mktemp("fuzz-go")
        (directory / "main.go").write_text(HELLO_GO)
        (directory / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
        env = {"HOME": str(directory), **os.environ, "CGO_ENABLED": "0", "GOARCH": "riscv64"}
        run_compiler([GO, "build", "-ldflags=-s -w", "-o", "go", "."], directory, env)
        seeds["go"] = (directory / "go").read_bytes()
    return seeds


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("seed", ["static", "static-pie", "dynamic", "arm", "go"])
def test_mutated_binary_never_raises(
    fuzz_seeds: Seeds, seed: str, tmp_path: Path, data: st.DataObject
) -> None:
    if seed not in fuzz_seeds:
        pytest.skip(f"no {seed} seed here")
    mutated = bytearray(fuzz_seeds[seed])
    # Most flips land in the headers (first 4 KiB), where they change what the parser does.
    for _ in range(data.draw(st.integers(1, 12), label="flips")):
        limit = data.draw(st.sampled_from([0x100, 0x1000, len(mutated)]), label="region")
        offset = data.draw(st.integers(0, min(limit, len(mutated)) - 1), label="offset")
        mutated[offset] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans(), label="truncate"):
        del mutated[data.draw(st.integers(0, len(mutated)), label="length") :]
    platform = data.draw(st.sampled_from([AMD64, ARMV7, PLATFORMS["linux/riscv64"], None]), label="platform")
    assert_well_formed(verify_binary(write(tmp_path, "mutated", bytes(mutated)), platform))


# ---------------------------------------------------------------------------------------------------
# Bounded reads: special files are never opened, big files never read whole


def verify_within(path: Path, seconds: float = 10.0, policy: VerifyPolicy | None = None) -> Verdict:
    """verify_binary that must not block (see tests/blocking.py)."""
    result = outcome_within(
        lambda: verify_binary(path, AMD64, policy or VerifyPolicy()),
        seconds,
        fifos=[path] if path.is_fifo() else [],
        what=f"verify_binary({path})",
    )
    assert isinstance(result, Verdict), result
    return result


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", "is a FIFO (named pipe), not a regular file"),
        ("socket", "is a socket, not a regular file"),
        ("directory", "is a directory, not a regular file"),
        ("char-device", "is a character device, not a regular file"),
        ("link-to-fifo", "is a FIFO (named pipe), not a regular file"),
    ],
)
def test_special_files_are_refused_without_opening_them(tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / kind
    server = None
    if kind in ("fifo", "link-to-fifo"):
        os.mkfifo(tmp_path / "fifo-target")
        path.symlink_to(tmp_path / "fifo-target") if kind == "link-to-fifo" else os.rename(
            tmp_path / "fifo-target", path
        )
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/null")
    try:
        verdict = verify_within(path)
    finally:
        if server is not None:
            server.close()
    assert (error_ids(verdict), verdict.reason) == (["elf.not-regular"], f"{path} {message}")
    assert verdict.facts is None


def run_osless_limited(
    *args: str, memory: int = 1 << 30, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`osless ARGS` in a child process that may use at most `memory` bytes of address space, so a
    regression that reads a huge file whole fails (MemoryError) instead of taking the machine."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        check=False,
    )


def test_osless_verify_dev_zero_fails_at_once() -> None:
    """It used to read /dev/zero until the OOM killer came (23.8 GB)."""
    result = run_osless_limited("verify", "/dev/zero")
    assert result.returncode == 7, result.stderr
    reason = "/dev/zero is a character device, not a regular file"
    assert result.stdout.splitlines()[:2] == [
        f"/dev/zero: FAIL — {reason}",
        f"  error elf.not-regular: {reason}",
    ]
    assert "Traceback" not in result.stderr


def sparse_elf(tmp_path: Path, size: int) -> Path:
    """A valid static ELF header and program, then a hole up to `size` bytes: no disk used."""
    path = tmp_path / "huge"
    path.write_bytes(craft_elf(machine=EM_X86_64, elf_class=64))
    os.truncate(path, size)
    return path


# The peak is this process's own (VmHWM of its memory after exec): getrusage's ru_maxrss would also
# count the RSS pytest had when it forked, which grows with the suite.
MEASURE = """
import sys
from pathlib import Path
from orchestrator.platforms import PLATFORMS
from orchestrator.verify.policy import VerifyPolicy, verify_binary
max_size = int(sys.argv[2]) if len(sys.argv) > 2 else None
verdict = verify_binary(Path(sys.argv[1]), PLATFORMS["linux/amd64"], VerifyPolicy(max_size=max_size))
status = Path("/proc/self/status").read_text().splitlines()
print(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")))
print(" ".join(f.id for f in verdict.errors))
"""


@pytest.mark.parametrize(
    ("size", "max_size", "errors"),
    [
        (900 << 20, 1 << 20, "size.budget"),  # max_size is checked by stat, before any read
        (MAX_FILE_SIZE + 1, None, "elf.too-large"),  # the ceiling, whatever the recipe says
    ],
)
def test_a_huge_file_costs_neither_its_memory_nor_its_time(
    tmp_path: Path, size: int, max_size: int | None, errors: str
) -> None:
    path = sparse_elf(tmp_path, size)
    args = [str(path), *([str(max_size)] if max_size else [])]
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak, found = result.stdout.splitlines()
    assert int(peak) < 200 << 20, f"peak RSS {int(peak) >> 20} MiB verifying a {size >> 20} MiB file"
    assert found == errors


def test_over_the_ceiling_only_headers_are_checked(tmp_path: Path) -> None:
    verdict = verify_binary(sparse_elf(tmp_path, MAX_FILE_SIZE + 1), AMD64)
    assert error_ids(verdict) == ["elf.too-large"]
    assert finding(verdict, "elf.too-large").message == (
        "file is 1024.0 MiB, more than the 1024.0 MiB osless reads: only its headers were checked"
    )
    assert facts_of(verdict).linkage is Linkage.STATIC and facts_of(verdict).size == MAX_FILE_SIZE + 1


def test_an_allowed_budget_still_scans_up_to_the_ceiling(c_programs: dict[str, Path]) -> None:
    """max_size decides what is read only when the budget is enforced: an allowed one scans as usual."""
    policy = VerifyPolicy(max_size=1000, allowed={"size.budget": "debug build"})
    verdict = verify_binary(c_programs["zoneinfo"], AMD64, policy)
    assert "needs.tzdata" in problems(verdict)
    enforced = verify_binary(c_programs["zoneinfo"], AMD64, VerifyPolicy(max_size=1000))
    assert error_ids(enforced) == ["size.budget"] and "needs.tzdata" not in problems(enforced)


# ---------------------------------------------------------------------------------------------------
# The catch-all: a check that raises is a bug, reported under its own id


def test_a_crashing_check_is_reported_as_internal(
    gcc_binaries: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> tuple[Finding, ...]:
        raise KeyError("p_flags")

    monkeypatch.setattr(checks, "CHECKS", [broken if c is checks.hardening else c for c in checks.CHECKS])
    verdict = verify_binary(gcc_binaries["static"], AMD64)
    internal = finding(verdict, INTERNAL_FINDING)
    assert internal.severity is Severity.ERROR and not verdict.ok
    assert internal.message == "the verifier could not check this file: KeyError: 'p_flags'"
    assert facts_of(verdict).linkage is Linkage.STATIC  # the facts were read before the check failed


def test_a_bad_attributes_version_byte_is_quoted_printably(tmp_path: Path) -> None:
    """Found by the fuzzer: pyelftools puts the raw byte in its message ("version \\x7f, expecting 'A'")."""
    data = bytearray(craft_arm())
    data[bytes(data).index(b"A" + struct.pack("<I", 4 + 4 + 7))] = 0x7F  # the format version
    verdict = verify_bytes(tmp_path, bytes(data), None)
    assert (error_ids(verdict), verdict.reason) == (
        ["elf.corrupt"],
        f"{CORRUPT}Unknown attributes version \\x7f, expecting 'A'.",
    )
