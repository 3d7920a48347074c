"""What the headers of one ELF file say, independent of any recipe: the ElfFacts model.

Linkage comes from the program headers only (section headers may be missing); the architecture from
e_ident, e_machine and, on ARM, `.ARM.attributes`; for Go binaries also from the Go build info (GOARCH,
GOARM). Only headers and small, bounded parts of the file are read, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from elftools.common.utils import struct_parse
from elftools.elf.descriptions import describe_e_machine
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE

from orchestrator.elf.arm import arm_cpu_arch, arm_platform
from orchestrator.elf.goinfo import BUILDINFO_MAGIC, GoBuildInfo, read_go_build_info
from orchestrator.elf.load import (
    MAX_FILE_SIZE,
    PF_W,
    PF_X,
    CorruptElf,
    LoadedElf,
    load_elf,
    printable,
    type_name,
)
from orchestrator.platforms import EM_ARM, PLATFORMS

PROGRAM_TYPES = ("ET_EXEC", "ET_DYN")
DF_1_PIE = 0x08000000
DF_1_NOW = 0x1
DF_TEXTREL, DF_BIND_NOW = 0x4, 0x8
GO_BUILDINFO_SECTION = ".go.buildinfo"
# Bounds on what one file makes osless read, far above what real binaries hold.
_MAX_INTERPRETER = 4096  # PT_INTERP: the kernel rejects one longer than PATH_MAX
_MAX_DYNAMIC_ENTRIES = 65536  # PT_DYNAMIC entries before DT_NULL (real files: a few dozen)
_MAX_DYNAMIC_STRING = 4096  # DT_NEEDED, DT_RPATH, DT_RUNPATH values
_MAX_BUILDINFO = 1 << 20  # what is read of .go.buildinfo or of the first data segment for it


class Linkage(str, Enum):
    STATIC = "static"
    STATIC_PIE = "static-pie"
    DYNAMIC = "dynamic"
    DYNAMIC_PIE = "dynamic-pie"
    SHARED_OBJECT = "shared-object"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, kw_only=True)
class ElfFacts:
    """What the headers of one ELF file say, independent of any recipe."""

    size: int
    elf_class: int  # 32 or 64
    little_endian: bool
    machine: int  # e_machine
    machine_name: str
    flags: int  # e_flags
    osabi: int  # EI_OSABI (glibc static binaries often say 3, GNU/Linux)
    elf_type: str  # "ET_EXEC", "ET_DYN", ... or the number in hex ("0xfe00") when unknown
    linkage: Linkage
    interpreter: str | None  # PT_INTERP
    needed: tuple[str, ...]  # DT_NEEDED
    platform: str | None  # the platform name it identifies, see identify_platform
    arm_cpu_arch: int | None  # .ARM.attributes Tag_CPU_arch, when present
    stripped: bool  # no symbol table
    go: GoBuildInfo | None = None  # the Go build info, for Go binaries (Go >= 1.18)


@dataclass(frozen=True, kw_only=True)
class Dynamic:
    """The PT_DYNAMIC entries that decide linkage and hardening."""

    needed: tuple[str, ...] = ()
    has_soname: bool = False
    flags: int = 0  # DT_FLAGS
    flags_1: int = 0  # DT_FLAGS_1
    bind_now: bool = False  # DT_BIND_NOW
    textrel: bool = False  # DT_TEXTREL
    search_paths: tuple[tuple[str, str], ...] = ()  # ("DT_RPATH" or "DT_RUNPATH", value)


def read_elf_facts(path: Path) -> ElfFacts:
    """The facts of one ELF file; raises NotAnElf, CorruptElf, NotARegularFile or UnreadableFile with
    one-line messages. Only headers and small sections are read, whatever the file's size."""
    with load_elf(path) as binary:
        return elf_facts(binary, read_dynamic(binary))


