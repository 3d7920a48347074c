"""Recipe loading: the shipped recipes resolve as documented, and every kind of mistake is reported
with file, line and key, all at once. Each test edits a tiny valid project written to tmp_path."""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.bootstrap.spec import mmdebstrap_command
from orchestrator.errors import RecipeError, RecipeProblem
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import BUILD_LIMITS, SMOKE_LIMITS, Limits
from orchestrator.recipe.placeholders import build_env
from tests.conftest import REPO_ROOT

TOOLCHAIN = """\
[toolchain]
name = "gcc"

[toolchain.bootstrap]
suite = "trixie"
packages = ["gcc"]

[toolchain.platforms."linux/amd64"]
env = { CC = "gcc", MUSL_CC = "musl-gcc" }

[toolchain.platforms."linux/arm64"]
env = { CC = "aarch64-linux-gnu-gcc" }
"""

SERVICE = """\
[service]
name = "hello"
source = "src"
toolchain = "gcc"
platforms = ["linux/amd64", "linux/arm64"]

[build]
command = ["{CC}", "-o", "{output}", "hello.c"]
"""

SERVICE_FILE = "recipes/hello.toml"
TOOLCHAIN_FILE = "recipes/toolchains/gcc.toml"
KNOWN_PLATFORMS = ", ".join(PLATFORMS)


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def edit(root: Path, rel: str, old: str, new: str) -> None:
    """Replaces `old` (which must be there, so a typo in a test cannot pass silently) by `new`."""
    text = (root / rel).read_text()
    assert old in text, f"{old!r} not in {rel}"
    (root / rel).write_text(text.replace(old, new, 1))


def append(root: Path, rel: str, text: str) -> None:
    write(root, rel, (root / rel).read_text() + text)


def problems(root: Path) -> list[RecipeProblem]:
    with pytest.raises(RecipeError) as caught:
        load_project(root)
    return caught.value.problems


def assert_problem(root: Path, expected: str) -> None:
    """Some problem, printed as the user sees it, starts with `expected`."""
    found = [str(problem) for problem in problems(root)]
    assert any(text.startswith(expected) for text in found), "\n".join(found)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the project, which recipes must not reach."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A tiny valid project: toolchain gcc (amd64, arm64) and service hello building src/."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    write(root, TOOLCHAIN_FILE, TOOLCHAIN)
    write(root, SERVICE_FILE, SERVICE)
    return root


# --- What loads ---


def test_shipped_recipes_load() -> None:
    project = load_project(REPO_ROOT)

    assert set(project.services) == {
        *("hello-go", "hello-c", "hello-c-musl", "hello-cxx", "tls-go", "whoami-c-musl"),
        *("hello-zig", "hello-c-zig", "hello-rust", "hello-go-modules"),
    }
    assert set(project.toolchains) == {"go", "gcc", "zig", "rust"}
    go = project.services["hello-go"]
    assert go.platforms == tuple(PLATFORMS)  # platforms = ["all"]
    assert go.toolchain == "go"
    assert go.source == REPO_ROOT / "sources" / "hello-go"
    assert go.build.output == "hello-go"
    assert go.build.timeout == 600.0
    assert (go.image.repository, go.image.tag, go.image.cmd) == ("hello-go", "latest", ())
    assert go.smoke.args == () and go.smoke.checks[0].timeout == 10.0
    assert go.smoke.checks[0].expect.stdout == "Hello from OS-less container (Go edition)\n"
    musl = project.services["hello-c-musl"]
    assert musl.platforms == tuple(PLATFORMS) and not musl.unsupported  # musl-dev:<arch> on every one
    gcc = project.toolchains["gcc"]
    assert gcc.platforms["linux/arm64"].env == {
        "CC": "aarch64-linux-gnu-gcc",
        "CXX": "aarch64-linux-gnu-g++",
        "MUSL_CC": "aarch64-linux-musl-gcc",
    }
    assert gcc.platforms["linux/arm64"].packages == (
        *("gcc-aarch64-linux-gnu", "g++-aarch64-linux-gnu", "libc6-dev-arm64-cross", "musl-dev:arm64"),
        "pkgconf:arm64",
    )
    # The build tools of real trees: binutils and pkg-config of the platform being built.
    for platform, triple in (("linux/386", "i686-linux-gnu"), ("linux/amd64", "x86_64-linux-gnu")):
        env = build_env(gcc, platform, {})
        assert {name: env[name] for name in ("AR", "RANLIB", "STRIP", "PKG_CONFIG")} == {
            "AR": f"{triple}-ar",
            "RANLIB": f"{triple}-ranlib",
            "STRIP": f"{triple}-strip",
            "PKG_CONFIG": f"{triple}-pkg-config",
        }
    assert gcc.bootstrap is not None
    assert {"make", "autoconf", "automake", "libtool", "cmake", "ninja-build", "meson", "pkgconf"} <= set(
        gcc.bootstrap.packages
    )
    assert gcc.bootstrap is not None
    assert (gcc.bootstrap.components, gcc.bootstrap.mirror) == (("main",), None)
    assert build_env(project.toolchains["go"], "linux/arm64", {"EXTRA": "1"}) == {
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "-trimpath -buildvcs=false",
        "GOARCH": "arm64",
        "EXTRA": "1",
    }


def test_minimal_service_gets_all_defaults(project: Path) -> None:
    service = load_project(project).services["hello"]

    assert service.file == project / SERVICE_FILE
    assert service.source == project / "src"
    assert service.build.env == {} and service.build.output == "hello" and service.build.timeout == 600.0
    image = service.image
    assert (image.repository, image.tag, image.entrypoint, image.cmd) == ("hello", "latest", ("/hello",), ())
    assert (image.user, image.env, image.labels) == ("65534:65534", {}, {})
    (check,) = service.smoke.checks
    assert (check.args, check.expect.stdout, check.expect.exit_code) == ((), None, 0)
    assert check.timeout == 30.0


