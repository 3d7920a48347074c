"""One binary as the checks see it: everything read from the file once, before any check runs.

The checks do no I/O, so an exception in one is a bug in it (`verify.internal`), never a malformed file:
malformed input raises an ElfReadError here, which becomes its `elf.*` finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.segments import Segment

from orchestrator.elf.facts import Dynamic, ElfFacts, elf_facts, read_dynamic
from orchestrator.elf.load import MAX_FILE_SIZE, load_elf
from orchestrator.elf.scan import Contents, read_notes, scan_contents
from orchestrator.languages import Language, language_of


@dataclass(frozen=True, kw_only=True)
class ElfContext:
    """Everything the checks use: the file's facts, its dynamic section, its language and its contents,
    each computed once."""

    facts: ElfFacts
    entry: int  # e_entry
    segments: tuple[Segment, ...]
    dynamic: Dynamic
    language: Language
    contents: Contents | None  # None: not scanned (file over the size limit)


def read_context(path: Path, limit: int = MAX_FILE_SIZE) -> ElfContext:
    """The context of one file; its contents are scanned only when it is at most `limit` bytes.
    Raises an ElfReadError (NotAnElf, CorruptElf, ...) for a file that cannot be read as ELF."""
    with load_elf(path) as binary:
        dynamic = read_dynamic(binary)
        facts = elf_facts(binary, dynamic)
        notes = read_notes(binary.elf, binary.read)
        contents = scan_contents(binary.elf, binary.read, notes) if facts.size <= limit else None
        return ElfContext(
            facts=facts,
            entry=binary.elf["e_entry"],
            segments=binary.segments,
            dynamic=dynamic,
            language=language_of(binary, facts, notes, contents=contents),
            contents=contents,
        )
