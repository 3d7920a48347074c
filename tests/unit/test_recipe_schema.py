"""The recipe schema for editors (orchestrator/recipe/schema/) and the reference (docs/recipes.md) agree
with the reader: the shipped recipes validate, and the schema knows exactly the keys the reader reads
(taken from the reader as it reads, not from a list kept by hand)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from orchestrator.errors import RecipeError
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import ALL_PLATFORMS, IMAGE_EXTRAS
from orchestrator.recipe.placeholders import FACTS
from orchestrator.recipe.reader import RecipeFile
from tests.conftest import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMAS = REPO_ROOT / "orchestrator" / "recipe" / "schema"
DOCS = REPO_ROOT / "docs" / "recipes.md"
KINDS = ("service", "toolchain")
RECIPES = sorted((REPO_ROOT / "recipes").glob("*.toml")) + sorted(
    (REPO_ROOT / "recipes" / "toolchains").glob("*.toml")
)
Keys = dict[tuple[str, ...], set[str]]
WHEELS = ("toolchain", "bootstrap", "wheels")
SMOKE_PLATFORMS = ("smoke", "platforms", "*")  # read only where a recipe has one: see the smoke test


def schema(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    return loaded


def kind_of(path: Path) -> str:
    return "toolchain" if path.parent.name == "toolchains" else "service"


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12(kind: str) -> None:
    Draft202012Validator.check_schema(schema(kind))
    assert schema(kind)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", RECIPES, ids=[path.relative_to(REPO_ROOT).as_posix() for path in RECIPES])
def test_shipped_recipe_validates(path: Path) -> None:
    validator = Draft202012Validator(schema(kind_of(path)))
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(_toml(path))]
    assert errors == []


def test_schema_rejects_what_the_reader_rejects() -> None:
    """A few mistakes an editor should underline: unknown keys, a bad platform, a bad duration."""
    validator = Draft202012Validator(schema("service"))
    recipe = _toml(REPO_ROOT / "recipes" / "hello-c.toml")
    for mistake in (
        {"build": {**recipe["build"], "comand": ["x"]}},
        {"service": {**recipe["service"], "platforms": ["linux/arm65"]}},
        {"smoke": {**recipe["smoke"], "timeout": "10 seconds"}},
        {"image": {**recipe["image"], "extras": ["cacerts"]}},
    ):
        assert not validator.is_valid({**recipe, **mistake}), mistake


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def _schema_keys(node: dict[str, Any], root: dict[str, Any], key: tuple[str, ...] = ()) -> Keys:
    """The keys of every table the schema describes, by table; `*` stands for a table keyed by data."""
    while "$ref" in node:
        target: dict[str, Any] = root
        for part in node["$ref"].removeprefix("#/").split("/"):  # a JSON pointer into the schema
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    keys: Keys = {}
    for alternative in node.get("anyOf", ()):  # e.g. [smoke] or [[smoke]]: the keys of both
        for table, names in _schema_keys(alternative, root, key).items():
            keys.setdefault(table, set()).update(names)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):  # an array of tables
        keys.update(_schema_keys(node["items"], root, key))
    if "properties" in node:
        keys[key] = set(node["properties"])
        for name, child in node["properties"].items():
            keys.update(_schema_keys(child, root, (*key, name)))
    elif isinstance(node.get("additionalProperties"), dict):
        keys.update(_schema_keys(node["additionalProperties"], root, (*key, "*")))
    return keys


def _reader_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, Keys]:
    """The keys the reader asks for in every table of the shipped recipes, by kind of file."""
    seen: dict[str, Keys] = {kind: {} for kind in KINDS}
    reject = RecipeFile.reject_unknown_keys

    def spy(file: RecipeFile) -> None:
        for table in file.tables:
            key = table.key
            if key == ("toolchain", "platforms"):  # keyed by platform names, which are data
                assert set(table.known) <= set(PLATFORMS)
                continue
            if key[:3] == WHEELS:  # keyed by project names, which are data: see the test of wheels
                continue
            if key[:2] == ("toolchain", "platforms"):
                key = (*key[:2], "*")
            key = _table_of(key)
            seen[kind_of(file.path)].setdefault(key, set()).update(table.known)
        reject(file)

    monkeypatch.setattr(RecipeFile, "reject_unknown_keys", spy)
    load_project(REPO_ROOT)
    return seen


def _table_of(key: tuple[str, ...]) -> tuple[str, ...]:
    """The schema's name of a table the reader read: an element of `[[smoke]]` is `smoke`, a table of
    `smoke.platforms` is `smoke.platforms.*`."""
    key = tuple(part for part in key if not re.fullmatch(r"\[\d+\]", part))
    return SMOKE_PLATFORMS if key[:2] == SMOKE_PLATFORMS[:2] and len(key) == 3 else key


def test_schema_knows_exactly_the_keys_the_reader_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = _reader_keys(monkeypatch)
    for kind in KINDS:
        keys = _schema_keys(schema(kind), schema(kind))
        assert {
            table: names for table, names in keys.items() if table[:3] not in (WHEELS, SMOKE_PLATFORMS)
        } == reader[kind], kind


SMOKE_RECIPE = """\
[service]
name = "s"
source = "src"
toolchain = "t"
platforms = ["linux/amd64"]
[build]
command = ["true"]
[[smoke]]
name = "one"
args = ["-"]
stdin = "x"
stdout = "x"
stderr_matches = "^$"
exit_code = 0
timeout = "5s"
limits = { pids = 64 }
allow_root = false
[smoke.platforms."linux/amd64"]
stdout_matches = "x"
stderr = ""
exit_code = 1
[[smoke]]
stdin_file = "src/in"
files = { "/in" = "src/in" }
stdout_matches = "."
stderr = ""
"""


def test_schema_knows_the_keys_of_smoke_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every key of `[[smoke]]` and of its per-platform tables, in a project of its own that uses them
    all: the reader reads exactly what the schema describes, and the schema accepts the recipe."""
    (tmp_path / "recipes" / "toolchains").mkdir(parents=True)
    (tmp_path / "recipes" / "toolchains" / "t.toml").write_text(
        '[toolchain]\nname = "t"\nimage = "x"\n[toolchain.platforms."linux/amd64"]\n'
    )
    (tmp_path / "recipes" / "s.toml").write_text(SMOKE_RECIPE)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "in").write_text("x")
    read: Keys = {}
    reject = RecipeFile.reject_unknown_keys

    def spy(file: RecipeFile) -> None:
        for table in file.tables:
            if table.key[:1] == ("smoke",):
                read.setdefault(_table_of(table.key), set()).update(table.known)
        reject(file)

    monkeypatch.setattr(RecipeFile, "reject_unknown_keys", spy)
    load_project(tmp_path)

    keys = _schema_keys(schema("service"), schema("service"))
    assert read == {table: names for table, names in keys.items() if table[:1] == ("smoke",)}
    validator = Draft202012Validator(schema("service"))
    assert list(validator.iter_errors(tomllib.loads(SMOKE_RECIPE))) == []


