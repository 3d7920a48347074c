"""Bounded reading of one ELF file: regular files only, every table checked against the file's size
before anything reads it, and every read clamped and counted.

Nothing here trusts the file: a non-regular file is refused after stat and before open (a FIFO would
block, a device never end), the size comes from stat before any read, and a crafted file cannot make
osless read much more than its size. Bad input raises one of the ElfReadError subclasses, each with a
one-line message and the id of the finding it becomes.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import Segment

from orchestrator.errors import OslessError

MAX_FILE_SIZE = 1 << 30
"""The largest file whose contents osless reads (1 GiB), whatever the recipe's `verify.max_size`.

The size comes from stat before anything is read. A larger file (or one over `max_size`, unless the
policy allows `size.budget`) still has its headers checked, with reads of a few bytes each, but its
contents (strings, symbols, notes) are not scanned: it gets the ERROR `elf.too-large` (or
`size.budget`) instead, so a huge or hostile file costs neither the memory nor the time of its size.
"""
PF_X, PF_W = 0x1, 0x2
_ELF_MAGIC = b"\x7fELF"
_IDENT_SIZE = 16
_HEADER_SIZE = {1: 52, 2: 64}  # by EI_CLASS: ELFCLASS32, ELFCLASS64
# A file makes osless read at most this many bytes in all: its loaded segments, symbol and string
# tables and notes once each (overlapping segments or sections in a crafted file could otherwise make
# it read the same bytes many times).
_READ_FACTOR, _READ_SLACK = 3, 16 << 20
# How pyelftools, construct and struct fail on bad bytes. ELFParseError is an ELFError and
# UnicodeDecodeError a ValueError; IndexError and KeyError come from tables indexed by file contents.
_PARSE_ERRORS = (ELFError, OverflowError, AssertionError, struct.error, ValueError, IndexError, KeyError)


class ElfReadError(OslessError):
    """A file could not be read as an ELF file at all; `finding_id` is the finding it becomes."""

    finding_id = "elf.corrupt"


class NotAnElf(ElfReadError):
    finding_id = "elf.not-elf"


class CorruptElf(ElfReadError):
    finding_id = "elf.corrupt"

    def __init__(self, detail: str) -> None:
        super().__init__(f"truncated or corrupt ELF: {detail}")


class UnreadableFile(ElfReadError):
    finding_id = "elf.unreadable"


class NotARegularFile(ElfReadError):
    """A directory, device, FIFO or socket: never opened for reading (a FIFO would block, a device
    never end)."""

    finding_id = "elf.not-regular"


class LoadedElf:
    """One ELF file open for reading: pyelftools over the file object (never a copy of the whole file),
    its tables bound-checked on opening.

    `read` is the only way to the file's contents: clamped to the file and counted, so a crafted file
    cannot make osless read much more than its size.
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
        return of_type(self.segments, p_type)

    def section_range(self, name: str) -> tuple[int, int] | None:
        """File offset and size of the named section, when there is one with contents."""
        section = self.elf.get_section_by_name(name)
        if section is None or section["sh_type"] == "SHT_NOBITS":
            return None
        return section["sh_offset"], section["sh_size"]


@contextmanager
def load_elf(path: Path) -> Iterator[LoadedElf]:
    """`path` open as a LoadedElf, for reading within the `with` block only; the many ways parsing fails
    on bad bytes become one CorruptElf with a one-line message."""
    with open_regular(path) as stream, parse_errors_as_corrupt():
        yield LoadedElf(stream)


@contextmanager
def open_regular(path: Path) -> Iterator[BinaryIO]:
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
                raise CorruptElf(exception_text(exc)) from exc
            raise UnreadableFile(f"cannot read {path}: {exc.strerror or exc}") from exc


@contextmanager
def parse_errors_as_corrupt() -> Iterator[None]:
    """Turn the many ways parsing fails on bad bytes into one CorruptElf with a one-line message."""
    try:
        yield
    except _PARSE_ERRORS as exc:
        raise CorruptElf(exception_text(exc)) from exc


def of_type(segments: tuple[Segment, ...], p_type: str) -> Iterator[Segment]:
    return (segment for segment in segments if segment["p_type"] == p_type)


def type_name(value: str | int) -> str:
    """A type field as pyelftools names it, or its number in hex when unknown."""
    return value if isinstance(value, str) else f"{value:#x}"


def printable(raw: bytes) -> str:
    """Bytes from the file as printable text on one line: bad UTF-8 and control characters escaped."""
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def one_line(text: str) -> str:
    """Text from the file (e.g. its Go build info), printable on one line (see printable)."""
    return printable(text.encode())


def exception_text(exc: BaseException) -> str:
    """An exception's message on one printable line (pyelftools quotes bytes of the file in some)."""
    text = one_line(" ".join(str(exc).split())) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _not_regular_message(path: Path, mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a file")
    return f"{printable(str(path).encode(errors='surrogateescape'))} is {kind}, not a regular file"


def _check_identification(head: bytes, size: int) -> None:
    """Reject non-ELF input ourselves, and headers pyelftools would fail on with obscure messages.
    `head` is the file's first bytes (up to 64), `size` its size."""
    if head[:4] != _ELF_MAGIC:
        if not head:
            raise NotAnElf("not an ELF file (empty)")
        start = head[:24].split(b"\n", 1)[0] or head[:24]
        raise NotAnElf(f"not an ELF file (starts with '{printable(start)}')")
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
            f"segment {n} ({type_name(segment['p_type'])})", segment["p_offset"], segment["p_filesz"], size
        )
    for n, section in enumerate(elf.iter_sections()):
        if section["sh_type"] != "SHT_NOBITS":
            _check_range(
                f"section {n} ({printable(section.name.encode())})",
                section["sh_offset"],
                section["sh_size"],
                size,
            )
    return segments


def _check_range(what: str, offset: int, length: int, size: int) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise CorruptElf(f"{what} extends past end of file ({offset + length} > {size} bytes)")
