"""C++: built by g++ (native, Debian's g++-<triple>) with `-static`, libstdc++ linked in statically.

A C++ binary is a C binary with a C++ standard library linked in: same libc, same runtime traps (C's),
same SBOM parts. It is recognised by what that library leaves in every binary that links its exception
support, stripped or not: the type name of `std::exception` ("St9exception", a string in .rodata,
written by libstdc++ and by libc++abi alike), or, with a symbol table, the personality routine
`__gxx_personality_v0`. A C++ program that uses neither exceptions nor the standard library links
none of it and is verified as C, which it then is.

One trap is C's but not the program's (measured: Debian g++ 12, glibc 2.36, amd64): libstdc++'s GNU
locale code, `std::__narrow_multibyte_chars` (config/locale/gnu/numeric_members.cc, the only member of
libstdc++.a that refers to iconv), converts a *named* locale's decimal point and thousands separator
with iconv_open. Every program using iostream links it, so every unstripped static C++ binary defines
iconv_open, and C's rule ("iconv_open is defined: the program converts") would reject them all,
although they run in scratch: scratch has no named locales, only "C", for which it never converts.

The same locale code brings a second of C's findings with it (measured: Debian g++ 14.2, glibc 2.41, all
seven platforms): the time facets (std::time_put through std::__timepunct) call glibc's strftime_l,
which links tzset and its "/usr/share/zoneinfo", so every iostream program would get C's needs.tzdata
WARNING. It is INFO for a C++ binary holding those facets, unless the binary also links libstdc++'s
std::chrono time zone database (<chrono>'s locate_zone, which reads tzdata.zi): that program asks for
zones by name, and the WARNING stays. libc++ over musl (`zig c++`) is the same: its std::time_put
calls musl's strftime_l, whose tzset holds "/usr/share/zoneinfo/".

The SBOM lists the C++ standard library as a component beside the libc: libstdc++ from the toolchain
image's libstdc++-<N>-dev (native) or libstdc++-<N>-dev-<arch>-cross package, N being g++'s major
version; the tools that built the binary are g++ (g++-<triple>) and the versioned g++-<N>[-<triple>].
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cyclonedx.model.component import Component, ComponentType

from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages.c import GCONV_FINDING, CLanguage, compiler_packages, is_cross
from orchestrator.outputs.components import DebianPackage, deb_component, properties
from orchestrator.platforms import Platform
from orchestrator.verify.findings import Finding, Severity, info

if TYPE_CHECKING:
    from orchestrator.verify.context import ElfContext

# typeinfo name of std::exception, NUL-terminated in .rodata; LLD (zig c++) puts it right after other
# read-only data, with no NUL before it.
CXX_TYPE_NAME = b"St9exception\0"
CXX_PERSONALITY = "__gxx_personality_v0"
LIBSTDCXX_ICONV_USER = "_ZSt24__narrow_multibyte_charsPKcP15__locale_struct"
"""std::__narrow_multibyte_chars(const char*, __locale_struct*): libstdc++'s only caller of iconv_open."""
ICONV_CODECVT = ("9__gnu_cxx", "14encoding_state")
"""__gnu_cxx::encoding_state (__gnu_cxx::__cxx11:: with the new ABI), as parts of mangled names: the state
of <ext/codecvt_specializations.h>'s codecvt, whose members (templates, instantiated in the program's
own code) call iconv_open with the charsets the program names."""
LIBSTDCXX_TIME_FACETS = b"\0St11__timepunctIcE\0"
"""typeinfo name of std::__timepunct<char>, libstdc++'s time facet data (calls strftime_l), in .rodata."""
LIBCXX_TIME_FACETS = b"8time_putIcNS_19ostreambuf_iteratorIcNS_11char_traitsIcEEEEEE\0"
"""typeinfo name of libc++'s std::time_put<char> (NSt3__18time_put...: calls strftime_l), in .rodata."""
LIBSTDCXX_TZDB = b"tzdata.zi"
"""The file libstdc++'s std::chrono::tzdb (libc++'s too) reads from the zone directory: linked only with
<chrono> zones."""
LIBCXX_NAMESPACE = b"NSt3__"
"""libc++'s inline namespace (std::__1, std::__2) in its type names: a libc++ binary, not libstdc++."""
TZDATA_EXTRA = "tzdata"
STDLIB_PROPERTY = "cxx:stdlib"
LIBSTDCXX = "libstdc++"


