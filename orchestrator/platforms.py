"""The one table of target platforms: adding a platform is adding one entry to PLATFORMS.

Each entry carries everything osless knows about a platform: how Go, Rust and Debian's cross compilers
name it (the `{GOARCH}`-style placeholders recipes use), what its ELF header must say and which ABI
flags it requires (verify), the machine code of its probe program (`osless doctor`), how OCI, image tags
and `uname -m` name it, and which qemu-user runs it. Nothing else in osless has per-platform data, so a new
platform is one entry here plus the packages it needs in the toolchain recipes; tests/unit/test_platforms.py
checks that every entry is complete.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

# ELF e_machine values (elf.h).
EM_386 = 3
EM_S390 = 22
EM_PPC64 = 21
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243


@dataclass(frozen=True, kw_only=True)
class FlagRule:
    """One ABI requirement on the ELF header's e_flags: `e_flags & mask` must be one of `allowed`.

    The bits are compared as the ELF supplements define them (unshifted: EF_ARM_EABI_VER5 is 0x05000000).
    `message` is a `str.format` template for a binary that breaks the rule, with `{value}` (the masked bits
    shifted down to bit 0, as readelf shows them), `{value_name}` (from `value_names`), `{flags}` (all of
    e_flags) and `{platform}` (this Platform).
    """

    finding: str  # the verify finding id, e.g. "arch.arm-eabi"
    mask: int
    allowed: tuple[int, ...]
    message: str
    # Names of masked values, for {value_name}.
    value_names: Mapping[int, str] = field(default_factory=dict, hash=False)
    # Languages whose binaries the rule does not apply to: their calling convention is not the C ABI the
    # bits describe (Go on riscv64 is RV64G whatever its linker writes).
    exempt_languages: tuple[str, ...] = ()

    def allows(self, flags: int) -> bool:
        return flags & self.mask in self.allowed

    def problem(self, flags: int, platform: Platform) -> str:
        """The message for a binary whose e_flags break this rule."""
        bits = flags & self.mask
        shift = (self.mask & -self.mask).bit_length() - 1
        return self.message.format(
            value=bits >> shift,
            value_name=self.value_names.get(bits, f"{bits:#x}"),
            flags=flags,
            platform=platform,
        )


def _words(*words: int) -> bytes:
    """Little-endian 32-bit instruction words."""
    return struct.pack(f"<{len(words)}I", *words)


@dataclass(frozen=True, kw_only=True)
class Platform:
    """A target platform: `os/arch[/variant]` as OCI and Docker spell it."""

    name: str
    architecture: str  # OCI/Go architecture, e.g. "arm"
    variant: str | None
    uname_machines: tuple[str, ...]  # what `uname -m` says on a host of this platform
    goarch: str
    goarm: str | None  # None where Go has no GOARM (every GOARCH but arm)
    gnu_triple: str  # Debian cross compiler prefix, e.g. "aarch64-linux-gnu"
    debian_arch: str  # Debian architecture, e.g. "armhf" (libc6-dev-<arch>-cross)
    rust_target: str  # Rust target triple, e.g. "armv7-unknown-linux-gnueabihf"
    musl_triple: str  # Debian musl-dev's compiler prefix, e.g. "arm-linux-musleabihf" (<triple>-gcc)
    zig_target: str  # Zig's static musl target, e.g. "arm-linux-musleabihf" (zig cc -target)
    # Meson's host machine (a cross file's [host_machine]), as Debian's `meson env2mfile --debarch` says it.
    meson_cpu_family: str  # e.g. "arm"
    meson_cpu: str  # e.g. "arm7hlf"
    elf_machine: int
    elf_machine_name: str  # as people know it, for messages
    elf_class: int  # 32 or 64
    little_endian: bool
    elf_flags: int = 0  # e_flags of a conforming binary (the probe's); must satisfy flag_rules
    flag_rules: tuple[FlagRule, ...] = ()  # the ABI every binary's e_flags must show, checked in order
    arm_min_arch: int | None = None  # .ARM.attributes Tag_CPU_arch lower bound (10 = v7); the probe's value
    probe_code: bytes  # exit(42) through the platform's Linux syscall convention, run from the entry point
    qemu: str  # qemu-user binary suffix, e.g. "aarch64" for qemu-aarch64
    native_on: tuple[str, ...] = ()  # other host platforms whose kernels run these binaries without qemu
    native_fix: str | None = None  # what makes a kernel run them natively when it refuses (`osless doctor`)

    def placeholders(self) -> dict[str, str]:
        """The platform facts recipes and toolchain recipes may use as `{NAME}` placeholders.

        `GOARM` is the empty string where Go has no GOARM (every GOARCH but arm): Go ignores GOARM there,
        and an empty GOARM means Go's default, so a toolchain may set `GOARM = "{GOARM}"` everywhere.
        """
        return {
            "GOARCH": self.goarch,
            "GOARM": self.goarm or "",
            "GNU_TRIPLE": self.gnu_triple,
            "DEBIAN_ARCH": self.debian_arch,
            "RUST_TARGET": self.rust_target,
            "MUSL_TRIPLE": self.musl_triple,
            "ZIG_TARGET": self.zig_target,
            "MESON_CPU_FAMILY": self.meson_cpu_family,
            "MESON_CPU": self.meson_cpu,
            "ENDIAN": "little" if self.little_endian else "big",
        }

    @property
    def os(self) -> str:
        return self.name.split("/")[0]

    @property
    def oci_platform(self) -> dict[str, str]:
        """The OCI image-index platform object; `variant` only when the platform has one."""
        fields = {"os": self.os, "architecture": self.architecture}
        return fields | ({"variant": self.variant} if self.variant else {})

    @property
    def tag_suffix(self) -> str:
        """Short name used in image tags: `arm64`, `armv7`."""
        return self.architecture + (self.variant or "")

    @property
    def slug(self) -> str:
        """A filesystem-safe form of the platform name, for directories and CI job ids: `linux-arm-v7`."""
        return self.name.replace("/", "-")


def platform_name(oci_platform: Mapping[str, object]) -> str:
    """The `os/architecture[/variant]` name of an OCI platform object (e.g. from an image index)."""
    parts = (oci_platform.get("os"), oci_platform.get("architecture"), oci_platform.get("variant"))
    return "/".join(str(part) for part in parts if part)


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            name="linux/amd64",
            architecture="amd64",
            variant=None,
            uname_machines=("x86_64", "amd64"),
            goarch="amd64",
            goarm=None,
            gnu_triple="x86_64-linux-gnu",
            debian_arch="amd64",
            rust_target="x86_64-unknown-linux-gnu",
            musl_triple="x86_64-linux-musl",
            zig_target="x86_64-linux-musl",
            meson_cpu_family="x86_64",
            meson_cpu="x86_64",
            elf_machine=EM_X86_64,
            elf_machine_name="x86-64",
            elf_class=64,
            little_endian=True,
            probe_code=bytes.fromhex(
                "b83c000000"  # mov eax, 60      (exit)
                "bf2a000000"  # mov edi, 42
                "0f05"  # syscall
            ),
            qemu="x86_64",
        ),
        Platform(
            name="linux/arm64",
            architecture="arm64",
            variant=None,
            uname_machines=("aarch64", "arm64"),
            goarch="arm64",
            goarm=None,
            gnu_triple="aarch64-linux-gnu",
            debian_arch="arm64",
            rust_target="aarch64-unknown-linux-gnu",
            musl_triple="aarch64-linux-musl",
            zig_target="aarch64-linux-musl",
            meson_cpu_family="aarch64",
            meson_cpu="aarch64",
            elf_machine=EM_AARCH64,
            elf_machine_name="AArch64",
            elf_class=64,
            little_endian=True,
            probe_code=_words(
                0xD2800BA8,  # mov x8, #93      (movz; exit)
                0xD2800540,  # mov x0, #42
                0xD4000001,  # svc #0
            ),
            qemu="aarch64",
        ),
        Platform(
            name="linux/arm/v7",
            architecture="arm",
            variant="v7",
            uname_machines=("armv7l",),
            goarch="arm",
            goarm="7",
            gnu_triple="arm-linux-gnueabihf",
            debian_arch="armhf",
            rust_target="armv7-unknown-linux-gnueabihf",
            musl_triple="arm-linux-musleabihf",
            zig_target="arm-linux-musleabihf",
            meson_cpu_family="arm",
            meson_cpu="arm7hlf",
            elf_machine=EM_ARM,
            elf_machine_name="ARM",
            elf_class=32,
            little_endian=True,
            elf_flags=0x05000400,  # EABI version 5, hard-float (EF_ARM_ABI_FLOAT_HARD); Go sets no float flag
            flag_rules=(
                FlagRule(
                    finding="arch.arm-eabi",
                    mask=0xFF000000,  # EF_ARM_EABIMASK
                    allowed=(0x05000000,),  # EF_ARM_EABI_VER5
                    message="ARM EABI version {value} in e_flags, Linux needs version 5 "
                    "— build with an arm-linux-gnueabi or arm-linux-gnueabihf toolchain",
                ),
                FlagRule(  # armhf is the hard-float EABI
                    finding="arch.arm-float",
                    mask=0x200,  # EF_ARM_ABI_FLOAT_SOFT
                    allowed=(0,),
                    message="soft-float ABI (e_flags {flags:#x}), {platform.name} is hard-float "
                    "— build with {platform.gnu_triple}-gcc, not -mfloat-abi=soft",
                ),
            ),
            arm_min_arch=10,
            probe_code=_words(  # ARM (A32) state, EABI: syscall number in r7
                0xE3A07001,  # mov r7, #1       (exit)
                0xE3A0002A,  # mov r0, #42
                0xEF000000,  # svc #0
            ),
            qemu="arm",
        ),
        Platform(
            name="linux/riscv64",
            architecture="riscv64",
            variant=None,
            uname_machines=("riscv64",),
            goarch="riscv64",
            goarm=None,
            gnu_triple="riscv64-linux-gnu",
            debian_arch="riscv64",
            rust_target="riscv64gc-unknown-linux-gnu",
            musl_triple="riscv64-linux-musl",
            zig_target="riscv64-linux-musl",
            meson_cpu_family="riscv64",
            meson_cpu="riscv64",
            elf_machine=EM_RISCV,
            elf_machine_name="RISC-V",
            elf_class=64,
            little_endian=True,
            elf_flags=0x4,  # EF_RISCV_FLOAT_ABI_DOUBLE (lp64d), no RVC
            flag_rules=(
                FlagRule(  # Linux distributions' riscv64 C ABI is lp64d
                    finding="arch.riscv-float-abi",
                    mask=0x6,  # EF_RISCV_FLOAT_ABI
                    allowed=(0x4,),  # EF_RISCV_FLOAT_ABI_DOUBLE
                    message="{value_name} ABI (e_flags {flags:#x}), {platform.name} needs the double-float "
                    "ABI (lp64d) — build with -mabi=lp64d",
                    value_names={0x0: "soft-float", 0x2: "single-float", 0x6: "quad-float"},
                    exempt_languages=("go",),
                ),
            ),
            probe_code=_words(  # uncompressed RV64I only
                0x05D00893,  # li a7, 93        (addi a7, zero, 93; exit)
                0x02A00513,  # li a0, 42        (addi a0, zero, 42)
                0x00000073,  # ecall
            ),
            qemu="riscv64",
        ),
        Platform(
            name="linux/386",
            architecture="386",
            variant=None,
            uname_machines=("i686", "i386"),
            goarch="386",
            goarm=None,
            gnu_triple="i686-linux-gnu",
            debian_arch="i386",
            rust_target="i686-unknown-linux-gnu",
            musl_triple="i386-linux-musl",
            zig_target="x86-linux-musl",
            meson_cpu_family="x86",
            meson_cpu="i686",
            elf_machine=EM_386,
            elf_machine_name="Intel 80386",
            elf_class=32,
            little_endian=True,
            probe_code=bytes.fromhex(
                "b801000000"  # mov eax, 1       (exit)
                "bb2a000000"  # mov ebx, 42
                "cd80"  # int 0x80
            ),
            qemu="i386",
            native_on=("linux/amd64",),
            native_fix="enable the kernel's IA32 emulation (CONFIG_IA32_EMULATION, ia32_emulation=1)",
        ),
        Platform(
            name="linux/ppc64le",
            architecture="ppc64le",
            variant=None,
            uname_machines=("ppc64le",),
            goarch="ppc64le",
            goarm=None,
            gnu_triple="powerpc64le-linux-gnu",
            debian_arch="ppc64el",
            rust_target="powerpc64le-unknown-linux-gnu",
            musl_triple="powerpc64le-linux-musl",
            zig_target="powerpc64le-linux-musl",
            meson_cpu_family="ppc64",
            meson_cpu="ppc64",
            elf_machine=EM_PPC64,
            elf_machine_name="PowerPC64",
            elf_class=64,
            little_endian=True,
            elf_flags=0x2,  # ELFv2 ABI (Go writes 2 too)
            flag_rules=(
                FlagRule(
                    finding="arch.ppc64-abi",
                    mask=0x3,  # EF_PPC64_ABI
                    allowed=(0x0, 0x2),  # unspecified, ELFv2
                    message="PowerPC64 ELF ABI version {value} in e_flags, {platform.name} needs ELFv2 "
                    "— build with {platform.gnu_triple}-gcc",
                ),
            ),
            probe_code=_words(  # ELFv2 enters at the code itself (no function descriptor)
                0x38000001,  # li r0, 1         (addi r0, 0, 1; exit)
                0x3860002A,  # li r3, 42        (addi r3, 0, 42)
                0x44000002,  # sc
            ),
            qemu="ppc64le",
        ),
        Platform(
            name="linux/s390x",
            architecture="s390x",
            variant=None,
            uname_machines=("s390x",),
            goarch="s390x",
            goarm=None,
            gnu_triple="s390x-linux-gnu",
            debian_arch="s390x",
            rust_target="s390x-unknown-linux-gnu",
            musl_triple="s390x-linux-musl",
            zig_target="s390x-linux-musl",
            meson_cpu_family="s390x",
            meson_cpu="s390x",
            elf_machine=EM_S390,
            elf_machine_name="IBM S/390",
            elf_class=64,
            little_endian=False,
            probe_code=bytes.fromhex(  # big-endian
                "a729002a"  # lghi %r2, 42
                "0a01"  # svc 1            (exit; numbers below 256 go in the instruction)
            ),
            qemu="s390x",
        ),
    )
}


def host_platform() -> Platform | None:
    """The platform this machine runs natively, or None when it is not in the table."""
    import platform as stdlib_platform

    machine = stdlib_platform.machine().lower()
    return next((p for p in PLATFORMS.values() if machine in p.uname_machines), None)


def is_emulated(platform: Platform) -> bool:
    """True when running this platform's binaries here needs qemu-user."""
    host = host_platform()
    if host is None:
        return True
    return platform.name != host.name and host.name not in platform.native_on