def test_schema_rejects_what_the_reader_rejects_in_smoke_checks() -> None:
    validator = Draft202012Validator(schema("service"))
    recipe = _toml(REPO_ROOT / "recipes" / "hello-c.toml")
    assert validator.is_valid({**recipe, "smoke": [{"stdout": "a"}, {"name": "b", "stderr_matches": "x"}]})
    for mistake in (
        [],
        [{"stdout": "a", "stdout_matches": "a"}],
        {"stdin": "a", "stdin_file": "b"},
        {"platforms": {"linux/arm65": {}}},
        {"platforms": {"linux/arm64": {"args": []}}},
        {"platforms": {"linux/arm64": {"stderr": "", "stderr_matches": ""}}},
        [{"name": "two\nlines"}],
    ):
        assert not validator.is_valid({**recipe, "smoke": mistake}), mistake


def test_schema_knows_the_keys_of_a_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A wheel's table is read only where a recipe pins one: a project of its own pins one."""
    toolchain = (
        '[toolchain]\nname = "t"\n[toolchain.bootstrap]\nsuite = "trixie"\npackages = []\n'
        f'wheels = {{ ziglang = {{ version = "1", sha256 = "{"0" * 64}" }} }}\n'
        '[toolchain.platforms."linux/amd64"]\n'
    )
    (tmp_path / "recipes" / "toolchains").mkdir(parents=True)
    (tmp_path / "recipes" / "toolchains" / "t.toml").write_text(toolchain)
    read: list[set[str]] = []
    reject = RecipeFile.reject_unknown_keys

    def spy(file: RecipeFile) -> None:
        read.extend(set(table.known) for table in file.tables if table.key == (*WHEELS, "ziglang"))
        reject(file)

    monkeypatch.setattr(RecipeFile, "reject_unknown_keys", spy)
    with pytest.raises(RecipeError):  # no service: the toolchain is read all the same
        load_project(tmp_path)

    keys = _schema_keys(schema("toolchain"), schema("toolchain"))
    assert read == [keys[(*WHEELS, "*")]]


def test_schema_vocabularies_are_the_codes() -> None:
    service, toolchain = schema("service"), schema("toolchain")
    assert service["$defs"]["platform"]["enum"] == toolchain["$defs"]["platform"]["enum"] == list(PLATFORMS)
    platforms = service["properties"]["service"]["properties"]["platforms"]["items"]["enum"]
    assert platforms == [*PLATFORMS, ALL_PLATFORMS]
    assert service["properties"]["image"]["properties"]["extras"]["items"]["enum"] == list(IMAGE_EXTRAS)


def test_reference_documents_every_key_and_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = DOCS.read_text()
    headings = {
        table
        for line in docs.splitlines()
        if line.startswith("#")
        for table in re.findall(r"`\[([^\]]+)\]`", line)
    }
    for kind, keys in _reader_keys(monkeypatch).items():
        for table, names in keys.items():
            if not table:  # the top-level tables: each has its section
                assert names <= headings, (kind, names - headings)
                continue
            assert ".".join(table).replace("*", '"<platform>"') in headings, (kind, table)
            for name in names:
                assert f"`{name}`" in docs, (kind, table, name)
    for fact in FACTS:
        assert f"`{{{fact}}}`" in docs, fact
    for extra in IMAGE_EXTRAS:
        assert f'"{extra}"' in docs, extra
