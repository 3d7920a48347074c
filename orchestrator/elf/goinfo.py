"""The build information Go embeds in every binary it links: Go version, modules and build settings.

`read_go_build_info` is a pure-Python reading of Go's `debug/buildinfo` for ELF files (and, in the inline
format, any file): the 32-byte header starting with BUILDINFO_MAGIC sits at a 16-aligned offset of the
`.go.buildinfo` section, or near the start of the first writable, non-executable PT_LOAD segment when
there are no section headers. Go >= 1.18 writes the two strings inline after the header (flag bit 1);
older Go writes pointers to Go string headers, read here through the PT_LOAD mapping.
`format_like_go_version_m` prints the result as `go version -m FILE` does (Go 1.19's format).
"""

from __future__ import annotations

import dataclasses
import re
import struct
from dataclasses import dataclass

BUILDINFO_MAGIC = b"\xff Go buildinf:"
_HEADER_SIZE = 32
_ALIGN = 16
_FLAG_INLINE = 0x2
_SENTINEL_SIZE = 16  # module info is framed by cmd/go's 16-byte infoStart/infoEnd sentinels
_MAX_CANDIDATES = 64  # aligned magic matches tried per region: bounded work on hostile input
_MAX_UVARINT_BYTES = 10
_PT_LOAD, _PF_X, _PF_W = 1, 0x1, 0x2
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_QUOTE_ESCAPES = {"\\": "\\\\", '"': '\\"', **{value: "\\" + key for key, value in _SIMPLE_ESCAPES.items()}}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# How bad bytes make the parsing below fail; all of them mean "no readable build info".
_DECODE_ERRORS = (struct.error, IndexError, ValueError, OverflowError)


@dataclass(frozen=True, kw_only=True)
class Module:
    """A module as the build info lists it; `sum` is None when not recorded (main module, replaced)."""

    path: str
    version: str
    sum: str | None
    replace: Module | None = None


@dataclass(frozen=True, kw_only=True)
class GoBuildInfo:
    """What `go version -m` shows: toolchain, main package, modules and build settings."""

    go_version: str  # "go1.19.8"
    path: str | None  # main package path
    main: Module | None
    deps: tuple[Module, ...]
    settings: dict[str, str]  # "-compiler": "gc", "GOARCH": "arm", "GOARM": "7", "-trimpath": "true", ...

    @property
    def goarch(self) -> str | None:
        return self.settings.get("GOARCH")

    @property
    def goos(self) -> str | None:
        return self.settings.get("GOOS")

    @property
    def goarm(self) -> str | None:
        """The GOARM setting as written: "7", or e.g. "6,softfloat" (Go >= 1.22)."""
        return self.settings.get("GOARM")

    @property
    def arm_version(self) -> int | None:
        """The ARM architecture version GOARM asks for; None when not recorded."""
        return goarm_version(self.goarm)

    @property
    def cgo_enabled(self) -> bool | None:
        return {"1": True, "0": False}.get(self.settings.get("CGO_ENABLED", ""))

    @property
    def trimpath(self) -> bool:
        return self.settings.get("-trimpath") == "true"


# ---------------------------------------------------------------------------------------------------
# Public entry points


def read_go_build_info(data: bytes) -> GoBuildInfo | None:
    """The build info of a Go binary, None when `data` is not one (or its build info is unreadable).

    Never raises on bad input. Malformed module-info lines are skipped rather than rejecting the whole
    build info (Go's own parser rejects it).
    """
    try:
        raw = _raw_build_info(data)
    except _DECODE_ERRORS:
        return None
    if raw is None:
        return None
    version, modinfo = raw
    return _parse_module_info(_text(version), _text(modinfo))


def goarm_version(goarm: str | None) -> int | None:
    """The ARM version a GOARM value stands for, its leading number: 7 for "7" and "7,softfloat"."""
    match = re.match(r"[0-9]+", goarm or "")
    return int(match.group()) if match else None


def format_like_go_version_m(info: GoBuildInfo, name: str) -> str:
    """The text `go version -m NAME` prints for this build info, byte for byte as Go 1.19 does."""
    head = f"{name}: {info.go_version}\n"
    body = _build_info_string(info)
    return (head + "\t" + body[:-1].replace("\n", "\n\t") + "\n") if body else head


# ---------------------------------------------------------------------------------------------------
# Finding the raw strings


@dataclass(frozen=True, kw_only=True)
class _Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int


