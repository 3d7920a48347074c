"""The platform table: every entry has what placeholders, the probe, verify and doctor need, so that adding
a platform is adding one complete entry."""

from __future__ import annotations

import io
import platform as stdlib_platform

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE
from elftools.elf.sections import ARMAttributesSection

from orchestrator.host import probe
from orchestrator.platforms import EM_ARM, PLATFORMS, Platform, host_platform, is_emulated, platform_name

ALL = list(PLATFORMS.values())
PLACEHOLDERS = {
    *("GOARCH", "GOARM", "GNU_TRIPLE", "DEBIAN_ARCH", "RUST_TARGET", "MUSL_TRIPLE", "ZIG_TARGET"),
    *("MESON_CPU_FAMILY", "MESON_CPU", "ENDIAN"),
}
# Meson's host machine as Debian's `meson env2mfile --debarch` derives it (cpu_family, cpu).
MESON = {
    "linux/amd64": ("x86_64", "x86_64"),
    "linux/arm64": ("aarch64", "aarch64"),
    "linux/arm/v7": ("arm", "arm7hlf"),
    "linux/riscv64": ("riscv64", "riscv64"),
    "linux/386": ("x86", "i686"),
    "linux/ppc64le": ("ppc64", "ppc64"),
    "linux/s390x": ("s390x", "s390x"),
}
RUST_TARGETS = {
    "linux/amd64": "x86_64-unknown-linux-gnu",
    "linux/arm64": "aarch64-unknown-linux-gnu",
    "linux/arm/v7": "armv7-unknown-linux-gnueabihf",
    "linux/riscv64": "riscv64gc-unknown-linux-gnu",
    "linux/386": "i686-unknown-linux-gnu",
    "linux/ppc64le": "powerpc64le-unknown-linux-gnu",
    "linux/s390x": "s390x-unknown-linux-gnu",
}
EM_NUMBERS = {number: name for name, number in ENUM_E_MACHINE.items() if isinstance(number, int)}


each = pytest.mark.parametrize("platform", ALL, ids=lambda p: p.name)


@each
def test_names_agree(platform: Platform) -> None:
    assert PLATFORMS[platform.name] is platform
    assert platform_name(platform.oci_platform) == platform.name
    assert platform.os == "linux"
    assert platform.variant is None or platform.variant.startswith("v")


@pytest.mark.parametrize("name", ["slug", "tag_suffix", "qemu", "rust_target", "gnu_triple", "debian_arch"])
def test_names_are_unique(name: str) -> None:
    values = [getattr(platform, name) for platform in ALL]
    assert all(values)
    assert len(set(values)) == len(values)


def test_uname_machines_name_one_platform_each() -> None:
    machines = [machine for platform in ALL for machine in platform.uname_machines]
    assert all(platform.uname_machines for platform in ALL)
    assert len(set(machines)) == len(machines)


@each
def test_placeholders_are_complete(platform: Platform) -> None:
    placeholders = platform.placeholders()
    assert set(placeholders) == PLACEHOLDERS
    assert placeholders["RUST_TARGET"] == RUST_TARGETS[platform.name]
    # Debian's musl triples and Zig's targets agree except for 386 (Zig says x86, Debian i386).
    assert placeholders["ZIG_TARGET"].replace("x86-", "i386-") == placeholders["MUSL_TRIPLE"]
    assert (placeholders["MESON_CPU_FAMILY"], placeholders["MESON_CPU"]) == MESON[platform.name]
    assert placeholders["ENDIAN"] == ("little" if platform.little_endian else "big")
    # GOARM exists for GOARCH=arm only; every other fact is never empty.
    assert bool(placeholders.pop("GOARM")) == (platform.goarch == "arm")
    assert all(placeholders.values())


def test_arm_v7_placeholders() -> None:
    assert PLATFORMS["linux/arm/v7"].placeholders() == {
        "GOARCH": "arm",
        "GOARM": "7",
        "GNU_TRIPLE": "arm-linux-gnueabihf",
        "DEBIAN_ARCH": "armhf",
        "RUST_TARGET": "armv7-unknown-linux-gnueabihf",
        "MUSL_TRIPLE": "arm-linux-musleabihf",
        "ZIG_TARGET": "arm-linux-musleabihf",
        "MESON_CPU_FAMILY": "arm",
        "MESON_CPU": "arm7hlf",
        "ENDIAN": "little",
    }


