"""A service's `[build]` table: exactly one of command, steps or script, the build's environment, output,
timeout, limits, artifact and whether its workspace is kept between builds (`incremental`); every
`{NAME}` of its command, steps and artifact must be defined on each of the service's platforms
(docs/recipes.md, "[build]").
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from orchestrator.recipe.convert import (
    Invalid,
    as_bool,
    as_duration,
    as_file_name,
    as_nonempty_str_list,
    as_text,
    shown,
)
from orchestrator.recipe.model import BUILD_LIMITS, BuildSpec, Toolchain
from orchestrator.recipe.placeholders import (
    BUILD_VALUES,
    FACTS,
    as_shared_env,
    build_env,
    osless_env_names,
    scan,
)
from orchestrator.recipe.reader import Table
from orchestrator.recipe.shared import read_limits

_COMMAND_HINT = "use {output} or {NAME}; write {{ and }} for literal braces"
_BUILD_FORMS = ("command", "steps", "script")
MAX_STEPS = 64  # each step's output is kept in build.log: bounded
_STEP_HINT = 'each step is a list of arguments, e.g. ["make", "-j{JOBS}"]; shell text goes in `script`'


def read_build(
    table: Table, name: str, toolchain: Toolchain | None, platforms: tuple[str, ...]
) -> BuildSpec | None:
    """`[build]`: exactly one of command, steps or script, and where the binary is (`artifact`)."""
    command = table.optional("command", as_nonempty_str_list)
    steps = table.optional("steps", _as_steps)
    script = table.optional("script", _as_script)
    env: dict[str, str] = table.get("env", as_shared_env, {})
    output = table.get("output", as_file_name, name)
    timeout = table.get("timeout", as_duration, 600.0)
    limits = read_limits(table, BUILD_LIMITS)
    artifact = table.optional("artifact", _as_artifact)
    incremental = table.get("incremental", as_bool, True)
    given = [form for form in _BUILD_FORMS if form in table.data]
    if not table.present:
        return None
    if not given:
        table.file.problem(
            (*table.key, "command"), "required but missing", "give one of command, steps or script"
        )
        return None
    if len(given) > 1:
        table.file.problem(
            (*table.key, given[1]),
            f"{' and '.join(given)} are alternatives",
            "keep one: command (one program), steps (programs in order) or script (shell text)",
        )
        return None
    if command is None and steps is None and script is None:
        return None  # its value was invalid: already reported
    spec = BuildSpec(
        command=command or (),
        steps=steps or (),
        script=script,
        env=env,
        output=output,
        timeout=timeout,
        limits=limits,
        artifact=artifact,
        incremental=incremental,
    )
    _check_placeholders(table, spec, toolchain, platforms)
    return spec


def _as_steps(value: object) -> tuple[tuple[str, ...], ...]:
    """`steps = [["./configure", "--host={GNU_TRIPLE}"], ["make", "-j{JOBS}"]]`: argv lists, in order."""
    if not isinstance(value, list):
        raise Invalid(f"expected a list of steps, got {_toml_type(value)}", _STEP_HINT)
    if not value:
        raise Invalid("must not be empty", _STEP_HINT)
    if len(value) > MAX_STEPS:
        raise Invalid(f"{len(value)} steps: at most {MAX_STEPS}", "join steps into a script")
    steps = []
    for number, step in enumerate(value, start=1):
        try:
            steps.append(as_nonempty_str_list(step))
        except Invalid as invalid:
            raise Invalid(f"step {number}: {invalid}", _STEP_HINT) from None
    return tuple(steps)


def _toml_type(value: object) -> str:
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "a table or date")


def _as_script(value: object) -> str:
    """Shell text for `sh -eu -c`; a NUL character cannot be passed to a program."""
    text = as_text(value)
    if "\0" in text:
        raise Invalid("holds a NUL character")
    return text


def _as_artifact(value: object) -> str:
    """The binary's path after the build: relative to the workspace, or absolute; a file, not a directory."""
    text = as_text(value)
    if "\0" in text:
        raise Invalid(f"{shown(text)} holds a NUL character")
    if text.endswith("/") or posixpath.basename(posixpath.normpath(text)) in ("", ".", ".."):
        raise Invalid(f"{shown(text)} names a directory", "name the binary's file, e.g. build/app")
    return text


def _check_placeholders(
    table: Table,
    build: BuildSpec,
    toolchain: Toolchain | None,
    platforms: tuple[str, ...],
) -> None:
    """Every `{NAME}` of command, steps and artifact must be something osless gives every build, a
    platform fact or in the build environment of every platform, so no build fails on it later. A
    script is shell text: its braces are its own."""
    groups = {
        "command": build.command,
        "steps": tuple(argument for step in build.steps for argument in step),
        "artifact": (build.artifact,) if build.artifact is not None else (),
    }
    for key, texts in groups.items():
        for text in texts:
            for invalid in scan(text, _COMMAND_HINT)[1]:
                table.file.problem((*table.key, key), str(invalid), invalid.hint)
    if build.artifact is not None and "output" in command_names((*groups["command"], *groups["steps"])):
        table.file.problem(
            (*table.key, "artifact"),
            "the binary is taken from artifact, so nothing reads what is written to {output}",
            "keep one: artifact, or write the binary to {output}",
        )
    if toolchain is None:
        return
    for key, texts in groups.items():
        names = command_names(texts)
        for platform in dict.fromkeys(p for p in platforms if p in toolchain.platforms):
            defined = build_env(toolchain, platform, build.env)
            for name in undefined(names, defined):
                table.file.problem(
                    (*table.key, key),
                    f"placeholder {{{name}}} is not defined for {platform} by toolchain {toolchain.name}",
                    f"defined: {', '.join(sorted(defined)) or 'none'}",
                )


def command_names(texts: tuple[str, ...]) -> list[str]:
    """The placeholder names of a build's commands and artifact, in order, each once (what else is
    between braces: left out)."""
    return list(dict.fromkeys(name for text in texts for name in scan(text, _COMMAND_HINT)[0]))


def undefined(names: list[str], env: Mapping[str, str]) -> list[str]:
    """The names a build cannot be given on a platform: neither what osless gives every build
    (`output`, `JOBS`, `WORKSPACE`, its own variables such as CARGO_TARGET_DIR), a platform fact nor in
    its build environment."""
    given = {*BUILD_VALUES, *FACTS, *osless_env_names()}
    return [name for name in names if name not in given and name not in env]
