"""The ELF verifier on real binaries built here (gcc; arm-linux-gnueabihf-gcc and go when present), on
byte-patched copies of them, on small crafted ELF files, and on random garbage (hypothesis)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from orchestrator.stages.verify import (
    CorruptElf,
    ElfFacts,
    Linkage,
    NotAnElf,
    Severity,
    Verdict,
    read_elf_facts,
    verify_binary,
)

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
FREESTANDING_C = "void _start(void) { for (;;) {} }\n"  # links without any libc
HELLO_GO = 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("hello\\n") }\n'

GCC = shutil.which("gcc")
ARM_GCC = shutil.which("arm-linux-gnueabihf-gcc")
GO = shutil.which("go")

AMD64, ARM64, ARMV7 = PLATFORMS["linux/amd64"], PLATFORMS["linux/arm64"], PLATFORMS["linux/arm/v7"]
ET_EXEC, ET_DYN, ET_REL = 2, 3, 1
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
LOAD_ADDRESS = 0x10000
CORRUPT = "truncated or corrupt ELF: "


def run_compiler(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed (static glibc needs libc6-dev):\n{result.stderr}")


def error_ids(verdict: Verdict) -> list[str]:
    return [f.id for f in verdict.findings if f.severity is Severity.ERROR]


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
        "built for AArch64, recipe says linux/amd64 — "
        "cross-compile for it (x86_64-linux-gnu-gcc, GOARCH=amd64)"
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
# Property: any bytes give a Verdict, never an exception


def assert_well_formed(verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict)
    for finding in verdict.findings:
        assert finding.message and "\n" not in finding.message and finding.message.isprintable()
    if verdict.facts is None:
        assert [f.id for f in verdict.findings] in (["elf.not-elf"], ["elf.corrupt"])


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(
    prefix=st.sampled_from(
        [b"", b"\x7fELF", b"\x7fELF\x01\x01\x01", b"\x7fELF\x02\x01\x01", b"\x7fELF\x02\x02\x01"]
    ),
    rest=st.binary(max_size=600),
)
def test_random_bytes_never_raise(tmp_path: Path, prefix: bytes, rest: bytes) -> None:
    assert_well_formed(verify_binary(write(tmp_path, "random", prefix + rest), AMD64))


@FUZZ
@given(data=st.data())
def test_mutated_static_binary_never_raises(static_bytes: bytes, tmp_path: Path, data: st.DataObject) -> None:
    mutated = bytearray(static_bytes)
    # Most flips land in the headers (first 4 KiB), where they change what the parser does.
    for _ in range(data.draw(st.integers(1, 12), label="flips")):
        limit = data.draw(st.sampled_from([0x100, 0x1000, len(mutated)]), label="region")
        mutated[data.draw(st.integers(0, limit - 1), label="offset")] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans(), label="truncate"):
        del mutated[data.draw(st.integers(0, len(mutated)), label="length") :]
    assert_well_formed(verify_binary(write(tmp_path, "mutated", bytes(mutated)), AMD64))