@each
def test_verify_facts_are_complete(platform: Platform) -> None:
    assert platform.elf_machine in EM_NUMBERS
    assert platform.elf_machine_name
    assert platform.elf_class in (32, 64)
    assert isinstance(platform.little_endian, bool)
    assert platform.arm_min_arch is None or (platform.elf_machine == EM_ARM and platform.arm_min_arch < 0x80)


@each
def test_flag_rules_accept_the_platform_flags_and_explain_the_others(platform: Platform) -> None:
    for rule in platform.flag_rules:
        assert rule.finding.startswith("arch.")
        assert rule.allowed and all(value & ~rule.mask == 0 for value in rule.allowed)
        assert rule.allows(platform.elf_flags)
        broken = next(
            bits for bits in range(rule.mask + 1) if bits & rule.mask == bits and not rule.allows(bits)
        )
        message = rule.problem(broken, platform)
        assert "{" not in message and " — " in message
    findings = [rule.finding for rule in platform.flag_rules]
    assert len(set(findings)) == len(findings)


def test_flag_rule_messages() -> None:
    arm, riscv, ppc64le = PLATFORMS["linux/arm/v7"], PLATFORMS["linux/riscv64"], PLATFORMS["linux/ppc64le"]
    eabi, float_abi = arm.flag_rules
    assert eabi.problem(0x04000000, arm).startswith("ARM EABI version 4 in e_flags")
    assert not float_abi.allows(0x05000200)
    assert float_abi.problem(0x05000200, arm) == (
        "soft-float ABI (e_flags 0x5000200), linux/arm/v7 is hard-float — build with "
        "arm-linux-gnueabihf-gcc, not -mfloat-abi=soft"
    )
    (lp64d,) = riscv.flag_rules
    assert lp64d.exempt_languages == ("go",)
    assert lp64d.problem(0x2, riscv).startswith("single-float ABI (e_flags 0x2), linux/riscv64 needs")
    (elfv2,) = ppc64le.flag_rules
    assert elfv2.allows(0) and elfv2.allows(2) and not elfv2.allows(1)
    assert elfv2.problem(1, ppc64le) == (
        "PowerPC64 ELF ABI version 1 in e_flags, linux/ppc64le needs ELFv2 "
        "— build with powerpc64le-linux-gnu-gcc"
    )


@each
def test_probe_is_a_valid_elf_for_its_platform(platform: Platform) -> None:
    assert platform.probe_code
    data = probe.probe_binary(platform)
    elf = ELFFile(io.BytesIO(data))
    assert elf["e_type"] == "ET_EXEC"
    assert elf["e_machine"] == EM_NUMBERS[platform.elf_machine]
    assert elf.elfclass == platform.elf_class
    assert elf.little_endian == platform.little_endian
    assert elf["e_flags"] == platform.elf_flags
    (segment,) = elf.iter_segments()
    assert segment["p_type"] == "PT_LOAD" and segment["p_filesz"] == len(data)
    code_offset = elf["e_entry"] - segment["p_vaddr"]
    assert data[code_offset : code_offset + len(platform.probe_code)] == platform.probe_code
    attributes = elf.get_section_by_name(".ARM.attributes")
    if platform.arm_min_arch is None:
        assert attributes is None
    else:
        assert isinstance(attributes, ARMAttributesSection)
        (subsection,) = attributes.iter_subsections()
        (file_scope,) = subsection.iter_subsubsections()
        (cpu_arch,) = file_scope.iter_attributes()
        assert (cpu_arch.tag, cpu_arch.value) == ("TAG_CPU_ARCH", platform.arm_min_arch)


@each
def test_native_hosts_are_platforms(platform: Platform) -> None:
    assert all(host in PLATFORMS and host != platform.name for host in platform.native_on)
    assert platform.native_fix is None or platform.native_on


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "linux/amd64"),
        ("aarch64", "linux/arm64"),
        ("armv7l", "linux/arm/v7"),
        ("i686", "linux/386"),
    ],
)
def test_host_platform_by_uname(monkeypatch: pytest.MonkeyPatch, machine: str, expected: str) -> None:
    monkeypatch.setattr(stdlib_platform, "machine", lambda: machine)
    host = host_platform()
    assert host is not None and host.name == expected
    assert not is_emulated(host)


def test_an_amd64_host_runs_386_natively_and_the_rest_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdlib_platform, "machine", lambda: "x86_64")
    emulated = {platform.name for platform in ALL if is_emulated(platform)}
    assert emulated == set(PLATFORMS) - {"linux/amd64", "linux/386"}


def test_an_unknown_host_emulates_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdlib_platform, "machine", lambda: "mips")
    assert host_platform() is None
    assert all(is_emulated(platform) for platform in ALL)
