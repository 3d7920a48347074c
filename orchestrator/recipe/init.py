"""`osless init`'s recipes: a service recipe for a source directory, from what its language proposes.

Every language of the registry looks at the directory (languages.build_proposals); each proposal names
the toolchain that builds it and the libraries it needs from it. The toolchain chosen is that one or
one of the project's toolchains that extends it and installs those libraries (gcc-sodium for a
CMakeLists that asks pkg-config for libsodium); among several proposals, one whose toolchain has all it
needs wins, then the most specific evidence (a build system over loose files), then the registry's
order. The recipe builds for every platform of that toolchain (`platforms = ["all"]`), and says in
comments why each value is what it is and what the user should check.

A toolchain the project lacks but osless ships (gcc, go, rust, zig in the checkout's recipes/toolchains/)
is available too: the plan then names the shipped recipe, which `osless init` copies into the project.
The copy differs only in its `#:schema` line (pointing at the project's recipes/.schema/): comments do
not enter the spec hash, so its image tag is the shipped one's and an image made for it is reused.
"""

from __future__ import annotations

import functools
import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orchestrator
from orchestrator.errors import UsageError
from orchestrator.languages import LANGUAGES, build_proposals
from orchestrator.languages.proposals import SMOKE_TIMEOUT, BuildProposal, LibraryNeed
from orchestrator.recipe.convert import Invalid, as_name, valid_repository
from orchestrator.recipe.jsonschema import PROJECT_SCHEMAS, directive
from orchestrator.recipe.loader import load_toolchains
from orchestrator.recipe.model import ALL_PLATFORMS, Toolchain

SCHEMA_LINE = directive("service")
TOOLCHAINS = Path("recipes") / "toolchains"  # a project's toolchain recipes, and osless's own
# The checkout osless runs from (scripts/setup-host installs it editable): its toolchain recipes.
OSLESS_CHECKOUT = Path(orchestrator.__file__).resolve().parents[1]
IMAGE_USER = "65534:65534"  # nobody: what every shipped recipe runs as
WIDTH = 100  # comment lines are wrapped at this many columns


@dataclass(frozen=True, kw_only=True)
class InitPlan:
    """A new service recipe, decided: what it builds, how, and with which toolchain."""

    name: str
    source: str  # relative to the project root, with `/`
    proposal: BuildProposal
    toolchain: Toolchain
    unmet: tuple[LibraryNeed, ...]  # what the build needs that the toolchain does not install
    others: tuple[BuildProposal, ...]  # what other languages proposed, for a note
    shipped: bool  # the toolchain is osless's, absent from the project: its recipe is to be copied


