"""The documentation holds together: every relative link in README.md and docs/*.md names a file of the
repository, every `#anchor` a heading of the page it points to (as GitHub makes anchors), and
docs/index.md lists every page, so that moving a section never leaves a reader at a dead link."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.verify.findings import heading_anchor
from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
PAGES = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# A fenced code block: its closing fence is the opening's run of backticks or tildes alone on its line (a
# "```toml" line inside a block does not close it).
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
# [text](target) or ![alt](target); the text may hold one level of brackets (`[[smoke]]`).
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(([^()\s]+)\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose(page: Path) -> str:
    """The page without its code blocks, and its code spans as plain words: what a reader can click."""
    text = FENCE.sub("", page.read_text())
    return CODE_SPAN.sub(lambda match: match.group(0).strip("`").replace("[", "").replace("]", ""), text)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings; a repeated heading gets `-1`, `-2`, ..."""
    seen: Counter[str] = Counter()
    result = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        anchor = heading_anchor(heading.strip())
        result.add(anchor if not seen[anchor] else f"{anchor}-{seen[anchor]}")
        seen[anchor] += 1
    return result


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page)) if not EXTERNAL.match(target)]


def test_the_pages_have_links() -> None:
    """The patterns find links at all (a broken pattern would make every other test pass)."""
    assert "docs/index.md" in links(REPO_ROOT / "README.md")
    assert "findings.md#linkagedynamic" in links(DOCS / "tutorial.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(REPO_ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor in {resolved.relative_to(REPO_ROOT)}")
    assert not broken, f"{page.relative_to(REPO_ROOT)}: " + "; ".join(broken)


def test_the_index_lists_every_page() -> None:
    listed = {target.partition("#")[0] for target in links(DOCS / "index.md")}
    assert {page.name for page in DOCS.glob("*.md")} - {"index.md"} <= listed


def test_anchors_are_made_as_github_makes_them() -> None:
    page = DOCS / "recipes.md"
    assert {"build-required", "locks-exact-package-versions", "platform-placeholders"} <= anchors(page)
