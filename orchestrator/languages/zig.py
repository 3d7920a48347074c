"""Zig: `zig build-exe` and `zig cc`, static musl for every platform.

(Being written: recognition.)
"""

from __future__ import annotations

from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages.c import CLanguage
from orchestrator.platforms import Platform


class ZigLanguage(CLanguage):
    name = "zig"

    def build_env(self, cache_dir: str, target_cache: str) -> dict[str, str]:
        return {}

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        return False

    def cross_compiler(self, platform: Platform) -> str:
        return f"zig -target {platform.zig_target}"


ZIG = ZigLanguage()
