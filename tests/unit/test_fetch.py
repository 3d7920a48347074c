"""The fetch step without an engine: `[fetch]` as the loader reads it (what needs a network is said, and
only then is one given), Go's plan, the key that decides whether a fetch runs again, the build's
environment after it, and scripts/goproxy-add (GOPROXY directories whose go.sum lines are Go's)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from orchestrator.errors import RecipeError
from orchestrator.languages import fetch_plan
from orchestrator.languages.fetching import FetchPlan
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import FetchSpec
from orchestrator.recipe.reader import RecipeFile
from orchestrator.stages.build import container_env
from orchestrator.stages.fetch import (
    FETCH_DIR,
    LOCK_FILE_LIMIT,
    Fetched,
    FetchFailed,
    FetchInfo,
    fetch_key,
    read_lock_file,
    with_fetched,
)
from tests.conftest import REPO_ROOT
from tests.factories import service_recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

GO_COMMAND = ("go", "build", "-o", "{output}", ".")
SAMPLE = REPO_ROOT / "sources" / "hello-go-modules"
PROXY = REPO_ROOT / "deps" / "goproxy"
# github.com/pkg/errors v0.9.1 as the public proxy and checksum database give it (sum.golang.org).
PKG_ERRORS_SUM = [
    "github.com/pkg/errors v0.9.1 h1:FEBLx1zS214owpjy7qsBeixbURkuhQAwrK5UwLGTwt4=",
    "github.com/pkg/errors v0.9.1/go.mod h1:bwawxfHBFNV+L2hUp1rHADufV3IMtnDRdf1r5NINEl0=",
]


def go_project(root: Path, fetch: str, *, toolchain: str = "go") -> Path:
    """A project with the shipped toolchains, a Go service `s` whose recipe ends with `fetch` (TOML
    text) and a GOPROXY directory deps/goproxy."""
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    shutil.copytree(SAMPLE, root / "sources" / "s")
    shutil.copytree(PROXY, root / "deps" / "goproxy")
    command = GO_COMMAND if toolchain == "go" else ("{CC}", "-o", "{output}", "main.c")
    (root / "recipes" / "s.toml").write_text(service_recipe("s", command, toolchain=toolchain, more=fetch))
    return root


def problems(root: Path) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_project(root)
    return [f"{p.key}: {p.message} ({p.hint})" for p in caught.value.problems]


def test_a_file_proxy_of_the_project_is_read_normalized(tmp_path: Path) -> None:
    (tmp_path / "deps" / "link").parent.mkdir(parents=True)
    root = go_project(tmp_path, '[fetch]\ngoproxy = "file://deps/./goproxy"\n')
    fetch = load_project(root).services["s"].fetch
    assert fetch == FetchSpec(goproxy=("file://deps/goproxy",), network=False, timeout=600.0)


def test_a_list_of_sources_with_a_network(tmp_path: Path) -> None:
    root = go_project(
        tmp_path,
        '[fetch]\ngoproxy = ["file://deps/goproxy", "https://proxy.golang.org"]\nnetwork = true\n'
        'timeout = "2m"\n',
    )
    fetch = load_project(root).services["s"].fetch
    assert fetch == FetchSpec(
        goproxy=("file://deps/goproxy", "https://proxy.golang.org"), network=True, timeout=120.0
    )


def test_no_fetch_table_is_no_fetch(tmp_path: Path) -> None:
    assert load_project(go_project(tmp_path, "")).services["s"].fetch is None


@pytest.mark.parametrize(
    ("fetch", "fragment"),
    [
        ('goproxy = "https://proxy.golang.org"', "is fetched over the network, and the fetch step has none"),
        ('goproxy = "file://deps/goproxy"\nnetwork = true', "every goproxy entry is a directory"),
        ('goproxy = "direct"', "'direct' is not a place to fetch from"),
        ('goproxy = "off"', "'off' is not a place to fetch from"),
        ('goproxy = "file:///etc"', "is an absolute path"),
        ('goproxy = "file://../elsewhere"', "leads outside the project"),
        ('goproxy = "file://deps/nothing"', "is missing"),
        ('goproxy = "file://sources/s/main.go"', "is not a directory"),
        ('goproxy = "file://deps/go proxy"', "is not a plain relative path"),
        ('goproxy = "https://user:secret@proxy.example"', "carries credentials"),
        ('goproxy = "ftp://proxy.example"', "is not a file:// directory nor an http(s) URL"),
        ('goproxy = "file://deps/goproxy,,"', "has an empty entry"),
        ("goproxy = 3", "expected a string or a list of strings"),
        ("network = false", "names nothing to fetch"),
        ('goproxy = "file://deps/goproxy"\nmodules = "x"', "unknown key"),
    ],
)
def test_fetch_problems_are_reported_at_load(tmp_path: Path, fetch: str, fragment: str) -> None:
    found = problems(go_project(tmp_path, f"[fetch]\n{fetch}\n"))
    assert any(fragment in problem for problem in found), found
    assert all("secret" not in problem for problem in found)  # a credential is never repeated


def test_goproxy_needs_a_go_toolchain(tmp_path: Path) -> None:
    found = problems(go_project(tmp_path, '[fetch]\ngoproxy = "file://deps/goproxy"\n', toolchain="gcc"))
    assert any("goproxy is for Go modules, and toolchain gcc compiles c, c++" in p for p in found), found


def test_the_schema_knows_the_fetch_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader reads exactly the keys the schema describes for [fetch], and the schema accepts it."""
    text = '[fetch]\ngoproxy = ["file://deps/goproxy"]\nnetwork = false\ntimeout = "1m"\n'
    root = go_project(tmp_path, text)
    read: set[str] = set()
    reject = RecipeFile.reject_unknown_keys

    def spy(file: RecipeFile) -> None:
        for table in file.tables:
            if table.key == ("fetch",):
                read.update(table.known)
        reject(file)

    monkeypatch.setattr(RecipeFile, "reject_unknown_keys", spy)
    load_project(root)
    schema: dict[str, Any] = json.loads(
        (REPO_ROOT / "orchestrator" / "recipe" / "schema" / "service.schema.json").read_text()
    )
    assert read == set(schema["properties"]["fetch"]["properties"])
    recipe = tomllib.loads((root / "recipes" / "s.toml").read_text())
    assert list(Draft202012Validator(schema).iter_errors(recipe)) == []
    assert not Draft202012Validator(schema).is_valid({**recipe, "fetch": {"network": True}})


