"""The one table of target platforms: adding a platform is adding one entry to PLATFORMS.

Each entry carries everything a stage needs to know about a platform: how Go and Debian's cross
compilers name it, what its ELF header must say, how OCI names it, and which qemu-user runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

# ELF e_machine values (elf.h).
EM_386 = 3
EM_S390 = 22
EM_PPC64 = 21
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243


@dataclass(frozen=True, kw_only=True)
class Platform:
    """A target platform: `os/arch[/variant]` as OCI and Docker spell it."""

    name: str
    architecture: str  # OCI/Go architecture, e.g. "arm"
    variant: str | None
    goarch: str
    goarm: str | None
    gnu_triple: str  # Debian cross compiler prefix, e.g. "aarch64-linux-gnu"
    debian_arch: str  # Debian architecture, e.g. "armhf" (libc6-dev-<arch>-cross)
    elf_machine: int
    elf_machine_name: str  # as people know it, for messages
    elf_class: int  # 32 or 64
    little_endian: bool
    qemu: str  # qemu-user binary suffix, e.g. "aarch64" for qemu-aarch64
    arm_min_arch: int | None = None  # .ARM.attributes Tag_CPU_arch lower bound (10 = v7)

    @property
    def tag_suffix(self) -> str:
        """Short name used in image tags and directory names: `arm64`, `armv7`."""
        return self.architecture + (self.variant or "")

    @property
    def slug(self) -> str:
        """A filesystem-safe form of the platform name: `linux-arm-v7`."""
        return self.name.replace("/", "-")


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            name="linux/amd64",
            architecture="amd64",
            variant=None,
            goarch="amd64",
            goarm=None,
            gnu_triple="x86_64-linux-gnu",
            debian_arch="amd64",
            elf_machine=EM_X86_64,
            elf_machine_name="x86-64",
            elf_class=64,
            little_endian=True,
            qemu="x86_64",
        ),
        Platform(
            name="linux/arm64",
            architecture="arm64",
            variant=None,
            goarch="arm64",
            goarm=None,
            gnu_triple="aarch64-linux-gnu",
            debian_arch="arm64",
            elf_machine=EM_AARCH64,
            elf_machine_name="AArch64",
            elf_class=64,
            little_endian=True,
            qemu="aarch64",
        ),
        Platform(
            name="linux/arm/v7",
            architecture="arm",
            variant="v7",
            goarch="arm",
            goarm="7",
            gnu_triple="arm-linux-gnueabihf",
            debian_arch="armhf",
            elf_machine=EM_ARM,
            elf_machine_name="ARM",
            elf_class=32,
            little_endian=True,
            qemu="arm",
            arm_min_arch=10,
        ),
        Platform(
            name="linux/riscv64",
            architecture="riscv64",
            variant=None,
            goarch="riscv64",
            goarm=None,
            gnu_triple="riscv64-linux-gnu",
            debian_arch="riscv64",
            elf_machine=EM_RISCV,
            elf_machine_name="RISC-V",
            elf_class=64,
            little_endian=True,
            qemu="riscv64",
        ),
        Platform(
            name="linux/386",
            architecture="386",
            variant=None,
            goarch="386",
            goarm=None,
            gnu_triple="i686-linux-gnu",
            debian_arch="i386",
            elf_machine=EM_386,
            elf_machine_name="Intel 80386",
            elf_class=32,
            little_endian=True,
            qemu="i386",
        ),
        Platform(
            name="linux/ppc64le",
            architecture="ppc64le",
            variant=None,
            goarch="ppc64le",
            goarm=None,
            gnu_triple="powerpc64le-linux-gnu",
            debian_arch="ppc64el",
            elf_machine=EM_PPC64,
            elf_machine_name="PowerPC64",
            elf_class=64,
            little_endian=True,
            qemu="ppc64le",
        ),
        Platform(
            name="linux/s390x",
            architecture="s390x",
            variant=None,
            goarch="s390x",
            goarm=None,
            gnu_triple="s390x-linux-gnu",
            debian_arch="s390x",
            elf_machine=EM_S390,
            elf_machine_name="IBM S/390",
            elf_class=64,
            little_endian=False,
            qemu="s390x",
        ),
    )
}


def host_platform() -> Platform | None:
    """The platform this machine runs natively, or None when it is not in the table."""
    import platform as stdlib_platform

    machine = stdlib_platform.machine().lower()
    by_uname = {
        "x86_64": "linux/amd64",
        "amd64": "linux/amd64",
        "aarch64": "linux/arm64",
        "arm64": "linux/arm64",
        "armv7l": "linux/arm/v7",
        "riscv64": "linux/riscv64",
        "i686": "linux/386",
        "i386": "linux/386",
        "ppc64le": "linux/ppc64le",
        "s390x": "linux/s390x",
    }
    name = by_uname.get(machine)
    return PLATFORMS[name] if name else None


def is_emulated(platform: Platform) -> bool:
    """True when running this platform's binaries here needs qemu-user."""
    host = host_platform()
    if host is None:
        return True
    # An amd64 host runs 386 binaries natively.
    native = {host.name} | ({"linux/386"} if host.name == "linux/amd64" else set())
    return platform.name not in native
