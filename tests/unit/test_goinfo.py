"""Go build info: real binaries from the host's Go (compared with `go version -m`), crafted blobs in both
formats (inline since Go 1.18, pointers before), and garbage (hypothesis)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.elf.goinfo import (
    BUILDINFO_MAGIC,
    GoBuildInfo,
    Module,
    format_like_go_version_m,
    goarm_version,
    read_go_build_info,
)

GO = shutil.which("go")
MAIN_GO = (
    'package main\n\nimport (\n\t"os"\n\n\t"example.com/dep"\n)\n\n'
    'var x string\n\nfunc main() { os.Stdout.WriteString(dep.Hello() + x + "\\n") }\n'
)
GO_MOD = (
    "module example.com/hello\n\ngo 1.19\n\nrequire example.com/dep v0.0.0\n\n"
    "replace example.com/dep => ./dep\n"
)
DEP_GO = 'package dep\n\nfunc Hello() string { return "hello" }\n'
DEP_GO_MOD = "module example.com/dep\n\ngo 1.19\n"
TRICKY_LDFLAGS = "-X 'main.x=say \"hi\"\ttab é'"  # quotes, a tab and UTF-8 in a build setting

MAIN = Module(path="example.com/hello", version="(devel)", sum=None)
DEP = Module(
    path="example.com/dep",
    version="v0.0.0",
    sum=None,
    replace=Module(path="./dep", version="(devel)", sum=None),
)
# cmd/go/internal/modload's infoStart and infoEnd
SENTINEL_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
SENTINEL_END = bytes.fromhex("f932433186182072008242104116d8f2")

# name -> (environment, extra `go build` flags, expected GOARCH, GOARM, -trimpath)
VARIANTS: dict[str, tuple[dict[str, str], list[str], str, str | None, bool]] = {
    "amd64": ({"GOARCH": "amd64"}, [], "amd64", None, False),
    "arm64": ({"GOARCH": "arm64"}, [], "arm64", None, False),
    "arm6": ({"GOARCH": "arm", "GOARM": "6"}, [], "arm", "6", False),
    "arm7": ({"GOARCH": "arm", "GOARM": "7"}, [], "arm", "7", False),
    "trimpath": ({"GOARCH": "amd64"}, ["-trimpath"], "amd64", None, True),
    "stripped": ({"GOARCH": "amd64"}, ["-ldflags=-s -w"], "amd64", None, False),
    "tricky": ({"GOARCH": "amd64"}, [f"-ldflags={TRICKY_LDFLAGS}"], "amd64", None, False),
}


# ---------------------------------------------------------------------------------------------------
# Real binaries from the host's Go


def go_env(directory: Path) -> dict[str, str]:
    """An isolated, offline Go: module mode, no cgo, caches in `directory`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GO", "CGO_"))}
    return {
        **base,
        "HOME": str(directory),
        "GOCACHE": str(directory / "cache"),
        "GOPATH": str(directory / "gopath"),
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GO111MODULE": "on",
    }


def run(command: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def go_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict[str, str]]:
    """The VARIANTS built from a module with a replaced local dependency, and the Go environment."""
    if GO is None:
        pytest.skip("go is not installed (apt-get install -y golang-go)")
    directory = tmp_path_factory.mktemp("goinfo")
    source = directory / "src"
    (source / "dep").mkdir(parents=True)
    for relative, text in {
        "main.go": MAIN_GO,
        "go.mod": GO_MOD,
        "dep/dep.go": DEP_GO,
        "dep/go.mod": DEP_GO_MOD,
    }.items():
        (source / relative).write_text(text)
    env = go_env(directory)
    for name, (variant_env, flags, *_) in VARIANTS.items():
        run([GO, "build", *flags, "-o", str(directory / name), "."], source, {**env, **variant_env})
    return {name: directory / name for name in VARIANTS}, env


@pytest.fixture(scope="session")
def go_binaries(go_build: tuple[dict[str, Path], dict[str, str]]) -> dict[str, Path]:
    return go_build[0]


@pytest.fixture(scope="session")
def go_version(go_build: tuple[dict[str, Path], dict[str, str]]) -> str:
    assert GO is not None
    return run([GO, "env", "GOVERSION"], Path.cwd(), go_build[1]).strip()


def read(path: Path) -> GoBuildInfo:
    info = read_go_build_info(path.read_bytes())
    assert info is not None, f"no Go build info found in {path}"
    return info


