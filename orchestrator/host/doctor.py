"""`osless doctor`: is this machine ready, and if not, the command that fixes each missing piece."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.engine import ENGINE_HINT, Engine
from orchestrator.errors import EngineError
from orchestrator.host import binfmt, probe
from orchestrator.platforms import PLATFORMS, Platform, is_emulated

# A handler that looks right but cannot run the probe: its interpreter is broken.
REINSTALL_QEMU = "apt-get install --reinstall qemu-user-static"


@dataclass(frozen=True, kw_only=True)
class Check:
    """One readiness check: what was checked, whether it holds, and the fix when it does not."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def checks(binfmt_dir: Path = binfmt.BINFMT_DIR) -> Iterator[Check]:
    """Every check, in the order a user would fix them."""
    yield _engine_check()
    mmdebstrap = shutil.which("mmdebstrap")
    yield Check(
        name="mmdebstrap",
        ok=mmdebstrap is not None,
        detail=mmdebstrap or "not installed (needed to bootstrap toolchain images)",
        fix=None if mmdebstrap else "apt-get install mmdebstrap",
    )
    for platform in PLATFORMS.values():
        yield _platform_check(platform, binfmt_dir)


def _platform_check(platform: Platform, binfmt_dir: Path) -> Check:
    """binfmt_misc mounted, an enabled F-flag handler with its interpreter (emulated only), and the probe
    really running: the first that fails is the one to fix."""
    name = f"run {platform.name}"
    via = "native"
    if is_emulated(platform):
        problem = binfmt.problem(platform, binfmt_dir)
        if problem:
            return Check(name=name, ok=False, detail=problem.message, fix=problem.fix)
        handler = binfmt.read_handler(f"qemu-{platform.qemu}", binfmt_dir)
        via = f"qemu-{platform.qemu} via binfmt_misc (flags {handler.flags if handler else '?'})"
    result = probe.run_probe(platform)
    if result.ok:
        return Check(name=name, ok=True, detail=f"{via}, {result.detail}")
    fix = REINSTALL_QEMU if is_emulated(platform) else platform.native_fix
    return Check(name=name, ok=False, detail=f"{via}, but {result.detail}", fix=fix)


def _engine_check() -> Check:
    try:
        engine = Engine.connect()
    except EngineError as error:
        return Check(name="docker engine", ok=False, detail=error.message, fix=ENGINE_HINT)
    return Check(name="docker engine", ok=True, detail=f"Docker Engine {engine.version}")
