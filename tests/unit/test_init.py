"""`osless init` without an engine: what it recognises in a source tree, the recipe it writes (valid for
the loader, as each language proposes it), what it sets up in a new project (osless's toolchains, the
JSON Schemas), and what it refuses (an existing recipe, a path outside the project, a tree it does not
know, a file in the way of a toolchain)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from orchestrator.bootstrap.spec import spec_hash
from orchestrator.cli.main import main
from orchestrator.errors import UsageError
from orchestrator.languages.proposals import documented_version_option
from orchestrator.recipe.init import service_name, shipped_toolchains
from orchestrator.recipe.jsonschema import schema_text
from orchestrator.recipe.loader import load_project
from tests.conftest import REPO_ROOT, example_source, init_source

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# What `osless init` proposes for each shipped source (sample or example): the toolchain, and the
# build's command (or steps) and artifact as the recipe has them.
EXPECTED = {
    "hello-c": ("gcc", {"command": ["{CC}", "-static", "-Os", "-s", "-Wall", "-o", "{output}", "hello.c"]}),
    "hello-c-zig": (
        "gcc",
        {"command": ["{CC}", "-static", "-Os", "-s", "-Wall", "-pthread", "-o", "{output}", "hello.c"]},
    ),
    "hello-cxx": (
        "gcc",
        {
            "command": [
                "{CXX}",
                "-std=gnu++20",
                "-static",
                "-Os",
                "-s",
                "-Wall",
                "-pthread",
                "-o",
                "{output}",
                "hello.cpp",
            ]
        },
    ),
    "hello-go": (
        "go",
        {"command": ["go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", "{output}", "."]},
    ),
    "hello-rust": (
        "rust",
        {
            "command": ["cargo", "build", "--release", "--offline", "--locked"],
            "artifact": "{CARGO_TARGET_DIR}/{RUST_TARGET}/release/hello-rust",
        },
    ),
    "hello-zig": (
        "zig",
        {
            "command": [
                "zig",
                "build-exe",
                "-target",
                "{ZIG_TARGET}",
                "-O",
                "ReleaseSmall",
                "-fstrip",
                "-femit-bin={output}",
                "main.zig",
            ]
        },
    ),
    "lua": (
        "gcc",
        {
            "steps": [
                ["make", "-j{JOBS}", "CC={CC} -std=gnu99 -static -s", "AR={AR} rcu", "RANLIB={RANLIB}"]
            ],
            "artifact": "src/lua",
        },
    ),
    "gojq": (
        "go",
        {
            "command": [
                "go",
                "build",
                "-trimpath",
                "-ldflags=-s -w -buildid=",
                "-mod=vendor",
                "-o",
                "{output}",
                "./cmd/gojq",
            ]
        },
    ),
    "hexyl": ("rust-debian", {"artifact": "{CARGO_TARGET_DIR}/{RUST_TARGET}/release/hexyl"}),
    "minisign": ("gcc-sodium", {"artifact": "build/minisign"}),
    "ninja": ("gcc", {"artifact": "build/ninja"}),
    "hello-meson": ("gcc", {"artifact": "build/hello-meson", "env": {"LDFLAGS": "-static -s"}}),
    "hello-autotools": (
        "gcc",
        {
            "steps": [
                ["autoreconf", "--install", "--force"],
                ["./configure", "--host={GNU_TRIPLE}", "--disable-shared", "LDFLAGS=-static -s"],
                ["make", "-j{JOBS}"],
            ],
            "artifact": "hello-autotools",
        },
    ),
    "hello-libtool": (
        "gcc",
        {
            "steps": [
                ["autoreconf", "--install", "--force"],
                ["./configure", "--host={GNU_TRIPLE}", "--disable-shared", "LDFLAGS=-static -s"],
                ["make", "-j{JOBS}", "LDFLAGS=-all-static -s"],
            ],
            "artifact": "hello-libtool",
        },
    ),
    "zig-greet": (
        "zig",
        {
            "steps": [["zig", "build", "-Dtarget={ZIG_TARGET}", "-Doptimize=ReleaseSmall"]],
            "artifact": "zig-out/bin/zig-greet",
        },
    ),
}
EXAMPLES = ("lua", "gojq", "hexyl", "minisign", "ninja")


def _init(project: Path, *args: str) -> int:
    return main(["-C", str(project), "init", *args])


def _comments(recipe: str) -> str:
    """The recipe's comments as one line of text: the wrapping undone."""
    return " ".join(line.removeprefix("#").strip() for line in recipe.splitlines() if line.startswith("#"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the shipped toolchains and the examples' (gcc-sodium, rust-debian)."""
    root = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    for extra in (REPO_ROOT / "examples" / "recipes" / "toolchains").glob("*.toml"):
        if not (root / "recipes" / "toolchains" / extra.name).exists():
            shutil.copy(extra, root / "recipes" / "toolchains" / extra.name)
    return root


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_init_proposes_what_builds_each_shipped_source(
    name: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(init_source(name), project / "sources" / name, symlinks=True)
    assert _init(project, f"sources/{name}") == 0
    text = (project / "recipes" / f"{name}.toml").read_text()
    assert text.startswith("#:schema .schema/service.schema.json\n")
    recipe = tomllib.loads(text)
    toolchain, build = EXPECTED[name]
    assert recipe["service"] == {
        "name": name,
        "source": f"sources/{name}",
        "toolchain": toolchain,
        "platforms": ["all"],
    }
    assert {key: recipe["build"][key] for key in build} == build
    loaded = load_project(project).services[name]  # the loader takes it as it is
    assert loaded.toolchain == toolchain and loaded.image.user == "65534:65534"
    assert f"next: osless build {name}" in capsys.readouterr().out


def test_meson_configures_with_a_cross_file_for_the_platform(project: Path) -> None:
    """host_machine is the platform (from the platform table), not the builder: a cross file first."""
    shutil.copytree(init_source("hello-meson"), project / "sources" / "hello-meson")
    assert _init(project, "sources/hello-meson") == 0
    cross, setup, compile_ = tomllib.loads((project / "recipes" / "hello-meson.toml").read_text())["build"][
        "steps"
    ]
    assert cross[:3] == ["meson", "env2mfile", "--cross"]
    assert {"--cpu-family={MESON_CPU_FAMILY}", "--cpu={MESON_CPU}", "--endian={ENDIAN}"} <= set(cross)
    assert setup[:3] == ["meson", "setup", "build"]
    assert f"--cross-file={cross[cross.index('-o') + 1]}" in setup
    assert compile_ == ["meson", "compile", "-C", "build", "-j", "{JOBS}"]


def test_init_foresees_extras_and_fetches(project: Path) -> None:
    for name in ("tls-go", "whoami-c", "hello-go-modules"):
        shutil.copytree(REPO_ROOT / "sources" / name, project / "sources" / name)
    shutil.copytree(REPO_ROOT / "deps", project / "deps")
    assert _init(project, "sources/tls-go", "sources/whoami-c", "sources/hello-go-modules") == 0
    services = load_project(project).services
    assert services["tls-go"].image.extras == ("ca-certificates",)
    assert services["whoami-c"].image.extras == ("passwd",)
    assert services["hello-go-modules"].fetch is not None
    assert services["hello-go-modules"].fetch.goproxy == ("file://deps/goproxy",)


def test_init_smoke_stub_uses_a_documented_version_option(project: Path) -> None:
    shutil.copytree(example_source("lua"), project / "sources" / "lua")
    assert _init(project, "sources/lua") == 0
    smoke = tomllib.loads((project / "recipes" / "lua.toml").read_text())["smoke"]
    assert smoke == {"args": ["-v"], "timeout": "10s"}


def test_dry_run_prints_and_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "sources" / "app").mkdir(parents=True)
    (project / "sources" / "app" / "main.c").write_text("int main(void) { return 0; }\n")
    assert _init(project, "--dry-run", "sources/app") == 0
    printed = capsys.readouterr().out
    assert tomllib.loads(printed)["service"]["name"] == "app"
    assert not (project / "recipes" / "app.toml").exists()


def test_init_refuses_to_overwrite_a_recipe(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "sources" / "app").mkdir(parents=True)
    (project / "sources" / "app" / "main.c").write_text("int main(void) { return 0; }\n")
    (project / "recipes" / "app.toml").write_text("# mine\n")
    assert _init(project, "sources/app") == 2
    assert "recipes/app.toml exists: osless init does not overwrite a recipe" in capsys.readouterr().err
    assert (project / "recipes" / "app.toml").read_text() == "# mine\n"


def test_init_refuses_a_name_another_recipe_claims(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "sources" / "app").mkdir(parents=True)
    (project / "sources" / "app" / "main.c").write_text("int main(void) { return 0; }\n")
    (project / "recipes" / "other.toml").write_text('[service]\nname = "app"\n')
    assert _init(project, "sources/app") == 2
    assert "recipes/other.toml already defines the service 'app'" in capsys.readouterr().err
    assert _init(project, "--name", "app2", "sources/app") == 0
    assert (project / "recipes" / "app2.toml").is_file()


def test_init_refuses_a_path_outside_the_project(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "elsewhere").mkdir()
    assert _init(project, "../elsewhere") == 2
    assert "leads outside the project" in capsys.readouterr().err


def test_init_says_what_it_found_in_a_tree_it_does_not_know(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "sources" / "docs").mkdir(parents=True)
    (project / "sources" / "docs" / "README.md").write_text("hello\n")
    assert _init(project, "sources/docs") == 2
    err = capsys.readouterr().err
    assert "sources/docs: no build file or source of a language osless knows (it holds README.md)" in err
    assert "knows the build files and sources of go, rust" in err


def _go_source(directory: Path) -> None:
    directory.mkdir(parents=True)
    (directory / "go.mod").write_text("module example.com/svc\n\ngo 1.24\n")
    (directory / "main.go").write_text("package main\n\nfunc main() {}\n")


def test_init_sets_up_a_new_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No recipes/ at all: the toolchains the services need are copied from osless's, once each, with
    the spec hash (so the image tag) of the shipped ones; the schemas the recipes name are written."""
    root = tmp_path / "project"
    _go_source(root / "sources" / "svc")
    _go_source(root / "sources" / "other")
    (root / "sources" / "tool").mkdir(parents=True)
    (root / "sources" / "tool" / "main.c").write_text("int main(void) { return 0; }\n")
    assert main(["-C", str(root), "init", "sources/svc", "sources/other", "sources/tool"]) == 0
    out = capsys.readouterr().out
    assert out.count("wrote recipes/toolchains/go.toml (the go toolchain osless ships)\n") == 1
    assert "wrote recipes/toolchains/gcc.toml (the gcc toolchain osless ships)\n" in out
    assert "wrote recipes/.schema/ (the JSON Schemas" in out
    assert sorted(path.name for path in (root / "recipes" / "toolchains").iterdir()) == [
        "gcc.toml",
        "go.toml",
    ]
    for name in ("gcc", "go"):
        copy = (root / "recipes" / "toolchains" / f"{name}.toml").read_text().splitlines()
        shipped = (REPO_ROOT / "recipes" / "toolchains" / f"{name}.toml").read_text().splitlines()
        assert copy[0] == "#:schema ../.schema/toolchain.schema.json" and copy[1:] == shipped[1:]
    assert (root / "recipes" / ".schema" / "service.schema.json").read_text() == schema_text("service")
    assert (root / "recipes" / ".schema" / "toolchain.schema.json").read_text() == schema_text("toolchain")
    project = load_project(root)
    assert {name: project.services[name].toolchain for name in ("svc", "other", "tool")} == {
        "svc": "go",
        "other": "go",
        "tool": "gcc",
    }
    shipped_project = load_project(REPO_ROOT)
    for name in ("gcc", "go"):
        assert spec_hash(project.toolchains[name]) == spec_hash(shipped_project.toolchains[name])


def test_init_keeps_the_project_toolchains_and_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "project"
    (root / "recipes" / "toolchains").mkdir(parents=True)
    own = (REPO_ROOT / "recipes" / "toolchains" / "go.toml").read_text() + "# the team's own\n"
    (root / "recipes" / "toolchains" / "go.toml").write_text(own)
    (root / "recipes" / ".schema").mkdir()
    _go_source(root / "sources" / "svc")
    assert main(["-C", str(root), "init", "sources/svc"]) == 0
    out = capsys.readouterr().out
    assert "recipes/toolchains/" not in out and "recipes/.schema/" not in out
    assert (root / "recipes" / "toolchains" / "go.toml").read_text() == own
    assert not any((root / "recipes" / ".schema").iterdir())
    assert (root / "recipes" / "svc.toml").is_file()


def test_quiet_init_names_the_recipes_and_what_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "project"
    _go_source(root / "sources" / "svc")
    (root / "sources" / "tool").mkdir(parents=True)
    (root / "sources" / "tool" / "Makefile").write_text("all:\n\t$(CC) -o other main.c\n")
    (root / "sources" / "tool" / "main.c").write_text("int main(void) { return 0; }\n")
    assert main(["-C", str(root), "-q", "init", "sources/svc", "sources/tool"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wrote recipes/svc.toml: go, go.mod (go build); toolchain go, every platform it builds for (7)",
        "wrote recipes/tool.toml: c, Makefile (make); toolchain gcc, every platform it builds for (7)",
        "  check: no program named 'tool' found in the Makefiles: check `artifact`",
    ]
    assert (root / "recipes" / "toolchains" / "go.toml").is_file() and (root / "recipes" / ".schema").is_dir()


def test_dry_run_in_a_new_project_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "project"
    _go_source(root / "sources" / "svc")
    assert main(["-C", str(root), "init", "--dry-run", "sources/svc"]) == 0
    printed = capsys.readouterr()
    assert tomllib.loads(printed.out)["service"]["toolchain"] == "go"
    assert "would write recipes/toolchains/go.toml (the go toolchain osless ships)" in printed.err
    assert "would write recipes/.schema/" in printed.err
    assert not (root / "recipes").exists()


def test_init_does_not_write_a_toolchain_over_a_file_of_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "project"
    (root / "recipes" / "toolchains").mkdir(parents=True)
    other = (REPO_ROOT / "recipes" / "toolchains" / "go.toml").read_text()
    other = other.replace('name = "go"', 'name = "golang"', 1)
    (root / "recipes" / "toolchains" / "go.toml").write_text(other)
    _go_source(root / "sources" / "svc")
    assert main(["-C", str(root), "init", "sources/svc"]) == 2
    assert "recipes/toolchains/go.toml defines no toolchain named 'go'" in capsys.readouterr().err
    assert (root / "recipes" / "toolchains" / "go.toml").read_text() == other
    assert not (root / "recipes" / "svc.toml").exists() and not (root / "recipes" / ".schema").exists()


def test_without_osless_checkout_the_shipped_toolchains_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="osless's toolchain recipes are not at") as raised:
        shipped_toolchains(tmp_path)
    assert "scripts/setup-host" in (raised.value.hint or "")


def test_an_unmet_library_is_a_note_and_the_base_toolchain_stays(project: Path) -> None:
    source = project / "sources" / "app"
    source.mkdir(parents=True)
    (source / "CMakeLists.txt").write_text(
        "project(app C)\nfind_package(PkgConfig)\n"
        "pkg_check_modules(Z REQUIRED zstd>=1.4)\nadd_executable(app main.c)\n"
    )
    (source / "main.c").write_text("int main(void) { return 0; }\n")
    assert _init(project, "sources/app") == 0
    text = (project / "recipes" / "app.toml").read_text()
    assert 'toolchain = "gcc"' in text
    comments = _comments(text)
    assert "zstd (pkg-config, CMakeLists.txt)" in comments and '"libzstd-dev"' in comments
    load_project(project)


def test_go_main_packages_and_offline_modules(project: Path) -> None:
    source = project / "sources" / "tool"
    (source / "cmd" / "other").mkdir(parents=True)
    (source / "cmd" / "tool").mkdir(parents=True)
    (source / "go.mod").write_text("module example.com/tool\n\ngo 1.22\n\nrequire example.com/dep v1.0.0\n")
    for directory in ("other", "tool"):
        (source / "cmd" / directory / "main.go").write_text(
            'package main\n\nimport "flag"\n\nfunc main() { flag.Parse() }\n'
        )
    assert _init(project, "sources/tool") == 0
    text = (project / "recipes" / "tool.toml").read_text()
    assert tomllib.loads(text)["build"]["command"][-1] == "./cmd/tool"
    comments = _comments(text)
    assert "main packages found: cmd/tool (built) and cmd/other" in comments
    assert "run `go mod vendor`" in comments and "no go.sum" in comments


def test_go_files_without_go_mod_are_built_by_name(project: Path) -> None:
    source = project / "sources" / "plain"
    source.mkdir(parents=True)
    (source / "main.go").write_text(
        'package main\n\nimport "net/http"\n\nfunc main() { http.ListenAndServe(":8080", nil) }\n'
    )
    (source / "util.go").write_text("package main\n")
    assert _init(project, "sources/plain") == 0
    recipe = tomllib.loads((project / "recipes" / "plain.toml").read_text())
    assert recipe["build"]["command"][-2:] == ["main.go", "util.go"]
    assert recipe["image"]["extras"] == ["ca-certificates"]


def test_the_project_root_is_the_default_path(tmp_path: Path) -> None:
    root = tmp_path / "My Tool_2"
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    (root / "Cargo.toml").write_text('[package]\nname = "tool"\nversion = "0.1.0"\nedition = "2021"\n')
    (root / "src").mkdir()
    (root / "src" / "main.rs").write_text("fn main() {}\n")
    assert main(["-C", str(root), "init"]) == 0
    recipe = tomllib.loads((root / "recipes" / "my-tool_2.toml").read_text())
    assert recipe["service"]["source"] == "."
    assert recipe["build"]["command"] == ["cargo", "build", "--release", "--offline"]
    assert recipe["build"]["artifact"] == "{CARGO_TARGET_DIR}/{RUST_TARGET}/release/tool"


@pytest.mark.parametrize(
    ("directory", "name"),
    [("hello-c", "hello-c"), ("My Project", "my-project"), ("a__b..c", "a-b-c"), ("_x_", "x")],
)
def test_service_names_from_directory_names(directory: str, name: str) -> None:
    assert service_name(Path(directory)) == name


def test_a_directory_name_without_a_service_name_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    (root / "sources" / "___").mkdir(parents=True)
    assert main(["-C", str(root), "init", "sources/___"]) == 2
    assert "give one with --name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ('  "  -v        show version information\\n"', "-v"),
        ('"  -V, --version   Print version info and exit\\n"', "--version"),
        ('"  --version      print ninja version (\\"%s\\")\\n"', "--version"),
        ('"  --api-version V  use this API version\\n"', None),
        ('"  -v   verbose output\\n"', None),
    ],
)
def test_documented_version_options(text: str, option: str | None) -> None:
    assert documented_version_option([text]) == option