def test_explicit_values_are_kept(project: Path) -> None:
    edit(project, SERVICE_FILE, "{CC}", "{MUSL_CC}")
    edit(project, SERVICE_FILE, '["linux/amd64", "linux/arm64"]', '["linux/amd64"]')
    append(
        project,
        SERVICE_FILE,
        """
env = { LEVEL = "2" }
output = "app"
[image]
repository = "registry.example:5000/team/hello"
tag = "v1.2"
user = "1000"
labels = { "org.opencontainers.image.title" = "hello" }
[smoke]
args = ["--quiet"]
stdout = ""
exit_code = 3
""",
    )

    service = load_project(project).services["hello"]

    assert service.build.env == {"LEVEL": "2"} and service.build.output == "app"
    assert service.image.entrypoint == ("/app",)  # follows the output name
    assert service.image.repository == "registry.example:5000/team/hello" and service.image.tag == "v1.2"
    assert service.image.user == "1000"
    assert service.image.labels == {"org.opencontainers.image.title": "hello"}
    (check,) = service.smoke.checks
    assert (check.args, check.expect.stdout, check.expect.exit_code) == (("--quiet",), "", 3)


@pytest.mark.parametrize(
    "command",
    [
        '["{MUSL_CC}"]',  # supplied by the service's own env for arm64
        '["{LEVEL}", "{CC}"]',
        '["sh", "-c", "echo {{not a placeholder}} > {output}"]',
    ],
)
def test_placeholders_resolved_by_any_env_layer(project: Path, command: str) -> None:
    edit(project, SERVICE_FILE, '["{CC}", "-o", "{output}", "hello.c"]', command)
    append(project, SERVICE_FILE, 'env = { MUSL_CC = "cc", LEVEL = "2" }\n')

    assert load_project(project).services["hello"].build.command


def test_image_only_toolchain_loads(project: Path) -> None:
    edit(project, TOOLCHAIN_FILE, '[toolchain.bootstrap]\nsuite = "trixie"\npackages = ["gcc"]\n', "")
    edit(project, TOOLCHAIN_FILE, 'name = "gcc"', 'name = "gcc"\nimage = "gcc:14"')

    toolchain = load_project(project).toolchains["gcc"]

    assert (toolchain.image, toolchain.bootstrap) == ("gcc:14", None)


def test_source_symlink_inside_project_is_resolved(project: Path) -> None:
    (project / "link").symlink_to(project / "src")
    edit(project, SERVICE_FILE, 'source = "src"', 'source = "link"')

    assert load_project(project).services["hello"].source == project / "src"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ('"10s"', 10),
        ('"2m"', 120),
        ('"1m30s"', 90),
        ('"500ms"', 0.5),
        ('"1h"', 3600),
        ('"1.5s"', 1.5),
        ("5", 5),
        ("2.5", 2.5),
    ],
)
def test_duration_parsing(project: Path, value: str, seconds: float) -> None:
    append(project, SERVICE_FILE, f"[smoke]\ntimeout = {value}\n")

    assert load_project(project).services["hello"].smoke.checks[0].timeout == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"3 min"', "'3 min' is not a duration"),
        ('"10"', "'10' is not a duration"),
        ('"ms"', "'ms' is not a duration"),
        ('"0s"', "'0s' is not a positive duration"),
        ("0", "0 is not a positive duration"),
        ("-1", "-1 is not a positive duration"),
        ("inf", "inf is not a positive duration"),
        ("true", 'expected a duration like "30s" or a number of seconds, got boolean'),
    ],
)
def test_bad_durations(project: Path, value: str, expected: str) -> None:
    append(project, SERVICE_FILE, f"[smoke]\ntimeout = {value}\n")

    assert_problem(project, f"{SERVICE_FILE}:10: smoke.timeout: {expected}")


# --- What is reported ---


def test_problem_is_located(project: Path) -> None:
    edit(project, SERVICE_FILE, "command =", "comand =")

    assert problems(project) == [
        RecipeProblem(
            file=SERVICE_FILE,
            key="build.command",
            line=7,
            message="required but missing",
            hint="give one of command, steps or script",
        ),
        RecipeProblem(
            file=SERVICE_FILE,
            key="build.comand",
            line=8,
            message="unknown key",
            hint="did you mean 'command'?",
        ),
    ]


