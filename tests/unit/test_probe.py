"""The hand-assembled probes: each is a static program the verifier accepts as its platform's, and
run_probe reports what happened without raising."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from orchestrator.elf.facts import Linkage, identify_platform, read_elf_facts
from orchestrator.host import probe
from orchestrator.platforms import EM_ARM, EM_PPC64, EM_RISCV, PLATFORMS, Platform
from orchestrator.verify.policy import verify_binary

ALL = list(PLATFORMS.values())
EXPECTED_FLAGS = {EM_ARM: 0x05000400, EM_RISCV: 0x4, EM_PPC64: 0x2}
AMD64 = PLATFORMS["linux/amd64"]


def write_probe(tmp_path: Path, platform: Platform) -> Path:
    path = tmp_path / f"probe-{platform.slug}"
    path.write_bytes(probe.probe_binary(platform))
    return path


@pytest.mark.parametrize("platform", ALL, ids=lambda p: p.name)
def test_probe_passes_verify_for_its_platform(tmp_path: Path, platform: Platform) -> None:
    verdict = verify_binary(write_probe(tmp_path, platform), platform)
    assert verdict.ok, verdict.findings
    assert verdict.facts is not None
    assert verdict.facts.linkage is Linkage.STATIC
    assert verdict.facts.platform == platform.name


@pytest.mark.parametrize("platform", ALL, ids=lambda p: p.name)
def test_probe_header_says_the_platform(tmp_path: Path, platform: Platform) -> None:
    facts = read_elf_facts(write_probe(tmp_path, platform))
    assert (facts.elf_class, facts.little_endian, facts.machine) == (
        platform.elf_class,
        platform.little_endian,
        platform.elf_machine,
    )
    assert facts.flags == EXPECTED_FLAGS.get(platform.elf_machine, 0)
    assert facts.interpreter is None
    assert facts.needed == ()
    assert identify_platform(facts.machine, facts.elf_class, facts.little_endian, facts.arm_cpu_arch) == (
        platform.name
    )


@pytest.mark.parametrize("platform", ALL, ids=lambda p: p.name)
def test_probe_is_tiny_and_maps_itself_read_execute(platform: Platform) -> None:
    data = probe.probe_binary(platform)
    assert len(data) < 512
    order = "<" if platform.little_endian else ">"
    if platform.elf_class == 64:
        (entry,) = struct.unpack_from(f"{order}Q", data, 24)
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(f"{order}IIQQQQ", data, 64)
    else:
        (entry,) = struct.unpack_from(f"{order}I", data, 24)
        p_type, p_offset, p_vaddr, _, p_filesz, _, p_flags = struct.unpack_from(f"{order}7I", data, 52)
    assert (p_type, p_flags, p_offset, p_vaddr, p_filesz) == (1, 0x5, 0, probe.LOAD_ADDRESS, len(data))
    assert p_vaddr < entry < p_vaddr + p_filesz
    assert entry % 4 == 0


def test_run_probe_native_exits_42() -> None:
    assert probe.run_probe(AMD64) == probe.ProbeResult(ok=True, exit_code=42, detail="probe exited 42")


@pytest.mark.parametrize(
    ("content", "exit_code", "detail"),
    [
        (b"\0\1\2\3 not a program", None, "exec format error: the kernel has no handler for it"),
        (b"#!/bin/sh\nexit 3\n", 3, "the probe exited 3, expected 42"),
        (b"#!/bin/sh\necho qemu: boom >&2; exit 1\n", 1, "the probe exited 1, expected 42: qemu: boom"),
        (b"#!/bin/sh\nkill -SEGV $$\n", -11, "the probe was killed by SIGSEGV"),
        (b"#!/bin/sh\nexec sleep 5\n", None, "the probe hung for 0.3 s"),
        (
            b"#!/nonexistent/interpreter\n",
            None,
            "no such file or directory: the handler's interpreter is missing",
        ),
    ],
)
def test_run_probe_reports_failures_without_raising(
    monkeypatch: pytest.MonkeyPatch, content: bytes, exit_code: int | None, detail: str
) -> None:
    monkeypatch.setattr(probe, "probe_binary", lambda platform: content)
    result = probe.run_probe(AMD64, timeout=0.3)
    assert result == probe.ProbeResult(ok=False, exit_code=exit_code, detail=detail)
