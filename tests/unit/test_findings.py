"""The registry of finding ids: the ids the code names, FINDING_IDS and docs/findings.md are the same list,
and a finding with an id outside it cannot be made."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest

from orchestrator.elf.load import ElfReadError
from orchestrator.image.extras import EXTRAS
from orchestrator.platforms import PLATFORMS
from orchestrator.verify.findings import (
    FINDING_IDS,
    FINDINGS_DOC,
    Finding,
    Severity,
    doc_link,
    error,
    heading_anchor,
    info,
    warning,
)
from tests.conftest import REPO_ROOT

DOC = (REPO_ROOT / FINDINGS_DOC).read_text()
# A finding id as the code writes it: the first argument of error/warning/info, a FlagRule's `finding`,
# an ElfReadError's `finding_id`, a `*_FINDING` constant. (needs.<extra> ids are made from EXTRAS.)
CODE_ID = re.compile(
    r'(?:\b(?:error|warning|info)\(\s*|\bfinding(?:_id)?\s*=\s*|_FINDING\s*=\s*)"([a-z0-9-]+\.[a-z0-9.-]+)"'
)


def headings(level: int) -> list[str]:
    return re.findall(rf"^{'#' * level} (.+)$", DOC, flags=re.MULTILINE)


def ids_in_code() -> set[str]:
    return {
        match.group(1)
        for path in (REPO_ROOT / "orchestrator").rglob("*.py")
        for match in CODE_ID.finditer(path.read_text())
    }


def test_docs_have_one_section_per_registered_id() -> None:
    ids = headings(3)
    assert len(ids) == len(set(ids)), "an id documented twice"
    assert set(ids) == FINDING_IDS


def test_every_id_the_code_names_is_registered_and_every_registered_id_is_named() -> None:
    needs = {extra.finding for extra in EXTRAS.values()}
    assert ids_in_code() | needs == FINDING_IDS


def test_ids_made_elsewhere_are_registered() -> None:
    """Ids that live beside what they are about: the platforms' e_flags rules, unreadable files."""
    rules = {rule.finding for platform in PLATFORMS.values() for rule in platform.flag_rules}
    unreadable = set()
    pending = [ElfReadError]
    while pending:
        kind = pending.pop()
        unreadable.add(kind.finding_id)
        pending += kind.__subclasses__()
    assert rules | unreadable <= FINDING_IDS
    assert {"elf.not-elf", "elf.corrupt", "elf.unreadable", "elf.not-regular"} <= unreadable


@pytest.mark.parametrize("make", [error, warning, info])
def test_an_unregistered_id_is_refused(make: Callable[[str, str], Finding]) -> None:
    with pytest.raises(ValueError, match=r"'linkage\.dinamic' is not in FINDING_IDS"):
        make("linkage.dinamic", "a typo")


def test_a_finding_made_or_changed_directly_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"'needs\.ssh'"):
        Finding(id="needs.ssh", severity=Severity.WARNING, message="no such extra")
    with pytest.raises(ValueError, match=r"'elf\.oops'"):
        dataclasses.replace(info("elf.size", "1 byte"), id="elf.oops")


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("linkage.dynamic", "linkagedynamic"),
        ("needs.ca-certificates", "needsca-certificates"),
        ("hardening.nx-stack", "hardeningnx-stack"),
        ("Allowing a finding: the recipe's policy", "allowing-a-finding-the-recipes-policy"),
        ("`[verify]` (optional): the verification policy", "verify-optional-the-verification-policy"),
    ],
)
def test_anchors_are_githubs(heading: str, anchor: str) -> None:
    assert heading_anchor(heading) == anchor


def test_every_link_into_the_doc_finds_its_heading() -> None:
    """The output's links (doc_link) and the doc's own `(#anchor)` links: each names one heading."""
    anchors = [heading_anchor(text) for level in (1, 2, 3) for text in headings(level)]
    assert len(anchors) == len(set(anchors)), "two headings with one anchor"
    linked = {doc_link(finding_id).partition("#")[2] for finding_id in FINDING_IDS}
    linked |= set(re.findall(r"\]\(#([^)]+)\)", DOC))
    assert linked <= set(anchors)
