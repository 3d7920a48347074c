"""The recipe schema for editors (orchestrator/recipe/schema/) and the reference (docs/recipes.md) agree
with the reader: the shipped recipes validate and name their schema, the schema knows exactly the keys
the reader reads (taken from the reader as it reads, not from a list kept by hand), and it rejects the
bad inputs the loader's tests reject, but for the ones listed in SCHEMA_CANNOT_CATCH with the reason."""

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
from tests.unit.test_bad_inputs import make_project as make_bad_input_project
from tests.unit.test_recipe import SERVICE, SERVICE_PROBLEMS, TOOLCHAIN, TOOLCHAIN_PROBLEMS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMAS = REPO_ROOT / "orchestrator" / "recipe" / "schema"
DOCS = REPO_ROOT / "docs" / "recipes.md"
KINDS = ("service", "toolchain")
RECIPES = [
    path
    for project in (REPO_ROOT, REPO_ROOT / "examples")
    for pattern in ("recipes/*.toml", "recipes/toolchains/*.toml")
    for path in sorted(project.glob(pattern))
]
Keys = dict[tuple[str, ...], set[str]]
WHEELS = ("toolchain", "bootstrap", "wheels")
SMOKE_PLATFORMS = ("smoke", "platforms", "*")  # read only where a recipe has one: see the smoke test
DIRECTIVE = "#:schema "


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


@pytest.mark.parametrize("path", RECIPES, ids=[path.relative_to(REPO_ROOT).as_posix() for path in RECIPES])
def test_shipped_recipe_names_its_schema(path: Path) -> None:
    """The first line is the `#:schema` directive of Taplo and Even Better TOML, relative to the recipe
    (to the file a symbolic link leads to: examples/ reuses toolchains of recipes/ so)."""
    first = path.read_text().split("\n", 1)[0]
    assert first.startswith(DIRECTIVE), first
    target = path.resolve().parent / first.removeprefix(DIRECTIVE)
    assert target.resolve() == SCHEMAS / f"{kind_of(path)}.schema.json"


