"""What an ELF file's contents say about its needs at run time: strings, symbols, notes, debug sections.

The headers tell whether a binary can start in an empty image; this module reads what it will look for
once running. Everything is read through a `Reader` over a file whose tables `elf.load` has already
bound-checked (only the parts named below are read, never debug information), and nothing here raises
on odd input: a symbol table or note that does not parse is skipped. Only the reader may raise (the
loader's stops a crafted file that would make it read far more than its size).

Strings are searched only in PT_LOAD segments (what the program can use at run time), never in debug
information or symbol tables: `-g` records the build directory (e.g. under /tmp), `.strtab` records names.

How each string is looked for, given that linkers merge a C string into the end of a longer one that ends
with it ("/tmp" into "/var/tmp"): needles searched as plain bytes anywhere (CA, zoneinfo and user
database paths, NSS and glibc marks, C++ type names ending in NUL) are found inside a longer string as
well; "/tmp", which is also the start of unrelated names ("/tmpfoo"), is found as a whole string or as
the end of one (`first_ending`); a path under /tmp only at the start of a string (`TMP_PATH`). Go
function names (pclntab, written by Go's linker, which merges nothing) and Zig's and libstdc++'s marks
keep their NUL before: they are told apart from longer names by it, and no longer string ends with them.

Measured here (Debian glibc 2.36 and 2.41, musl 1.2, Go 1.19 and 1.24, amd64):

- Every static glibc binary holds `GLIBC_TUNABLES` and the GNU ABI-tag note; musl and pure Go ones do
  not. Every static glibc >= 2.34 holds `dlopen` (a symbol) and "invalid mode for dlopen()" (a string):
  neither is evidence of NSS.
- glibc >= 2.34 links its `files` and `dns` NSS services into static binaries (`_nss_files_*`, glibc
  commits "nss: Access nss_files through direct references", "nss: Directly load nss_dns"): a static
  `getpwuid` then works in a scratch image that has /etc/passwd (run here: gcc 14, glibc 2.41). Only
  services other than files and dns, named in an /etc/nsswitch.conf, still need `libnss_*.so`.
  Older glibc loads `libnss_files.so.2` with dlopen: the lookup fails in scratch.
- `iconv_open("UTF-8", "ISO-8859-1")` fails in scratch (no gconv modules) and works on the host.
- A static glibc binary calling localtime, strftime or mktime holds "/usr/share/zoneinfo" (TZDIR); musl's
  too ("/usr/share/zoneinfo/"). hello-c, hello-c-musl and hello-go hold none of the strings below.
- Go function names survive `-ldflags=-s -w` (they are in pclntab, NUL-terminated). A hello world with
  `fmt` holds none of the names below; `time.Now()` with `time.Local` holds time.loadLocation and
  /usr/share/zoneinfo but not time.LoadLocation; the bytes "crypto/x509" alone are in every Go >= 1.21
  binary (a GODEBUG table), so only whole function names count.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

STT_FUNC, STT_GNU_IFUNC = 2, 10
SHN_UNDEF = 0
NT_GNU_ABI_TAG, NT_GNU_BUILD_ID, NT_GO_BUILD_ID = 1, 3, 4
_SYMBOL_LAYOUT = {32: ("IIIBBH", 0, 3, 5), 64: ("IBBHQQ", 0, 1, 3)}  # format, st_name, st_info, st_shndx
_NOTE_HEADER = 12  # namesz, descsz, type: 4-byte words in both classes
_MAX_NOTES = 64  # per segment: real files have a handful; bounded work on a segment of zeros
_MAX_NOTE_BYTES = 1 << 16  # read of one PT_NOTE segment (real ones: well under 1 KiB)

Reader = Callable[[int, int], bytes]
"""read(offset, length): up to `length` bytes of the file at `offset`; b"" outside of it."""
_MAX_QUOTED = 80
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")

# ---------------------------------------------------------------------------------------------------
# glibc NSS: the functions whose libc.a objects carry a `.gnu.warning.<name>` section ("Using 'x' in
# statically linked applications requires at runtime the shared libraries ..."), glibc 2.36 and 2.41,
# less those that are no NSS (gets, tmpnam, dlopen, ...). dlopen is in every static glibc >= 2.34.

NSS_USER_FUNCTIONS = frozenset(
    f"{prefix}{suffix}"
    for prefix, suffixes in {
        "getpw": ("nam", "nam_r", "uid", "uid_r", "ent", "ent_r"),
        "getgr": ("nam", "nam_r", "gid", "gid_r", "ent", "ent_r", "ouplist"),
        "getsp": ("nam", "nam_r", "ent", "ent_r"),  # shadow
        "getsg": ("nam", "nam_r", "ent", "ent_r"),  # gshadow
        "setpw": ("ent",),
        "endpw": ("ent",),
        "setgr": ("ent",),
        "endgr": ("ent",),
        "setsp": ("ent",),
        "endsp": ("ent",),
        "setsg": ("ent",),
        "endsg": ("ent",),
    }.items()
    for suffix in suffixes
) | {"getpw", "initgroups"}
NSS_NETWORK_FUNCTIONS = frozenset(
    f"{prefix}{suffix}"
    for prefix, suffixes in {
        "gethostby": ("name", "name_r", "name2", "name2_r", "addr", "addr_r"),
        "gethostent": ("", "_r"),
        "getservby": ("name", "name_r", "port", "port_r"),
        "getservent": ("", "_r"),
        "getprotoby": ("name", "name_r", "number", "number_r"),
        "getprotoent": ("", "_r"),
        "getnetby": ("name", "name_r", "addr", "addr_r"),
        "getnetent": ("", "_r"),
        "getrpcby": ("name", "name_r", "number", "number_r"),
        "getrpcent": ("", "_r"),
        "getaliasby": ("name", "name_r"),
        "getaliasent": ("", "_r"),
    }.items()
    for suffix in suffixes
) | {"getaddrinfo"}
NSS_FUNCTIONS = NSS_USER_FUNCTIONS | NSS_NETWORK_FUNCTIONS
NSS_STRING = b"libnss_"  # the dlopen name pattern (libnss_%s.so%s): in every static binary using NSS
# glibc >= 2.34: the files service compiled in (its names; an assertion string in stripped binaries),
# or the dlopen that moved into libc in 2.34 (for glibc builds without assertions).
NSS_BUILTIN_STRINGS = (b"_nss_files_", b"invalid mode for dlopen()")
GLIBC_STRING = b"GLIBC_TUNABLES"
# Sections outside of PT_LOAD that languages read, whole: compilers' version strings (.comment: "GCC:
# (Debian 14.2.0-19) 14.2.0", "rustc version 1.85.1 ...") and cargo auditable's zlib-compressed JSON list
# of the crates linked in (.dep-v0). Larger ones are skipped (real ones: well under 64 KiB).
NAMED_SECTIONS = frozenset({".comment", ".dep-v0"})
_MAX_NAMED_SECTION = 1 << 20
ICONV_FUNCTION = "iconv_open"

# ---------------------------------------------------------------------------------------------------
# What C (and Rust, ...) binaries refer to, by strings; Go binaries, by function names.

CA_STRINGS = (
    b"/etc/ssl/certs",
    b"/etc/ssl/cert.pem",
    b"/etc/pki/tls/cert",
    b"/etc/pki/ca-trust",
    b"ca-certificates.crt",
    b"ca-bundle.crt",
    b"/usr/lib/ssl/cert",  # Debian's OpenSSL OPENSSLDIR
    b"/usr/local/ssl/cert",  # OpenSSL's default OPENSSLDIR
)
ZONEINFO_STRINGS = (b"/usr/share/zoneinfo",)
USER_DATABASE_STRINGS = (b"/etc/passwd", b"/etc/group")
# "/tmp" as a whole C string or as the end of a longer one: linkers merge a string into the tail of a
# longer one that ends with it (GNU ld -O2 stores "/tmp" as the end of "/var/tmp" on amd64, arm, 386,
# s390x), so the program's "/tmp" may exist only inside "/var/tmp". The NUL after it keeps "/tmpfoo" out.
TMP_STRING = b"/tmp"
# A path under /tmp: "/tmp/" at the start of a string, i.e. not right after a path character ("/var/tmp/x",
# "/home/u/tmp/x" are no /tmp paths). String literals can follow other constants with no NUL between
# ("\0\0@@/tmp/x" after the float 3.0), so what comes before may be any other byte.
TMP_PATH = re.compile(rb"(?<![A-Za-z0-9._~-])/tmp/")
# Literals of libraries that end in "/tmp" without being a use of it: glibc < 2.41's default
# LD_PROFILE_OUTPUT (`&"/var/tmp\0/var/profile"[secure ? 9 : 0]` in dl-support.c), in every static binary.
LIBRARY_TMP_LITERALS = (b"/var/tmp\0/var/profile\0",)
TMP_FUNCTIONS = (
    "mkstemp",
    "mkstemp64",
    "mkostemp",
    "mkostemp64",
    "mkstemps",
    "mkstemps64",
    "mkostemps",
    "mkostemps64",
    "mkdtemp",
    "tmpfile",
    "tmpfile64",
    "tmpnam",
    "tmpnam_r",
    "tempnam",
)

GO_CA_FUNCTIONS = ("crypto/x509.SystemCertPool", "crypto/x509.initSystemRoots", "crypto/x509.loadSystemRoots")
GO_FALLBACK_ROOTS = "crypto/x509.SetFallbackRoots"  # x509roots/fallback: used when the image has none
GO_ZONE_FUNCTIONS = ("time.LoadLocation",)
GO_EMBEDDED_ZONES = "time/tzdata.loadFromEmbeddedTZData"  # import _ "time/tzdata" or -tags timetzdata
GO_USER_FUNCTIONS = (
    "os/user.Current",
    "os/user.Lookup",
    "os/user.LookupId",
    "os/user.LookupGroup",
    "os/user.LookupGroupId",
    "os/user.lookupUser",
    "os/user.lookupUserId",
    "os/user.lookupGroup",
    "os/user.lookupGroupId",
    "os/user.listGroups",
    "os/user.readColonFile",  # the pure-Go reader of /etc/passwd and /etc/group
)
GO_TMP_FUNCTIONS = ("os.CreateTemp", "os.MkdirTemp")  # io/ioutil.TempFile and TempDir call these


@dataclass(frozen=True, kw_only=True)
class Note:
    """One ELF note: owner ("GNU", "Go"), type and descriptor bytes."""

    owner: bytes
    type: int
    desc: bytes


@dataclass(frozen=True, kw_only=True)
class FoundString:
    """A string found by its end: the text that holds it (shortened), and whether that is the string
    itself rather than a longer one ending with it ("/var/tmp" for "/tmp")."""

    text: str
    whole: bool


@dataclass(frozen=True, kw_only=True)
class Contents:
    """The parts of a file that say what it does at run time."""

    loaded: bytes  # every PT_LOAD segment's file bytes, NUL-separated
    functions: frozenset[str] | None  # defined function symbols of .symtab; None: no symbol table
    notes: tuple[Note, ...]
    debug_sections: tuple[tuple[str, int], ...]  # (name, size) of .debug_* and .zdebug_* sections
    # The NAMED_SECTIONS the file has (name, bytes), in file order: what toolchains record outside of
    # the loaded segments (compiler versions in .comment, cargo auditable's dependency list).
    sections: tuple[tuple[str, bytes], ...] = ()

    def section(self, name: str) -> bytes | None:
        """The bytes of the first NAMED_SECTIONS section called `name`, None when the file has none."""
        return next((data for found, data in self.sections if found == name), None)

    def contains(self, needle: bytes) -> bool:
        return needle in self.loaded

    def first_string(self, needles: Iterable[bytes]) -> str | None:
        """The whole C string around the first needle found in loaded bytes, printable and shortened."""
        for needle in needles:
            index = self.loaded.find(needle)
            if index >= 0:
                return _c_string_around(self.loaded, index, needle)
        return None

    def first_ending(self, strings: Iterable[bytes], ignore: Iterable[bytes] = ()) -> FoundString | None:
        """The first of `strings` found as a whole C string, else as the end of a longer one (tail merging,
        see TMP_STRING), never as the start of a longer one; occurrences inside one of the `ignore`
        literals (a library's, known not to be a use) are skipped."""
        ignored = tuple(ignore)
        for needle in strings:
            terminated = needle + b"\0"
            tail: FoundString | None = None
            index = self.loaded.find(terminated)
            while index >= 0:
                if not any(_inside(self.loaded, index, terminated, literal) for literal in ignored):
                    text = _printable_string_ending(self.loaded, index)
                    if text == needle.decode("ascii"):
                        return FoundString(text=text, whole=True)
                    tail = tail or FoundString(text=text, whole=False)
                index = self.loaded.find(terminated, index + 1)
            if tail is not None:
                return tail
        return None

    def first_match(self, pattern: re.Pattern[bytes]) -> str | None:
        """The printable text from the first match of `pattern` in loaded bytes on (up to a NUL or an
        unprintable byte: musl keeps "/tmp/tmpnam_XXXX" unterminated), shortened."""
        found = pattern.search(self.loaded)
        if found is None:
            return None
        printable = _PRINTABLE.match(self.loaded, found.start())
        text = printable[0].decode("ascii") if printable else found[0].decode("ascii", "replace")
        return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."

    def first_go_function(self, names: Iterable[str]) -> str | None:
        """The first of `names` that is a Go function name in the binary (NUL-delimited in pclntab)."""
        return next((name for name in names if b"\0" + name.encode() + b"\0" in self.loaded), None)

    def called(self, names: Iterable[str]) -> tuple[str, ...]:
        """Which of `names` are defined functions (sorted); () when stripped."""
        if self.functions is None:
            return ()
        return tuple(sorted(self.functions.intersection(names)))

    @property
    def glibc(self) -> bool:
        """Linked against glibc: its tunables string or the ABI-tag note of glibc's crt1.o."""
        return self.contains(GLIBC_STRING) or any(
            note.owner == b"GNU" and note.type == NT_GNU_ABI_TAG for note in self.notes
        )

    @property
    def build_ids(self) -> tuple[tuple[str, str], ...]:
        """("GNU", hex) and ("Go", text) build IDs, in note order."""
        ids: list[tuple[str, str]] = []
        for note in self.notes:
            if note.owner == b"GNU" and note.type == NT_GNU_BUILD_ID and note.desc:
                ids.append(("GNU", note.desc.hex()))
            elif note.owner == b"Go" and note.type == NT_GO_BUILD_ID and note.desc:
                ids.append(("Go", note.desc.split(b"\0", 1)[0].decode("ascii", "backslashreplace")))
        return tuple(ids)


def scan_contents(elf: Any, read: Reader, notes: tuple[Note, ...]) -> Contents:
    """The Contents of an ELFFile whose bytes `read` gives (headers and ranges already checked) and whose
    notes (read_notes) are `notes`: its PT_LOAD segments, symbol and string tables are read, each once."""
    return Contents(
        loaded=b"\0".join(
            read(segment["p_offset"], segment["p_filesz"]) for segment in elf.iter_segments("PT_LOAD")
        ),
        functions=_defined_functions(elf, read),
        notes=notes,
        debug_sections=tuple(
            (section.name, section["sh_size"])
            for section in elf.iter_sections()
            if section.name.startswith((".debug_", ".zdebug_"))
        ),
        sections=tuple(
            (section.name, read(section["sh_offset"], section["sh_size"]))
            for section in elf.iter_sections()
            if section.name in NAMED_SECTIONS
            and section["sh_type"] != "SHT_NOBITS"
            and section["sh_size"] <= _MAX_NAMED_SECTION
        ),
    )


# ---------------------------------------------------------------------------------------------------
# Readers


def read_notes(elf: Any, read: Reader) -> tuple[Note, ...]:
    """The notes of every PT_NOTE segment (pyelftools' reader raises on malformed ones; this stops)."""
    return tuple(note for segment in elf.iter_segments("PT_NOTE") for note in _notes(elf, segment, read))


def _defined_functions(elf: Any, read: Reader) -> frozenset[str] | None:
    """Names of the FUNC and IFUNC symbols defined in SHT_SYMTAB sections; None when there is none."""
    tables = [section for section in elf.iter_sections() if section["sh_type"] == "SHT_SYMTAB"]
    if not tables:
        return None
    fmt, name_field, info_field, shndx_field = _SYMBOL_LAYOUT[elf.elfclass]
    layout = struct.Struct(("<" if elf.little_endian else ">") + fmt)
    names: set[str] = set()
    for table in tables:
        strings = _linked_strings(elf, read, table["sh_link"])
        raw = read(table["sh_offset"], table["sh_size"])
        for fields in layout.iter_unpack(raw[: len(raw) - len(raw) % layout.size]):
            if fields[info_field] & 0xF in (STT_FUNC, STT_GNU_IFUNC) and fields[shndx_field] != SHN_UNDEF:
                name = _string_at(strings, fields[name_field])
                if name:
                    names.add(name)
    return frozenset(names)


def _linked_strings(elf: Any, read: Reader, index: int) -> bytes:
    """The string table a symbol table links to; empty when the link is out of range or NOBITS."""
    if not 0 < index < elf.num_sections():
        return b""
    section = elf.get_section(index)
    if section["sh_type"] == "SHT_NOBITS":
        return b""
    return read(section["sh_offset"], section["sh_size"])


def _string_at(strings: bytes, offset: int) -> str:
    end = strings.find(b"\0", offset)
    return strings[offset:end].decode("utf-8", "replace") if 0 <= offset < end else ""


def _notes(elf: Any, segment: Any, read: Reader) -> Iterator[Note]:
    """The notes of one PT_NOTE segment; name and descriptor are padded to the segment's alignment
    (4, or 8 for GNU property notes), as binutils reads them. Stops at the first one that does not fit."""
    raw = read(segment["p_offset"], min(segment["p_filesz"], _MAX_NOTE_BYTES))
    align = 8 if segment["p_align"] == 8 else 4
    word = struct.Struct(("<" if elf.little_endian else ">") + "III")
    pos, count = 0, 0
    while pos + _NOTE_HEADER <= len(raw) and count < _MAX_NOTES:
        count += 1
        namesz, descsz, note_type = word.unpack_from(raw, pos)
        desc = pos + _round_up(_NOTE_HEADER + namesz, align)
        if desc + descsz > len(raw):
            return
        owner = raw[pos + _NOTE_HEADER : pos + _NOTE_HEADER + namesz].split(b"\0", 1)[0]
        yield Note(owner=owner, type=note_type, desc=raw[desc : desc + descsz])
        pos = _round_up(desc + descsz, align)


def _c_string_around(data: bytes, index: int, needle: bytes) -> str:
    """The NUL-delimited string holding data[index:]; the needle itself when that is not clean text."""
    start = data.rfind(b"\0", 0, index + (1 if needle.startswith(b"\0") else 0)) + 1
    end = data.find(b"\0", index + len(needle.rstrip(b"\0")))
    raw = data[start : end if end >= 0 else len(data)]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if not text.isprintable() or not text:
        text = needle.strip(b"\0").decode("ascii")
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."


def _inside(data: bytes, index: int, needle: bytes, literal: bytes) -> bool:
    """Whether the needle found at data[index:] is part of an occurrence of `literal` there."""
    offset = literal.find(needle)
    while offset >= 0:
        if index >= offset and data[index - offset : index - offset + len(literal)] == literal:
            return True
        offset = literal.find(needle, offset + 1)
    return False


def _printable_string_ending(data: bytes, index: int) -> str:
    """The printable text before data[index:] and that up to its NUL: the string that ends with it,
    from its first "/" when it has one (a literal can follow other constants: "@@/var/tmp" after the
    float 3.0), shortened from the left."""
    end = data.find(b"\0", index)
    start = index
    while start > 0 and 0x20 <= data[start - 1] < 0x7F and index - start < _MAX_QUOTED:
        start -= 1
    text = data[start:end].decode("ascii")
    text = text[text.find("/") :] if "/" in text[: index - start] else text
    return text if len(text) <= _MAX_QUOTED else "..." + text[-(_MAX_QUOTED - 3) :]


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align