SERVICE_PROBLEMS = [
    # (old, new, the expected problem as printed after the file name, or its beginning)
    ("command =", "comand =", ":8: build.comand: unknown key (did you mean 'command'?)"),
    ('hello.c"]', 'hello.c"]\n[smok]', ":9: smok: unknown table (did you mean 'smoke'?)"),
    ('hello.c"]', 'hello.c"]\nxyzzy = 1', ":9: build.xyzzy: unknown key (valid keys: command,"),
    ('name = "hello"\n', "", ":1: service.name: required but missing"),
    ('[build]\ncommand = ["{CC}", "-o", "{output}", "hello.c"]\n', "", ": build: required but"),
    (
        '"linux/arm64"]',
        '"linux/amd46"]',
        ":5: service.platforms: unknown platform 'linux/amd46' "
        f"(did you mean 'linux/amd64'? known: {KNOWN_PLATFORMS})",
    ),
    ('"linux/arm64"]', '"linux/amd64"]', ":5: service.platforms: 'linux/amd64' is listed twice"),
    (
        '"linux/arm64"]',
        '"linux/riscv64"]',
        ":5: service.platforms: linux/riscv64 is not supported by toolchain gcc "
        "(it supports: linux/amd64, linux/arm64)",
    ),
    (
        'toolchain = "gcc"',
        'toolchain = "gc"',
        ":4: service.toolchain: unknown toolchain 'gc' (did you mean 'gcc'? known: gcc)",
    ),
    (
        "{CC}",
        "{MUSL_CC}",
        ":8: build.command: placeholder {MUSL_CC} is not defined for linux/arm64 "
        "by toolchain gcc (defined: CC)",
    ),
    ("{CC}", "{CC!r}", ":8: build.command: '{CC!r}': {CC!r} is not a placeholder"),
    ("{CC}", "{}", ":8: build.command: '{}': {} is not a placeholder"),
    ("{CC}", "{CC", ":8: build.command: '{CC': expected '}' before end of string"),
    # Wrong types and forms.
    ('["linux/amd64", "linux/arm64"]', "3", ":5: service.platforms: expected a list of strings, got integer"),
    ('"linux/arm64"]', "7]", ":5: service.platforms: expected a list of strings, item 1 is integer"),
    ('["linux/amd64", "linux/arm64"]', "[]", ":5: service.platforms: must not be empty"),
    ('name = "hello"', "name = 1", ":2: service.name: expected a string, got integer"),
    ('name = "hello"', 'name = "Hello"', ":2: service.name: 'Hello' is not a valid name"),
    (
        '"hello.c"]',
        '"hello.c"]\noutput = "bin/hello"',
        ":9: build.output: 'bin/hello' is not a plain file name",
    ),
    ('"hello.c"]', '"hello.c"]\nenv = { "A-B" = "1" }', ":9: build.env: 'A-B' is not a variable name"),
    ('"hello.c"]', '"hello.c"]\n[image]\nuser = "nobody"', ":10: image.user: 'nobody' is not a numeric user"),
    (
        '"hello.c"]',
        '"hello.c"]\n[image]\nenv = { A = 1 }',
        ":10: image.env: expected a table of strings, A is integer",
    ),
    (
        '"hello.c"]',
        '"hello.c"]\n[image]\nrepository = "hello:1.0"',
        ":10: image.repository: 'hello:1.0' is not a valid image repository",
    ),
    (
        '"hello.c"]',
        '"hello.c"]\n[smoke]\nexit_code = true',
        ":10: smoke.exit_code: expected an integer, got boolean",
    ),
    ('"hello.c"]', '"hello.c"]\n[smoke]\nexit_code = 256', ":10: smoke.exit_code: 256 is not an exit"),
    ('"hello.c"]', '"hello.c"]\nsmoke = "yes"', ":9: build.smoke: unknown key"),
    ("[service]", "smoke = 3\n[service]", ":1: smoke: expected a table, got integer"),
]


@pytest.mark.parametrize(("old", "new", "expected"), SERVICE_PROBLEMS)
def test_service_problem(project: Path, old: str, new: str, expected: str) -> None:
    edit(project, SERVICE_FILE, old, new)

    assert_problem(project, SERVICE_FILE + expected)


def test_undefined_placeholder_reported_only_where_undefined(project: Path) -> None:
    edit(project, SERVICE_FILE, "{CC}", "{MUSL_CC}")

    assert [problem.message for problem in problems(project)] == [
        "placeholder {MUSL_CC} is not defined for linux/arm64 by toolchain gcc"
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("../outside", "'../outside' leads outside the project"),
        ("src/../../outside", "'src/../../outside' leads outside the project"),
        ("{outside}", "'{outside}' is absolute"),
        ("escape", "'escape' leads outside the project"),  # a symlink to ../outside
        ("escape/sub", "'escape/sub' leads outside the project"),
        ("", "must not be empty"),
    ],
)
def test_bad_source(project: Path, outside: Path, source: str, expected: str) -> None:
    (project / "escape").symlink_to(outside)
    (outside / "sub").mkdir()
    edit(project, SERVICE_FILE, 'source = "src"', f'source = "{source.format(outside=outside)}"')

    assert_problem(project, f"{SERVICE_FILE}:3: service.source: {expected.format(outside=outside)}")


TOOLCHAIN_PROBLEMS = [
    (
        '[toolchain.bootstrap]\nsuite = "trixie"\npackages = ["gcc"]\n',
        "",
        ":1: toolchain: needs `image` or [toolchain.bootstrap] (or both)",
    ),
    ('suite = "trixie"\n', "", ":4: toolchain.bootstrap.suite: required but missing"),
    (
        'packages = ["gcc"]',
        'packages = ["gcc"]\nmirorr = "http://x"',
        ":7: toolchain.bootstrap.mirorr: unknown key (did you mean 'mirror'?)",
    ),
    (
        '"linux/arm64"]',
        '"linux/arm46"]',
        ":11: toolchain.platforms.\"linux/arm46\": unknown platform 'linux/arm46' "
        "(did you mean 'linux/arm64'?",
    ),
    (
        'env = { CC = "aarch64',
        'evn = { CC = "aarch64',
        ":12: toolchain.platforms.\"linux/arm64\".evn: unknown table (did you mean 'env'?)",
    ),
    ('CC = "gcc"', "CC = 1", ':9: toolchain.platforms."linux/amd64".env: expected a table of strings, CC is'),
    ('name = "gcc"', 'name = "gcc"\nimage = 5', ":3: toolchain.image: expected a string"),
    ("[toolchain]", "[toolchain]\nversion = 1", ":2: toolchain.version: unknown key"),
]


@pytest.mark.parametrize(("old", "new", "expected"), TOOLCHAIN_PROBLEMS)
def test_toolchain_problem(project: Path, old: str, new: str, expected: str) -> None:
    edit(project, TOOLCHAIN_FILE, old, new)

    assert_problem(project, TOOLCHAIN_FILE + expected)


def test_toolchain_without_platforms(project: Path) -> None:
    write(project, TOOLCHAIN_FILE, '[toolchain]\nname = "gcc"\nimage = "gcc:14"\n')

    assert_problem(
        project,
        f"{TOOLCHAIN_FILE}:1: toolchain.platforms: required but missing "
        '(add e.g. [toolchain.platforms."linux/amd64"])',
    )


def test_toml_syntax_error_has_line_and_column(project: Path) -> None:
    edit(project, SERVICE_FILE, 'name = "hello"', 'name = = "hello"')

    [problem] = problems(project)
    assert (problem.file, problem.line, problem.column) == (SERVICE_FILE, 2, 8)
    assert str(problem).startswith(f"{SERVICE_FILE}:2:8: invalid TOML: Invalid value")


