"""The schema generator and `osless schema`: the shipped schema files are the generator's output, the
command prints one and writes both where the `#:schema` lines of a project's recipes point.
(What the schema says about recipes, against the reader: test_recipe_schema.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from orchestrator.cli.main import main
from orchestrator.recipe.build import _as_artifact
from orchestrator.recipe.convert import (
    Invalid,
    as_check_name,
    as_file_name,
    as_libraries,
    as_mirror,
    as_packages,
)
from orchestrator.recipe.jsonschema import (
    KINDS,
    PROJECT_SCHEMAS,
    SHIPPED,
    directive,
    file_name,
    schema,
    schema_text,
)
from tests.conftest import REPO_ROOT

REGENERATE = "run `osless schema --write orchestrator/recipe/schema` and commit the result"


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_schema_is_the_generators_output(kind: str) -> None:
    assert SHIPPED == REPO_ROOT / "orchestrator" / "recipe" / "schema"
    assert (SHIPPED / file_name(kind)).read_text() == schema_text(kind), REGENERATE


@pytest.mark.parametrize("kind", KINDS)
def test_schema_prints_one_kind(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    assert capsys.readouterr().out == schema_text(kind)


def test_schema_prints_the_service_schema_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("osless service recipe")


def test_write_puts_both_where_the_directives_point(tmp_path: Path) -> None:
    assert main(["-C", str(tmp_path), "schema", "--write"]) == 0
    recipes = tmp_path / "recipes"
    for kind, recipe_dir in (("service", recipes), ("toolchain", recipes / "toolchains")):
        target = directive(kind).removeprefix("#:schema ")
        assert (recipe_dir / target).resolve() == (tmp_path / PROJECT_SCHEMAS / file_name(kind)).resolve()
        assert (tmp_path / PROJECT_SCHEMAS / file_name(kind)).read_text() == schema_text(kind)


def test_write_into_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--write", str(tmp_path / "schemas")]) == 0
    assert sorted(path.name for path in (tmp_path / "schemas").iterdir()) == sorted(map(file_name, KINDS))
    assert str(tmp_path / "schemas" / file_name("toolchain")) in capsys.readouterr().out


def test_quiet_write_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "schema", "--write", str(tmp_path / "schemas")]) == 0
    assert len(list((tmp_path / "schemas").iterdir())) == len(KINDS)
    assert capsys.readouterr().out == ""


def test_write_with_a_kind_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(tmp_path), "schema", "toolchain", "--write"]) == 2
    assert "--write writes both schemas" in capsys.readouterr().err
    assert main(["-C", str(tmp_path), "schema", "--write", "service"]) == 2  # not a directory "service"
    assert "--write writes both schemas" in capsys.readouterr().err
    assert not (tmp_path / "service").exists()
    assert not (tmp_path / "recipes").exists()


def _patterns(node: object) -> list[str]:
    """Every regular expression of a schema."""
    if isinstance(node, list):
        return [pattern for item in node for pattern in _patterns(item)]
    if not isinstance(node, dict):
        return []
    own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
    return own + [pattern for key, value in node.items() if key != "pattern" for pattern in _patterns(value)]


@pytest.mark.parametrize("kind", KINDS)
def test_patterns_are_for_every_engine(kind: str) -> None:
    """ECMA-262 without lookaround, named groups or Python's anchors: Taplo's engine (Rust's) has none."""
    patterns = _patterns(schema(kind))
    assert len(patterns) > 10
    for pattern in patterns:
        re.compile(pattern)
        assert not re.search(r"\(\?[=!<P]|\\[AZz]", pattern), pattern


def _accepts(kind: str, pointer: str, value: object) -> bool:
    """Whether the part of the schema of `kind` at `pointer` (a JSON pointer) accepts `value`."""
    node = root = schema(kind)
    for name in pointer.split("/"):
        node = node[name]
    return Draft202012Validator({**node, "$defs": root["$defs"]}).is_valid(value)


def _converts(convert: Callable[[object], object], value: object) -> bool:
    try:
        convert(value)
    except Invalid:
        return False
    return True


BUILD = "properties/build/properties/"
BOOTSTRAP = "properties/toolchain/properties/bootstrap/properties/"
PACKAGES = [
    "gcc",
    "g++",
    "libc6-dev:arm64",
    "zlib1g-dev:aarch64",
    "a",
    "-v",
    "gcc:all",
    "Gcc",
    "gcc:",
    "x.y+z-1",
]
# (kind, where in the schema, the reader's converter, values): where the schema's pattern is written for
# editors (without lookaround) rather than taken from the reader, both say the same of every value.
AGREEMENT = [
    (
        "service",
        BUILD + "output",
        as_file_name,
        ["app", ".", "..", "...", ".a", "..a", "a/b", "a\0", "", " "],
    ),
    ("service", BUILD + "artifact", _as_artifact, ["app", "b/app", "b/", ".", "..", "./a", "", " ", "a\0"]),
    ("service", "$defs/smokeCheck/properties/name", as_check_name, ["v", "a b", "", " ", "a\nb", "x" * 81]),
    ("toolchain", BOOTSTRAP + "packages/items", lambda value: as_packages([value]), PACKAGES),
    (
        "toolchain",
        BOOTSTRAP + "libraries/items",
        lambda value: as_libraries([value]),
        [*PACKAGES, "libz-dev", "a-dev", "libz-dev:arm64", "-dev", "lib.z+-dev"],
    ),
    (
        "toolchain",
        BOOTSTRAP + "mirror",
        as_mirror,
        [
            "http://deb.debian.org/debian",
            "https://h:8080/x",
            "file:///srv/mirror",
            "http:///debian",
            "http://h:99999/",
            "ftp://h/",
            "file://h/x",
            "http://a/b c",
            "http://a/\ndeb x",
            "-http://h/",
            "h",
        ],
    ),
]


@pytest.mark.parametrize(("kind", "pointer", "convert", "values"), AGREEMENT, ids=[a[1] for a in AGREEMENT])
def test_written_patterns_agree_with_the_reader(
    kind: str, pointer: str, convert: Callable[[object], object], values: list[str]
) -> None:
    for value in values:
        assert _accepts(kind, pointer, value) is _converts(convert, value), repr(value)
