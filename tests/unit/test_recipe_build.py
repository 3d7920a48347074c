"""`[build]`: exactly one of command, steps or script, an artifact, the placeholders osless gives every
build ({JOBS}, {WORKSPACE}, its own variables), and the messages of a failed step, without an engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from orchestrator.engine import ContainerResult
from orchestrator.errors import RecipeError
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Service
from orchestrator.recipe.placeholders import build_values, osless_env_names, script_env
from orchestrator.stages import build as build_stage
from orchestrator.stages.build import artifact_path, build_commands, container_env, workspace_dir
from tests.conftest import REPO_ROOT
from tests.factories import MAIN_C

MakeProject = Callable[[dict[str, str]], Path]
ARM64 = PLATFORMS["linux/arm64"]
HEAD = (
    '[service]\nname = "s"\nsource = "sources/s"\ntoolchain = "gcc"\n'
    'platforms = ["linux/amd64", "linux/arm64"]\n'
)


@pytest.fixture
def root(make_project: MakeProject) -> Path:
    return make_project({"sources/s/main.c": MAIN_C})


def _write(root: Path, build: str) -> None:
    (root / "recipes" / "s.toml").write_text(f"{HEAD}[build]\n{build}")


def _load(root: Path, build: str) -> Service:
    _write(root, build)
    return load_project(root).services["s"]


def _problems(root: Path, build: str) -> list[str]:
    _write(root, build)
    with pytest.raises(RecipeError) as raised:
        load_project(root)
    return [f"{p.key}: {p.message}" + (f" ({p.hint})" if p.hint else "") for p in raised.value.problems]


def _values(service: Service, platform: str = "linux/arm64") -> dict[str, str]:
    project_toolchain = load_project(service.file.parent.parent).toolchains[service.toolchain]
    target = PLATFORMS[platform]
    env = container_env(service, project_toolchain, target, 0)
    return build_values(
        target, env, output="/osless-out/s/bin/s", jobs=3, workspace=workspace_dir(service, target)
    )


# --- Reading [build] ---


def test_steps_are_argv_lists_run_in_order(root: Path) -> None:
    service = _load(
        root,
        'steps = [["./configure", "--host={GNU_TRIPLE}"], ["make", "-j{JOBS}", "CC={CC}"]]\n'
        'artifact = "app"\n',
    )
    assert service.build.steps == (("./configure", "--host={GNU_TRIPLE}"), ("make", "-j{JOBS}", "CC={CC}"))
    assert service.build.command == () and service.build.script is None
    assert build_commands(service, _values(service)) == [
        ["./configure", "--host=aarch64-linux-gnu"],
        ["make", "-j3", "CC=aarch64-linux-gnu-gcc"],
    ]


def test_a_script_is_shell_text_with_its_own_braces(root: Path) -> None:
    """Shell syntax would collide with placeholders: a script gets none, and is not checked for them;
    every placeholder's value is an environment variable instead."""
    script = 'd=${0%/bin/*}; make -j"$JOBS" CC="$CC" {NOT_A_PLACEHOLDER}; cp app "$OUTPUT"\n'
    service = _load(root, f"script = '''\n{script}'''\n")
    assert service.build.script == script
    values = _values(service)
    assert build_commands(service, values) == [["sh", "-eu", "-c", script]]
    env = script_env(values)
    assert env["OUTPUT"] == "/osless-out/s/bin/s" and "output" not in env
    assert (env["JOBS"], env["WORKSPACE"]) == ("3", "/workspace/s/linux-arm64")
    assert (env["GNU_TRIPLE"], env["CC"], env["DEBIAN_ARCH"]) == (
        "aarch64-linux-gnu",
        "aarch64-linux-gnu-gcc",
        "arm64",
    )