def test_broken_toolchain_file_is_named_by_services_using_it(project: Path) -> None:
    edit(project, TOOLCHAIN_FILE, 'name = "gcc"', 'name = "gcc')

    assert_problem(
        project,
        f"{SERVICE_FILE}:4: service.toolchain: unknown toolchain 'gcc' "
        f"(known: none (not loaded: {TOOLCHAIN_FILE}))",
    )


def test_all_problems_of_all_files_at_once(project: Path) -> None:
    edit(project, SERVICE_FILE, "command =", "comand =")
    other = SERVICE.replace("hello", "other").replace("linux/arm64", "linux/amd46")
    write(project, "recipes/other.toml", other)
    write(project, "recipes/broken.toml", "[service\n")
    edit(project, TOOLCHAIN_FILE, "[toolchain]", "[toolchain]\nversion = 1")

    with pytest.raises(RecipeError) as caught:
        load_project(project)

    found = {(problem.file, problem.key) for problem in caught.value.problems}
    assert found == {
        ("recipes/broken.toml", None),
        (SERVICE_FILE, "build.command"),
        (SERVICE_FILE, "build.comand"),
        ("recipes/other.toml", "service.platforms"),
        (TOOLCHAIN_FILE, "toolchain.version"),
    }
    assert caught.value.message == "5 problems in recipes"
    assert caught.value.exit_code == 3


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        (
            "recipes/hello2.toml",
            SERVICE,
            "recipes/hello2.toml:2: service.name: service 'hello' is already defined by recipes/hello.toml",
        ),
        # The first file's other problems do not hide the clash.
        (
            "recipes/zzz.toml",
            SERVICE.replace('"src"', '"nope"'),
            "recipes/zzz.toml:2: service.name: service 'hello' is already defined by recipes/hello.toml",
        ),
        (
            "recipes/toolchains/gcc2.toml",
            TOOLCHAIN,
            "recipes/toolchains/gcc2.toml:2: toolchain.name: toolchain 'gcc' is already defined by "
            + TOOLCHAIN_FILE,
        ),
    ],
)
def test_duplicate_names(project: Path, rel: str, text: str, expected: str) -> None:
    write(project, rel, text)

    assert_problem(project, expected)


def test_project_without_services(project: Path) -> None:
    (project / SERVICE_FILE).unlink()

    assert [str(problem) for problem in problems(project)] == [
        "recipes/: no service recipes (*.toml) (add one, see README)"
    ]


def _all_platforms_service(extra: str = "", platforms: str = '["all"]') -> dict[str, str]:
    """A service calling {NATIVE_CC}, which the shipped gcc toolchain, edited, defines for amd64 only."""
    shipped = (REPO_ROOT / TOOLCHAIN_FILE).read_text()
    amd64 = '[toolchain.platforms."linux/amd64"]\nenv = { '
    assert amd64 in shipped
    return {
        TOOLCHAIN_FILE: shipped.replace(amd64, f'{amd64}NATIVE_CC = "gcc", '),
        "sources/s/main.c": "int main(void) { return 0; }\n",
        "recipes/s.toml": '[service]\nname = "s"\nsource = "sources/s"\ntoolchain = "gcc"\n'
        f"platforms = {platforms}\n"
        f'{extra}[build]\ncommand = ["{{NATIVE_CC}}", "-o", "{{output}}", "main.c"]\n',
    }


def test_all_platforms_keeps_the_buildable_ones_and_says_why_not_the_others(make_project: Any) -> None:
    service = load_project(make_project(_all_platforms_service())).services["s"]
    assert service.platforms == ("linux/amd64",)
    assert service.unsupported["linux/s390x"] == "toolchain gcc defines no {NATIVE_CC} for linux/s390x"


def test_excluded_platforms_are_neither_built_nor_reported(make_project: Any) -> None:
    files = _all_platforms_service('exclude_platforms = ["linux/s390x", "linux/amd64"]\n')
    service = load_project(make_project(files)).services["s"]
    assert service.platforms == ()
    assert "linux/s390x" not in service.unsupported


@pytest.mark.parametrize(
    ("extra", "platforms", "message"),
    [
        ("", '["all", "linux/amd64"]', '"all" must be the only entry'),
        ('exclude_platforms = ["linux/amd64"]\n', '["linux/amd64"]', 'only applies to platforms = ["all"]'),
        ('exclude_platforms = ["linux/arm65"]\n', '["all"]', "unknown platform 'linux/arm65'"),
    ],
)
def test_all_platforms_misuse_is_a_problem(
    make_project: Any, extra: str, platforms: str, message: str
) -> None:
    with pytest.raises(RecipeError) as raised:
        load_project(make_project(_all_platforms_service(extra, platforms)))
    assert any(message in str(problem) for problem in raised.value.problems), raised.value.problems


# --- Issue 10: values that reach a command line, image references, ranges, limits, special files ---

