"""Stage 3: check that a binary can run alone in an empty (FROM scratch) image, by reading its ELF headers.

Nothing here runs the file. Linkage comes from the program headers only (section headers may be missing);
the architecture from e_ident, e_machine, e_flags and, on ARM, the `.ARM.attributes` section; for Go
binaries also from the Go build info (GOARCH, GOARM). Bad input (not ELF, truncated, corrupt) never
raises out of `verify_binary`: it becomes an ERROR finding.

Beyond starting, the contents (see elfscan) tell what the program will look for once running: glibc's NSS
and gconv modules (`runtime.*`), and files a scratch image lacks unless the recipe adds an image extra
(`needs.*`, WARNING, naming the extra). Hardening and hygiene follow (`hardening.*`, `elf.*`). A
VerifyPolicy, applied last, raises findings to errors, accepts them with a reason, marks needs as
provided by the image's extras, and sets a size budget.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Literal

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.elf.descriptions import describe_e_machine
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE
from elftools.elf.segments import Segment

from orchestrator.elf import scan as elfscan
from orchestrator.elf.goinfo import BUILDINFO_MAGIC, GoBuildInfo, goarm_version, read_go_build_info
from orchestrator.elf.scan import Contents
from orchestrator.errors import OslessError
from orchestrator.platforms import EM_ARM, EM_PPC64, EM_RISCV, EM_X86_64, PLATFORMS, Platform

_ELF_MAGIC = b"\x7fELF"
_IDENT_SIZE = 16
_HEADER_SIZE = {1: 52, 2: 64}  # by EI_CLASS: ELFCLASS32, ELFCLASS64
_PROGRAM_TYPES = ("ET_EXEC", "ET_DYN")
PF_X, PF_W = 0x1, 0x2
DF_1_PIE = 0x08000000
DF_1_NOW = 0x1
DF_TEXTREL, DF_BIND_NOW = 0x4, 0x8
EF_ARM_EABI_VERSION_5 = 5  # e_flags >> 24
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_RISCV_FLOAT_ABI = 0x6
EF_RISCV_FLOAT_ABI_DOUBLE = 0x4
EF_PPC64_ABI = 0x3
_RISCV_FLOAT_ABI_NAMES = {0x0: "soft-float", 0x2: "single-float", 0x6: "quad-float"}
MAX_FILE_SIZE = 1 << 30
"""The largest file whose contents osless reads (1 GiB), whatever the recipe's `verify.max_size`.

The size comes from stat before anything is read. A larger file (or one over `max_size`, unless the
policy allows `size.budget`) still has its headers checked, with reads of a few bytes each, but its
contents (strings, symbols, notes) are not scanned: it gets the ERROR `elf.too-large` (or
`size.budget`) instead, so a huge or hostile file costs neither the memory nor the time of its size.
"""
# Bounds on what one file makes the verifier read, far above what real binaries hold.
_MAX_INTERPRETER = 4096  # PT_INTERP: the kernel rejects one longer than PATH_MAX
_MAX_DYNAMIC_ENTRIES = 65536  # PT_DYNAMIC entries before DT_NULL (real files: a few dozen)
_MAX_DYNAMIC_STRING = 4096  # DT_NEEDED, DT_RPATH, DT_RUNPATH values
_MAX_ATTRIBUTES = 1 << 20  # .ARM.attributes (real files: about 60 bytes)
_MAX_BUILDINFO = 1 << 20  # what is read of .go.buildinfo or of the first data segment for it
# A file makes the verifier read at most this many bytes in all: its loaded segments, symbol and string
# tables and notes once each (overlapping segments or sections in a crafted file could otherwise make
# it read the same bytes many times).
_READ_FACTOR, _READ_SLACK = 3, 16 << 20

# `.ARM.attributes` (ARM IHI 0045, "Addenda to the ARM ABI"), file scope of the "aeabi" vendor.
_TAG_FILE = 1
_TAG_CPU_ARCH = 6
_TAG_COMPATIBILITY = 32  # a ULEB128 flag followed by a vendor name
_STRING_TAGS = (4, 5)  # Tag_CPU_raw_name, Tag_CPU_name; above 32, odd tags hold strings too
_ARM_V6, _ARM_V7 = 6, 10  # Tag_CPU_arch values
_ARM_ARCH_NAMES = (
    "pre-ARMv4",
    "ARMv4",
    "ARMv4T",
    "ARMv5T",
    "ARMv5TE",
    "ARMv5TEJ",
    "ARMv6",
    "ARMv6KZ",
    "ARMv6T2",
    "ARMv6K",
    "ARMv7",
    "ARMv6-M",
    "ARMv6S-M",
    "ARMv7E-M",
    "ARMv8-A",
    "ARMv8-R",
    "ARMv8-M.baseline",
    "ARMv8-M.mainline",
    "ARMv8.1-A",
    "ARMv8.2-A",
    "ARMv8.3-A",
    "ARMv8.1-M.mainline",
    "ARMv9-A",
)

# How pyelftools, construct and struct fail on bad bytes. ELFParseError is an ELFError and
# UnicodeDecodeError a ValueError; IndexError and KeyError come from tables indexed by file contents.
_PARSE_ERRORS = (ELFError, OverflowError, AssertionError, struct.error, ValueError, IndexError, KeyError)


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
class VerifyPolicy:
    """A recipe's [verify] table plus the image's extras, applied to the findings last."""

    # Finding ids whose WARNINGs become ERRORs (e.g. "needs.tzdata"). INFOs stay: some ids are INFO when
    # all is well (hardening.nx-stack, hardening.relro) and must not fail then.
    errors: frozenset[str] = frozenset()
    allowed: Mapping[str, str] = field(default_factory=dict)  # id -> reason: ERROR/WARNING become INFO
    max_size: int | None = None  # bytes; a larger binary gets the ERROR "size.budget"
    provided: frozenset[str] = frozenset()  # image extras present: their needs.* findings become INFO


DEFAULT_POLICY = VerifyPolicy()


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
class Verdict:
    """The verifier's answer for one file: its facts (None when unreadable) and findings."""

    path: str
    facts: ElfFacts | None
    findings: tuple[Finding, ...]

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