def test_a_command_is_one_step(root: Path) -> None:
    service = _load(root, 'command = ["{CC}", "-o", "{output}", "-DWS={WORKSPACE}", "main.c"]\n')
    assert service.build.argv_templates == (service.build.command,)
    assert build_commands(service, _values(service)) == [
        ["aarch64-linux-gnu-gcc", "-o", "/osless-out/s/bin/s", "-DWS=/workspace/s/linux-arm64", "main.c"]
    ]


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            'command = ["true"]\nscript = "true"\n',
            "build.script: command and script are alternatives (keep one: command (one program), "
            "steps (programs in order) or script (shell text))",
        ),
        ('steps = [["true"]]\nscript = "true"\n', "build.script: steps and script are alternatives"),
        ("timeout = 5\n", "build.command: required but missing (give one of command, steps or script)"),
        ("steps = []\n", "build.steps: must not be empty"),
        ('steps = [["make"], "install"]\n', "build.steps: step 2: expected a list of strings, got string"),
        ('steps = [["make", 2]]\n', "build.steps: step 1: expected a list of strings, item 1 is integer"),
        ("steps = 3\n", "build.steps: expected a list of steps, got an integer"),
        ('script = "  "\n', "build.script: must not be empty"),
        ('command = ["true"]\nartifact = ""\n', "build.artifact: must not be empty"),
        ('command = ["true"]\nartifact = "a/.."\n', "build.artifact: 'a/..' names a directory"),
        (
            'steps = [["make", "{CC"]]\n',
            "build.steps: '{CC': expected '}' before end of string (write a literal brace as {{ or }})",
        ),
        (
            'command = ["sh", "-c", "${0%/bin/*}"]\n',
            "build.command: '${0%/bin/*}': {0%/bin/*} is not a placeholder (use {output} or {NAME}; write "
            "{{ and }} for literal braces)",
        ),
        (
            'steps = [["make"], ["{MAKE_FLAGS}"]]\n',
            "build.steps: placeholder {MAKE_FLAGS} is not defined for linux/amd64 by toolchain gcc",
        ),
        (
            'command = ["true"]\nartifact = "{OUT_DIR}/app"\n',
            "build.artifact: placeholder {OUT_DIR} is not defined for linux/amd64 by toolchain gcc",
        ),
        (
            'steps = [["{CC}", "-o", "{output}", "main.c"]]\nartifact = "main"\n',
            "build.artifact: the binary is taken from artifact, so nothing reads what is written to {output}",
        ),
    ],
)
def test_bad_builds_are_problems(root: Path, build: str, expected: str) -> None:
    found = _problems(root, build)
    assert any(problem.startswith(expected) for problem in found), found


def test_steps_are_bounded(root: Path) -> None:
    steps = ", ".join(['["true"]'] * 65)
    assert _problems(root, f"steps = [{steps}]\n") == [
        "build.steps: 65 steps: at most 64 (join steps into a script)"
    ]
    sixty_four = ", ".join(['["true"]'] * 64)
    assert len(_load(root, f"steps = [{sixty_four}]\n").build.steps) == 64


def test_artifacts_may_name_what_osless_sets(root: Path) -> None:
    """CARGO_TARGET_DIR is osless's, not the toolchain's: the loader knows it all the same."""
    service = _load(root, 'command = ["make"]\nartifact = "{CARGO_TARGET_DIR}/{RUST_TARGET}/release/app"\n')
    values = _values(service)
    assert artifact_path(service, values, "/workspace/s/linux-arm64") == (
        "/cache/targets/s/linux-arm64/cargo/aarch64-unknown-linux-gnu/release/app"
    )
    relative = _load(root, 'steps = [["make"]]\nartifact = "build/../src/app"\n')
    assert artifact_path(relative, values, "/workspace/s/linux-arm64") == "/workspace/s/linux-arm64/src/app"
    assert artifact_path(_load(root, 'command = ["make"]\n'), values, "/w") is None


def test_osless_env_names_are_what_every_build_gets(root: Path) -> None:
    """The loader's list of osless's own variables is the build stage's: nothing a placeholder may
    name is missing at build time, and nothing the build sets is refused by the loader."""
    service = _load(root, 'command = ["make"]\n')
    toolchain = load_project(service.file.parent.parent).toolchains["gcc"]
    env = container_env(service, toolchain, ARM64, 0)
    recipes = set(toolchain.env) | set(toolchain.platforms["linux/arm64"].env)
    assert set(env) - recipes == osless_env_names()


def test_a_platform_where_a_step_placeholder_is_missing_is_left_out_of_all(make_project: MakeProject) -> None:
    head = HEAD.replace('["linux/amd64", "linux/arm64"]', '["all"]')
    root = make_project(
        {
            "recipes/s.toml": (
                f'{head}[build]\nsteps = [["make"], ["{{CROSS_STRIP}}", "app"]]\nartifact = "app"\n'
            ),
            "recipes/toolchains/gcc.toml": (
                '[toolchain]\nname = "gcc"\nimage = "debian:trixie"\n'
                '[toolchain.platforms."linux/amd64"]\nenv = { CROSS_STRIP = "strip" }\n'
                '[toolchain.platforms."linux/arm64"]\n'
            ),
            "sources/s/main.c": MAIN_C,
        }
    )
    service = load_project(root).services["s"]
    assert service.platforms == ("linux/amd64",)
    assert service.unsupported["linux/arm64"] == "toolchain gcc defines no {CROSS_STRIP} for linux/arm64"


