"""Zig (orchestrator/languages/zig.py) without a zig compiler: its build environment, the toolchain
image's wheels as packages (the ziglang wheel that `_PACKAGES_SCRIPT` reports), what that wheel gives C
and Zig binaries (libc musl, the tool, the std version), and recognition on the marks measured on real
zig 0.17.1 binaries, as the scanner returns them. Real binaries from the zig toolchain image, on every
platform: tests/integration/test_zig.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.elf.scan import Contents
from orchestrator.languages import LANGUAGES, build_env_defaults
from orchestrator.languages.c import C, libc_components
from orchestrator.languages.cxx import CXX
from orchestrator.languages.zig import ZIG
from orchestrator.outputs import sbom
from orchestrator.outputs.components import wheel_key
from orchestrator.platforms import PLATFORMS
from orchestrator.verify.findings import Severity

AMD64 = PLATFORMS["linux/amd64"]
IMAGE_PACKAGES = sbom.parse_packages(
    "\n".join(
        [
            "ii \tca-certificates\t20250419+deb13u1\tall",
            "#distro\tdebian-13",
            "#wheel\tziglang\t0.17.1",
            "#wheel\tziglang\t0.16.0",  # the same name twice: the first wins
            "#wheel\tZig_Lang.extra\t1.0\r",  # named as PyPI normalizes it; a CR is no part of the version
            "#wheel\tnot a name\t1.0",  # not a wheel's name: ignored
            "#wheel\tno-version",
            "#wheel\tx\t1.0\textra",
        ]
    )
)
WHEEL = IMAGE_PACKAGES["pypi/ziglang"]
LINKER = b"Linker: LLD 22.1.8\0"
CLANG = b"clang version 22.1.8\0"


def contents(
    loaded: bytes = b"", functions: frozenset[str] | None = None, comment: bytes | None = LINKER
) -> Contents:
    sections = () if comment is None else ((".comment", comment),)
    return Contents(loaded=loaded, functions=functions, notes=(), debug_sections=(), sections=sections)


def context(scanned: Contents | None) -> Any:
    """What the languages read of an ElfContext here: its contents."""
    return SimpleNamespace(contents=scanned)


def recognised(scanned: Contents) -> str:
    """The language that claims a binary with these contents, no Go build info and no sections."""
    binary: Any = SimpleNamespace(section_range=lambda name: None, segments_of=lambda kind: ())
    facts: Any = SimpleNamespace(go=None)
    return next(
        language.name for language in LANGUAGES if language.recognises(binary, facts, (), contents=scanned)
    )


def test_zig_caches_are_in_the_cache_volume_and_per_target() -> None:
    env = build_env_defaults("/cache", "/cache/targets/hello-zig/linux-arm-v7")
    assert env["ZIG_GLOBAL_CACHE_DIR"] == "/cache/zig"
    assert env["ZIG_LOCAL_CACHE_DIR"] == "/cache/targets/hello-zig/linux-arm-v7/zig-local"


def test_wheels_are_packages_keyed_by_their_normalized_name() -> None:
    assert WHEEL.name == "ziglang" and WHEEL.version == "0.17.1"
    assert WHEEL.purl.to_string() == "pkg:pypi/ziglang@0.17.1"
    assert IMAGE_PACKAGES[wheel_key("Zig_Lang.extra")].version == "1.0"
    assert wheel_key("Zig_Lang.extra") == "pypi/zig-lang-extra"
    assert sorted(key for key in IMAGE_PACKAGES if key.startswith("pypi/")) == [
        "pypi/zig-lang-extra",
        "pypi/ziglang",
    ]
    assert "ziglang" not in IMAGE_PACKAGES  # never mistaken for a Debian package
    assert IMAGE_PACKAGES["ca-certificates"].purl.type == "deb"


@pytest.mark.parametrize(
    ("scanned", "language"),
    [
        # stripped, -fstrip: std's strings, NUL-delimited in .rodata
        (contents(b"\0\0ZIG_PROGRESS=\0\0"), "zig"),
        (contents(b"..\0aborting due to recursive panic\n\0"), "zig"),
        # unstripped: std's start code, without libc and with it (-lc: musl's start calls start.main)
        (contents(functions=frozenset({"start._start", "start.posixCallMainAndExit"})), "zig"),
        (contents(functions=frozenset({"start.main", "__libc_start_main"}), comment=CLANG + LINKER), "zig"),
        # `zig cc`: C, musl's strings and clang's .comment only
        (contents(b"\0No error information\0", comment=CLANG + LINKER), "c"),
        (contents(b"\0MY_ZIG_PROGRESS\0"), "c"),  # part of another name
        (contents(b"\0St9exception\0"), "c++"),  # `zig c++`: libc++abi's std::exception
        (contents(b";\xd7\xff\xffSt9exception\0St2"), "c++"),  # as LLD lays it out: after other data
    ],
)
def test_zig_binaries_are_recognised_by_std_marks(scanned: Contents, language: str) -> None:
    assert recognised(scanned) == language


@pytest.mark.parametrize(
    ("scanned", "libc"),
    [
        (contents(functions=frozenset({"start.posixCallMainAndExit"})), "none"),
        (contents(functions=frozenset({"start.main", "__libc_start_main"})), "musl"),
        (contents(b"\0ZIG_PROGRESS\0"), "none"),  # stripped, the linker's .comment only
        (contents(b"\0ZIG_PROGRESS\0", comment=CLANG + LINKER), "musl"),  # musl's C objects: clang's
        (contents(b"\0ZIG_PROGRESS\0", comment=None), "unknown"),  # no section headers
        (contents(b"\0ZIG_PROGRESS\0GLIBC_TUNABLES\0"), "glibc"),
        (None, "unknown"),  # too large to have been scanned
    ],
)
def test_the_libc_of_a_zig_binary_is_read_from_the_binary(scanned: Contents | None, libc: str) -> None:
    assert ZIG.libc(context(scanned), IMAGE_PACKAGES) == libc


def test_zig_cc_binaries_link_the_musl_of_the_ziglang_wheel() -> None:
    """musl leaves no mark: a toolchain whose compiler brings its own (the ziglang wheel) is the evidence,
    as musl-dev is for gcc; that wheel is then the libc component and the tool."""
    c_binary = context(contents(b"\0No error information\0", comment=CLANG + LINKER))
    assert C.libc(c_binary, IMAGE_PACKAGES) == "musl"
    assert C.libc(c_binary, {"ca-certificates"}) == "unknown"
    (component,) = libc_components("musl", AMD64, IMAGE_PACKAGES)
    assert str(component.purl) == "pkg:pypi/ziglang@0.17.1"
    assert {p.name: p.value for p in component.properties} == {"osless:libc": "musl"}
    assert C.tool_packages(c_binary, "musl", AMD64, IMAGE_PACKAGES) == [WHEEL]


def test_a_zig_binary_is_made_of_the_std_of_the_toolchains_zig() -> None:
    binary = context(contents(functions=frozenset({"start.posixCallMainAndExit"})))
    (std,) = ZIG.sbom_components(binary, "none", AMD64, IMAGE_PACKAGES)
    assert (std.name, std.version, str(std.bom_ref.value)) == ("std", "0.17.1", "zig:std:0.17.1")
    assert ZIG.tool_packages(binary, "none", AMD64, IMAGE_PACKAGES) == [WHEEL]
    std_and_musl = ZIG.sbom_components(binary, "musl", AMD64, IMAGE_PACKAGES)
    assert [str(part.bom_ref.value) for part in std_and_musl] == ["zig:std:0.17.1", "pkg:pypi/ziglang@0.17.1"]
    (unknown,) = ZIG.sbom_components(binary, "none", AMD64, {})  # no package database
    assert unknown.version is None and str(unknown.bom_ref.value) == "zig:std:unknown"
    assert ZIG.tool_packages(binary, "none", AMD64, {}) == []


def test_zig_findings_say_which_libc() -> None:
    (without,) = ZIG.info_findings(context(contents(functions=frozenset({"start._start"}))))
    assert without.id == "zig.std" and "without libc" in without.message
    (musl,) = ZIG.info_findings(context(contents(functions=frozenset({"start.main", "__libc_start_main"}))))
    assert "with musl" in musl.message


LIBCXX_TIME_PUT = b"\0NSt3__18time_putIcNS_19ostreambuf_iteratorIcNS_11char_traitsIcEEEEEE\0"


@pytest.mark.parametrize(
    ("loaded", "severity"),
    [
        (b"\0/usr/share/zoneinfo/\0" + LIBCXX_TIME_PUT, Severity.INFO),  # libc++'s time facets: musl's tzset
        (
            b"\0/usr/share/zoneinfo/\0" + LIBCXX_TIME_PUT + b"\0tzdata.zi\0",
            Severity.WARNING,
        ),  # std::chrono zones
        (b"\0/usr/share/zoneinfo/\0", Severity.WARNING),  # the program's own tzset
    ],
)
def test_libcxx_time_facets_explain_musls_zoneinfo_path(loaded: bytes, severity: Severity) -> None:
    """`zig c++` (libc++ over musl): iostream links std::time_put, which calls musl's strftime_l and its
    tzset, as libstdc++'s facets do glibc's (languages.cxx)."""
    scanned = contents(b"\0St9exception\0" + loaded)
    (tzdata,) = [f for f in CXX.runtime_findings(context(scanned), scanned) if f.id == "needs.tzdata"]
    assert tzdata.severity is severity
    if severity is Severity.INFO:
        assert "musl's tzset, which libc++'s time facets" in tzdata.message
