"""Rust: built by cargo/rustc with `+crt-static` against glibc, per-architecture std from Debian.

(Being written: recognition, SBOM from Cargo.lock.)
"""

from __future__ import annotations

from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages.c import CLanguage
from orchestrator.platforms import Platform


class RustLanguage(CLanguage):
    name = "rust"

    def build_env(self, cache_dir: str, target_cache: str) -> dict[str, str]:
        return {}

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        return False

    def cross_compiler(self, platform: Platform) -> str:
        return f"cargo --target {platform.rust_target}"


RUST = RustLanguage()
