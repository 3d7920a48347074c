"""The verify stage adapter: the recipe's policy applied, verify.json written, the binary described."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.stages import verify
from tests.factories import service_recipe

RECIPE = service_recipe(
    "hello",
    ["{CC}", "-o", "{output}", "main.c"],
    more=(
        '[image]\nextras = ["ca-certificates"]\n'
        '[verify]\nerrors = ["needs.tzdata"]\nmax_size = "1MiB"\n'
        '[verify.allow]\n"linkage.dynamic" = "tested on glibc hosts only"\n'
    ),
)


def test_the_policy_is_the_recipes_verify_table_and_image_extras(
    make_project: Callable[[dict[str, str]], Path],
) -> None:
    root = make_project(
        {"recipes/hello.toml": RECIPE, "sources/hello/main.c": "int main(void) { return 0; }\n"}
    )
    policy = verify.verify_policy(load_project(root).services["hello"])
    assert policy.errors == frozenset({"needs.tzdata"})
    assert policy.allowed == {"linkage.dynamic": "tested on glibc hosts only"}
    assert policy.max_size == 1024**2
    assert policy.provided == frozenset({"ca-certificates"})


def test_a_file_that_is_no_binary_fails_with_verify_json_written_and_described(
    make_project: Callable[[dict[str, str]], Path],
) -> None:
    root = make_project(
        {"recipes/hello.toml": RECIPE, "sources/hello/main.c": "int main(void) { return 0; }\n"}
    )
    service = load_project(root).services["hello"]
    binary = root / "app"
    binary.write_bytes(b"#!/bin/sh\necho not an ELF\n")
    verdict = verify.verify(binary, service, PLATFORMS["linux/amd64"], root)
    assert not verdict.ok
    assert json.loads((root / "verify.json").read_text())["path"] == str(binary)
    info = verify.binary_info(binary, verdict)
    assert (info.path, info.size, info.linkage, info.platform) == (
        str(binary),
        binary.stat().st_size,
        None,
        None,
    )
    assert info.sha256 == hashlib.sha256(binary.read_bytes()).hexdigest()