def service_name(directory: Path) -> str:
    """The service name made from a directory's name: lower case, runs of other characters as one
    `-`, no separator at either end; a name that cannot be made is an error asking for --name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", directory.name.lower())
    name = re.sub(r"[._-]{2,}", "-", name).strip("._-")
    check_name(name, f"made from the directory name {directory.name!r}")
    return name


def check_name(name: str, what: str) -> None:
    """A service name must be a recipe name and, naming the image, a valid repository."""
    try:
        as_name(name)
    except Invalid:
        valid = False
    else:
        valid = valid_repository(name)
    if not valid:
        raise UsageError(
            f"{name!r} ({what}) is not a valid service name",
            hint="give one with --name: lower-case letters, digits and single '-', '.' or '_' inside",
        )


def plan_service(root: Path, source: Path, name: str, toolchains: Mapping[str, Toolchain]) -> InitPlan:
    """The recipe for the source directory `source` (inside `root`) as the service `name`, built with
    one of the project's `toolchains` or, for a toolchain the project lacks, with osless's own."""
    shown = source.relative_to(root).as_posix()
    proposals = build_proposals(source, root, name)
    if not proposals:
        raise UsageError(
            f"{shown}: no build file or source of a language osless knows ({_listing(source)})",
            hint="osless init knows the build files and sources of "
            f"{', '.join(language.name for language in LANGUAGES)}; write the recipe by hand "
            "(docs/recipes.md)",
        )
    lacking = {proposal.toolchain for proposal in proposals} - set(toolchains)
    shipped = {n: t for n, t in shipped_toolchains().items() if n in lacking} if lacking else {}
    available = {**shipped, **toolchains}
    choices = [(proposal, *_toolchain_for(proposal, available)) for proposal in proposals]
    usable = [(p, t, unmet) for p, t, unmet in choices if t is not None]
    if not usable:
        wanted = sorted({proposal.toolchain for proposal in proposals})
        raise UsageError(
            f"{shown}: {_what(proposals[0])} builds with the {' or '.join(wanted)} toolchain, which "
            f"neither the project's {TOOLCHAINS.as_posix()}/ nor osless's defines",
            hint=f"write {', '.join(f'{TOOLCHAINS.as_posix()}/{n}.toml' for n in wanted)} (docs/recipes.md)",
        )
    ranked = sorted(
        range(len(usable)), key=lambda index: (len(usable[index][2]), -usable[index][0].rank, index)
    )
    proposal, toolchain, unmet = usable[ranked[0]]
    assert toolchain is not None  # usable: every toolchain found
    return InitPlan(
        name=name,
        source=shown or ".",
        proposal=proposal,
        toolchain=toolchain,
        unmet=unmet,
        others=tuple(p for p in proposals if p is not proposal),
        shipped=toolchain.name in shipped,
    )


@functools.cache
def shipped_toolchains(checkout: Path = OSLESS_CHECKOUT) -> dict[str, Toolchain]:
    """The toolchains osless ships, in `checkout`'s recipes/toolchains/; an error saying how to get them
    when osless does not run from its checkout."""
    if not (checkout / TOOLCHAINS).is_dir():
        raise UsageError(
            f"osless's toolchain recipes are not at {checkout / TOOLCHAINS}: osless init copies the "
            "toolchain a new service needs from there",
            hint="install osless from a clone of its repository (scripts/setup-host installs it "
            f"editable), or copy the toolchain's recipe from that repository's {TOOLCHAINS.as_posix()}/ "
            "into the project",
        )
    return load_toolchains(checkout)


def toolchain_copy(toolchain: Toolchain) -> str:
    """A shipped toolchain's recipe as the project gets it: the same text, its `#:schema` line pointing
    at the project's recipes/.schema/ (a comment: the spec hash, so the image, stays the shipped one's)."""
    first, newline, rest = toolchain.file.read_text(encoding="utf-8").partition("\n")
    if first.startswith("#:schema "):
        first = directive("toolchain")
    return first + newline + rest


def _toolchain_for(
    proposal: BuildProposal, toolchains: Mapping[str, Toolchain]
) -> tuple[Toolchain | None, tuple[LibraryNeed, ...]]:
    """The proposal's toolchain, or the one extending it that installs the most of what the build
    needs (the base itself on a tie, then the closest to it, then by name); and what it still lacks."""
    family = [t for t in toolchains.values() if proposal.toolchain in _lineage(t)]
    if not family:
        return None, proposal.needs

    def lacking(toolchain: Toolchain) -> tuple[LibraryNeed, ...]:
        packages = installed_packages(toolchain)
        return tuple(
            need
            for need in proposal.needs
            if not any(re.fullmatch(need.package, package) for package in packages)
        )

    best = min(family, key=lambda t: (len(lacking(t)), len(_lineage(t)), t.name))
    return best, lacking(best)


def _lineage(toolchain: Toolchain) -> list[str]:
    """The toolchain's name, then its base's, and so on."""
    names = []
    current: Toolchain | None = toolchain
    while current is not None:
        names.append(current.name)
        current = current.base
    return names


def installed_packages(toolchain: Toolchain) -> set[str]:
    """The Debian packages the toolchain's image gets (its bases' too), without `:arch` qualifiers."""
    names: list[str] = []
    current: Toolchain | None = toolchain
    while current is not None:
        for part in (current.bootstrap, current.layer):
            if part is not None:
                names += [*part.packages, *part.unpack, *part.libraries]
        for platform in current.platforms.values():
            names += [*platform.packages, *platform.unpack, *platform.libraries]
        current = current.base
    return {name.split(":", 1)[0] for name in names}


def recipe_text(plan: InitPlan) -> str:
    """The recipe as TOML, commented: why each value, what to check, where the keys are described."""
    proposal = plan.proposal
    lines = [
        SCHEMA_LINE,
        *_comment(
            f"({PROJECT_SCHEMAS.as_posix()}/ holds the JSON Schemas editors check this file with: "
            "`osless init` writes them when missing, `osless schema --write` anew.)"
        ),
        *_comment(
            f"Written by `osless init` from {plan.source} ({_what(proposal)}). docs/recipes.md describes "
            "every key; edit freely."
        ),
    ]
    notes = [*proposal.notes, *_unmet_notes(plan), *_other_notes(plan)]
    if notes:
        lines += ["#", "# To check:"]
        for note in notes:
            lines += _comment(f"- {note}", indent="  ")
    lines += [
        "",
        "[service]",
        f"name = {_string(plan.name)}",
        f"source = {_string(plan.source)}",
        f"toolchain = {_string(plan.toolchain.name)}",
        *_comment(
            f"Every platform the {plan.toolchain.name} toolchain builds for: "
            f"{', '.join(plan.toolchain.platforms)}."
        ),
        f"platforms = {_array([ALL_PLATFORMS])}",
        "",
        "[build]",
        *(line for comment in proposal.comments for line in _comment(comment)),
    ]
    if proposal.command:
        lines += _array_lines("command = ", proposal.command, "")
    else:
        lines.append("steps = [")
        for step in proposal.steps:
            lines += _array_lines("  ", step, ",")
        lines.append("]")
    if proposal.artifact is not None:
        lines.append(f"artifact = {_string(proposal.artifact)}")
    if proposal.env:
        lines.append(f"env = {_inline_table(proposal.env)}")
    if proposal.fetch is not None:
        lines += ["", "[fetch]", f"goproxy = {_array(proposal.fetch.goproxy)}"]
    lines += ["", "[image]", f"user = {_string(IMAGE_USER)}"]
    if proposal.extras:
        lines += [line for extra, why in proposal.extras for line in _comment(f"{extra}: {why}.")]
        lines.append(f"extras = {_array([extra for extra, _ in proposal.extras])}")
    lines += [
        "",
        *_comment(
            f"A first smoke check, to make your own. {proposal.smoke.why} Make it check what the "
            "program does: "
            'stdin = "...", and stdout = "..." (exactly) or stdout_matches = \'...\' (a regular '
            "expression), files, more [[smoke]] checks (docs/recipes.md, [smoke])."
        ),
        "[smoke]",
        f"args = {_array(proposal.smoke.args)}",
        f"timeout = {_string(SMOKE_TIMEOUT)}",
    ]
    return "\n".join(lines) + "\n"


def _what(proposal: BuildProposal) -> str:
    return f"{proposal.language}: {proposal.found}"


def _unmet_notes(plan: InitPlan) -> list[str]:
    if not plan.unmet:
        return []
    wanted = ", ".join(need.what for need in plan.unmet)
    packages = ", ".join(_string(need.example) for need in plan.unmet)
    return [
        f"the build needs {wanted}, which no toolchain of the project installs: add one that extends "
        f"{plan.toolchain.name} (recipes/toolchains/<name>.toml: "
        f"extends = {_string(plan.toolchain.name)} and "
        f"[toolchain.bootstrap] packages or libraries = [{packages}], the Debian packages) and name it in "
        "[service] toolchain"
    ]


def _other_notes(plan: InitPlan) -> list[str]:
    return [f"also found: {_what(other)}; this recipe uses {plan.proposal.found}" for other in plan.others]


def _listing(source: Path) -> str:
    """What the directory holds, for an error: its first few names."""
    try:
        names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in source.iterdir())
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if not names:
        return "it is empty"
    return "it holds " + ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent="# ",
        subsequent_indent="# " + indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, and DEL must be escaped too."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _array(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_string(value) for value in values) + "]"


def _array_lines(start: str, values: tuple[str, ...], end: str) -> list[str]:
    """`start` and the array, on one line when it fits in WIDTH, else its values packed on lines
    indented under it."""
    line = f"{start}{_array(values)}{end}"
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(start) - len(start.lstrip()) + 2)
    lines, current = [f"{start}["], indent
    for value in values:
        item = f"{_string(value)},"
        if current.strip() and len(current) + 1 + len(item) > WIDTH:
            lines.append(current)
            current = indent
        current += ("" if not current.strip() else " ") + item
    return [*lines, current, f"{indent[:-2]}]{end}"]


def _inline_table(values: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{key} = {_string(value)}" for key, value in values.items()) + " }"