# --- Go's plan --------------------------------------------------------------------------------------


def go_env() -> dict[str, str]:
    project = load_project(REPO_ROOT)
    service = project.services["hello-go-modules"]
    return container_env(service, project.toolchains["go"], PLATFORMS["linux/arm64"], 0)


def test_go_fetches_with_go_mod_download_and_builds_offline_from_what_it_fetched() -> None:
    env = go_env()
    assert env["GOFLAGS"] == "-trimpath -buildvcs=false" and env["GOPROXY"] == "off"
    spec = FetchSpec(goproxy=("file://deps/goproxy", "https://proxy.example"), network=True)
    plan = fetch_plan(spec, ("file:///project/deps/goproxy", "https://proxy.example"), env)
    assert plan == FetchPlan(
        description="go mod download",
        lock_files=("go.mod", "go.sum"),
        sources=("file://deps/goproxy", "https://proxy.example"),
        command=("go", "mod", "download", "-x"),
        env={
            "GOPROXY": "file:///project/deps/goproxy,https://proxy.example",
            "GOSUMDB": "off",
            "GOFLAGS": "-trimpath -buildvcs=false -mod=readonly",
            "GOTOOLCHAIN": "local",
        },
        build_env={"GOPROXY": "off", "GOSUMDB": "off", "GOFLAGS": "-trimpath -buildvcs=false -mod=readonly"},
        directory_variable="GOMODCACHE",
    )


def test_no_language_fetches_an_empty_fetch() -> None:
    assert fetch_plan(FetchSpec(), (), go_env()) is None


def plan(*sources: str) -> FetchPlan:
    found = fetch_plan(FetchSpec(goproxy=sources), sources, {})
    assert found is not None
    return found


def test_the_key_follows_the_lock_files_and_the_sources_only() -> None:
    go_mod, go_sum = (SAMPLE / "go.mod").read_bytes(), (SAMPLE / "go.sum").read_bytes()
    key = fetch_key(plan("file://deps/goproxy"), {"go.mod": go_mod, "go.sum": go_sum})
    assert key == fetch_key(plan("file://deps/goproxy"), {"go.mod": go_mod, "go.sum": bytes(go_sum)})
    changed = go_sum.replace(b"FEBLx1", b"GEBLx1")
    assert key != fetch_key(plan("file://deps/goproxy"), {"go.mod": go_mod, "go.sum": changed})
    assert key != fetch_key(plan("file://deps/goproxy"), {"go.mod": go_mod + b"\n", "go.sum": go_sum})
    assert key != fetch_key(plan("file://deps/goproxy"), {"go.mod": go_mod, "go.sum": None})
    assert key != fetch_key(plan("file://vendor/goproxy"), {"go.mod": go_mod, "go.sum": go_sum})
    assert len(key) == 64