EVIL_MIRROR = "--setup-hook=touch /tmp/proof; exit 1"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'suite = "trixie"',
            'suite = "--version"',
            ":5: toolchain.bootstrap.suite: '--version' is not a Debian",
        ),
        ('suite = "trixie"', 'suite = "trixie main"', ":5: toolchain.bootstrap.suite: 'trixie main' is not"),
        ('suite = "trixie"', f'suite = "{"a" * 65}"', ":5: toolchain.bootstrap.suite: 'aaaa"),
        (
            'packages = ["gcc"]',
            f'packages = ["gcc"]\nmirror = "{EVIL_MIRROR}"',
            f":7: toolchain.bootstrap.mirror: {EVIL_MIRROR!r} is not a mirror URL",
        ),
        (
            'packages = ["gcc"]',
            'packages = ["gcc"]\nmirror = "ftp://x/d"',
            ":7: toolchain.bootstrap.mirror: 'ftp",
        ),
        (
            'packages = ["gcc"]',
            'packages = ["gcc"]\nmirror = "deb.debian.org"',
            ":7: toolchain.bootstrap.mirror",
        ),
        ('packages = ["gcc"]', 'packages = ["gcc"]\nmirror = "http:///d"', ":7: toolchain.bootstrap.mirror"),
        ('packages = ["gcc"]', 'packages = ["gcc"]\nmirror = "file:d"', ":7: toolchain.bootstrap.mirror"),
        (
            'packages = ["gcc"]',
            'packages = ["gcc"]\nmirror = "http://a b/"',
            ":7: toolchain.bootstrap.mirror",
        ),
        (
            'packages = ["gcc"]',
            'packages = ["--include=x"]',
            ":6: toolchain.bootstrap.packages: '--include=x' is not",
        ),
        (
            'packages = ["gcc"]',
            'packages = ["gcc,make"]',
            ":6: toolchain.bootstrap.packages: 'gcc,make' is not",
        ),
        ('packages = ["gcc"]', 'packages = ["g"]', ":6: toolchain.bootstrap.packages: 'g' is not"),
        ('packages = ["gcc"]', 'packages = ["gcc:arm64:x"]', ":6: toolchain.bootstrap.packages"),
        (
            'packages = ["gcc"]',
            'packages = ["gcc"]\ncomponents = ["main,x"]',
            ":7: toolchain.bootstrap.components",
        ),
        (
            'packages = ["gcc"]',
            'packages = ["gcc"]\ncomponents = ["-x"]',
            ":7: toolchain.bootstrap.components",
        ),
        (
            'env = { CC = "aarch64',
            'packages = ["-q"]\nenv = { CC = "aarch64',
            ":12: toolchain.platforms.\"linux/arm64\".packages: '-q' is not a Debian package name",
        ),
        (
            'name = "gcc"',
            'name = "gcc"\nimage = "--help"',
            ":3: toolchain.image: '--help' is not a valid image",
        ),
        (
            'name = "gcc"',
            'name = "gcc"\nimage = "Gcc:14"',
            ":3: toolchain.image: 'Gcc:14' is not a valid image",
        ),
    ],
)
def test_bootstrap_values_reaching_mmdebstrap_are_validated(
    project: Path, old: str, new: str, expected: str
) -> None:
    edit(project, TOOLCHAIN_FILE, old, new)

    assert_problem(project, TOOLCHAIN_FILE + expected)


@pytest.mark.parametrize(
    "bootstrap",
    [
        'suite = "bookworm-backports"\npackages = ["gcc", "libc6-dev:arm64", "g++", "libstdc++6"]',
        'suite = "unstable"\npackages = []\nmirror = "http://deb.debian.org/debian"',
        'suite = "trixie"\npackages = ["gcc"]\nmirror = "https://mirror.example:8443/debian/"',
        'suite = "trixie"\npackages = ["gcc"]\nmirror = "file:///srv/mirror"\n'
        'components = ["main", "non-free-firmware"]',
    ],
)
def test_valid_bootstrap_values_load(project: Path, bootstrap: str) -> None:
    edit(project, TOOLCHAIN_FILE, 'suite = "trixie"\npackages = ["gcc"]', bootstrap)

    assert load_project(project).toolchains["gcc"].bootstrap is not None


def test_mmdebstrap_positionals_come_after_double_dash(project: Path) -> None:
    edit(
        project,
        TOOLCHAIN_FILE,
        'packages = ["gcc"]',
        'packages = ["gcc"]\nmirror = "http://deb.debian.org/debian"',
    )
    toolchain = load_project(project).toolchains["gcc"]

    command = mmdebstrap_command(toolchain, Path("/tmp/out.tar"), "amd64")

    separator = command.index("--")
    assert command[separator + 1 :] == ["trixie", "/tmp/out.tar", "http://deb.debian.org/debian"]
    assert all(argument.startswith("-") for argument in command[1:separator])


def test_arch_qualified_packages_make_their_architectures_known_to_dpkg(project: Path) -> None:
    edit(
        project,
        TOOLCHAIN_FILE,
        'packages = ["gcc"]',
        'packages = ["gcc", "musl-dev:s390x", "musl-dev:arm64"]',
    )
    toolchain = load_project(project).toolchains["gcc"]

    assert "--architectures=amd64,arm64,s390x" in mmdebstrap_command(toolchain, Path("/tmp/o.tar"), "amd64")
    assert "--architectures=s390x,arm64" in mmdebstrap_command(toolchain, Path("/tmp/o.tar"), "s390x")


