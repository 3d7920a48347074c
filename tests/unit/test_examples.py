"""examples/: the example programs' recipes are valid, are what a user would write (no shell, no
temporary directories, no copied toolchain), target every platform with smoke checks on real input,
and share the repository's toolchains (same recipes, so the same images). `nox -s examples` builds them."""

from __future__ import annotations

from pathlib import Path

from orchestrator.bootstrap.spec import image_reference
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SHARED_TOOLCHAINS = ("gcc", "go", "rust")


def test_the_examples_project_loads_with_five_real_programs() -> None:
    project = load_project(EXAMPLES)
    assert sorted(project.services) == ["gojq", "hexyl", "lua", "minisign", "ninja"]
    languages = {name: project.toolchains[s.toolchain].languages for name, s in project.services.items()}
    assert "go" in languages["gojq"] and "rust" in languages["hexyl"] and "c++" in languages["ninja"]


def test_the_shared_toolchains_are_links_to_the_repository_recipes_and_give_the_same_images() -> None:
    main, examples = load_project(ROOT), load_project(EXAMPLES)
    for name in SHARED_TOOLCHAINS:
        link = EXAMPLES / "recipes" / "toolchains" / f"{name}.toml"
        assert link.is_symlink(), f"{link} must link to recipes/toolchains/, not copy it"
        assert link.resolve() == ROOT / "recipes" / "toolchains" / f"{name}.toml"
        assert image_reference(examples.toolchains[name]) == image_reference(main.toolchains[name])
    for name, toolchain in examples.toolchains.items():
        if name not in SHARED_TOOLCHAINS:  # the examples' own toolchains only add packages
            assert toolchain.extends in SHARED_TOOLCHAINS, name


def test_every_recipe_is_what_a_user_would_write() -> None:
    for name, service in load_project(EXAMPLES).services.items():
        build = service.build
        assert build.script is None, name
        arguments = [argument for step in build.argv_templates for argument in step]
        assert len(build.argv_templates) <= 3, name
        assert not {"sh", "bash", "-c", "mktemp"} & set(arguments), name
        assert not any("mktemp" in argument or "/tmp" in argument for argument in arguments), name


def test_every_example_targets_all_platforms_with_smoke_checks_on_real_input() -> None:
    for name, service in load_project(EXAMPLES).services.items():
        assert set(service.platforms) == set(PLATFORMS), name
        checks = service.smoke.checks
        assert len(checks) >= 3, name
        assert any(c.stdin is not None or c.stdin_file is not None or c.files for c in checks), name
        assert all("--version" not in c.args for c in checks), name
        assert any(c.expect.exit_code != 0 for c in checks), f"{name}: no check of a failure"
        for check in checks:
            for path in [*check.files.values(), *([check.stdin_file] if check.stdin_file else [])]:
                assert path.is_relative_to(EXAMPLES / "smoke"), (name, path)
                assert path.is_file(), (name, path)