def test_lock_files_are_read_within_bounds(tmp_path: Path) -> None:
    assert read_lock_file(tmp_path / "go.sum") is None
    (tmp_path / "go.mod").write_text("module x\n")
    assert read_lock_file(tmp_path / "go.mod") == b"module x\n"
    os.symlink("/etc/passwd", tmp_path / "link")
    with pytest.raises(FetchFailed, match="cannot read link"):
        read_lock_file(tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FetchFailed, match="fifo is not a regular file"):
        read_lock_file(tmp_path / "fifo")
    (tmp_path / "big").write_bytes(b"x" * (LOCK_FILE_LIMIT + 1))
    with pytest.raises(FetchFailed, match="larger than 16 MiB"):
        read_lock_file(tmp_path / "big")


def test_the_build_reads_the_fetched_directory_offline() -> None:
    service = load_project(REPO_ROOT).services["hello-go-modules"]
    info = FetchInfo(
        command="go mod download", sources=[], network=False, key="k", reused=True, seconds=0, log=""
    )
    fetched = Fetched(
        info=info,
        env={"GOPROXY": "off", "GOMODCACHE": f"{FETCH_DIR}/k", "GOFLAGS": "-mod=readonly {x}"},
    )
    built = with_fetched(service, fetched)
    project = load_project(REPO_ROOT)
    env = container_env(built, project.toolchains["go"], PLATFORMS["linux/amd64"], 0)
    assert env["GOMODCACHE"] == "/cache/fetch/k" and env["GOPROXY"] == "off"
    assert env["GOFLAGS"] == "-mod=readonly {x}"  # a value, not a placeholder
    assert with_fetched(service, None) is service
    assert service.build.env == {}  # the recipe's own is untouched


# --- scripts/goproxy-add ------------------------------------------------------------------------------


def goproxy_add() -> ModuleType:
    path = REPO_ROOT / "scripts" / "goproxy-add"
    loader = importlib.machinery.SourceFileLoader("goproxy_add", str(path))
    spec = importlib.util.spec_from_loader("goproxy_add", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_shipped_proxy_gives_the_public_checksums() -> None:
    """deps/goproxy's zip of github.com/pkg/errors, made by the script from Debian's upstream tarball,
    hashes to what sum.golang.org records, as does the go.mod Go synthesizes for it; the sample's go.sum
    says the same."""
    script = goproxy_add()
    with zipfile.ZipFile(PROXY / "github.com" / "pkg" / "errors" / "@v" / "v0.9.1.zip") as archive:
        prefix = "github.com/pkg/errors@v0.9.1/"
        assert all(name.startswith(prefix) for name in archive.namelist())
        files = {name.removeprefix(prefix): archive.read(name) for name in archive.namelist()}
    assert script.go_sum_lines("github.com/pkg/errors", "v0.9.1", files) == PKG_ERRORS_SUM
    assert (SAMPLE / "go.sum").read_text().splitlines() == PKG_ERRORS_SUM
    mod = (PROXY / "github.com" / "pkg" / "errors" / "@v" / "v0.9.1.mod").read_bytes()
    assert mod == b"module github.com/pkg/errors\n"


def test_goproxy_add_writes_the_protocol_layout(tmp_path: Path) -> None:
    """A module whose go.sum lines were checked by the go command itself (it verified a build against
    them): the script's hashes, and the zip's files chosen as golang.org/x/mod/zip chooses them."""
    script = goproxy_add()
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "go.mod").write_bytes(b"module example.com/greet\n\ngo 1.21\n")
    (tree / "greet.go").write_bytes(
        b"package greet\n\n"
        b'func Hello(name string) string { return "Hello, " + name + " (from example.com/greet)" }\n'
    )
    for left_out in (".git/HEAD", "sub/go.mod", "sub/x.go", "vendor/a/b.go"):
        (tree / left_out).parent.mkdir(parents=True, exist_ok=True)
        (tree / left_out).write_text("left out\n")
    os.symlink("greet.go", tree / "link.go")
    out = io.StringIO()
    sys.stdout, saved = out, sys.stdout
    try:
        assert script.main(["example.com/Greet", "v1.0.0", str(tree), str(tmp_path / "proxy")]) == 0
    finally:
        sys.stdout = saved
    directory = tmp_path / "proxy" / "example.com" / "!greet" / "@v"
    assert sorted(p.name for p in directory.iterdir()) == ["list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"]
    with zipfile.ZipFile(directory / "v1.0.0.zip") as archive:
        assert archive.namelist() == ["example.com/Greet@v1.0.0/go.mod", "example.com/Greet@v1.0.0/greet.go"]
    assert json.loads((directory / "v1.0.0.info").read_text())["Version"] == "v1.0.0"
    assert (directory / "list").read_text() == "v1.0.0\n"
    # The same tree under the module path the go command verified: its go.sum lines, byte for byte.
    files = script.module_files(
        {"go.mod": (tree / "go.mod").read_bytes(), "greet.go": (tree / "greet.go").read_bytes()}
    )
    assert script.go_sum_lines("example.com/greet", "v1.0.0", files) == [
        "example.com/greet v1.0.0 h1:3uRbMKmp9IQjgPUPZLlSmHzLpg09CTsVEqeAXPx+5R8=",
        "example.com/greet v1.0.0/go.mod h1:rcTgdhGf2dvXrNywJG0jkV+0342RC7PiKN0YX33Ej6Y=",
    ]