@dataclass(frozen=True, kw_only=True)
class _Elf:
    """The little of an ELF file build info needs: PT_LOADs and where `.go.buildinfo` is."""

    loads: tuple[_Segment, ...]
    buildinfo: tuple[int, int] | None  # file offset and size of the .go.buildinfo section


def _raw_build_info(data: bytes) -> tuple[bytes, bytes] | None:
    """Go version and module info (sentinels stripped) from the first header that decodes."""
    elf = _read_elf(data)
    for start, end in _regions(data, elf):
        for offset in _aligned_matches(data, start, end):
            raw = _decode_header(data, offset, elf)
            if raw is not None:
                return raw
    return None


def _regions(data: bytes, elf: _Elf | None) -> list[tuple[int, int]]:
    """Where to look, best first: the section, the first writable data segment, the whole file."""
    regions: list[tuple[int, int]] = []
    if elf is not None and elf.buildinfo is not None:
        offset, size = elf.buildinfo
        regions.append((offset, offset + size))
    data_segment = next((s for s in elf.loads if s.flags & (_PF_X | _PF_W) == _PF_W), None) if elf else None
    if data_segment is not None:
        regions.append((data_segment.offset, data_segment.offset + data_segment.filesz))
    regions.append((0, len(data)))
    return regions


def _aligned_matches(data: bytes, start: int, end: int) -> list[int]:
    """Offsets of the magic at 16-byte file alignment with a whole header before `end`."""
    matches: list[int] = []
    position = data.find(BUILDINFO_MAGIC, start, end)
    while position >= 0 and len(matches) < _MAX_CANDIDATES:
        if position % _ALIGN == 0 and position + _HEADER_SIZE <= min(end, len(data)):
            matches.append(position)
        position = data.find(BUILDINFO_MAGIC, position + 1, end)
    return matches


def _decode_header(data: bytes, offset: int, elf: _Elf | None) -> tuple[bytes, bytes] | None:
    """The two strings a header leads to: inline after it (Go >= 1.18) or through pointers (older)."""
    pointer_size, flags = data[offset + 14], data[offset + 15]
    if flags & _FLAG_INLINE:
        version, after = _uvarint_string(data, offset + _HEADER_SIZE)
        modinfo = _uvarint_string(data, after)[0] if version else b""
    elif elf is not None:
        fmt = ("<" if flags == 0 else ">") + ("I" if pointer_size == 4 else "Q")
        step = struct.calcsize(fmt)
        version, modinfo = (
            _go_string(data, elf, fmt, struct.unpack_from(fmt, data, offset + 16 + n * step)[0])
            for n in (0, 1)
        )
    else:
        return None
    return (version, _strip_sentinels(modinfo)) if version else None


def _uvarint_string(data: bytes, offset: int) -> tuple[bytes, int]:
    """A uvarint-length-prefixed string and the offset after it; empty when it does not fit (as Go)."""
    length, shift, position = 0, 0, offset
    while position < min(len(data), offset + _MAX_UVARINT_BYTES):
        byte = data[position]
        length |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            end = position + length
            return (data[position:end], end) if end < len(data) else (b"", len(data))
    return b"", len(data)


def _go_string(data: bytes, elf: _Elf, fmt: str, address: int) -> bytes:
    """A Go string (pointer, length) whose header is at `address`; empty when not in the file."""
    size = struct.calcsize(fmt)
    header = _read_address(data, elf, address, 2 * size)
    if header is None:
        return b""
    pointer, length = struct.unpack_from(fmt, header)[0], struct.unpack_from(fmt, header, size)[0]
    return _read_address(data, elf, pointer, length) or b""


def _read_address(data: bytes, elf: _Elf, address: int, size: int) -> bytes | None:
    """`size` bytes at a virtual address, from the PT_LOAD that maps it; None unless all are there."""
    for segment in elf.loads:
        if segment.vaddr <= address < segment.vaddr + segment.filesz:
            if address + size > segment.vaddr + segment.filesz:
                return None
            start = segment.offset + address - segment.vaddr
            chunk = data[start : start + size]
            return chunk if len(chunk) == size else None
    return None


def _strip_sentinels(modinfo: bytes) -> bytes:
    """Module info without its framing; empty when the framing is missing (as Go)."""
    if len(modinfo) >= 2 * _SENTINEL_SIZE + 1 and modinfo[-_SENTINEL_SIZE - 1] == ord("\n"):
        return modinfo[_SENTINEL_SIZE:-_SENTINEL_SIZE]
    return b""


