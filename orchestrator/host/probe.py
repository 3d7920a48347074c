"""A tiny hand-assembled static program per platform that only exits with status 42.

Running it from the host proves that the kernel really runs that platform's binaries: natively, or through
the binfmt_misc handler and its qemu-user interpreter. Status 42 tells a real run from a no-op.

Each probe is one ELF header, one program header and the platform table's `probe_code`: a single
read+execute PT_LOAD maps the whole file at LOAD_ADDRESS. Everything per platform comes from the table
(machine, class, byte order, `elf_flags`); a platform with `arm_min_arch` also gets an `.ARM.attributes`
section saying it, so that the verifier identifies linux/arm/v7 rather than plain linux/arm.
"""

from __future__ import annotations

import errno
import signal
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.platforms import Platform

EXIT_STATUS = 42
LOAD_ADDRESS = 0x400000
_SEGMENT_ALIGN = 0x10000  # LOAD_ADDRESS is a multiple, so 4K and 64K page kernels both accept it
_ET_EXEC, _EV_CURRENT, _PT_LOAD, _PF_R_X = 2, 1, 1, 0x5
_SHT_STRTAB, _SHT_ARM_ATTRIBUTES = 3, 0x70000003
_TAG_FILE, _TAG_CPU_ARCH = 1, 6


def probe_binary(platform: Platform) -> bytes:
    """The probe ELF executable for this platform: static, exits with status 42."""
    code = platform.probe_code
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
    if platform.arm_min_arch is not None:
        attributes = _arm_attributes(platform.arm_min_arch, order)
        body, sections = _with_attributes(code, code_offset, shdr_format, attributes)
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
        platform.elf_flags,
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


def _arm_attributes(cpu_arch: int, order: str) -> bytes:
    """`.ARM.attributes`: format "A", one "aeabi" subsection, one Tag_File scope holding Tag_CPU_arch =
    `cpu_arch` (a ULEB128: one byte below 128). Lengths count themselves."""
    scope = bytes([_TAG_CPU_ARCH, cpu_arch])
    subsection = b"aeabi\0" + bytes([_TAG_FILE]) + struct.pack(f"{order}I", 5 + len(scope)) + scope
    return b"A" + struct.pack(f"{order}I", 4 + len(subsection)) + subsection


def _with_attributes(
    code: bytes, code_offset: int, shdr_format: str, attributes: bytes
) -> tuple[bytes, bytes]:
    """Code followed by `.ARM.attributes` and `.shstrtab`, and the section header table for them."""
    names = b"\0.ARM.attributes\0.shstrtab\0"
    attributes_offset = code_offset + len(code)
    names_offset = attributes_offset + len(attributes)
    body = code + attributes + names
    body += bytes(-(code_offset + len(body)) % 4)  # align the section header table
    headers = (
        struct.pack(shdr_format, *[0] * 10),
        struct.pack(
            shdr_format, 1, _SHT_ARM_ATTRIBUTES, 0, 0, attributes_offset, len(attributes), 0, 0, 1, 0
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