def test_mmdebstrap_accepts_double_dash() -> None:
    """The installed mmdebstrap documents `--` as the end of its options (its --help says so)."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    help_text = subprocess.run(["mmdebstrap", "--help"], capture_output=True, text=True, check=False).stdout
    assert 'A double dash "--" can be used' in " ".join(help_text.split())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("svc-", "'svc-' is not a valid image repository"),
        ("a..b", "'a..b' is not a valid image repository"),
        ("a._b", "'a._b' is not a valid image repository"),
        ("x_", "'x_' is not a valid image repository"),
    ],
)
def test_service_name_must_make_a_repository(project: Path, name: str, expected: str) -> None:
    edit(project, SERVICE_FILE, 'name = "hello"', f'name = "{name}"')

    assert_problem(project, f"{SERVICE_FILE}:2: service.name: {expected}")


def test_service_name_with_its_own_repository_loads(project: Path) -> None:
    edit(project, SERVICE_FILE, 'name = "hello"', 'name = "svc-"')
    append(project, SERVICE_FILE, '[image]\nrepository = "svc"\n')

    assert load_project(project).services["svc-"].image.repository == "svc"


@pytest.mark.parametrize(
    ("repository", "valid"),
    [
        ("hello", True),
        ("team/hello-go", True),
        ("a__b/c---d/e.f", True),
        ("localhost:5000/a", True),
        ("Registry.Example:443/team/app", True),
        ("[::1]:5000/app", True),
        ("a/" * 126 + "bcd", True),  # 255 characters
        ("a/" * 126 + "bcde", False),  # 256
        ("Hello", False),
        ("team/Hello", False),
        ("a___b", False),
        ("-a.example/b", False),
        ("a/", False),
        ("a//b", False),
        ("host:port/a", False),
    ],
)
def test_repository_grammar(project: Path, repository: str, valid: bool) -> None:
    append(project, SERVICE_FILE, f'[image]\nrepository = "{repository}"\n')

    if valid:
        assert load_project(project).services["hello"].image.repository == repository
    else:
        assert any(problem.key == "image.repository" for problem in problems(project))


@pytest.mark.parametrize(("length", "valid"), [(122, True), (123, False), (128, False)])
def test_tag_fits_with_the_longest_platform_suffix(project: Path, length: int, valid: bool) -> None:
    """hello builds linux/amd64 and linux/arm64: `-amd64` and `-arm64` are 6 characters."""
    append(project, SERVICE_FILE, f'[image]\ntag = "{"t" * length}"\n')

    if valid:
        assert len(load_project(project).services["hello"].image.tag) == length
    else:
        assert_problem(project, f"{SERVICE_FILE}:10: image.tag: 'ttt")


def test_tag_length_counts_the_platforms_of_all(make_project: Any) -> None:
    """With ["all"], riscv64 and ppc64le give the longest suffix: 7 characters."""
    files = _all_platforms_service(platforms='["all"]')
    files["recipes/s.toml"] = (
        files["recipes/s.toml"].replace("{NATIVE_CC}", "{CC}") + '[image]\ntag = "' + "t" * 121 + '"\n'
    )
    with pytest.raises(RecipeError) as raised:
        load_project(make_project(files))
    assert "with the platform suffix '-riscv64' it has 129 characters" in str(raised.value.problems[0])


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        ("", '[image]\nrepository = "hello"\n'),
        ('[image]\ntag = "v1"\n', '[image]\nrepository = "docker.io/library/hello"\ntag = "v1"\n'),
        ('[image]\nrepository = "localhost:5000/x"\n', '[image]\nrepository = "localhost:5000/x"\n'),
    ],
)
def test_repository_and_tag_are_unique(project: Path, mine: str, theirs: str) -> None:
    append(project, SERVICE_FILE, mine)
    write(project, "recipes/other.toml", SERVICE.replace('"hello"', '"other"') + theirs)

    found = [str(problem) for problem in problems(project)]

    assert len(found) == 2, found
    assert any(
        text.startswith(SERVICE_FILE) and "the image of service 'other' (recipes/other.toml)" in text
        for text in found
    )
    assert any(
        text.startswith("recipes/other.toml") and f"the image of service 'hello' ({SERVICE_FILE})" in text
        for text in found
    )


def test_same_repository_other_tag_is_fine(project: Path) -> None:
    write(
        project,
        "recipes/other.toml",
        SERVICE.replace('"hello"', '"other"') + '[image]\nrepository = "hello"\ntag = "v2"\n',
    )

    assert set(load_project(project).services) == {"hello", "other"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e300", "1e+300 is longer than 24h"),
        ('"25h"', "'25h' is longer than 24h"),
        ("86401", "86401 is longer than 24h"),
        ("nan", "nan is not a positive duration"),
        ("-inf", "-inf is not a positive duration"),
        ("9" * 400, "99999"),  # too large for a float: no OverflowError
        (f'"{"9" * 400}h"', "'99999"),
    ],
)
def test_durations_are_bounded(project: Path, value: str, expected: str) -> None:
    append(project, SERVICE_FILE, f"timeout = {value}\n[smoke]\ntimeout = {value}\n")

    found = [str(problem) for problem in problems(project)]
    assert any(text.startswith(f"{SERVICE_FILE}:9: build.timeout: {expected}") for text in found), found
    assert any(text.startswith(f"{SERVICE_FILE}:11: smoke.timeout: {expected}") for text in found), found


def test_a_day_is_the_longest_duration(project: Path) -> None:
    append(project, SERVICE_FILE, 'timeout = "24h"\n[smoke]\ntimeout = 86400\n')

    service = load_project(project).services["hello"]
    assert service.build.timeout == service.smoke.checks[0].timeout == 86400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"0KiB"', "'0KiB' is out of range (from 1 byte to 1TiB)"),
        ("0", "0 is out of range"),
        ("-5", "-5 is out of range"),
        ('"2TiB"', "'2TiB' is not a size"),
        ('"1025GiB"', "'1025GiB' is out of range"),
        (f'"{"9" * 400}GiB"', "'99999"),
        ("9" * 30, "99999"),
    ],
)
def test_max_size_is_bounded(project: Path, value: str, expected: str) -> None:
    append(project, SERVICE_FILE, f"[verify]\nmax_size = {value}\n")

    assert_problem(project, f"{SERVICE_FILE}:10: verify.max_size: {expected}")


def test_default_limits(project: Path) -> None:
    service = load_project(project).services["hello"]

    assert service.build.limits == BUILD_LIMITS == Limits(memory=4 * 1024**3, pids=1024, cpus=2.0)
    assert service.smoke.checks[0].limits == SMOKE_LIMITS == Limits(memory=512 * 1024**2, pids=128, cpus=1.0)
    assert service.smoke.allow_root is False


def test_limits_override_any_subset(project: Path) -> None:
    append(
        project,
        SERVICE_FILE,
        'limits = { memory = "8GiB", pids = 2048, cpus = 1.5 }\n[smoke]\nlimits = { memory = 67108864 }\n',
    )

    service = load_project(project).services["hello"]

    assert service.build.limits == Limits(memory=8 * 1024**3, pids=2048, cpus=1.5)
    assert service.smoke.checks[0].limits == Limits(memory=64 * 1024**2, pids=128, cpus=1.0)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ('{ memory = "15MiB" }', "build.limits.memory: '15MiB' is out of range (from 16MiB to 1TiB)"),
        ('{ memory = "2TiB" }', "build.limits.memory: '2TiB' is not a size"),
        ("{ pids = 15 }", "build.limits.pids: 15 is out of range (from 16 to 1000000)"),
        ("{ pids = 1000001 }", "build.limits.pids: 1000001 is out of range"),
        ("{ pids = 1.5 }", "build.limits.pids: expected an integer, got float"),
        ("{ cpus = 0.001 }", "build.limits.cpus: 0.001 is out of range (from 0.01 to 1024)"),
        ("{ cpus = 1025 }", "build.limits.cpus: 1025 is out of range"),
        ("{ cpus = nan }", "build.limits.cpus: nan is out of range"),
        ("{ cpus = true }", "build.limits.cpus: expected a number, got boolean"),
        ('{ mem = "1GiB" }', "build.limits.mem: unknown key (did you mean 'memory'?)"),
        ('"1GiB"', "build.limits: expected a table, got string"),
    ],
)
def test_bad_limits(project: Path, limits: str, expected: str) -> None:
    append(project, SERVICE_FILE, f"limits = {limits}\n")

    assert_problem(project, f"{SERVICE_FILE}:9: {expected}")


@pytest.mark.parametrize("user", ["0", "0:0", "0:123", "00:5"])
def test_root_user_needs_allow_root(project: Path, user: str) -> None:
    append(project, SERVICE_FILE, f'[image]\nuser = "{user}"\n')

    assert_problem(project, f"{SERVICE_FILE}:10: image.user: '{user}' runs the image as root")

    append(project, SERVICE_FILE, "[smoke]\nallow_root = true\n")
    service = load_project(project).services["hello"]
    assert (service.image.user, service.smoke.allow_root) == (user, True)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("root", "'root' is not a numeric user (use '0' together with [smoke] allow_root = true"),
        ("4294967295", "'4294967295' is out of range"),
        ("1:4294967295", "'1:4294967295' is out of range"),
    ],
)
def test_bad_users(project: Path, user: str, expected: str) -> None:
    append(project, SERVICE_FILE, f'[image]\nuser = "{user}"\n[smoke]\nallow_root = true\n')

    assert_problem(project, f"{SERVICE_FILE}:10: image.user: {expected}")


def test_allow_root_is_a_boolean(project: Path) -> None:
    append(project, SERVICE_FILE, '[smoke]\nallow_root = "yes"\n')

    assert_problem(project, f"{SERVICE_FILE}:10: smoke.allow_root: expected a boolean, got string")


@pytest.mark.parametrize(
    ("source", "expected"),
    [("nope", "'nope' is missing"), ("recipes/hello.toml", "'recipes/hello.toml' is not a directory")],
)
def test_a_missing_source_makes_only_its_service_unbuildable(
    project: Path, source: str, expected: str
) -> None:
    """Issue 13: a missing source refused every build, of every service (exit 3). The recipe is valid:
    the service cannot be built, and says why with the recipe's line."""
    write(project, "recipes/other.toml", SERVICE.replace('name = "hello"', 'name = "other"'))
    edit(project, SERVICE_FILE, 'source = "src"', f'source = "{source}"')

    loaded = load_project(project)

    assert loaded.services["hello"].unbuildable == f"{SERVICE_FILE}:3: service.source: {expected}"
    assert loaded.services["hello"].source == (project / source).resolve()
    assert loaded.services["other"].unbuildable is None