def _read_elf(data: bytes) -> _Elf | None:
    """PT_LOAD segments and the `.go.buildinfo` section of an ELF file; None when not ELF or when its
    headers are damaged (the whole file is still scanned for inline build info then)."""
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    try:
        return _elf_tables(data)
    except _DECODE_ERRORS:
        return None


def _elf_tables(data: bytes) -> _Elf:
    order = "<" if data[5] == 1 else ">"
    wide = data[4] == 2
    phoff = struct.unpack_from(order + ("Q" if wide else "I"), data, 32 if wide else 28)[0]
    phentsize, phnum = struct.unpack_from(order + "HH", data, 54 if wide else 42)
    phdr = order + ("IIQQQQQQ" if wide else "IIIIIIII")
    segments = [_segment(struct.unpack_from(phdr, data, phoff + n * phentsize), wide) for n in range(phnum)]
    return _Elf(
        loads=tuple(s for s in segments if s.type == _PT_LOAD),
        buildinfo=_find_section(data, order, wide),
    )


def _segment(fields: tuple[int, ...], wide: bool) -> _Segment:
    if wide:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, ...
        return _Segment(type=fields[0], flags=fields[1], offset=fields[2], vaddr=fields[3], filesz=fields[5])
    # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
    return _Segment(type=fields[0], flags=fields[6], offset=fields[1], vaddr=fields[2], filesz=fields[4])


def _find_section(data: bytes, order: str, wide: bool) -> tuple[int, int] | None:
    """File offset and size of `.go.buildinfo`, when there are section headers and it is among them."""
    shoff = struct.unpack_from(order + ("Q" if wide else "I"), data, 40 if wide else 32)[0]
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 58 if wide else 46)
    if not shoff or shstrndx >= shnum:
        return None
    shdr = order + ("IIQQQQ" if wide else "IIIIII")  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
    try:
        headers = [struct.unpack_from(shdr, data, shoff + n * shentsize) for n in range(shnum)]
    except struct.error:  # damaged section headers: the segments may still be fine
        return None
    names_offset = headers[shstrndx][4]
    for name, _, _, _, offset, size in headers:
        start = names_offset + name
        if data[start : start + 14] == b".go.buildinfo\0":
            return offset, size
    return None


# ---------------------------------------------------------------------------------------------------
# Module info: runtime/debug.ParseBuildInfo and BuildInfo.String


def _parse_module_info(go_version: str, text: str) -> GoBuildInfo:
    """The `path`, `mod`, `dep`, `=>` and `build` lines (only complete lines, as Go)."""
    path: str | None = None
    main: Module | None = None
    deps: list[Module] = []
    settings: dict[str, str] = {}
    last: str | None = None  # the word of the module line a `=>` line replaces
    for line in text.split("\n")[:-1]:
        word, tab, rest = line.partition("\t")
        if not tab:
            continue
        if word == "path":
            path = rest
        elif word in ("mod", "dep") and (module := _module(rest.split("\t"), (2, 3))) is not None:
            if word == "mod":
                main = module
            else:
                deps.append(module)
            last = word
        elif word == "=>" and (replacement := _module(rest.split("\t"), (3,))) is not None:
            if last == "mod" and main is not None:
                main = dataclasses.replace(main, replace=replacement)
            elif last == "dep":
                deps[-1] = dataclasses.replace(deps[-1], replace=replacement)
            last = None
        elif word == "build" and (setting := _setting(rest)) is not None:
            settings[setting[0]] = setting[1]
    return GoBuildInfo(go_version=go_version, path=path, main=main, deps=tuple(deps), settings=settings)


def _module(columns: list[str], allowed: tuple[int, ...]) -> Module | None:
    if len(columns) not in allowed:
        return None
    checksum = columns[2] if len(columns) == 3 else ""
    return Module(path=columns[0], version=columns[1], sum=checksum or None)


def _setting(text: str) -> tuple[str, str] | None:
    """KEY=VALUE of a build line, either side possibly a quoted Go string; None when malformed."""
    if not text or text[0] == "=":
        return None
    if text[0] in '"`':
        raw_key = _quoted_prefix(text)
        if raw_key is None or text[len(raw_key) : len(raw_key) + 1] != "=":
            return None
        key: str | None = _unquote(raw_key)
        raw_value = text[len(raw_key) + 1 :]
    else:
        key, equals, raw_value = text.partition("=")
        if not equals or _needs_quoting(key, key=True):
            return None
    if raw_value[:1] in ('"', "`"):
        value: str | None = _unquote(raw_value)
    else:
        value = None if _needs_quoting(raw_value, key=False) else raw_value
    return None if key is None or value is None else (key, value)


