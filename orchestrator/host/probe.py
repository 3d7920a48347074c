"""A tiny hand-assembled static program per platform that only exits with status 42.

Running it from the host proves that the kernel really runs that platform's binaries: natively, or through
the binfmt_misc handler and its qemu-user interpreter. Status 42 tells a real run from a no-op.

Each probe is one ELF header, one program header and a few instructions: a single read+execute PT_LOAD
maps the whole file at LOAD_ADDRESS. The 32-bit ARM probe also carries an `.ARM.attributes` section
(Tag_CPU_arch ARMv7) so that the verifier identifies it as linux/arm/v7 rather than plain linux/arm.
"""

from __future__ import annotations

import errno
import signal
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.platforms import (
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_X86_64,
    Platform,
)

EXIT_STATUS = 42
LOAD_ADDRESS = 0x400000
_SEGMENT_ALIGN = 0x10000  # LOAD_ADDRESS is a multiple, so 4K and 64K page kernels both accept it
_ET_EXEC, _EV_CURRENT, _PT_LOAD, _PF_R_X = 2, 1, 1, 0x5
_SHT_STRTAB, _SHT_ARM_ATTRIBUTES = 3, 0x70000003


def _words(*words: int, big_endian: bool = False) -> bytes:
    """Fixed-width 32-bit instruction words in the target's byte order."""
    return struct.pack(f"{'>' if big_endian else '<'}{len(words)}I", *words)


# The code of each probe: exit(42) through the platform's Linux syscall convention.
_CODE: dict[int, bytes] = {
    EM_X86_64: bytes.fromhex(
        "b83c000000"  # mov eax, 60      (exit)
        "bf2a000000"  # mov edi, 42
        "0f05"  # syscall
    ),
    EM_386: bytes.fromhex(
        "b801000000"  # mov eax, 1       (exit)
        "bb2a000000"  # mov ebx, 42
        "cd80"  # int 0x80
    ),
    EM_AARCH64: _words(
        0xD2800BA8,  # mov x8, #93      (movz; exit)
        0xD2800540,  # mov x0, #42
        0xD4000001,  # svc #0
    ),
    EM_ARM: _words(  # ARM (A32) state, EABI: syscall number in r7
        0xE3A07001,  # mov r7, #1       (exit)
        0xE3A0002A,  # mov r0, #42
        0xEF000000,  # svc #0
    ),
    EM_RISCV: _words(  # uncompressed RV64I only
        0x05D00893,  # li a7, 93        (addi a7, zero, 93; exit)
        0x02A00513,  # li a0, 42        (addi a0, zero, 42)
        0x00000073,  # ecall
    ),
    EM_PPC64: _words(  # little-endian words; ELFv2 enters at the code itself (no function descriptor)
        0x38000001,  # li r0, 1         (addi r0, 0, 1; exit)
        0x3860002A,  # li r3, 42        (addi r3, 0, 42)
        0x44000002,  # sc
    ),
    EM_S390: bytes.fromhex(  # big-endian
        "a729002a"  # lghi %r2, 42
        "0a01"  # svc 1            (exit; numbers below 256 go in the instruction)
    ),
}

_FLAGS: dict[int, int] = {
    EM_ARM: 0x05000400,  # EABI version 5, hard-float (EF_ARM_ABI_FLOAT_HARD)
    EM_RISCV: 0x4,  # EF_RISCV_FLOAT_ABI_DOUBLE (lp64d), no RVC
    EM_PPC64: 0x2,  # ELFv2 ABI
}

# .ARM.attributes: format "A", one "aeabi" subsection, one Tag_File scope holding Tag_CPU_arch (6) = 10
# (ARMv7). Lengths count themselves; the little-endian words are right for armhf.
_ARM_ATTRIBUTES = b"A" + struct.pack("<I", 17) + b"aeabi\0" + b"\x01" + struct.pack("<I", 7) + b"\x06\x0a"