def test_image_files_of_a_missing_source_are_not_checked(project: Path) -> None:
    """Nothing to check them against: the service is unbuildable for its source alone."""
    edit(project, SERVICE_FILE, 'source = "src"', 'source = "nope"')
    append(project, SERVICE_FILE, '[image]\nfiles = { "/etc/app.conf" = "app.conf" }\n')

    assert (
        load_project(project).services["hello"].unbuildable
        == f"{SERVICE_FILE}:3: service.source: 'nope' is missing"
    )


def test_special_files_in_the_source_make_the_service_unbuildable(project: Path) -> None:
    os.mkfifo(project / "src" / "pipe")
    (project / "src" / "a" / "b").mkdir(parents=True)
    os.mkfifo(project / "src" / "a" / "b" / "pipe2")
    (project / "src" / "ok.c").write_text("")
    (project / "src" / "link").symlink_to("pipe")  # the link itself is fine: nothing follows it
    with socket.socket(socket.AF_UNIX) as server:
        cwd = Path.cwd()
        os.chdir(project / "src")
        try:
            server.bind("sock")
        finally:
            os.chdir(cwd)

        service = load_project(project).services["hello"]

    assert service.unbuildable == (
        f"{SERVICE_FILE}:3: service.source: 'src/a/b/pipe2' is a FIFO, 'src/pipe' is a FIFO, "
        "'src/sock' is a socket (a source tree holds only files, directories and symlinks: remove them)"
    )


def test_many_special_files_are_counted(project: Path) -> None:
    for number in range(5):
        os.mkfifo(project / "src" / f"pipe{number}")

    reason = load_project(project).services["hello"].unbuildable

    assert reason is not None and "'src/pipe2' is a FIFO and 2 more special files (" in reason


def test_symlinked_directories_in_the_source_are_not_followed(project: Path, outside: Path) -> None:
    os.mkfifo(outside / "pipe")
    (project / "src" / "elsewhere").symlink_to(outside)

    assert load_project(project).services["hello"].source == project / "src"


def test_deep_nesting_is_a_problem_not_a_recursion_error(project: Path) -> None:
    write(project, "recipes/deep.toml", "a = " + "[" * 50000 + "]" * 50000 + "\n")
    write(project, "recipes/deep2.toml", "\n\nb = " + "{c=" * 50000 + "1" + "}" * 50000 + "\n")

    found = [str(problem) for problem in problems(project)]

    assert (
        "recipes/deep.toml:1: arrays and tables nest more than 64 deep (recipes need a few levels)" in found
    )
    assert any(text.startswith("recipes/deep2.toml:3: arrays and tables nest more than 64") for text in found)