def test_the_workspace_is_fixed_per_target(root: Path) -> None:
    service = _load(root, 'command = ["make"]\n')
    assert workspace_dir(service, ARM64) == "/workspace/s/linux-arm64"
    assert workspace_dir(service, PLATFORMS["linux/arm/v7"]) == "/workspace/s/linux-arm-v7"


# --- Messages of a failed step ---


def _step(argv: list[str], where: str = "step 2/3") -> build_stage._Step:
    return build_stage._Step(argv=argv, where=where, tool=None if where == "the build script" else argv[0])


def _result(code: int, stderr: bytes = b"", stdout: bytes = b"") -> ContainerResult:
    return ContainerResult(exit_code=code, stdout=stdout, stderr=stderr, timed_out=code == 124)


def test_a_missing_program_names_the_step_and_the_toolchain_not_timeout(root: Path) -> None:
    service = _load(root, 'command = ["make"]\n')
    gcc = load_project(service.file.parent.parent).toolchains["gcc"]
    missing = _result(127, b"timeout: failed to run command 'make': No such file or directory\n")
    message = build_stage._not_run(_step(["make", "-j2"]), missing, gcc)
    assert message == (
        "step 2/3: 'make' is not in the gcc toolchain image (add the package that provides it: a "
        "toolchain that extends gcc, docs/recipes.md)"
    )
    denied = _result(126, b"timeout: failed to run command './configure': Permission denied\n")
    assert build_stage._not_run(_step(["./configure"]), denied, gcc) == (
        "step 2/3: './configure' is not executable "
        '(run it through its interpreter, e.g. ["sh", "./configure"])'
    )
    gone = _result(127, b"timeout: failed to run command './configure': No such file or directory\n")
    assert build_stage._not_run(_step(["./configure"]), gone, gcc) == (
        "step 2/3: './configure' cannot be run: it is not in the workspace, or its #! interpreter is not in "
        "the gcc toolchain image"
    )
    in_script = _result(127, b"sh: 3: cmake: not found\n")
    assert build_stage._not_run(_step(["sh"], "the build script"), in_script, gcc) == (
        "the build script: 'cmake' is not in the gcc toolchain image (add the package that provides it: "
        "a toolchain that extends gcc, docs/recipes.md)"
    )
    # the program ran and exited 127 itself: its own message, not ours
    assert build_stage._not_run(_step(["make"]), _result(127, b"make: *** [all] Error 127\n"), gcc) is None


def test_the_first_error_line_comes_from_stderr_and_is_a_real_error() -> None:
    configure = b"checking for strerror_r... yes\nchecking for -Werror... yes\n"
    compiler = b"main.c: In function 'main':\nmain.c:3:5: error: expected ';'\nmake: *** [x] Error 1\n"
    assert build_stage._error_line(_result(2, compiler, configure)) == "main.c:3:5: error: expected ';'"
    assert build_stage._error_line(_result(1, b"", b"first\nlast words\n")) == "last words"
    assert build_stage._error_line(_result(1)) == "no output"


def test_the_schema_knows_the_three_forms() -> None:
    """An editor underlines what the loader refuses: two forms at once, none, a flat steps list."""
    schema = json.loads(
        (REPO_ROOT / "orchestrator" / "recipe" / "schema" / "service.schema.json").read_text()
    )
    validator = Draft202012Validator(schema)
    service = {"name": "s", "source": "s", "toolchain": "gcc", "platforms": ["linux/amd64"]}

    def valid(build: dict[str, object]) -> bool:
        return validator.is_valid({"service": service, "build": build})

    assert valid({"steps": [["make", "-j{JOBS}"], ["strip", "app"]], "artifact": "app"})
    assert valid({"script": 'make -j"$JOBS"\ncp app "$OUTPUT"\n'})
    assert valid({"command": ["cargo", "build"], "artifact": "{CARGO_TARGET_DIR}/x/release/app"})
    for bad in (
        {"command": ["make"], "steps": [["make"]]},
        {"timeout": "1m"},
        {"steps": ["make", "install"]},
        {"steps": [[]]},
        {"command": ["make"], "artifact": "bin/"},
    ):
        assert not valid(bad), bad
