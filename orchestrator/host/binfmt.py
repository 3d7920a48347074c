"""What the kernel's binfmt_misc says about running foreign binaries through qemu-user.

A handler must carry the fix-binary (F) flag: the kernel then opens the interpreter when the handler is
registered, so it works inside containers whose root filesystem (scratch) has no qemu at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.platforms import Platform

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
FIX_COMMAND = "sudo scripts/setup-host  (installs qemu-user-static, mounts binfmt_misc, registers handlers)"


@dataclass(frozen=True, kw_only=True)
class Handler:
    """One registered binfmt_misc handler, as the kernel reports it."""

    name: str
    enabled: bool
    interpreter: str
    flags: str


def read_handler(name: str, binfmt_dir: Path = BINFMT_DIR) -> Handler | None:
    """The handler registered under this name, or None."""
    path = binfmt_dir / name
    try:
        text = path.read_text()
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    return Handler(
        name=name,
        enabled="enabled" in fields,
        interpreter=fields.get("interpreter", ""),
        flags=fields.get("flags:", ""),
    )


@dataclass(frozen=True, kw_only=True)
class Problem:
    """Why foreign binaries cannot run, and the command that fixes it."""

    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message} — fix: {self.fix}"


def problem(platform: Platform, binfmt_dir: Path = BINFMT_DIR) -> Problem | None:
    """Why this platform's binaries cannot run here under emulation, or None when they can."""
    name = f"qemu-{platform.qemu}"
    if not (binfmt_dir / "register").exists():
        return Problem(message=f"binfmt_misc is not mounted at {binfmt_dir}", fix=FIX_COMMAND)
    handler = read_handler(name, binfmt_dir)
    if handler is None:
        return Problem(message=f"no binfmt_misc handler {name} is registered", fix=FIX_COMMAND)
    if not handler.enabled:
        return Problem(
            message=f"the binfmt_misc handler {name} is disabled", fix=f"echo 1 > {binfmt_dir / name}"
        )
    if "F" not in handler.flags:
        return Problem(
            message=f"the handler {name} lacks the fix-binary (F) flag, so it cannot work in a scratch "
            "container",
            fix=f"echo -1 > {binfmt_dir / name}; {FIX_COMMAND}",
        )
    if not Path(handler.interpreter).exists():
        return Problem(
            message=f"the interpreter {handler.interpreter} is missing",
            fix="apt-get install qemu-user-static",
        )
    return None
