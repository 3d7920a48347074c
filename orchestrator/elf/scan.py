"""What an ELF file's contents say about its needs at run time: strings, symbols, notes, debug sections.

The headers tell whether a binary can start in an empty image; this module reads what it will look for
once running. Everything is read through a `Reader` over a file whose tables `elf.load` has already
bound-checked (only the parts named below are read, never debug information), and nothing here raises
on odd input: a symbol table or note that does not parse is skipped. Only the reader may raise (the
loader's stops a crafted file that would make it read far more than its size).

Strings are searched only in PT_LOAD segments (what the program can use at run time), never in debug
information or symbol tables: `-g` records the build directory (e.g. under /tmp), `.strtab` records names.

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
TMP_STRINGS = (b"\0/tmp\0", b"\0/tmp/")  # "/tmp" or a path under it, as whole C strings
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


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align
