"""Toolchain extension: `extends = "gcc"` in a toolchain recipe makes a derived toolchain.

A derived toolchain inherits its base's env, languages and platforms (its own values win) and adds
packages to the base's image as a thin layer (bootstrap/make.py). Resolution runs once every toolchain
recipe is read: an unknown base or a cycle is a problem on the `extends` key, and a toolchain that
cannot be resolved is left out (services naming it say it was not loaded).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from orchestrator.errors import did_you_mean
from orchestrator.recipe.convert import hints
from orchestrator.recipe.model import Toolchain, ToolchainPlatform
from orchestrator.recipe.reader import Table


def resolve_extends(
    toolchains: Mapping[str, Toolchain], derived: Mapping[str, Table]
) -> tuple[dict[str, Toolchain], list[str]]:
    """Every toolchain with its base resolved and merged in, and the files of those that could not be."""
    resolver = _Resolver(toolchains, derived)
    for name in toolchains:
        resolver.resolve(name, ())
    resolved = {name: resolver.done[name] for name in toolchains if name in resolver.done}
    files = [derived[name].file.rel for name in toolchains if name not in resolver.done and name in derived]
    return resolved, files


class _Resolver:
    def __init__(self, toolchains: Mapping[str, Toolchain], derived: Mapping[str, Table]) -> None:
        self.toolchains = toolchains
        self.derived = derived
        self.done: dict[str, Toolchain] = {}
        self.failed: set[str] = set()

    def resolve(self, name: str, chain: tuple[str, ...]) -> Toolchain | None:
        """`name` resolved; `chain` holds the toolchains whose resolution led here (a cycle returns to it)."""
        if name in self.done:
            return self.done[name]
        toolchain = self.toolchains[name]
        if toolchain.extends is None:
            self.done[name] = toolchain
            return toolchain
        if name in self.failed:
            return None
        section = self.derived[name]
        key = (*section.key, "extends")
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            for member in chain[chain.index(name) :]:
                table = self.derived[member]
                table.file.problem(
                    (*table.key, "extends"),
                    f"toolchains extend each other in a cycle: {cycle}",
                    "one of them must have its own image or [toolchain.bootstrap]",
                )
                self.failed.add(member)
            return None
        if toolchain.extends not in self.toolchains:
            known = f"known: {', '.join(n for n in self.toolchains if n != name) or 'none'}"
            section.file.problem(
                key,
                f"unknown toolchain {toolchain.extends!r}",
                hints(did_you_mean(toolchain.extends, [n for n in self.toolchains if n != name]), known),
            )
            self.failed.add(name)
            return None
        base = self.resolve(toolchain.extends, (*chain, name))
        if name in self.failed:  # part of a cycle found deeper down
            return None
        if base is None:  # the base's own problems are reported on it
            self.failed.add(name)
            return None
        merged = self._merge(toolchain, base, section)
        if merged is None:
            self.failed.add(name)
            return None
        self.done[name] = merged
        return merged

    @staticmethod
    def _merge(toolchain: Toolchain, base: Toolchain, section: Table) -> Toolchain | None:
        """The derived toolchain: the base's env, languages and platforms, its own winning; its own
        additions (layer, each platform's packages, unpack and libraries) as they are."""
        unknown = [platform for platform in toolchain.platforms if platform not in base.platforms]
        for platform in unknown:
            section.file.problem(
                (*section.key, "platforms", platform),
                f"{platform} is not a platform of the base toolchain {base.name!r}",
                f"it targets: {', '.join(base.platforms) or 'none'}",
            )
        if unknown:
            return None
        platforms = {}
        for platform, inherited in base.platforms.items():
            own = toolchain.platforms.get(platform, ToolchainPlatform())
            platforms[platform] = dataclasses.replace(own, env={**inherited.env, **own.env})
        return dataclasses.replace(
            toolchain,
            env={**base.env, **toolchain.env},
            languages=toolchain.languages or base.languages,
            platforms=platforms,
            base=base,
        )