def _build_info_string(info: GoBuildInfo) -> str:
    """BuildInfo.String() without the `go` line (`go version -m` clears GoVersion first)."""
    lines = [f"path\t{info.path}\n"] if info.path else []
    if info.main is not None and (info.main.path or info.main.version or info.main.sum or info.main.replace):
        lines.append(_format_module("mod", info.main))
    lines.extend(_format_module("dep", dep) for dep in info.deps)
    lines.extend(
        f"build\t{_quote_if_needed(key, key=True)}={_quote_if_needed(value, key=False)}\n"
        for key, value in info.settings.items()
    )
    return "".join(lines)


def _format_module(word: str, module: Module) -> str:
    """One module line; a replaced module gets its `=>` line and, as in Go 1.19, an empty line after."""
    head = f"{word}\t{module.path}\t{module.version}"
    if module.replace is None:
        return f"{head}\t{module.sum or ''}\n"
    return f"{head}\n{_format_module('=>', module.replace)}\n"


# ---------------------------------------------------------------------------------------------------
# Go string quoting (strconv.Quote, strconv.Unquote)


def _needs_quoting(text: str, *, key: bool) -> bool:
    specials = '= \t\r\n"`' if key else ' \t\r\n"`'
    return (key and not text) or any(c in specials for c in text)


def _quote_if_needed(text: str, *, key: bool) -> str:
    return _quote(text) if _needs_quoting(text, key=key) else text


def _quote(text: str) -> str:
    """strconv.Quote: printable characters kept, others escaped as Go does."""
    return '"' + "".join(_quote_char(c) for c in text) + '"'


def _quote_char(c: str) -> str:
    if c in _QUOTE_ESCAPES:
        return _QUOTE_ESCAPES[c]
    if c.isprintable():  # Python's and Go's notions of printable agree: not in categories C* or Z* but space
        return c
    code = ord(c)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _quoted_prefix(text: str) -> str | None:
    """The quoted string `text` starts with (strconv.QuotedPrefix, validated later by _unquote)."""
    if text[0] == "`":
        end = text.find("`", 1)
        return None if end < 0 else text[: end + 1]
    position = 1
    while position < len(text) and text[position] not in '"\n':
        position += 2 if text[position] == "\\" else 1
    return text[: position + 1] if text[position : position + 1] == '"' else None


def _unquote(text: str) -> str | None:
    """strconv.Unquote for "..." and `...` strings; None when not a valid quoted string."""
    if len(text) < 2 or text[0] != text[-1] or text[0] not in '"`':
        return None
    body = text[1:-1]
    if text[0] == "`":
        return None if "`" in body else body.replace("\r", "")
    out, position = bytearray(), 0
    while position < len(body):
        c = body[position]
        if c in '"\n':
            return None
        if c != "\\":
            out += c.encode()
            position += 1
            continue
        escaped = _unescape(body, position + 1)
        if escaped is None:
            return None
        out += escaped[0]
        position = escaped[1]
    return _text(bytes(out))


def _unescape(body: str, position: int) -> tuple[bytes, int] | None:
    """The bytes of the escape sequence after a backslash, and the position after it."""
    kind = body[position : position + 1]
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind].encode(), position + 1
    if kind in ("\\", '"'):
        return kind.encode(), position + 1
    if kind in ("x", "u", "U"):
        width = {"x": 2, "u": 4, "U": 8}[kind]
        digits = body[position + 1 : position + 1 + width]
        if len(digits) != width or not set(digits) <= _HEX_DIGITS:
            return None
        value = int(digits, 16)
        if kind == "x":
            return bytes([value]), position + 1 + width
        if value > 0x10FFFF or 0xD800 <= value < 0xE000:
            return None
        return chr(value).encode(), position + 1 + width
    digits = body[position : position + 3]
    if len(digits) == 3 and set(digits) <= set("01234567") and int(digits, 8) <= 0xFF:
        return bytes([int(digits, 8)]), position + 3
    return None


def _text(raw: bytes) -> str:
    """Go strings are bytes: invalid UTF-8 becomes U+FFFD rather than an error."""
    return raw.decode("utf-8", "replace")
