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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages.c import GCONV_FINDING, CLanguage
from orchestrator.platforms import Platform
from orchestrator.verify.findings import Finding, Severity, info

if TYPE_CHECKING:
    from orchestrator.verify.context import ElfContext

CXX_TYPE_NAME = b"\0St9exception\0"  # typeinfo name of std::exception, NUL-delimited in .rodata
CXX_PERSONALITY = "__gxx_personality_v0"
LIBSTDCXX_ICONV_USER = "_ZSt24__narrow_multibyte_charsPKcP15__locale_struct"
"""std::__narrow_multibyte_chars(const char*, __locale_struct*): libstdc++'s only caller of iconv_open."""
ICONV_CODECVT = ("9__gnu_cxx", "14encoding_state")
"""__gnu_cxx::encoding_state (__gnu_cxx::__cxx11:: with the new ABI), as parts of mangled names: the state
of <ext/codecvt_specializations.h>'s codecvt, whose members (templates, instantiated in the program's
own code) call iconv_open with the charsets the program names."""


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
        return tuple(_libstdcxx_gconv(f, contents) for f in super().runtime_findings(context, contents))

    def info_findings(self, context: ElfContext) -> tuple[Finding, ...]:
        return (info("cxx.runtime", "C++: links a C++ standard library statically"),)


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