class CxxLanguage(CLanguage):
    name = "c++"

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        """The C++ runtime's marks in the scanned contents (see the module's docstring)."""
        if contents is None:
            return False
        return bool(contents.called((CXX_PERSONALITY,))) or contents.contains(CXX_TYPE_NAME)

    def cross_compiler(self, platform: Platform) -> str:
        return f"{platform.gnu_triple}-g++"

    def runtime_findings(self, context: ElfContext, contents: Contents) -> tuple[Finding, ...]:
        return tuple(
            _libstdcxx_tzdata(_libstdcxx_gconv(f, contents), contents)
            for f in super().runtime_findings(context, contents)
        )

    def info_findings(self, context: ElfContext) -> tuple[Finding, ...]:
        stdlib = stdlib_of(context.contents)
        return (info("cxx.runtime", f"C++: links the C++ standard library {stdlib} statically"),)

    def sbom_properties(self, context: ElfContext) -> dict[str, str | None]:
        return {STDLIB_PROPERTY: stdlib_of(context.contents)}

    def sbom_components(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[Component]:
        """The libc (C's), and libstdc++ with the version of its Debian package."""
        libc_parts = super().sbom_components(context, libc, platform, packages)
        if stdlib_of(context.contents) != LIBSTDCXX:
            return libc_parts
        package = libstdcxx_package(platform, packages)
        if package is not None:
            return [
                *libc_parts,
                deb_component(package, ComponentType.LIBRARY, **{STDLIB_PROPERTY: LIBSTDCXX}),
            ]
        return [  # linked in, version unknown (a toolchain image without the package database)
            *libc_parts,
            Component(
                type=ComponentType.LIBRARY,
                name=LIBSTDCXX,
                bom_ref=f"cxx:{LIBSTDCXX}:{platform.debian_arch}",
                properties=properties({STDLIB_PROPERTY: LIBSTDCXX, "platform": platform.name}),
            ),
        ]

    def tool_packages(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[DebianPackage]:
        """g++ (native) or g++-<triple> (cross) and the versioned g++-N[-<triple>] it depends on."""
        if stdlib_of(context.contents) != LIBSTDCXX:
            return super().tool_packages(context, libc, platform, packages)
        return compiler_packages("g++", platform, packages)


CXX = CxxLanguage()


def libstdcxx_explains_iconv(contents: Contents) -> bool:
    """Whether libstdc++'s locale code accounts for iconv_open being linked.

    The rule: iconv_open is explained when libstdc++'s only iconv user, std::__narrow_multibyte_chars,
    is linked in and no function of libstdc++'s iconv-based codecvt (its __gnu_cxx::encoding_state
    instantiations, which convert between charsets the program names) is. A static binary's symbol
    table records which objects were linked, not who calls whom: a C++ program that also calls
    iconv_open in its own code cannot be told from one that does not without disassembling it, so the
    finding stays, as INFO, saying what it would mean. A C program calling iconv_open has none of
    libstdc++'s symbols and keeps C's ERROR.
    """
    functions = contents.functions
    if functions is None or LIBSTDCXX_ICONV_USER not in functions:
        return False
    return not any(all(part in name for part in ICONV_CODECVT) for name in functions)


def _libstdcxx_gconv(finding: Finding, contents: Contents) -> Finding:
    """C's `runtime.gconv` ERROR as INFO when libstdc++ explains iconv_open; any other finding as is."""
    if finding.id != GCONV_FINDING or finding.severity is not Severity.ERROR:
        return finding
    if not libstdcxx_explains_iconv(contents):
        return finding
    return info(
        GCONV_FINDING,
        "iconv_open is linked by libstdc++'s locale code (std::__narrow_multibyte_chars, which converts "
        "only for named locales, absent in scratch); should the program call it itself, conversions "
        "other than UTF-8/ASCII/UCS fail in scratch (no gconv modules)",
    )


def stdlib_of(contents: Contents | None) -> str:
    """The C++ standard library linked in: "libc++" when its inline namespace shows, else "libstdc++"
    (what g++ links), "unknown" for a binary too large to have been read."""
    if contents is None:
        return "unknown"
    return "libc++" if contents.contains(LIBCXX_NAMESPACE) else LIBSTDCXX


def libstdcxx_package(platform: Platform, packages: Mapping[str, DebianPackage]) -> DebianPackage | None:
    """The toolchain image's libstdc++-<N>-dev (native compiler, of the platform's architecture) or
    libstdc++-<N>-dev-<arch>-cross (cross compiler); N is g++'s major version, or the highest installed
    when the image has no g++ for the platform."""
    cross = is_cross(platform, packages)
    pattern = re.compile(
        r"libstdc\+\+-([0-9]+)-dev" + (re.escape(f"-{platform.debian_arch}-cross") if cross else "")
    )
    found = {
        int(match.group(1)): package
        for name, package in packages.items()
        if (match := pattern.fullmatch(name)) and (cross or package.architecture == platform.debian_arch)
    }
    if not found:
        return None
    compilers = compiler_packages("g++", platform, packages)
    major = re.match(r"(?:[0-9]+:)?([0-9]+)\.", compilers[0].version) if compilers else None
    if major and int(major.group(1)) in found:
        return found[int(major.group(1))]
    return found[max(found)]


def _libstdcxx_tzdata(finding: Finding, contents: Contents) -> Finding:
    """C's needs.tzdata WARNING as INFO when libstdc++'s time facets explain the zoneinfo path and the
    program links no std::chrono time zone database; any other finding as is."""
    if finding.extra != TZDATA_EXTRA or finding.severity is not Severity.WARNING:
        return finding
    if contents.contains(LIBSTDCXX_TZDB):
        return finding
    if contents.contains(LIBSTDCXX_TIME_FACETS):
        how = "glibc's tzset, which libstdc++'s time facets (std::__timepunct"
    elif contents.contains(LIBCXX_TIME_FACETS):  # zig c++: libc++ over musl
        how = "musl's tzset, which libc++'s time facets (std::time_put"
    else:
        return finding
    return dataclasses.replace(  # no longer a need: inspect does not ask the image for tzdata
        finding,
        severity=Severity.INFO,
        extra=None,
        message=f"refers to /usr/share/zoneinfo through {how}, linked with iostream) bring into every "
        "C++ program: times are UTC in scratch; should the program read a TZ naming a zone "
        "(TZ=Europe/Paris), it needs the zone database, absent in scratch",
    )
