"""`.ARM.attributes` (ARM IHI 0045, "Addenda to the ARM ABI"): the ARM architecture version a C object
file says it needs (Tag_CPU_arch), and the linux/arm variant (v5 to v7) that follows from it.

Go writes no attributes: for Go binaries the variant comes from GOARM in the build info instead.
"""

from __future__ import annotations

from typing import Literal

from orchestrator.elf.load import CorruptElf, LoadedElf

MAX_ATTRIBUTES = 1 << 20  # bytes of .ARM.attributes read (real files: about 60 bytes)
# File scope of the "aeabi" vendor.
_TAG_FILE = 1
_TAG_CPU_ARCH = 6
_TAG_COMPATIBILITY = 32  # a ULEB128 flag followed by a vendor name
_STRING_TAGS = (4, 5)  # Tag_CPU_raw_name, Tag_CPU_name; above 32, odd tags hold strings too
_ARM_V6, _ARM_V7 = 6, 10  # Tag_CPU_arch values
_ARM_ARCH_NAMES = (
    "pre-ARMv4",
    "ARMv4",
    "ARMv4T",
    "ARMv5T",
    "ARMv5TE",
    "ARMv5TEJ",
    "ARMv6",
    "ARMv6KZ",
    "ARMv6T2",
    "ARMv6K",
    "ARMv7",
    "ARMv6-M",
    "ARMv6S-M",
    "ARMv7E-M",
    "ARMv8-A",
    "ARMv8-R",
    "ARMv8-M.baseline",
    "ARMv8-M.mainline",
    "ARMv8.1-A",
    "ARMv8.2-A",
    "ARMv8.3-A",
    "ARMv8.1-M.mainline",
    "ARMv9-A",
)


def arm_cpu_arch(binary: LoadedElf) -> int | None:
    """Tag_CPU_arch of `.ARM.attributes`; None when there is no such section (Go, stripped headers)."""
    section = next(binary.elf.iter_sections("SHT_ARM_ATTRIBUTES"), None)
    if section is None:
        return None
    if section["sh_size"] > MAX_ATTRIBUTES:
        raise CorruptElf(f".ARM.attributes is {section['sh_size']} bytes, more than {MAX_ATTRIBUTES}")
    byteorder: Literal["little", "big"] = "little" if binary.elf.little_endian else "big"
    return _aeabi_cpu_arch(binary.read(section["sh_offset"], section["sh_size"]), byteorder)


def arm_platform(cpu_arch: int | None, go_arm: int | None) -> str:
    """linux/arm/v5 to v7 by the highest ARM version the binary needs (C objects' or Go code's)."""
    versions = [v for v in (_arm_version(cpu_arch), go_arm) if v is not None]
    return f"linux/arm/v{min(max(*versions, 5), 7)}" if versions else "linux/arm"


def arm_arch_name(cpu_arch: int) -> str:
    """The name of a Tag_CPU_arch value, as ARM's documents spell it: "ARMv7"."""
    return _ARM_ARCH_NAMES[cpu_arch] if cpu_arch < len(_ARM_ARCH_NAMES) else f"Tag_CPU_arch {cpu_arch}"


def _aeabi_cpu_arch(data: bytes, byteorder: Literal["little", "big"]) -> int | None:
    """Walk the vendor subsections of a raw attributes section to the "aeabi" one."""
    if data[:1] != b"A":
        raise ValueError(".ARM.attributes does not start with format version 'A'")
    pos = 1
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], byteorder)
        if length < 4 or pos + length > len(data):
            raise ValueError(f".ARM.attributes subsection length {length} out of range")
        vendor, _, body = data[pos + 4 : pos + length].partition(b"\0")
        if vendor == b"aeabi":
            return _file_cpu_arch(body, byteorder)
        pos += length
    return None


def _file_cpu_arch(body: bytes, byteorder: Literal["little", "big"]) -> int | None:
    """Tag_CPU_arch among the file-scope attributes (Tag_File) of an aeabi subsection."""
    pos = 0
    while pos < len(body):
        scope, size = body[pos], int.from_bytes(body[pos + 1 : pos + 5], byteorder)
        if size < 5 or pos + size > len(body):
            raise ValueError(f".ARM.attributes scope length {size} out of range")
        if scope == _TAG_FILE:
            return _integer_attribute(body[pos + 5 : pos + size], _TAG_CPU_ARCH)
        pos += size
    return None


def _integer_attribute(attributes: bytes, wanted: int) -> int | None:
    """The value of one integer attribute in a tag/value list, skipping the others by their type."""
    pos = 0
    while pos < len(attributes):
        tag, pos = _uleb128(attributes, pos)
        if tag == wanted:
            return _uleb128(attributes, pos)[0]
        if tag == _TAG_COMPATIBILITY:
            pos = _uleb128(attributes, pos)[1]
        if tag in _STRING_TAGS or tag == _TAG_COMPATIBILITY or (tag > 32 and tag % 2 == 1):
            pos = attributes.index(b"\0", pos) + 1
        else:
            pos = _uleb128(attributes, pos)[1]
    return None


def _uleb128(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 number at `pos`, and the position after it."""
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
    raise ValueError(".ARM.attributes: truncated ULEB128 number")


def _arm_version(cpu_arch: int | None) -> int | None:
    """The ARMv5/6/7 level of a Tag_CPU_arch value."""
    if cpu_arch is None:
        return None
    if cpu_arch >= _ARM_V7:
        return 7
    return 6 if cpu_arch >= _ARM_V6 else 5