@pytest.mark.parametrize(
    "text",
    [
        'a = "' + "[" * 100 + '"',
        "a = '" + "{" * 100 + "'",
        'a = """\n' + "[" * 100 + '\n"""',
        "a = '''" + "[" * 100 + "''''",
        'a = "\\"' + "[" * 100 + '"',
        "# " + "[" * 100,
        "a = " + "[" * 64 + "]" * 64,
    ],
)
def test_brackets_in_strings_and_comments_do_not_count(project: Path, text: str) -> None:
    write(project, "recipes/x.toml", text + "\n")

    assert not any("nest" in str(problem) for problem in problems(project))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = " + "9" * 5000 + "\n", "recipes/x.toml: invalid TOML: Exceeds the limit (4300 digits)"),
        ("# " + "x" * (1024**2), "recipes/x.toml: larger than 1 MiB (a recipe is a few lines of TOML)"),
    ],
)
def test_oversized_recipes_are_problems(project: Path, text: str, expected: str) -> None:
    write(project, "recipes/x.toml", text)

    assert_problem(project, expected)


def test_recipe_fifo_is_a_problem_and_does_not_block(project: Path) -> None:
    fifo = project / "recipes" / "x.toml"
    os.mkfifo(fifo)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loading = pool.submit(assert_problem, project, "recipes/x.toml: not a regular file (a recipe is")
        try:
            loading.result(timeout=20)
        except concurrent.futures.TimeoutError:
            with fifo.open("w"):  # lets the blocked reader end, so the test does not hang
                pass
            pytest.fail("load_project blocked reading a FIFO")


def test_nul_in_paths_is_a_problem(project: Path) -> None:
    edit(project, SERVICE_FILE, 'source = "src"', 'source = "src\\u0000x"')
    append(project, SERVICE_FILE, '[image]\nfiles = { "/etc/a" = "a\\u0000b", "/etc/\\u0000" = "b" }\n')

    found = [str(problem) for problem in problems(project)]

    assert any(
        text.startswith(f"{SERVICE_FILE}:3: service.source: 'src\\x00x' holds a NUL") for text in found
    )
    assert any("'/etc/\\x00' is not an absolute, normalized image path" in text for text in found)


def test_long_values_are_cut_short_in_messages(project: Path) -> None:
    edit(project, SERVICE_FILE, 'name = "hello"', f'name = "{"X" * 100000}"')

    [problem] = [p for p in problems(project) if p.key == "service.name"]
    assert len(problem.message) < 200


# --- Generated recipes: whatever the values, a Project or a RecipeError ---

_KEYS = {
    "service": ["name", "source", "toolchain", "platforms", "exclude_platforms"],
    "build": ["command", "env", "output", "timeout", "limits"],
    "image": ["repository", "tag", "entrypoint", "cmd", "user", "env", "labels", "extras", "zones", "files"],
    "verify": ["errors", "allow", "max_size"],
    "smoke": ["args", "stdout", "exit_code", "timeout", "limits", "allow_root"],
}
_TOOLCHAIN_KEYS = {
    "toolchain": ["name", "image", "env", "languages"],
    "toolchain.bootstrap": ["suite", "packages", "mirror", "components", "unpack", "wheels"],
    'toolchain.platforms."linux/amd64"': ["packages", "unpack", "env"],
}
_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="[]{}/-.:_ \\\"'\x00aZ09é", max_size=30),
    st.sampled_from(
        [
            *("", "[/x]", "--version", "0", "0:0", "all", "linux/amd64", "gcc", "{CC}", "{output}", "1e300"),
            *("src\x00", "../x", "/etc", "src/../..", "9" * 400 + "h", "9" * 400 + "GiB", "-1s", "svc-"),
        ]
    ),
)
_SCALAR = st.one_of(
    _TEXT,
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([10**309, -(10**309), 2**63, 2**64, 1e300, -0.0]),
    st.floats(),
    st.booleans(),
)
_VALUE = st.recursive(
    _SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_TEXT.filter(bool), children, max_size=4)
    ),
    max_leaves=12,
)


def _toml(value: object) -> str:
    """A TOML inline value (floats: inf and nan as TOML spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + "}"


def _document(tables: dict[str, list[str]], values: dict[str, object]) -> str:
    lines = []
    for table, keys in tables.items():
        lines.append(f"[{table}]")
        lines.extend(
            f"{key} = {_toml(values[f'{table}.{key}'])}" for key in keys if f"{table}.{key}" in values
        )
    return "\n".join(lines) + "\n"


def _overrides(tables: dict[str, list[str]]) -> st.SearchStrategy[dict[str, object]]:
    keys = [f"{table}.{key}" for table, names in tables.items() for key in names]
    return st.dictionaries(st.sampled_from(keys), _VALUE, max_size=8)


_VALID_SERVICE = {
    "service.name": "hello",
    "service.source": "src",
    "service.toolchain": "gcc",
    "service.platforms": ["linux/amd64"],
    "build.command": ["{CC}", "-o", "{output}", "hello.c"],
}
_VALID_TOOLCHAIN = {
    "toolchain.name": "gcc",
    "toolchain.bootstrap.suite": "trixie",
    "toolchain.bootstrap.packages": ["gcc"],
    'toolchain.platforms."linux/amd64".env': {"CC": "gcc"},
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(service=_overrides(_KEYS), toolchain=_overrides(_TOOLCHAIN_KEYS), raw=st.text(max_size=200))
@example(service={"service.source": "src\x00"}, toolchain={}, raw="")
@example(service={"build.timeout": 10**309, "verify.max_size": "9" * 400 + "GiB"}, toolchain={}, raw="")
@example(service={}, toolchain={}, raw="a = " + "[" * 5000 + "]" * 5000)
def test_generated_recipes_load_or_fail_cleanly(
    tmp_path: Path, service: dict[str, object], toolchain: dict[str, object], raw: str
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    (root / "src").mkdir()
    write(root, SERVICE_FILE, _document(_KEYS, {**_VALID_SERVICE, **service}))
    write(root, TOOLCHAIN_FILE, _document(_TOOLCHAIN_KEYS, {**_VALID_TOOLCHAIN, **toolchain}))
    write(root, "recipes/raw.toml", raw)

    try:
        project = load_project(root)
    except RecipeError as error:
        assert error.problems and all(str(problem) for problem in error.problems)
    else:
        assert project.services