def test_reader_reads_past_the_directive(tmp_path: Path) -> None:
    """The directive is a comment: problems keep their lines."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "s.toml").write_text(f"{DIRECTIVE}../x.json\n[service]\nnmae = 1\n")
    with pytest.raises(RecipeError) as caught:
        load_project(tmp_path)
    assert "recipes/s.toml:3: service.nmae: unknown key (did you mean 'name'?)" in map(
        str, caught.value.problems
    )


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


# --- The bad inputs of the loader's tests: the schema rejects them too, but for these ---

CROSS_FILE = (
    "needs another recipe: the schema describes one file, the loader knows the project (toolchain names "
    "and their platforms, the placeholders a toolchain defines, names and images unique among the "
    "recipes, what a toolchain extends)"
)
FILES = (
    "needs the project's files: where a path leads after `..` and symbolic links, whether it is a "
    "regular file or a directory, which recipe files there are"
)
ARITHMETIC = (
    "a range of a value written as a string: a duration's parts summed (at most 24h), a size with its "
    "unit (16MiB to 1TiB, at least 1 byte), a uid (at most 2^32 - 2); the schema checks the form"
)
NAN = "nan: a TOML float JSON has no value for; JSON Schema's comparisons cannot tell it"
OTHER_VALUE = "compares values: a smoke file's image path with the binary's (/<build.output or service.name>)"
UNIQUE_NAMES = "unique names across [[smoke]]: JSON Schema can ask for unique items, not unique keys of items"
NOT_TOML = (
    "not TOML a parser reads (a syntax error, nesting too deep, an integer too long): the editor's TOML "
    "parser reports it, before any schema"
)
SCHEMA_CANNOT_CATCH = {
    # tests/data/bad-inputs/<case>.toml
    "build-artifact-undefined": CROSS_FILE,
    "duplicate-service": CROSS_FILE,
    "placeholder-undefined": CROSS_FILE,
    "same-image": CROSS_FILE,
    "same-image-normalized": CROSS_FILE,
    "toolchain-extends-cycle": CROSS_FILE,
    "toolchain-extends-unknown": CROSS_FILE,
    "unknown-toolchain": CROSS_FILE,
    "fetch-proxy-escapes": FILES,
    "image-file-escapes": FILES,
    "no-services": FILES,
    "recipe-fifo": FILES,
    "smoke-files-symlink-escapes": FILES,
    "smoke-stdin-file-escapes": FILES,
    "smoke-stdin-file-fifo": FILES,
    "source-escapes": FILES,
    "build-timeout-25h": ARITHMETIC,
    "max-size-huge": ARITHMETIC,
    "max-size-zero": ARITHMETIC,
    "memory-too-small": ARITHMETIC,
    "timeout-huge-string": ARITHMETIC,
    "user-uid-overflow": ARITHMETIC,
    "timeout-nan": NAN,
    "smoke-files-binary-path": OTHER_VALUE,
    "smoke-check-name-twice": UNIQUE_NAMES,
    "deep-arrays": NOT_TOML,
    "deep-in-service": NOT_TOML,
    "deep-inline-tables": NOT_TOML,
    "huge-integer": NOT_TOML,
    "toml-syntax": NOT_TOML,
    # tests/unit/test_recipe.py, SERVICE_PROBLEMS: by the problem's text
    "is not supported by toolchain gcc": CROSS_FILE,
    "unknown toolchain 'gc'": CROSS_FILE,
    "placeholder {MUSL_CC} is not defined": CROSS_FILE,
}


def _schema_errors(path: Path) -> list[str] | None:
    """What the schema of its kind says of a recipe file: its errors, None when it is not TOML to check
    (or not a regular file: a FIFO would block)."""
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None
    validator = Draft202012Validator(
        schema(kind_of(path)), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(data)]


def _caught(root: Path) -> tuple[bool | None, list[str]]:
    """Loads the project: whether the schema rejected every recipe file the loader names (None: the
    loader took them all), and the schema's errors in the files the loader took (false alarms)."""
    named: set[str] = set()
    try:
        load_project(root)
    except RecipeError as error:
        named = {problem.file for problem in error.problems}
    recipes = {path.relative_to(root).as_posix(): path for path in root.glob("recipes/**/*.toml")}
    rejected = [name in recipes and bool(_schema_errors(recipes[name])) for name in named]
    false_alarms = [
        f"{name}: {errors}"
        for name, path in recipes.items()
        if name not in named and (errors := _schema_errors(path))
    ]
    return (all(rejected) if named else None), false_alarms


BAD_INPUTS = sorted((REPO_ROOT / "tests" / "data" / "bad-inputs").glob("*.toml"))


@pytest.mark.parametrize("case_file", BAD_INPUTS, ids=[path.stem for path in BAD_INPUTS])
def test_schema_agrees_with_the_loader_on_a_bad_input(case_file: Path, tmp_path: Path) -> None:
    """A case whose recipes the loader rejects: the schema rejects each file the loader names, unless
    SCHEMA_CANNOT_CATCH says why not; any case (some fail later, at build): no file the loader takes is
    rejected by the schema."""
    case = tomllib.loads(case_file.read_text())
    make_bad_input_project(tmp_path / "project", case)
    caught, false_alarms = _caught(tmp_path / "project")
    assert false_alarms == []
    if caught is not None:
        assert caught is (case_file.stem not in SCHEMA_CANNOT_CATCH), SCHEMA_CANNOT_CATCH.get(case_file.stem)


@pytest.mark.parametrize(
    ("kind", "old", "new", "expected"),
    [("service", *problem) for problem in SERVICE_PROBLEMS] + [("toolchain", *p) for p in TOOLCHAIN_PROBLEMS],
)
def test_schema_agrees_with_the_loader_on_a_recipe_problem(
    kind: str, old: str, new: str, expected: str
) -> None:
    """test_recipe.py's mistakes in its service and toolchain: the schema rejects them too, but for
    those SCHEMA_CANNOT_CATCH lists by their text."""
    validator = Draft202012Validator(schema(kind))
    template = SERVICE if kind == "service" else TOOLCHAIN
    assert validator.is_valid(tomllib.loads(template))
    listed = [reason for text, reason in SCHEMA_CANNOT_CATCH.items() if text in expected]
    assert validator.is_valid(tomllib.loads(template.replace(old, new, 1))) is bool(listed), expected
