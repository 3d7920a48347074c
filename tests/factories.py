"""Shared test factories: recipe texts built one way for every test module that writes a project.

The layout is fixed so that tests can rely on line numbers: `[service]` on line 1, its keys on lines
2 to 5, `[build]` on line 6 and the command on line 7; `more` follows as written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

C_COMMAND = ("{CC}", "-static", "-o", "{output}", "main.c")
MAIN_C = "int main(void) { return 0; }\n"
HI_C = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'


def service_recipe(
    name: str,
    command: Sequence[str] = C_COMMAND,
    *,
    source: str | None = None,
    toolchain: str = "gcc",
    platforms: Sequence[str] = ("linux/amd64",),
    command_key: str = "command",
    more: str = "",
) -> str:
    """A service recipe: `source` defaults to `sources/<name>`; `command_key` lets a test misspell the
    key; `more` is TOML text after the command (more [build] keys, then other tables)."""
    lines = [
        "[service]",
        f"name = {json.dumps(name)}",
        f"source = {json.dumps(source or f'sources/{name}')}",
        f"toolchain = {json.dumps(toolchain)}",
        f"platforms = {json.dumps(list(platforms))}",
        "[build]",
        f"{command_key} = {json.dumps(list(command))}",
    ]
    return "\n".join(lines) + "\n" + more


def smoked_c_recipe(
    name: str,
    source: str,
    *,
    stdout: str,
    exit_code: int,
    static: bool = True,
    command: Sequence[str] | None = None,
) -> str:
    """A C service for linux/amd64 built from `sources/<source>/hello.c`, with a smoke test expecting
    `stdout` (TOML string text: write a newline as \\n) and `exit_code`."""
    default = ("{CC}", *(("-static",) if static else ()), "-o", "{output}", "hello.c")
    smoke = f'[smoke]\nstdout = "{stdout}"\nexit_code = {exit_code}\ntimeout = "20s"\n'
    return service_recipe(name, command or default, source=f"sources/{source}", more=smoke)


def passing_and_failing(passing: str, failing: str) -> dict[str, str]:
    """A project's files: a C program printing "hi", the service `passing` whose smoke test expects
    that, and the service `failing` whose smoke test expects "hello" (it fails at smoke)."""
    return {
        "sources/c/hello.c": HI_C,
        f"recipes/{passing}.toml": smoked_c_recipe(passing, "c", stdout="hi\\n", exit_code=0),
        f"recipes/{failing}.toml": smoked_c_recipe(failing, "c", stdout="hello\\n", exit_code=0),
    }


def true_recipe(
    name: str, *, source: str = "sources/ok", platform: str = "linux/amd64", key: str = "command"
) -> str:
    """A service whose build command is `true`: for tests that end before any build (recipe errors, a
    fake runner). `key` lets a test misspell `command`."""
    return service_recipe(name, ["true"], source=source, platforms=[platform], command_key=key)