def elf_facts(binary: LoadedElf, dynamic: Dynamic) -> ElfFacts:
    """The facts of a loaded file whose PT_DYNAMIC entries are `dynamic`."""
    elf = binary.elf
    machine = _machine_number(elf["e_machine"])
    interpreter = _interpreter(binary)
    elf_type = type_name(elf["e_type"])
    cpu_arch = arm_cpu_arch(binary) if machine == EM_ARM else None
    go = _go_build_info(binary)
    go_arm = go.arm_version if go else None
    return ElfFacts(
        size=binary.size,
        elf_class=elf.elfclass,
        little_endian=elf.little_endian,
        machine=machine,
        machine_name=_machine_name(machine, elf["e_machine"]),
        flags=elf["e_flags"],
        osabi=elf.e_ident_raw[7],
        elf_type=elf_type,
        linkage=_linkage(elf_type, elf["e_entry"], interpreter, dynamic),
        interpreter=interpreter,
        needed=dynamic.needed,
        platform=identify_platform(machine, elf.elfclass, elf.little_endian, cpu_arch, go_arm),
        arm_cpu_arch=cpu_arch,
        stripped=not any(True for _ in elf.iter_sections("SHT_SYMTAB")),
        go=go,
    )


def identify_platform(
    machine: int, elf_class: int, little_endian: bool, arm_cpu_arch: int | None, go_arm: int | None = None
) -> str | None:
    """The platform name an ELF header identifies; on ARM the variant comes from Tag_CPU_arch and, for
    Go binaries (which have no `.ARM.attributes`), from GOARM (`go_arm`, e.g. 7).

    ARM names not in PLATFORMS ("linux/arm/v6", "linux/arm/v5", "linux/arm" when unknown) are returned
    anyway, so messages can say what a binary is.
    """
    if (machine, elf_class, little_endian) == (EM_ARM, 32, True):
        return arm_platform(arm_cpu_arch, go_arm)
    return next(
        (
            p.name
            for p in PLATFORMS.values()
            if (p.elf_machine, p.elf_class, p.little_endian) == (machine, elf_class, little_endian)
        ),
        None,
    )


def read_dynamic(binary: LoadedElf) -> Dynamic:
    """The PT_DYNAMIC entries osless uses, found through PT_DYNAMIC and PT_LOAD only."""
    elf = binary.elf
    entries = [
        entry
        for segment in binary.segments_of("PT_DYNAMIC")
        if isinstance(segment, DynamicSegment)
        for entry in _dynamic_entries(binary, segment)
    ]
    strtab = next((value for tag, value in entries if tag == "DT_STRTAB"), None)
    flags = {"DT_FLAGS": 0, "DT_FLAGS_1": 0}
    for tag, value in entries:
        if tag in flags:
            flags[str(tag)] |= value
    return Dynamic(
        needed=tuple(_dynamic_string(elf, strtab, value) for tag, value in entries if tag == "DT_NEEDED"),
        has_soname=any(tag == "DT_SONAME" for tag, _ in entries),
        flags=flags["DT_FLAGS"],
        flags_1=flags["DT_FLAGS_1"],
        bind_now=any(tag == "DT_BIND_NOW" for tag, _ in entries),
        textrel=any(tag == "DT_TEXTREL" for tag, _ in entries),
        search_paths=tuple(
            (str(tag), _dynamic_string(elf, strtab, value))
            for tag, value in entries
            if tag in ("DT_RPATH", "DT_RUNPATH")
        ),
    )


def _go_build_info(binary: LoadedElf) -> GoBuildInfo | None:
    """The Go build info, from the `.go.buildinfo` section or else the first writable, non-executable
    PT_LOAD (where Go's linker puts it), at most _MAX_BUILDINFO bytes of either.

    Go >= 1.18 writes the strings inline there. Older Go writes pointers to strings elsewhere: only then,
    and only for a file no larger than MAX_FILE_SIZE, is the whole file read to follow them.
    """
    regions = []
    section = binary.section_range(GO_BUILDINFO_SECTION)
    if section is not None:
        regions.append(section)
    data_segment = next(
        (s for s in binary.segments_of("PT_LOAD") if s["p_flags"] & (PF_X | PF_W) == PF_W), None
    )
    if data_segment is not None:
        regions.append((data_segment["p_offset"], data_segment["p_filesz"]))
    for offset, size in regions:
        # Padding keeps the file's 16-byte alignment, which goinfo requires of the header.
        data = bytes(offset % 16) + binary.read(offset, min(size, _MAX_BUILDINFO))
        info = read_go_build_info(data)
        if info is not None:
            return info
        if BUILDINFO_MAGIC in data and binary.size <= MAX_FILE_SIZE:  # pointer format (Go < 1.18)
            return read_go_build_info(binary.read(0, binary.size))
    return None