def test_goproxy_add_leaves_out_packages_below_vendor_as_go_does() -> None:
    script = goproxy_add()
    tree = {
        "go.mod": b"",
        "vendor/modules.txt": b"",
        "vendor/x.go": b"",
        "vendor/a/b.go": b"",
        # Go's quirk (golang.org/issue/31562): below "/vendor/", the offset counts from the start of
        # the name, so this file of a package named vendor is left out too.
        "internal/vendor/c.go": b"",
        "internal/vendor/d/e.go": b"",
        "x/vendorless/f.go": b"",
    }
    assert sorted(script.module_files(tree)) == [
        "go.mod",
        "vendor/modules.txt",
        "vendor/x.go",
        "x/vendorless/f.go",
    ]


def test_a_failed_fetch_is_named_by_its_step_and_its_error() -> None:
    from orchestrator.engine import ContainerResult
    from orchestrator.stages.fetch import _failure

    spec = FetchSpec(goproxy=("file://deps/goproxy",))
    log = Path("out/s/linux-amd64/fetch.log")

    def reason(stderr: bytes, code: int = 1, timed_out: bool = False) -> str:
        result = ContainerResult(exit_code=code, stdout=b"", stderr=stderr, timed_out=timed_out)
        return _failure(plan("file://deps/goproxy"), spec, result, log)

    where = "the fetch step (go mod download from file://deps/goproxy)"
    mismatch = (
        b"go: downloading github.com/pkg/errors v0.9.1\n"
        b"verifying github.com/pkg/errors@v0.9.1: checksum mismatch\n\tdownloaded: h1:x\n\n"
        b"SECURITY ERROR\nThis download does NOT match an earlier download recorded in go.sum.\n"
    )
    assert reason(mismatch) == (
        f"{where} exited with 1: verifying github.com/pkg/errors@v0.9.1: checksum mismatch (log: {log})"
    )
    refused = (
        b"# get http://proxy.example/github.com/pkg/errors/@v/v0.9.1.mod\n"
        b"# get http://proxy.example/github.com/pkg/errors/@v/v0.9.1.mod: 400 Bad Request (0.010s)\n"
        b"go: github.com/pkg/errors@v0.9.1: reading http://proxy.example/github.com/pkg/errors/@v/v0.9.1.mod:"
        b" 400 Bad Request\n"
    )
    assert reason(refused).startswith(f"{where} exited with 1: go: github.com/pkg/errors@v0.9.1: reading ")
    missing = (
        b"go: example.com/x@v1.0.0: reading file:///project/deps/goproxy/example.com/x/@v/v1.0.0.mod: "
        b"no such file or directory\n"
    )
    assert reason(missing).endswith(
        "no such file or directory; without a network, every module must be in the file:// proxies "
        f"(log: {log})"
    )
    assert reason(b"", code=124, timed_out=True) == f"{where} timed out after 600s (log: {log})"
    assert (
        reason(b"sh: 1: go: not found\n", code=127)
        == f"{where}: 'go' is not in the toolchain image (log: {log})"
    )
