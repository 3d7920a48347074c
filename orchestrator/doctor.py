"""`osless doctor`: is this machine ready, and if not, the command that fixes each missing piece."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

from orchestrator import binfmt
from orchestrator.engine import ENGINE_HINT, Engine
from orchestrator.errors import EngineError
from orchestrator.platforms import PLATFORMS, is_emulated


@dataclass(frozen=True, kw_only=True)
class Check:
    """One readiness check: what was checked, whether it holds, and the fix when it does not."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def checks() -> Iterator[Check]:
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
        if not is_emulated(platform):
            yield Check(name=f"run {platform.name}", ok=True, detail="native")
            continue
        problem = binfmt.problem(platform)
        handler = binfmt.read_handler(f"qemu-{platform.qemu}")
        detail = f"qemu-{platform.qemu} via binfmt_misc (flags {handler.flags})" if handler else ""
        yield Check(
            name=f"run {platform.name}",
            ok=problem is None,
            detail=problem.message if problem else detail,
            fix=problem.fix if problem else None,
        )


def _engine_check() -> Check:
    try:
        engine = Engine.connect()
    except EngineError as error:
        return Check(name="docker engine", ok=False, detail=error.message, fix=ENGINE_HINT)
    return Check(name="docker engine", ok=True, detail=f"Docker Engine {engine.version}")