class VerifyError(OslessError):
    """A file could not be read as an ELF file at all."""

    finding_id = "elf.corrupt"


class NotAnElf(VerifyError):
    finding_id = "elf.not-elf"


class CorruptElf(VerifyError):
    finding_id = "elf.corrupt"

    def __init__(self, detail: str) -> None:
        super().__init__(f"truncated or corrupt ELF: {detail}")


class UnreadableFile(VerifyError):
    finding_id = "elf.unreadable"


class NotARegularFile(VerifyError):
    """A directory, device, FIFO or socket: never opened for reading (a FIFO would block, a device
    never end)."""

    finding_id = "elf.not-regular"


INTERNAL_FINDING = "verify.internal"
"""The id of the finding a check that raised leaves: a bug in the verifier, never a verdict on the file
(malformed input is `elf.*`). The property tests assert it never appears."""


@dataclass(frozen=True, kw_only=True)
class _Dynamic:
    """The PT_DYNAMIC entries that decide linkage."""

    needed: tuple[str, ...] = ()
    has_soname: bool = False
    flags: int = 0  # DT_FLAGS
    flags_1: int = 0  # DT_FLAGS_1
    bind_now: bool = False  # DT_BIND_NOW
    textrel: bool = False  # DT_TEXTREL
    search_paths: tuple[tuple[str, str], ...] = ()  # ("DT_RPATH" or "DT_RUNPATH", value)


# ---------------------------------------------------------------------------------------------------
# Public entry points


def read_elf_facts(path: Path) -> ElfFacts:
    """The facts of one ELF file; raises NotAnElf, CorruptElf, NotARegularFile or UnreadableFile with
    one-line messages. Only headers and small sections are read, whatever the file's size."""
    with _open(path) as stream, _parse_errors_as_corrupt():
        return _facts(_Binary(stream))


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
    return apply_policy(_verify(path, platform, limit), policy)


def apply_policy(verdict: Verdict, policy: VerifyPolicy) -> Verdict:
    """The verdict as `policy` sees it: the size budget checked, then each finding in turn, by precedence:
    a need the image provides becomes INFO, an allowed ERROR or WARNING becomes INFO (with the reason),
    a WARNING whose id is in `errors` becomes ERROR.
    """
    findings = list(verdict.findings)
    size = verdict.facts.size if verdict.facts else None
    if policy.max_size is not None and size is not None and size > policy.max_size:
        shown, budget = _sizes_apart(size, policy.max_size)
        findings.append(_error("size.budget", f"binary is {shown}, budget {budget} (max_size)"))

    def judged(finding: Finding) -> Finding:
        if finding.extra is not None and finding.extra in policy.provided:
            message = f"{finding.message} (provided by the image extra {finding.extra})"
            return replace(finding, severity=Severity.INFO, message=message)
        reason = policy.allowed.get(finding.id)
        if reason is not None and finding.severity is not Severity.INFO:
            message = f"{finding.message} (allowed: {_one_line(reason)})"
            return replace(finding, severity=Severity.INFO, message=message, allowed=reason)
        if finding.id in policy.errors and finding.severity is Severity.WARNING:
            return replace(finding, severity=Severity.ERROR)
        return finding

    return replace(verdict, findings=tuple(judged(f) for f in findings))


def identify_platform(
    machine: int, elf_class: int, little_endian: bool, arm_cpu_arch: int | None, go_arm: int | None = None
) -> str | None:
    """The platform name an ELF header identifies; on ARM the variant comes from Tag_CPU_arch and, for
    Go binaries (which have no `.ARM.attributes`), from GOARM (`go_arm`, e.g. 7).

    ARM names not in PLATFORMS ("linux/arm/v6", "linux/arm/v5", "linux/arm" when unknown) are returned
    anyway, so messages can say what a binary is.
    """
    if (machine, elf_class, little_endian) == (EM_ARM, 32, True):
        return _arm_platform(arm_cpu_arch, go_arm)
    return next(
        (
            p.name
            for p in PLATFORMS.values()
            if (p.elf_machine, p.elf_class, p.little_endian) == (machine, elf_class, little_endian)
        ),
        None,
    )


@dataclass(frozen=True, kw_only=True)
class _Scan:
    """Everything the checks use, read from the file before any check runs: the checks do no I/O, so
    an exception in one is a bug in it (`verify.internal`), never a malformed file."""

    facts: ElfFacts
    entry: int  # e_entry
    segments: tuple[Segment, ...]
    dynamic: _Dynamic
    is_go: bool
    contents: Contents | None  # None: not scanned (file over the size limit)


def _verify(path: Path, platform: Platform | None, limit: int = MAX_FILE_SIZE) -> Verdict:
    """The findings before any policy; contents are scanned only when the file is at most `limit` bytes."""
    try:
        with _open(path) as stream, _parse_errors_as_corrupt():
            binary = _Binary(stream)
            facts = _facts(binary)
            contents = elfscan.scan_contents(binary.elf, binary.read) if facts.size <= limit else None
            scan = _Scan(
                facts=facts,
                entry=binary.elf["e_entry"],
                segments=binary.segments,
                dynamic=binary.dynamic,
                is_go=facts.go is not None or binary.is_go(scan_segments=contents is not None),
                contents=contents,
            )
    except VerifyError as exc:
        return _unreadable(path, exc.finding_id, exc.message)
    except Exception as exc:  # last resort: bad input must never end in a traceback
        return _unreadable(path, INTERNAL_FINDING, _internal_message(exc))
    try:
        findings = _findings(scan, platform)
    except Exception as exc:  # a check that raises is a bug: said so, never a traceback
        findings = (*_info_findings(facts, None), _error(INTERNAL_FINDING, _internal_message(exc)))
    return Verdict(path=str(path), facts=facts, findings=findings)