@pytest.mark.parametrize("name", list(VARIANTS))
def test_real_binary_build_info(go_binaries: dict[str, Path], go_version: str, name: str) -> None:
    _, _, goarch, goarm, trimpath = VARIANTS[name]
    info = read(go_binaries[name])
    assert info.go_version == go_version
    assert (info.path, info.main, info.deps) == ("example.com/hello", MAIN, (DEP,))
    assert (info.goarch, info.goos, info.goarm, info.cgo_enabled, info.trimpath) == (
        goarch,
        "linux",
        goarm,
        False,
        trimpath,
    )
    assert info.arm_version == (int(goarm) if goarm else None)
    assert info.settings["-compiler"] == "gc"


def test_real_binary_settings_are_unquoted(go_binaries: dict[str, Path]) -> None:
    assert read(go_binaries["stripped"]).settings["-ldflags"] == "-s -w"
    assert read(go_binaries["tricky"]).settings["-ldflags"] == TRICKY_LDFLAGS
    assert "-ldflags" not in read(go_binaries["trimpath"]).settings  # -trimpath omits it


@pytest.mark.parametrize("name", list(VARIANTS))
def test_format_matches_go_version_m(go_build: tuple[dict[str, Path], dict[str, str]], name: str) -> None:
    binaries, env = go_build
    assert GO is not None
    path = binaries[name]
    expected = run([GO, "version", "-m", str(path)], path.parent, env)
    assert format_like_go_version_m(read(path), str(path)) == expected


def without_section_headers(data: bytes) -> bytes:
    """e_shoff, e_shnum and e_shstrndx zeroed (a 64-bit little-endian ELF file)."""
    out = bytearray(data)
    struct.pack_into("<Q", out, 40, 0)
    struct.pack_into("<HH", out, 60, 0, 0)
    return bytes(out)


def without_program_headers(data: bytes) -> bytes:
    out = bytearray(without_section_headers(data))
    struct.pack_into("<H", out, 56, 0)  # e_phnum
    return bytes(out)


@pytest.mark.parametrize(
    "damage",
    [
        without_section_headers,  # found in the first writable, non-executable PT_LOAD
        without_program_headers,  # found by scanning the whole file
        lambda data: b"\0" * 16 + data[16:],  # no longer ELF at all: the whole-file scan still works
    ],
    ids=["no-sections", "no-headers", "not-elf"],
)
def test_build_info_is_found_without_headers(
    go_binaries: dict[str, Path], damage: Callable[[bytes], bytes]
) -> None:
    original = read(go_binaries["amd64"])
    assert read_go_build_info(damage(go_binaries["amd64"].read_bytes())) == original


def test_non_go_binaries_have_no_build_info() -> None:
    assert read_go_build_info(Path("/bin/sh").resolve().read_bytes()) is None
    assert read_go_build_info(b"") is None
    assert read_go_build_info(b"\x7fELF") is None


def test_truncated_build_info_never_raises(go_binaries: dict[str, Path]) -> None:
    data = go_binaries["amd64"].read_bytes()
    start = data.index(BUILDINFO_MAGIC)
    for end in range(start, start + 400):
        info = read_go_build_info(data[:end])
        assert info is None or isinstance(info, GoBuildInfo)


# ---------------------------------------------------------------------------------------------------
# Crafted blobs: the inline format (Go >= 1.18)


def uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def inline_blob(version: str, modinfo: str, *, framed: bool = True) -> bytes:
    """A `.go.buildinfo` blob as Go >= 1.18 writes it, padded so that nothing follows it directly."""
    mod = modinfo.encode()
    if framed:
        mod = SENTINEL_START + mod + SENTINEL_END
    header = BUILDINFO_MAGIC + bytes([8, 2]) + b"\0" * 16
    return header + uvarint(len(version)) + version.encode() + uvarint(len(mod)) + mod + b"\0" * 16


MODINFO = (
    "path\texample.com/cmd/tool\n"
    "mod\texample.com\tv1.2.3\th1:main=\n"
    "dep\tgolang.org/x/sys\tv0.1.0\th1:sys=\n"
    "dep\texample.com/old\tv1.0.0\n"
    "=>\texample.com/new\tv1.1.0\th1:new=\n"
    "build\t-compiler=gc\n"
    'build\t-ldflags="-s -w -X \\"main.v=1\\""\n'
    'build\t"odd key"=`raw value`\n'
    'build\tescapes="\\x01\\u00e9\\t\\101"\n'
    "build\tCGO_ENABLED=1\n"
    "build\tGOARCH=arm\n"
    "build\tGOOS=linux\n"
    "build\tGOARM=6,softfloat\n"
    "build\tempty=\n"
)


