"""Recipe loading: the shipped recipes resolve as documented, and every kind of mistake is reported
with file, line and key, all at once. Each test edits a tiny valid project written to tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import RecipeError, RecipeProblem
from orchestrator.platforms import PLATFORMS
from orchestrator.stages.recipe import build_env, load_project
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

    assert set(project.services) == {"hello-go", "hello-c", "hello-c-musl", "tls-go", "whoami-c-musl"}
    assert set(project.toolchains) == {"go", "gcc"}
    go = project.services["hello-go"]
    assert go.platforms == tuple(PLATFORMS)  # platforms = ["all"]
    assert go.toolchain == "go"
    assert go.source == REPO_ROOT / "sources" / "hello-go"
    assert go.build.output == "hello-go"
    assert go.build.timeout == 600.0
    assert (go.image.repository, go.image.tag, go.image.cmd) == ("hello-go", "latest", ())
    assert go.smoke.args == () and go.smoke.timeout == 10.0
    assert go.smoke.stdout == "Hello from OS-less container (Go edition)\n"
    musl = project.services["hello-c-musl"]
    assert musl.platforms == ("linux/amd64",)
    assert set(musl.unsupported) == set(PLATFORMS) - {"linux/amd64"}
    assert "{MUSL_CC}" in musl.unsupported["linux/arm64"]
    gcc = project.toolchains["gcc"]
    assert gcc.platforms["linux/arm64"].env == {"CC": "aarch64-linux-gnu-gcc"}
    assert gcc.platforms["linux/arm64"].packages == ("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross")
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
    assert (service.smoke.args, service.smoke.stdout, service.smoke.exit_code) == ((), None, 0)
    assert service.smoke.timeout == 30.0


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
    assert (service.smoke.args, service.smoke.stdout, service.smoke.exit_code) == (("--quiet",), "", 3)


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

    assert load_project(project).services["hello"].smoke.timeout == pytest.approx(seconds)


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
        RecipeProblem(file=SERVICE_FILE, key="build.command", line=7, message="required but missing"),
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
        ("nope", "'nope' is missing"),
        ("recipes/hello.toml", "'recipes/hello.toml' is not a directory"),
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
    return {
        "sources/s/main.c": "int main(void) { return 0; }\n",
        "recipes/s.toml": '[service]\nname = "s"\nsource = "sources/s"\ntoolchain = "gcc"\n'
        f"platforms = {platforms}\n"
        f'{extra}[build]\ncommand = ["{{MUSL_CC}}", "-o", "{{output}}", "main.c"]\n',
    }


def test_all_platforms_keeps_the_buildable_ones_and_says_why_not_the_others(make_project: Any) -> None:
    service = load_project(make_project(_all_platforms_service())).services["s"]
    assert service.platforms == ("linux/amd64",)
    assert service.unsupported["linux/s390x"] == "toolchain gcc defines no {MUSL_CC} for linux/s390x"


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