def _findings(scan: _Scan, platform: Platform | None) -> tuple[Finding, ...]:
    facts, contents = scan.facts, scan.contents
    if contents is None:
        scanned: tuple[Finding, ...] = ()
        if facts.size > MAX_FILE_SIZE:
            scanned = (
                _error(
                    "elf.too-large",
                    f"file is {_size_text(facts.size)}, more than the {_size_text(MAX_FILE_SIZE)} osless "
                    "reads: only its headers were checked",
                    hint="a program this large is not meant for an image; check the recipe's output",
                ),
            )
    else:
        scanned = (
            *_runtime_findings(contents),
            *(_go_needs(contents) if scan.is_go else _c_needs(contents)),
        )
    return (
        *_linkage_findings(facts),
        *_arch_findings(scan, platform),
        *_go_findings(facts.go, platform),
        *_entry_findings(scan),
        *scanned,
        *_hardening_findings(scan),
        *_info_findings(facts, contents),
    )


def _internal_message(exc: BaseException) -> str:
    return f"the verifier could not check this file: {type(exc).__name__}: {_exception_text(exc)}"


# ---------------------------------------------------------------------------------------------------
# Opening: regular files only, never blocking; then magic, identification and every table
# bound-checked before anything else reads the file


@contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    """`path` open for reading when it is a regular file (symbolic links followed).

    Its type is checked with stat before opening and again on the open descriptor (it may have been
    replaced in between): opened with O_NONBLOCK, a FIFO put there meanwhile cannot make open block.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(_not_regular_message(path, info.st_mode))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise UnreadableFile(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as stream:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(_not_regular_message(path, mode))
        os.set_blocking(fd, True)
        try:
            yield stream
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # a seek to a negative offset the file's fields make
                raise CorruptElf(_exception_text(exc)) from exc
            raise UnreadableFile(f"cannot read {path}: {exc.strerror or exc}") from exc


def _not_regular_message(path: Path, mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a file")
    return f"{_text(str(path).encode(errors='surrogateescape'))} is {kind}, not a regular file"


class _Binary:
    """One ELF file open for reading: pyelftools over the file object (never a copy of the whole file),
    its tables bound-checked on opening, and each part the checks need read once.

    `read` is the only way to the file's contents: clamped to the file and counted, so a crafted file
    cannot make the verifier read much more than its size.
    """

    def __init__(self, stream: BinaryIO) -> None:
        size = os.fstat(stream.fileno()).st_size
        stream.seek(0)
        _check_identification(stream.read(64), size)
        self.size = size
        self._stream = stream
        self._budget = _READ_FACTOR * size + _READ_SLACK
        self.elf = ELFFile(stream)
        self.segments = _check_bounds(self.elf, size)
        self._dynamic: _Dynamic | None = None

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer past the end of the file, none for negative values)."""
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        self._budget -= length
        if self._budget < 0:
            raise CorruptElf(
                f"overlapping segments or sections: reading them means more than {_READ_FACTOR} times "
                f"the file's {self.size} bytes"
            )
        self._stream.seek(offset)
        data = self._stream.read(length)
        if len(data) != length:
            raise CorruptElf("the file changed while it was read")
        return data

    def segments_of(self, p_type: str) -> Iterator[Segment]:
        return _of_type(self.segments, p_type)

    @property
    def dynamic(self) -> _Dynamic:
        if self._dynamic is None:
            self._dynamic = _read_dynamic(self)
        return self._dynamic

    def is_go(self, *, scan_segments: bool) -> bool:
        """A Go binary: a note owned by "Go" (its build ID), a `.go.buildinfo` section or, when
        `scan_segments`, Go's build-info magic in a writable segment."""
        if any(note.owner == b"Go" for note in elfscan.read_notes(self.elf, self.read)):
            return True
        if _buildinfo_section(self.elf) is not None:
            return True
        return scan_segments and any(
            segment["p_flags"] & PF_W
            and BUILDINFO_MAGIC in self.read(segment["p_offset"], segment["p_filesz"])
            for segment in self.segments_of("PT_LOAD")
        )


def _check_identification(head: bytes, size: int) -> None:
    """Reject non-ELF input ourselves, and headers pyelftools would fail on with obscure messages.
    `head` is the file's first bytes (up to 64), `size` its size."""
    if head[:4] != _ELF_MAGIC:
        if not head:
            raise NotAnElf("not an ELF file (empty)")
        start = head[:24].split(b"\n", 1)[0] or head[:24]
        raise NotAnElf(f"not an ELF file (starts with '{_text(start)}')")
    if size < _IDENT_SIZE:
        raise CorruptElf(f"file is {size} bytes, shorter than the {_IDENT_SIZE}-byte ELF identification")
    if head[4] not in _HEADER_SIZE:
        raise CorruptElf(f"unknown ELF class {head[4]} in e_ident (1 is 32-bit, 2 is 64-bit)")
    if head[5] not in (1, 2):
        raise CorruptElf(f"unknown byte order {head[5]} in e_ident (1 is little-endian, 2 is big-endian)")
    header_size = _HEADER_SIZE[head[4]]
    if size < header_size:
        raise CorruptElf(f"file is {size} bytes, shorter than the {header_size}-byte ELF header")


def _check_bounds(elf: ELFFile, size: int) -> tuple[Segment, ...]:
    """Header tables, segments and sections must lie inside the file: a truncated file fails here.
    Returns the segments (their headers parsed once, for the checks)."""
    structs = elf.structs
    tables = (
        ("program header table", elf["e_phoff"], elf["e_phentsize"], elf.num_segments(), structs.Elf_Phdr),
        ("section header table", elf["e_shoff"], elf["e_shentsize"], elf.num_sections(), structs.Elf_Shdr),
    )
    for what, offset, entry_size, count, entry_struct in tables:
        if count and entry_size < entry_struct.sizeof():
            raise CorruptElf(f"{what} entries are {entry_size} bytes, expected {entry_struct.sizeof()}")
        _check_range(what, offset, entry_size * count, size)
    segments = tuple(elf.iter_segments())
    for n, segment in enumerate(segments):
        _check_range(
            f"segment {n} ({_type_name(segment['p_type'])})", segment["p_offset"], segment["p_filesz"], size
        )
    for n, section in enumerate(elf.iter_sections()):
        if section["sh_type"] != "SHT_NOBITS":
            _check_range(
                f"section {n} ({_text(section.name.encode())})",
                section["sh_offset"],
                section["sh_size"],
                size,
            )
    return segments