def test_inline_module_info_is_parsed() -> None:
    info = read_go_build_info(b"\x7fnot an ELF header".ljust(32, b"\0") + inline_blob("go1.22.1", MODINFO))
    assert info is not None
    assert info.go_version == "go1.22.1"
    assert info.path == "example.com/cmd/tool"
    assert info.main == Module(path="example.com", version="v1.2.3", sum="h1:main=")
    assert info.deps == (
        Module(path="golang.org/x/sys", version="v0.1.0", sum="h1:sys="),
        Module(
            path="example.com/old",
            version="v1.0.0",
            sum=None,
            replace=Module(path="example.com/new", version="v1.1.0", sum="h1:new="),
        ),
    )
    assert info.settings == {
        "-compiler": "gc",
        "-ldflags": '-s -w -X "main.v=1"',
        "odd key": "raw value",
        "escapes": "\x01é\tA",
        "CGO_ENABLED": "1",
        "GOARCH": "arm",
        "GOOS": "linux",
        "GOARM": "6,softfloat",
        "empty": "",
    }
    assert (info.goarm, info.arm_version, info.cgo_enabled, info.trimpath) == ("6,softfloat", 6, True, False)


def test_inline_format_like_go_version_m() -> None:
    info = read_go_build_info(b"\0" * 32 + inline_blob("go1.22.1", MODINFO))
    assert info is not None
    # Go quotes what needs it (strconv.Quote, so `raw value` comes back double-quoted) and, like Go 1.19,
    # prints an empty line after a replacement.
    assert format_like_go_version_m(info, "tool") == (
        "tool: go1.22.1\n"
        "\tpath\texample.com/cmd/tool\n"
        "\tmod\texample.com\tv1.2.3\th1:main=\n"
        "\tdep\tgolang.org/x/sys\tv0.1.0\th1:sys=\n"
        "\tdep\texample.com/old\tv1.0.0\n"
        "\t=>\texample.com/new\tv1.1.0\th1:new=\n"
        "\t\n"
        "\tbuild\t-compiler=gc\n"
        '\tbuild\t-ldflags="-s -w -X \\"main.v=1\\""\n'
        '\tbuild\t"odd key"="raw value"\n'
        '\tbuild\tescapes="\\x01é\\tA"\n'
        "\tbuild\tCGO_ENABLED=1\n"
        "\tbuild\tGOARCH=arm\n"
        "\tbuild\tGOOS=linux\n"
        "\tbuild\tGOARM=6,softfloat\n"
        "\tbuild\tempty=\n"
    )


def test_malformed_lines_are_skipped() -> None:
    modinfo = (
        "mod\texample.com\n"  # too few columns
        "=>\texample.com/x\tv1\n"  # replacement needs 3 columns
        "build\tkey with space=x\n"  # unquoted key that needs quoting
        "build\tk=unquoted value\n"  # unquoted value that needs quoting
        'build\tk2="bad \\q escape"\n'
        "build\t=novalue\n"
        "unknown\tline\n"
        "build\tGOOS=linux\n"
    )
    info = read_go_build_info(b"\0" * 16 + inline_blob("go1.21.0", modinfo))
    assert info is not None
    assert (info.path, info.main, info.deps, info.settings) == (None, None, (), {"GOOS": "linux"})


def test_version_only_and_unframed_module_info() -> None:
    info = read_go_build_info(inline_blob("go1.20", "path\tx\n", framed=False))
    assert info is not None
    assert (info.go_version, info.path, info.settings) == ("go1.20", None, {})
    assert format_like_go_version_m(info, "f") == "f: go1.20\n"


def test_magic_must_be_16_aligned_and_version_non_empty() -> None:
    assert read_go_build_info(b"\0" * 8 + inline_blob("go1.20", MODINFO)) is None
    assert read_go_build_info(inline_blob("", MODINFO)) is None


@pytest.mark.parametrize(
    ("goarm", "version"), [("7", 7), ("6,softfloat", 6), ("5", 5), ("", None), (None, None)]
)
def test_goarm_version(goarm: str | None, version: int | None) -> None:
    assert goarm_version(goarm) == version


# ---------------------------------------------------------------------------------------------------
# Crafted ELF files: the pointer format of Go before 1.18