def probe_binary(platform: Platform) -> bytes:
    """The probe ELF executable for this platform: static, exits with status 42."""
    code = _CODE[platform.elf_machine]
    wide = platform.elf_class == 64
    order = "<" if platform.little_endian else ">"
    word = "Q" if wide else "I"
    header_format = f"{order}16sHHI{word}{word}{word}IHHHHHH"
    phdr_format = f"{order}IIQQQQQQ" if wide else f"{order}IIIIIIII"
    header_size, phdr_size = struct.calcsize(header_format), struct.calcsize(phdr_format)
    shdr_format = f"{order}IIQQQQIIQQ" if wide else f"{order}IIIIIIIIII"
    code_offset = header_size + phdr_size
    body = code
    sections = b""
    if platform.elf_machine == EM_ARM:
        body, sections = _with_attributes(code, code_offset, shdr_format)
    shoff = code_offset + len(body) if sections else 0
    shnum = len(sections) // struct.calcsize(shdr_format)
    size = code_offset + len(body) + len(sections)
    ident = b"\x7fELF" + bytes(
        [2 if wide else 1, 1 if platform.little_endian else 2, _EV_CURRENT]
    )  # EI_OSABI 0 (System V) and padding follow as zeros
    header = struct.pack(
        header_format,
        ident,
        _ET_EXEC,
        platform.elf_machine,
        _EV_CURRENT,
        LOAD_ADDRESS + code_offset,  # e_entry
        header_size,  # e_phoff
        shoff,
        _FLAGS.get(platform.elf_machine, 0),
        header_size,
        phdr_size,
        1,  # e_phnum
        struct.calcsize(shdr_format) if shnum else 0,
        shnum,
        shnum - 1 if shnum else 0,  # e_shstrndx: .shstrtab comes last
    )
    if wide:
        phdr = struct.pack(
            phdr_format, _PT_LOAD, _PF_R_X, 0, LOAD_ADDRESS, LOAD_ADDRESS, size, size, _SEGMENT_ALIGN
        )
    else:
        phdr = struct.pack(
            phdr_format, _PT_LOAD, 0, LOAD_ADDRESS, LOAD_ADDRESS, size, size, _PF_R_X, _SEGMENT_ALIGN
        )
    return header + phdr + body + sections


def _with_attributes(code: bytes, code_offset: int, shdr_format: str) -> tuple[bytes, bytes]:
    """Code followed by `.ARM.attributes` and `.shstrtab`, and the section header table for them."""
    names = b"\0.ARM.attributes\0.shstrtab\0"
    attributes_offset = code_offset + len(code)
    names_offset = attributes_offset + len(_ARM_ATTRIBUTES)
    body = code + _ARM_ATTRIBUTES + names
    body += bytes(-(code_offset + len(body)) % 4)  # align the section header table
    headers = (
        struct.pack(shdr_format, *[0] * 10),
        struct.pack(
            shdr_format, 1, _SHT_ARM_ATTRIBUTES, 0, 0, attributes_offset, len(_ARM_ATTRIBUTES), 0, 0, 1, 0
        ),
        struct.pack(shdr_format, 17, _SHT_STRTAB, 0, 0, names_offset, len(names), 0, 0, 1, 0),
    )
    return body, b"".join(headers)


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """Whether the probe ran and exited with 42; `detail` says what happened, in one line."""

    ok: bool
    exit_code: int | None
    detail: str


def run_probe(platform: Platform, *, timeout: float = 10) -> ProbeResult:
    """Write the probe to a temporary file and execute it from the host; never raises for failures."""
    with tempfile.TemporaryDirectory(prefix="osless-probe-") as directory:
        path = Path(directory) / f"probe-{platform.slug}"
        path.write_bytes(probe_binary(platform))
        path.chmod(0o755)
        try:
            completed = subprocess.run([str(path)], capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return ProbeResult(ok=False, exit_code=None, detail=f"the probe hung for {timeout:g} s")
        except OSError as error:
            return ProbeResult(ok=False, exit_code=None, detail=_exec_error(error, directory))
    code = completed.returncode
    if code == EXIT_STATUS:
        return ProbeResult(ok=True, exit_code=code, detail=f"probe exited {EXIT_STATUS}")
    if code < 0:
        return ProbeResult(ok=False, exit_code=code, detail=f"the probe was killed by {_signal_name(-code)}")
    stderr = " ".join(completed.stderr.decode(errors="replace").split())[:200]
    return ProbeResult(
        ok=False,
        exit_code=code,
        detail=f"the probe exited {code}, expected {EXIT_STATUS}" + (f": {stderr}" if stderr else ""),
    )


def _exec_error(error: OSError, directory: str) -> str:
    if error.errno == errno.ENOEXEC:
        return "exec format error: the kernel has no handler for it"
    if error.errno == errno.EACCES:
        return f"permission denied executing it (is {Path(directory).parent} mounted noexec?)"
    if error.errno == errno.ENOENT:
        return "no such file or directory: the handler's interpreter is missing"
    return f"cannot execute it: {error.strerror or error}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