def _check_range(what: str, offset: int, length: int, size: int) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise CorruptElf(f"{what} extends past end of file ({offset + length} > {size} bytes)")


@contextmanager
def _parse_errors_as_corrupt() -> Iterator[None]:
    """Turn the many ways parsing fails on bad bytes into one CorruptElf with a one-line message."""
    try:
        yield
    except _PARSE_ERRORS as exc:
        raise CorruptElf(_exception_text(exc)) from exc


# ---------------------------------------------------------------------------------------------------
# Facts


def _facts(binary: _Binary) -> ElfFacts:
    elf = binary.elf
    machine = _machine_number(elf["e_machine"])
    interpreter = _interpreter(binary)
    dynamic = binary.dynamic
    elf_type = _type_name(elf["e_type"])
    arm_cpu_arch = _arm_cpu_arch(binary) if machine == EM_ARM else None
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
        platform=identify_platform(machine, elf.elfclass, elf.little_endian, arm_cpu_arch, go_arm),
        arm_cpu_arch=arm_cpu_arch,
        stripped=not any(True for _ in elf.iter_sections("SHT_SYMTAB")),
        go=go,
    )


def _buildinfo_section(elf: ELFFile) -> tuple[int, int] | None:
    """File offset and size of the `.go.buildinfo` section, when there is one with contents."""
    section = elf.get_section_by_name(".go.buildinfo")
    if section is None or section["sh_type"] == "SHT_NOBITS":
        return None
    return section["sh_offset"], section["sh_size"]


def _go_build_info(binary: _Binary) -> GoBuildInfo | None:
    """The Go build info, from the `.go.buildinfo` section or else the first writable, non-executable
    PT_LOAD (where Go's linker puts it), at most _MAX_BUILDINFO bytes of either.

    Go >= 1.18 writes the strings inline there. Older Go writes pointers to strings elsewhere: only then,
    and only for a file no larger than MAX_FILE_SIZE, is the whole file read to follow them.
    """
    regions = []
    section = _buildinfo_section(binary.elf)
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


def _machine_name(machine: int, e_machine: str | int) -> str:
    """The name people know an architecture by: ours for platforms in the table, else pyelftools'."""
    known = next((p.elf_machine_name for p in PLATFORMS.values() if p.elf_machine == machine), None)
    if known:
        return known
    return describe_e_machine(e_machine) if isinstance(e_machine, str) else f"e_machine {machine}"


def _linkage(elf_type: str, entry: int, interpreter: str | None, dynamic: _Dynamic) -> Linkage:
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


def _interpreter(binary: _Binary) -> str | None:
    """PT_INTERP's path: any interpreter is fatal in an empty image."""
    segment = next(binary.segments_of("PT_INTERP"), None)
    if segment is None:
        return None
    raw = binary.read(segment["p_offset"], min(segment["p_filesz"], _MAX_INTERPRETER))
    return _text(raw.split(b"\0", 1)[0])


def _read_dynamic(binary: _Binary) -> _Dynamic:
    """The PT_DYNAMIC entries verification uses, found through PT_DYNAMIC and PT_LOAD only."""
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
    return _Dynamic(
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


def _dynamic_entries(binary: _Binary, segment: DynamicSegment) -> Iterator[tuple[str | int, int]]:
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
    return _text(raw)


def _arm_cpu_arch(binary: _Binary) -> int | None:
    """Tag_CPU_arch of `.ARM.attributes`; None when there is no such section (Go, stripped headers)."""
    section = next(binary.elf.iter_sections("SHT_ARM_ATTRIBUTES"), None)
    if section is None:
        return None
    if section["sh_size"] > _MAX_ATTRIBUTES:
        raise CorruptElf(f".ARM.attributes is {section['sh_size']} bytes, more than {_MAX_ATTRIBUTES}")
    byteorder: Literal["little", "big"] = "little" if binary.elf.little_endian else "big"
    return _aeabi_cpu_arch(binary.read(section["sh_offset"], section["sh_size"]), byteorder)


def _aeabi_cpu_arch(data: bytes, byteorder: Literal["little", "big"]) -> int | None:
    """Walk the vendor subsections of a raw attributes section to the "aeabi" one."""
    if data[:1] != b"A":
        raise ValueError(".ARM.attributes does not start with format version 'A'")
    pos = 1
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], byteorder)
        if length < 4 or pos + length > len(data):
            raise ValueError(f".ARM.attributes subsection length {length} out of range")
        vendor, _, body = data[pos + 4 : pos + length].partition(b"\0")
        if vendor == b"aeabi":
            return _file_cpu_arch(body, byteorder)
        pos += length
    return None


def _file_cpu_arch(body: bytes, byteorder: Literal["little", "big"]) -> int | None:
    """Tag_CPU_arch among the file-scope attributes (Tag_File) of an aeabi subsection."""
    pos = 0
    while pos < len(body):
        scope, size = body[pos], int.from_bytes(body[pos + 1 : pos + 5], byteorder)
        if size < 5 or pos + size > len(body):
            raise ValueError(f".ARM.attributes scope length {size} out of range")
        if scope == _TAG_FILE:
            return _integer_attribute(body[pos + 5 : pos + size], _TAG_CPU_ARCH)
        pos += size
    return None