def pointer_format_elf(*, wide: bool, big_endian: bool, version: str, modinfo: str) -> bytes:
    """An ELF file whose one writable PT_LOAD holds a pre-1.18 build info header pointing at two Go
    string headers (pointer, length), which point at the strings: all by virtual address."""
    order = ">" if big_endian else "<"
    word = order + ("Q" if wide else "I")
    size = struct.calcsize(word)
    offset, vaddr = 0x100, 0x40_0100  # of the segment, in the file and in memory
    version_bytes, mod_bytes = version.encode(), SENTINEL_START + modinfo.encode() + SENTINEL_END
    string_headers = vaddr + 32
    strings = string_headers + 4 * size
    segment = (
        BUILDINFO_MAGIC
        + bytes([size, int(big_endian)])
        + struct.pack(word, string_headers)
        + struct.pack(word, string_headers + 2 * size)
    ).ljust(32, b"\0")
    for value in (strings, len(version_bytes), strings + len(version_bytes), len(mod_bytes)):
        segment += struct.pack(word, value)
    segment += version_bytes + mod_bytes
    ident = b"\x7fELF" + bytes([2 if wide else 1, 2 if big_endian else 1, 1]) + b"\0" * 9
    n = len(segment)
    if wide:  # e_type .. e_shstrndx, then p_type, p_flags (RW), p_offset, p_vaddr, p_paddr, sizes, align
        ehdr = struct.pack(order + "HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 1, 64, 0, 0)
        phdr = struct.pack(order + "IIQQQQQQ", 1, 6, offset, vaddr, vaddr, n, n, 16)
    else:
        ehdr = struct.pack(order + "HHIIIIIHHHHHH", 2, 40, 1, 0, 52, 0, 0, 52, 32, 1, 40, 0, 0)
        phdr = struct.pack(order + "IIIIIIII", 1, offset, vaddr, vaddr, n, n, 6, 16)
    return (ident + ehdr + phdr).ljust(offset, b"\0") + segment


@pytest.mark.parametrize(("wide", "big_endian"), [(True, False), (False, True), (False, False)])
def test_pointer_format(wide: bool, big_endian: bool) -> None:
    data = pointer_format_elf(
        wide=wide,
        big_endian=big_endian,
        version="go1.16.15",
        modinfo="path\texample.com/old\nmod\texample.com/old\t(devel)\t\n",
    )
    info = read_go_build_info(data)
    assert info is not None
    assert (info.go_version, info.path, info.main, info.settings) == (
        "go1.16.15",
        "example.com/old",
        Module(path="example.com/old", version="(devel)", sum=None),
        {},
    )
    assert format_like_go_version_m(info, "old") == (
        "old: go1.16.15\n\tpath\texample.com/old\n\tmod\texample.com/old\t(devel)\t\n"
    )


def test_pointer_format_with_dangling_pointers_is_not_go() -> None:
    data = bytearray(pointer_format_elf(wide=True, big_endian=False, version="go1.16", modinfo=""))
    struct.pack_into("<Q", data, 0x100 + 16, 0xDEAD_BEEF)  # the version's string header: nowhere
    assert read_go_build_info(bytes(data)) is None


# ---------------------------------------------------------------------------------------------------
# Property: any bytes give a GoBuildInfo or None, never an exception

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(
    prefix=st.sampled_from(
        [b"", b"\x7fELF\x01\x01\x01", b"\x7fELF\x02\x02\x01", b"\0" * 16 + BUILDINFO_MAGIC]
    ),
    rest=st.binary(max_size=400),
    blob=st.sampled_from([b"", inline_blob("go1.22", MODINFO)]),
    cut=st.integers(0, 300),
)
def test_garbage_never_raises(prefix: bytes, rest: bytes, blob: bytes, cut: int) -> None:
    data = prefix + rest
    data += b"\0" * (-len(data) % 16) + blob  # a blob at an aligned offset, then possibly cut short
    info = read_go_build_info(data[: max(0, len(data) - cut)])
    assert info is None or isinstance(info, GoBuildInfo)


@FUZZ
@given(st.data())
def test_mutated_build_info_never_raises(go_binaries: dict[str, Path], data: st.DataObject) -> None:
    original = go_binaries["arm6"].read_bytes()  # a 32-bit binary
    start = original.index(BUILDINFO_MAGIC)
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        region = data.draw(st.sampled_from([(0, 0x100), (start, start + 0x200)]), label="region")
        mutated[data.draw(st.integers(*region), label="offset")] = data.draw(st.integers(0, 255))
    info = read_go_build_info(bytes(mutated))
    assert info is None or isinstance(info, GoBuildInfo)
