"""`osless init` on every shipped sample's and example's source, recipe removed, and on the test trees
of the build systems none of them uses (tests/data/init-trees: Meson, autotools, libtool, zig build): the
recipe it writes builds, verifies and passes its smoke check, unedited, on linux/amd64 (and the C
build systems' on an emulated platform too: init's cross configuration, not the builder's).

All of them live in one project, built by one `osless build` (the CI budget: one run shares the
builders and the cores). Each source is copied as the shipped recipe has it, with the project's
GOPROXY directory (deps/). The project starts with no recipes at all: the samples' `osless init` writes
the toolchains osless ships (gcc, go, rust, zig: their spec hashes, so the images already made) and the
schemas; the examples' toolchains (gcc-sodium, rust-debian, which extend them) are copied after it, as a
team adds its own, and the examples' `osless init` picks them.

What needs an edit after `osless init` to pass, and why (NEEDS_EDITS, checked below: the list the docs
quote): nothing, today. Where a generated recipe differs from the shipped one:

- the smoke check is a stub: the program's documented version option (lua, minisign: -v; ninja, hexyl:
  --version) or no arguments; the shipped recipes check what the programs print;
- hello-c-musl and whoami-c are built against glibc ({CC}), hello-c-zig with gcc, not zig: a loose C
  file is gcc's (the shipped recipes show musl and zig cc on purpose); whoami-c's getpwuid() brings the
  passwd extra, tls-go's crypto/tls the ca-certificates extra, as the shipped recipes have them;
- lua: the Makefile's default target (linux-noreadline: dlopen linked, unused in a static binary), not
  `posix`; ninja and minisign: CMake's MinSizeRel (ninja's shipped recipe: Release with Ninja).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, init_source, remove_project_volumes
from tests.integration.conftest import OslessRun, run_osless

SAMPLES = {
    "hello-c": "sources/hello-c",
    "hello-c-musl": "sources/hello-c-musl",
    "hello-c-zig": "sources/hello-c-zig",
    "hello-cxx": "sources/hello-cxx",
    "hello-go": "sources/hello-go",
    "hello-go-modules": "sources/hello-go-modules",
    "hello-rust": "sources/hello-rust",
    "hello-zig": "sources/hello-zig",
    "tls-go": "sources/tls-go",
    "whoami-c": "sources/whoami-c",
}
EXAMPLES = ("lua", "ninja", "gojq", "hexyl", "minisign")
TREES = ("hello-meson", "hello-autotools", "hello-libtool", "zig-greet")
NEEDS_EDITS: dict[str, str] = {}
"""Service -> why its generated recipe must be edited before it passes (none now)."""
# Also built for an emulated platform: a loose C file, and the build systems that configure for one.
EMULATED = (("hello-c", "hello-meson", "hello-libtool"), "linux/arm64")
TOOLCHAIN = {  # the toolchain each generated recipe must pick
    **{
        name: "gcc"
        for name in ("hello-c", "hello-c-musl", "hello-c-zig", "hello-cxx", "whoami-c", "lua", "ninja")
    },
    **{name: "go" for name in ("hello-go", "hello-go-modules", "tls-go", "gojq")},
    "hello-rust": "rust",
    "hello-zig": "zig",
    "zig-greet": "zig",
    **{name: "gcc" for name in ("hello-meson", "hello-autotools", "hello-libtool")},
    "hexyl": "rust-debian",
    "minisign": "gcc-sodium",
}


@pytest.fixture(scope="module")
def initialised(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str], OslessRun]]:
    """The project, the recipe `osless init` wrote for each service, and the one build of them all."""
    root = tmp_path_factory.mktemp("init") / "project"
    shutil.copytree(REPO_ROOT / "deps", root / "deps")
    examples = {name: f"sources/{name}" for name in EXAMPLES}
    trees = {name: f"sources/{name}" for name in TREES}
    sources = {**SAMPLES, **examples, **trees}
    for name, source in sources.items():
        shutil.copytree(init_source(name), root / source, symlinks=True)
    try:
        init = run_osless(root, "init", *SAMPLES.values(), *trees.values())
        assert init.returncode == 0, init.stderr
        for name in ("gcc", "go", "rust", "zig"):
            assert f"wrote recipes/toolchains/{name}.toml (the {name} toolchain osless ships)" in init.stdout
        assert "wrote recipes/.schema/" in init.stdout
        for extra in (REPO_ROOT / "examples" / "recipes" / "toolchains").glob("*.toml"):
            if not (root / "recipes" / "toolchains" / extra.name).exists():
                shutil.copy(extra, root / "recipes" / "toolchains" / extra.name)
        init = run_osless(root, "init", *examples.values())
        assert init.returncode == 0, init.stderr
        recipes = {name: (root / "recipes" / f"{name}.toml").read_text() for name in sources}
        build = run_osless(root, "build", "--platform", "linux/amd64", out=root / "out", timeout=900)
        yield root, recipes, build
    finally:
        remove_project_volumes(root)


@pytest.mark.parametrize("name", [*SAMPLES, *EXAMPLES, *TREES])
def test_init_recipe_builds_and_passes(
    initialised: tuple[Path, dict[str, str], OslessRun], name: str
) -> None:
    _, recipes, build = initialised
    assert f'toolchain = "{TOOLCHAIN[name]}"' in recipes[name]
    assert recipes[name].startswith("#:schema .schema/service.schema.json\n")
    target = build.target(name, "linux/amd64")
    if name in NEEDS_EDITS:
        assert target["status"] != "passed", f"{name} passes now: drop it from NEEDS_EDITS"
        return
    assert target["status"] == "passed", (target.get("failed_stage"), target.get("reason"), recipes[name])


def test_init_recipe_builds_for_an_emulated_platform(
    initialised: tuple[Path, dict[str, str], OslessRun],
) -> None:
    root, _, _ = initialised
    names, platform = EMULATED
    built = run_osless(root, "build", *names, "--platform", platform, out=root / "out-emulated", timeout=600)
    assert built.returncode == 0, built.stderr
    for name in names:
        assert built.target(name, platform)["status"] == "passed"