def _integer_attribute(attributes: bytes, wanted: int) -> int | None:
    """The value of one integer attribute in a tag/value list, skipping the others by their type."""
    pos = 0
    while pos < len(attributes):
        tag, pos = _uleb128(attributes, pos)
        if tag == wanted:
            return _uleb128(attributes, pos)[0]
        if tag == _TAG_COMPATIBILITY:
            pos = _uleb128(attributes, pos)[1]
        if tag in _STRING_TAGS or tag == _TAG_COMPATIBILITY or (tag > 32 and tag % 2 == 1):
            pos = attributes.index(b"\0", pos) + 1
        else:
            pos = _uleb128(attributes, pos)[1]
    return None


def _uleb128(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 number at `pos`, and the position after it."""
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
    raise ValueError(".ARM.attributes: truncated ULEB128 number")


def _arm_platform(cpu_arch: int | None, go_arm: int | None) -> str:
    """linux/arm/v5 to v7 by the highest ARM version the binary needs (C objects' or Go code's)."""
    versions = [v for v in (_arm_version(cpu_arch), go_arm) if v is not None]
    return f"linux/arm/v{min(max(*versions, 5), 7)}" if versions else "linux/arm"


def _arm_version(cpu_arch: int | None) -> int | None:
    """The ARMv5/6/7 level of a Tag_CPU_arch value."""
    if cpu_arch is None:
        return None
    if cpu_arch >= _ARM_V7:
        return 7
    return 6 if cpu_arch >= _ARM_V6 else 5


def _arm_arch_name(cpu_arch: int) -> str:
    return _ARM_ARCH_NAMES[cpu_arch] if cpu_arch < len(_ARM_ARCH_NAMES) else f"Tag_CPU_arch {cpu_arch}"


# ---------------------------------------------------------------------------------------------------
# Checks


def _linkage_findings(facts: ElfFacts) -> tuple[Finding, ...]:
    """Only a statically linked program (plain or PIE) can start in an empty image."""
    if facts.elf_type not in _PROGRAM_TYPES:
        return (
            _error(
                "elf.not-executable",
                f"not a program (ELF type {facts.elf_type}) — "
                "point the recipe's output at the linked executable",
            ),
        )
    if facts.linkage is Linkage.STATIC:
        return (_info("linkage.static", "statically linked"),)
    if facts.linkage is Linkage.STATIC_PIE:
        return (_info("linkage.static-pie", "statically linked, position-independent (static-pie)"),)
    if facts.linkage in (Linkage.DYNAMIC, Linkage.DYNAMIC_PIE):
        return (
            _error(
                "linkage.dynamic",
                _dynamic_message(facts),
                hint="C: -static; Go: CGO_ENABLED=0; Rust: a *-linux-musl target or +crt-static",
            ),
        )
    if facts.linkage is Linkage.SHARED_OBJECT:
        return (
            _error(
                "linkage.shared-object",
                "a shared library, not a program — build an executable "
                "(no -shared, a binary rather than a library target)",
            ),
        )
    return (
        _error(
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


def _arch_findings(scan: _Scan, platform: Platform | None) -> tuple[Finding, ...]:
    """The header must say the recipe's platform; e_flags checks only make sense once it does."""
    if platform is None:
        return ()
    mismatches = _identity_mismatches(scan.facts, platform)
    if mismatches:
        return mismatches
    check = _FLAG_CHECKS.get(scan.facts.machine)
    return check(scan, scan.facts, platform) if check else ()


def _identity_mismatches(facts: ElfFacts, platform: Platform) -> tuple[Finding, ...]:
    """e_machine, then class and byte order (only meaningful for the right machine)."""
    cross = f"cross-compile for it ({platform.gnu_triple}-gcc, GOARCH={platform.goarch})"
    if facts.machine != platform.elf_machine:
        return (
            _error("arch.machine", f"built for {facts.machine_name}, recipe says {platform.name} — {cross}"),
        )
    findings: list[Finding] = []
    if facts.elf_class != platform.elf_class:
        what = (
            "x32 ABI (32-bit ELF for x86-64)"
            if (facts.machine, facts.elf_class) == (EM_X86_64, 32)
            else f"{facts.elf_class}-bit ELF"
        )
        findings.append(
            _error("arch.class", f"{what}, {platform.name} needs {platform.elf_class}-bit — {cross}")
        )
    if facts.little_endian != platform.little_endian:
        findings.append(
            _error(
                "arch.endian",
                f"{_endianness(facts.little_endian)} ELF, {platform.name} "
                f"needs {_endianness(platform.little_endian)} — {cross}",
            )
        )
    return tuple(findings)


def _arm_flag_findings(scan: _Scan, facts: ElfFacts, platform: Platform) -> tuple[Finding, ...]:
    """EABI version 5, the hard-float ABI on armhf, and a new enough Tag_CPU_arch.

    Go sets neither float flag (0x400 hard, 0x200 soft) and writes no attributes: both are accepted.
    """
    findings: list[Finding] = []
    eabi = facts.flags >> 24
    if eabi != EF_ARM_EABI_VERSION_5:
        findings.append(
            _error(
                "arch.arm-eabi",
                f"ARM EABI version {eabi} in e_flags, Linux needs version 5 "
                "— build with an arm-linux-gnueabi or arm-linux-gnueabihf toolchain",
            )
        )
    if platform.debian_arch == "armhf" and facts.flags & EF_ARM_ABI_FLOAT_SOFT:  # armhf: hard-float EABI
        findings.append(
            _error(
                "arch.arm-float",
                f"soft-float ABI (e_flags {facts.flags:#x}), "
                f"{platform.name} is hard-float — build with {platform.gnu_triple}-gcc, "
                "not -mfloat-abi=soft",
            )
        )
    minimum = platform.arm_min_arch
    if facts.arm_cpu_arch is not None and minimum is not None and facts.arm_cpu_arch < minimum:
        findings.append(
            _error(
                "arch.arm-version",
                f"built for {_arm_arch_name(facts.arm_cpu_arch)}, "
                f"{platform.name} needs {_arm_arch_name(minimum)} or later — raise -march",
            )
        )
    return tuple(findings)


def _riscv_flag_findings(scan: _Scan, facts: ElfFacts, platform: Platform) -> tuple[Finding, ...]:
    """Linux distributions' riscv64 C ABI is lp64d: e_flags must carry the double-float ABI.

    Go binaries are accepted whatever their flags: Go's own calling convention is not the C float ABI,
    GOARCH=riscv64 requires RV64G (which includes the D extension) anyway, and Go linkers are reported to
    have written e_flags 0 (measured here: Go 1.19 writes 0x4). For Go the flag says nothing about
    whether the binary runs.
    """
    float_abi = facts.flags & EF_RISCV_FLOAT_ABI
    if float_abi == EF_RISCV_FLOAT_ABI_DOUBLE or scan.is_go:
        return ()
    return (
        _error(
            "arch.riscv-float-abi",
            f"{_RISCV_FLOAT_ABI_NAMES[float_abi]} ABI (e_flags {facts.flags:#x}), {platform.name} "
            "needs the double-float ABI (lp64d) — build with -mabi=lp64d",
        ),
    )


def _ppc64_flag_findings(scan: _Scan, facts: ElfFacts, platform: Platform) -> tuple[Finding, ...]:
    """ppc64le is ELFv2 (e_flags & 3 == 2; Go writes 2 too); 0 means unspecified and is accepted."""
    abi = facts.flags & EF_PPC64_ABI
    if abi in (0, 2):
        return ()
    return (
        _error(
            "arch.ppc64-abi",
            f"PowerPC64 ELF ABI version {abi} in e_flags, {platform.name} needs "
            f"ELFv2 — build with {platform.gnu_triple}-gcc",
        ),
    )


_FLAG_CHECKS: dict[int, Callable[[_Scan, ElfFacts, Platform], tuple[Finding, ...]]] = {
    EM_ARM: _arm_flag_findings,
    EM_RISCV: _riscv_flag_findings,
    EM_PPC64: _ppc64_flag_findings,
}


def _go_findings(go: GoBuildInfo | None, platform: Platform | None) -> tuple[Finding, ...]:
    """What the Go build info says the binary was built for: GOARCH, and GOARM on ARM.

    A GOARCH mismatch is also an e_machine, class or byte-order mismatch; it is reported as well because
    it names the setting to change. GOARM is compared only when recorded (Go >= 1.18 records it).
    """
    if go is None or platform is None:
        return ()
    if go.goarch is not None and go.goarch != platform.goarch:
        return (
            _error(
                "arch.go-goarch",
                _one_line(
                    f"built with GOARCH={go.goarch}, recipe says {platform.name} "
                    f"— set GOARCH={platform.goarch}"
                ),
            ),
        )
    needed = goarm_version(platform.goarm)
    if needed is not None and go.arm_version is not None and go.arm_version < needed:
        return (
            _error(
                "arch.arm-version",
                _one_line(
                    f"built with GOARM={go.goarm} (ARMv{go.arm_version}), {platform.name} needs "
                    f"ARMv{needed} or later — set GOARM={platform.goarm}"
                ),
            ),
        )
    return ()


def _entry_findings(scan: _Scan) -> tuple[Finding, ...]:
    """A program's entry point must be code the loader maps executable, or it dies at its first step."""
    facts = scan.facts
    if facts.elf_type not in _PROGRAM_TYPES or facts.linkage is Linkage.SHARED_OBJECT:
        return ()
    entry = scan.entry & ~1 if facts.machine == EM_ARM else scan.entry  # bit 0: Thumb
    if any(
        segment["p_flags"] & PF_X and segment["p_vaddr"] <= entry < segment["p_vaddr"] + segment["p_filesz"]
        for segment in _of_type(scan.segments, "PT_LOAD")
    ):
        return ()
    return (
        _error(
            "elf.entry",
            f"entry point {entry:#x} is not in an executable PT_LOAD segment — "
            "the file is damaged or not a complete program; rebuild it",
        ),
    )


# Runtime traps of static glibc. dlopen is no evidence of any: since glibc 2.34 it is linked into every
# static binary (and its strings "gconv", "GCONV_PATH", "ld.so.cache" too). musl and pure Go binaries
# have neither NSS nor gconv, and are recognised as not glibc (no GLIBC_TUNABLES, no ABI-tag note).

_MUSL_HINT = "link against musl ({MUSL_CC} in the gcc toolchain), use a pure implementation"
_NSS_HINT = f"{_MUSL_HINT}, or allow it in [verify] with a reason"


def _runtime_findings(contents: Contents) -> tuple[Finding, ...]:
    if not contents.glibc:
        return ()
    return (*_nss_findings(contents), *_gconv_findings(contents))


def _nss_use(contents: Contents) -> tuple[str, ...] | None:
    """The NSS functions a glibc binary defines (unstripped: the symbols decide), () for a stripped one
    linking NSS (the dlopen name pattern `libnss_`), None when it does not use NSS."""
    if not contents.glibc:
        return None
    if contents.functions is not None:
        return contents.called(elfscan.NSS_FUNCTIONS) or None
    return () if contents.contains(elfscan.NSS_STRING) else None


def _nss_findings(contents: Contents) -> tuple[Finding, ...]:
    """Before glibc 2.34 every NSS lookup loads libnss_<service>.so: it fails in scratch (ERROR).

    Since 2.34 the files and dns services are built into static binaries: lookups work in scratch once the
    files exist (a static getpwuid, run here in scratch with the passwd extra, found its user), so NSS
    is only INFO, and the user and group functions need the passwd extra.
    """
    calls = _nss_use(contents)
    if calls is None:
        return ()
    what = f"calls {_names(calls)}" if calls else "uses glibc's NSS (stripped; it holds libnss_)"
    if not any(contents.contains(marker) for marker in elfscan.NSS_BUILTIN_STRINGS):
        message = f"{what}, which loads libnss_*.so at run time (absent in scratch): the lookup fails"
        return (_error("runtime.nss", message, hint=_NSS_HINT),)
    findings = [
        _info(
            "runtime.nss",
            f"{what}: glibc >= 2.34 answers with its built-in files and dns services; other services "
            "an /etc/nsswitch.conf names would load libnss_*.so, absent in scratch",
        )
    ]
    users = tuple(name for name in calls if name in elfscan.NSS_USER_FUNCTIONS)
    if users or not calls:
        findings.append(
            _need(
                "passwd",
                f"{f'calls {_names(users)}' if users else what}: user and group lookups read "
                "/etc/passwd and /etc/group",
            )
        )
    return tuple(findings)


def _gconv_findings(contents: Contents) -> tuple[Finding, ...]:
    """iconv_open, from the symbol table only: the gconv strings are in every static glibc binary."""
    if not contents.called((elfscan.ICONV_FUNCTION,)):
        return ()
    return (
        _error(
            "runtime.gconv",
            "uses iconv_open: conversions other than UTF-8/ASCII/UCS need gconv modules absent in scratch",
            hint=f"convert only between UTF-8, ASCII and UCS-2/UCS-4, {_MUSL_HINT}, "
            "or allow it in [verify] with a reason",
        ),
    )


# Needs: files a scratch image lacks, each satisfied by one image extra (WARNING until provided).


def _c_needs(contents: Contents) -> tuple[Finding, ...]:
    """C, C++, Rust...: the paths the program's strings name, and libc's temporary-file functions."""
    findings: list[Finding] = []
    ca = contents.first_string(elfscan.CA_STRINGS)
    if ca:
        findings.append(
            _need("ca-certificates", f"refers to {ca}: TLS peers are verified against a CA bundle")
        )
    zones = contents.first_string(elfscan.ZONEINFO_STRINGS)
    if zones:
        findings.append(
            _need(
                "tzdata",
                f"refers to {zones}: a TZ naming a zone (TZ=Europe/Paris) reads the zone database, "
                "else times are UTC",
            )
        )
    users = contents.first_string(elfscan.USER_DATABASE_STRINGS)
    if users and _nss_use(contents) is None:  # with glibc's NSS, _nss_findings decides
        findings.append(_need("passwd", f"refers to {users}: user and group lookups read it"))
    tmp_calls = contents.called(elfscan.TMP_FUNCTIONS)
    tmp = f"calls {_names(tmp_calls)}" if tmp_calls else _refers(contents.first_string(elfscan.TMP_STRINGS))
    if tmp:
        findings.append(_need("tmp", f"{tmp}: temporary files go to /tmp (or $TMPDIR)"))
    return tuple(findings)


def _go_needs(contents: Contents) -> tuple[Finding, ...]:
    """Go: function names (pclntab keeps them in stripped binaries), never bare paths: "/usr/share/zoneinfo"
    is in every binary using time.Local, which needs no zone database in scratch (it is then UTC)."""
    findings: list[Finding] = []
    ca = contents.first_go_function(elfscan.GO_CA_FUNCTIONS)
    if ca and contents.first_go_function((elfscan.GO_FALLBACK_ROOTS,)):
        findings.append(
            _info(
                "go.fallback-roots",
                f"uses {ca} with fallback roots (crypto/x509.SetFallbackRoots): "
                "TLS works without a CA bundle",
            )
        )
    elif ca:
        message = f"uses {ca}: the system CA pool is read from /etc/ssl/certs"
        findings.append(_need("ca-certificates", message))
    zones = contents.first_go_function(elfscan.GO_ZONE_FUNCTIONS)
    if zones and contents.first_go_function((elfscan.GO_EMBEDDED_ZONES,)):
        findings.append(
            _info("go.tzdata-embedded", f"calls {zones} with the zone database embedded (time/tzdata)")
        )
    elif zones:
        findings.append(
            _need(
                "tzdata",
                f"calls {zones}: zones are read from /usr/share/zoneinfo",
                alternative='embed them: import _ "time/tzdata"',
            )
        )
    user = contents.first_go_function(elfscan.GO_USER_FUNCTIONS)
    if user:
        findings.append(_need("passwd", f"uses os/user ({user}): it reads /etc/passwd and /etc/group"))
    tmp = contents.first_go_function(elfscan.GO_TMP_FUNCTIONS)
    if tmp:
        findings.append(_need("tmp", f"calls {tmp}: temporary files go to $TMPDIR, else /tmp"))
    return tuple(findings)


def _need(extra: str, message: str, alternative: str | None = None) -> Finding:
    hint = f'add extras = ["{extra}"] to [image]' + (f", or {alternative}" if alternative else "")
    return Finding(
        id=f"needs.{extra}",
        severity=Severity.WARNING,
        message=f"{message} — absent in scratch",
        hint=hint,
        extra=extra,
    )


def _names(names: tuple[str, ...]) -> str:
    """Function names for a message, without the variants of a name also listed (getpwnam_r, mkstemp64)."""
    names = tuple(n for n in names if n.removesuffix("_r").removesuffix("64") == n or n[:-2] not in names)
    shown = ", ".join(names[:3])
    return shown if len(names) <= 3 else f"{shown} and {len(names) - 3} more"


def _refers(string: str | None) -> str | None:
    return f"refers to {string}" if string else None


# Hardening and hygiene


def _hardening_findings(scan: _Scan) -> tuple[Finding, ...]:
    facts, dynamic = scan.facts, scan.dynamic
    if facts.elf_type not in _PROGRAM_TYPES:
        return ()
    return (*_stack_findings(scan), *_relro_findings(scan, dynamic), *_dynamic_hygiene(facts, dynamic))


def _stack_findings(scan: _Scan) -> tuple[Finding, ...]:
    """PT_GNU_STACK without PF_X keeps the stack non-executable. gcc, musl-gcc and Go (1.19, 1.24) all
    write it RW, so Go needs no exception; without it the kernel may map the stack executable
    (READ_IMPLIES_EXEC on 32-bit x86)."""
    stack = next(_of_type(scan.segments, "PT_GNU_STACK"), None)
    hint = "link with -Wl,-z,noexecstack"
    if stack is None:
        message = "no PT_GNU_STACK header: the kernel may map the stack executable"
        return (_warning("hardening.nx-stack", message, hint=hint),)
    if stack["p_flags"] & PF_X:
        hint += " and find the object asking for it (assembly without .note.GNU-stack, nested functions)"
        return (_warning("hardening.nx-stack", "executable stack (PT_GNU_STACK has PF_X)", hint=hint),)
    return (_info("hardening.nx-stack", "non-executable stack (PT_GNU_STACK without PF_X)"),)


def _relro_findings(scan: _Scan, dynamic: _Dynamic) -> tuple[Finding, ...]:
    """A static-pie relocates itself at startup, then makes PT_GNU_RELRO read-only; the GOT is in it only
    with BIND_NOW (gcc's default -static-pie has RELRO without BIND_NOW: partial)."""
    if scan.facts.linkage is not Linkage.STATIC_PIE:
        return ()
    if not any(True for _ in _of_type(scan.segments, "PT_GNU_RELRO")):
        return (
            _warning(
                "hardening.relro",
                "static-pie without RELRO (no PT_GNU_RELRO): relocated data stays writable",
                hint="drop -Wl,-z,norelro; link with -Wl,-z,relro,-z,now",
            ),
        )
    if dynamic.bind_now or dynamic.flags & DF_BIND_NOW or dynamic.flags_1 & DF_1_NOW:
        return (_info("hardening.relro", "full RELRO (PT_GNU_RELRO and BIND_NOW)"),)
    return (
        _info(
            "hardening.relro",
            "partial RELRO: PT_GNU_RELRO without BIND_NOW, the GOT stays writable",
            hint="link with -Wl,-z,now for full RELRO",
        ),
    )


def _dynamic_hygiene(facts: ElfFacts, dynamic: _Dynamic) -> tuple[Finding, ...]:
    findings: list[Finding] = []
    if dynamic.search_paths:
        paths = ", ".join(f"{tag} {value}" for tag, value in dynamic.search_paths)
        findings.append(
            _warning(
                "elf.rpath",
                f"library search path ({paths}): meaningless without shared libraries",
                hint="drop -Wl,-rpath (and LD_RUN_PATH) from the link",
            )
        )
    if dynamic.textrel or dynamic.flags & DF_TEXTREL:
        hint = "compile every object with -fPIE (assembly: no absolute addresses in .text), or link -static"
        if facts.linkage is Linkage.STATIC_PIE:  # measured: glibc's static-pie start-up segfaults
            message = "text relocations (DT_TEXTREL) in a static-pie: start-up writes to read-only code"
            findings.append(_error("elf.textrel", message, hint=hint))
        else:
            message = "text relocations (DT_TEXTREL): code pages are written at start-up"
            findings.append(_warning("elf.textrel", message, hint=hint))
    return tuple(findings)


def _info_findings(facts: ElfFacts, contents: Contents | None) -> tuple[Finding, ...]:
    identified = (
        facts.platform
        if facts.platform
        else f"{facts.machine_name}, {facts.elf_class}-bit {_endianness(facts.little_endian)}, "
        "no known platform"
    )
    findings = [_info("arch.identified", f"built for {identified}")]
    if facts.go is not None:
        findings.append(_info("go.buildinfo", _go_summary(facts.go)))
    findings.append(_info("elf.size", f"{facts.size} bytes ({_size_text(facts.size)})"))
    if facts.stripped:
        findings.append(_info("elf.stripped", "stripped (no symbol table)"))
    if contents is not None and contents.debug_sections:
        size = sum(size for _, size in contents.debug_sections)
        findings.append(
            _info(
                "elf.debug-info",
                f"debug information: {len(contents.debug_sections)} .debug_* sections, {_size_text(size)}",
                hint="strip it (-s, or strip --strip-debug) for a smaller image",
            )
        )
    if contents is not None and contents.build_ids:
        ids = "; ".join(f"{kind} build ID {_one_line(value)}" for kind, value in contents.build_ids)
        findings.append(_info("elf.build-id", ids))
    return tuple(findings)


def _go_summary(go: GoBuildInfo) -> str:
    """The go.buildinfo message: Go version, then the main module (or main package when no module)."""
    main = go.main.path if go.main and go.main.path else None
    where = f", module {main}" if main else f", package {go.path}" if go.path else ""
    return _one_line(f"Go {go.go_version}{where}")


# ---------------------------------------------------------------------------------------------------
# Small helpers


def _error(id: str, message: str, hint: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.ERROR, message=message, hint=hint)


def _warning(id: str, message: str, hint: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.WARNING, message=message, hint=hint)


def _info(id: str, message: str, hint: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.INFO, message=message, hint=hint)


def _size_text(size: int) -> str:
    """A size as people read it: 660.4 KiB, 2.1 MiB."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _sizes_apart(size: int, budget: int) -> tuple[str, str]:
    """Both sizes readable, in bytes when rounding would make them look equal."""
    shown, limit = _size_text(size), _size_text(budget)
    return (shown, limit) if shown != limit else (f"{size} bytes", f"{budget} bytes")


def _of_type(segments: tuple[Segment, ...], p_type: str) -> Iterator[Segment]:
    return (segment for segment in segments if segment["p_type"] == p_type)


def _unreadable(path: Path, finding_id: str, message: str) -> Verdict:
    return Verdict(path=str(path), facts=None, findings=(_error(finding_id, message),))


def _type_name(value: str | int) -> str:
    """A type field as pyelftools names it, or its number in hex when unknown."""
    return value if isinstance(value, str) else f"{value:#x}"


def _endianness(little_endian: bool) -> str:
    return "little-endian" if little_endian else "big-endian"


def _text(raw: bytes) -> str:
    """Bytes from the file as printable text on one line: bad UTF-8 and control characters escaped."""
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _one_line(text: str) -> str:
    """Text from the file's Go build info, printable on one line (see _text)."""
    return _text(text.encode())


def _exception_text(exc: BaseException) -> str:
    """An exception's message on one printable line (pyelftools quotes bytes of the file in some)."""
    text = _one_line(" ".join(str(exc).split())) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