def _machine_number(e_machine: str | int) -> int:
    """pyelftools names known e_machine values; we want the number."""
    return e_machine if isinstance(e_machine, int) else ENUM_E_MACHINE[e_machine]


def machine_constant(machine: int) -> str:
    """The e_machine constant's name ("EM_MIPS"), or "e_machine N" for a number pyelftools does not know."""
    return next(
        (name for name, value in ENUM_E_MACHINE.items() if value == machine and name.startswith("EM_")),
        f"e_machine {machine}",
    )


def _machine_name(machine: int, e_machine: str | int) -> str:
    """The name people know an architecture by: ours for platforms in the table, else pyelftools'."""
    known = next((p.elf_machine_name for p in PLATFORMS.values() if p.elf_machine == machine), None)
    if known:
        return known
    return describe_e_machine(e_machine) if isinstance(e_machine, str) else f"e_machine {machine}"


def _linkage(elf_type: str, entry: int, interpreter: str | None, dynamic: Dynamic) -> Linkage:
    """The linkage table of elf-facts.md, from program headers only."""
    if elf_type == "ET_EXEC":
        return Linkage.DYNAMIC if interpreter is not None or dynamic.needed else Linkage.STATIC
    if elf_type != "ET_DYN":
        return Linkage.AMBIGUOUS
    if interpreter is not None:
        return Linkage.DYNAMIC_PIE
    if dynamic.flags_1 & DF_1_PIE and not dynamic.needed:
        return Linkage.STATIC_PIE
    if dynamic.has_soname or dynamic.needed or entry == 0:
        return Linkage.SHARED_OBJECT
    return Linkage.AMBIGUOUS


def _interpreter(binary: LoadedElf) -> str | None:
    """PT_INTERP's path: any interpreter is fatal in an empty image."""
    segment = next(binary.segments_of("PT_INTERP"), None)
    if segment is None:
        return None
    raw = binary.read(segment["p_offset"], min(segment["p_filesz"], _MAX_INTERPRETER))
    return printable(raw.split(b"\0", 1)[0])


def _dynamic_entries(binary: LoadedElf, segment: DynamicSegment) -> Iterator[tuple[str | int, int]]:
    """(d_tag, d_val) up to DT_NULL, never past the segment (pyelftools reads on until DT_NULL)."""
    elf = binary.elf
    entry_size = elf.structs.Elf_Dyn.sizeof()
    start = segment["p_offset"]
    for count, offset in enumerate(range(start, start + segment["p_filesz"] - entry_size + 1, entry_size)):
        if count >= _MAX_DYNAMIC_ENTRIES:
            raise CorruptElf(f"PT_DYNAMIC holds more than {_MAX_DYNAMIC_ENTRIES} entries before DT_NULL")
        entry = struct_parse(elf.structs.Elf_Dyn, elf.stream, offset)
        if entry["d_tag"] == "DT_NULL":
            return
        yield entry["d_tag"], entry["d_val"]


def _dynamic_string(elf: ELFFile, strtab: int | None, offset: int) -> str:
    """A string of the dynamic string table, located by its address (DT_STRTAB) as the loader does."""
    if strtab is None:
        raise CorruptElf("DT_NEEDED, DT_RPATH or DT_RUNPATH without DT_STRTAB")
    file_offset = next(elf.address_offsets(strtab + offset), None)
    raw = None
    if file_offset is not None:
        elf.stream.seek(file_offset)
        raw = elf.stream.read(_MAX_DYNAMIC_STRING).split(b"\0", 1)[0]
    if raw is None:
        raise CorruptElf(f"dynamic string at address {strtab + offset:#x} is not in the file")
    return printable(raw)
