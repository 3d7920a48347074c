"""Shell completion scripts (bash, zsh, fish), generated from the argparse grammar.

Commands, options and fixed choices come from the parser itself, platforms from the platform table,
so a new command, option or platform completes without touching this file. Service and toolchain
names are the project's: the scripts ask `osless [-C DIR] __names services|toolchains` (fast: it only
reads the recipes' `name`s). No word a script offers is ever evaluated by the shell.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.platforms import PLATFORMS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SHELLS = ("bash", "zsh", "fish")
NAME_KINDS = ("services", "toolchains")  # what `osless __names` lists


@dataclass(frozen=True, kw_only=True)
class Values:
    """What an option's value or a command's positionals are: fixed words, the project's services or
    toolchains, files, or free text (nothing to offer)."""

    kind: str  # "words", "services", "toolchains", "files", "text"
    words: tuple[str, ...] = ()


TEXT = Values(kind="text")


@dataclass(frozen=True, kw_only=True)
class Option:
    names: tuple[str, ...]  # "-j", "--jobs"
    values: Values | None  # None: a flag
    help: str


@dataclass(frozen=True, kw_only=True)
class Command:
    """A command as the grammar has it: `()` is osless itself, `("toolchain", "push")` a subcommand."""

    path: tuple[str, ...]
    help: str
    options: tuple[Option, ...]
    positionals: Values | None
    subcommands: tuple[str, ...]

    @property
    def key(self) -> str:
        return " ".join(self.path)


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command the parser has, osless itself first; hidden ones (no help) left out."""
    return list(_walk(parser, (), parser.description or ""))


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser under parser (hidden ones too), at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield child
                yield from subparsers(child)


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...], summary: str) -> Iterator[Command]:
    children: list[tuple[str, argparse.ArgumentParser, str]] = []
    options, positionals = [], []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            children += [
                (shown.dest, action.choices[shown.dest], shown.help or "")
                for shown in action._choices_actions
            ]
        elif action.option_strings:
            values = None if action.nargs == 0 else _values(action)
            options.append(Option(names=tuple(action.option_strings), values=values, help=action.help or ""))
        elif action.nargs != argparse.REMAINDER:
            positionals.append(_values(action))
    yield Command(
        path=path,
        help=summary,
        options=tuple(options),
        positionals=positionals[0] if positionals else None,
        subcommands=tuple(name for name, _, _ in children),
    )
    for name, child, child_help in children:
        yield from _walk(child, (*path, name), child_help)


def _values(action: argparse.Action) -> Values:
    """What an argument's values are, from its choices, name, metavar and type: the grammar's
    metavars say it (SERVICE: a service, NAME: a toolchain, P: a platform, *DIR/FILE/PATH: a file)."""
    if action.choices is not None:
        return Values(kind="words", words=tuple(str(choice) for choice in action.choices))
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if "--platform" in action.option_strings or metavar == "P":
        return Values(kind="words", words=tuple(PLATFORMS))
    if metavar == "SERVICE":
        return Values(kind="services")
    if metavar == "NAME":
        return Values(kind="toolchains")
    if action.type is Path or any(word in metavar for word in ("DIR", "FILE", "PATH")):
        return Values(kind="files")
    return TEXT


def recipe_names(root: Path, kind: str) -> list[str]:
    """The `name` of every service recipe (recipes/*.toml) or toolchain recipe (recipes/toolchains/),
    read without checking the recipes: fast, and a recipe that cannot be read is only left out."""
    table = "toolchain" if kind == "toolchains" else "service"
    directory = root / "recipes" / "toolchains" if kind == "toolchains" else root / "recipes"
    names = []
    for path in sorted(directory.glob("*.toml")):
        try:
            name = tomllib.loads(path.read_text()).get(table, {}).get("name")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
            continue
        if isinstance(name, str) and name.isprintable() and not name.startswith("-"):
            names.append(name)
    return names


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for shell (one of SHELLS)."""
    grammar = commands(parser)
    if shell == "fish":
        return _fish(grammar)
    return _bash(grammar, zsh=shell == "zsh")


# ---------------------------------------------------------------------------------------------------
# bash (and zsh, through its bash completion emulation)

_BASH_HELPERS = """\
_osless_add() {  # offer the words that start with what is being completed
    local word
    for word in "$@"; do
        [[ $word == "$_osless_cur"* ]] && COMPREPLY+=("$word")
    done
    return 0
}

_osless_files() {
    local file
    while IFS= read -r file; do COMPREPLY+=("$file"); done < <(compgen -f -- "$_osless_cur")
}

_osless_names() {  # the project's services or toolchains: -C DIR when the line names one
    local i project=.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in -C | --project) project=${COMP_WORDS[i + 1]} ;; esac
    done
    [[ $project == "~/"* ]] && project=$HOME/${project#"~/"}
    local name
    while IFS= read -r name; do
        _osless_add "$name"
    done < <("${COMP_WORDS[0]}" -C "$project" __names "$1" 2>/dev/null)
}

_osless() {
    COMPREPLY=()
    local _osless_cur=${COMP_WORDS[COMP_CWORD]} command="" word i
    for ((i = 1; i < COMP_CWORD; i++)); do  # the command (and subcommand) given so far
        word=${COMP_WORDS[i]}
        if [[ $word == -* ]]; then
            _osless_takes_value "$command" "$word" && ((i += 1))
        elif _osless_is_command "${command:+$command }$word"; then
            command=${command:+$command }$word
        fi
    done
    word=${COMP_WORDS[COMP_CWORD - 1]}
    [[ $word == = ]] && word=${COMP_WORDS[COMP_CWORD - 2]}  # --option=value
    if ((COMP_CWORD > 1)) && [[ $word == -* ]] && _osless_takes_value "$command" "$word"; then
        _osless_value "$command" "$word"
    elif [[ $_osless_cur == -* ]]; then
        _osless_options "$command"
    else
        _osless_subcommands "$command" || _osless_positionals "$command"
    fi
    return 0
}
"""


def _bash(grammar: Sequence[Command], *, zsh: bool) -> str:
    valued = [
        (command, name, option.values)
        for command in grammar
        for option in command.options
        if option.values is not None
        for name in option.names
    ]
    shell = "zsh" if zsh else "bash"
    where = (
        "~/.zshrc (after compinit)"
        if zsh
        else "~/.bashrc, or save it in ~/.local/share/bash-completion/completions/"
    )
    lines = [f"# osless completion for {shell} (`osless completion {shell}`): source it from {where}"]
    helpers = _BASH_HELPERS
    if zsh:  # zsh's emulation of bash completion; arrays from 0 as in bash, inside these functions only
        lines += ["autoload -U +X bashcompinit && bashcompinit", ""]
        helpers = helpers.replace(
            "    COMPREPLY=()\n", "    setopt local_options ksh_arrays\n    COMPREPLY=()\n", 1
        )
    lines.append(helpers)
    lines += _case_function(
        "_osless_is_command",
        "$1",
        [("return 0", command.key) for command in grammar if command.path],
        fallback="return 1",
    )
    lines += _case_function(
        "_osless_takes_value",
        "$1 $2",
        [("return 0", f"{command.key} {name}") for command, name, _ in valued],
        fallback="return 1",
    )
    lines += _case_function(
        "_osless_value",
        "$1 $2",
        [(_bash_values(values), f"{command.key} {name}") for command, name, values in valued],
    )
    lines += _case_function(
        "_osless_options",
        "$1",
        [
            (_add(name for option in command.options for name in option.names), command.key)
            for command in grammar
        ],
    )
    lines += _case_function(
        "_osless_subcommands",
        "$1",
        [(_add(command.subcommands), command.key) for command in grammar if command.subcommands],
        fallback="return 1",
    )
    lines += _case_function(
        "_osless_positionals",
        "$1",
        [
            (_bash_values(command.positionals), command.key)
            for command in grammar
            if command.positionals is not None and not command.subcommands
        ],
    )
    lines.append("complete -F _osless osless")
    return "\n".join(lines) + "\n"


def _bash_values(values: Values) -> str:
    """The shell code that offers such values."""
    if values.kind == "words":
        return _add(values.words)
    if values.kind in NAME_KINDS:
        return f"_osless_names {values.kind}"
    if values.kind == "files":
        return "_osless_files"
    return ":"  # free text: nothing to offer


def _add(words: Iterator[str] | Sequence[str]) -> str:
    return "_osless_add " + " ".join(_quote(word) for word in words)


def _case_function(
    name: str, subject: str, branches: Sequence[tuple[str, str]], *, fallback: str = ":"
) -> list[str]:
    """A function of one `case` on subject: each (code, word) runs code when subject is word; the words
    that run the same code share a branch."""
    patterns: dict[str, list[str]] = {}
    for code, word in branches:
        patterns.setdefault(code, []).append(_quote(word))
    lines = [f"{name}() {{", f'    case "{subject}" in']
    lines += [f"        {' | '.join(words)}) {code} ;;" for code, words in patterns.items()]
    lines += [f"        *) {fallback} ;;", "    esac", "}", ""]
    return lines


def _quote(word: str) -> str:
    """A word quoted for bash and zsh: single quotes unless it is plainly safe."""
    return shlex.quote(word) if word else "''"


# ---------------------------------------------------------------------------------------------------
# fish


def _fish(grammar: Sequence[Command]) -> str:
    root = grammar[0]
    global_valued = [name for option in root.options if option.values is not None for name in option.names]
    paths = [command.key for command in grammar if command.path]
    lines = [
        "# osless completion for fish (`osless completion fish`): save it as "
        "~/.config/fish/completions/osless.fish",
        "",
        "function __osless_command --description 'the osless command given so far, e.g. \"toolchain push\"'",
        "    set -l tokens (commandline -opc)",
        "    set -l command ''",
        "    set -l skip 0",
        "    for token in $tokens[2..-1]",
        "        if test $skip = 1",
        "            set skip 0",
        "        else if contains -- $token " + " ".join(_fish_quote(name) for name in global_valued),
        "            set skip 1",
        '        else if contains -- (string trim -- "$command $token") '
        + " ".join(_fish_quote(p) for p in paths),
        '            set command (string trim -- "$command $token")',
        "        end",
        "    end",
        "    echo $command",
        "end",
        "",
        "function __osless_names --argument-names kind --description 'services or toolchains'",
        "    set -l tokens (commandline -opc)",
        "    set -l project .",
        "    for i in (seq 2 (math (count $tokens) - 1))",
        "        if contains -- $tokens[$i] -C --project",
        "            set project $tokens[(math $i + 1)]",
        "        end",
        "    end",
        "    $tokens[1] -C $project __names $kind 2>/dev/null",
        "end",
        "",
        "function __osless_command_is --argument-names command",
        "    set -l given (__osless_command)",
        '    test "$given" = "$command"',
        "end",
        "",
        "complete -c osless -f",
    ]
    for command in grammar:
        condition = _fish_quote(f"__osless_command_is {_fish_quote(command.key)}")
        for child in grammar:
            if child.path[:-1] == command.path and child.path:
                lines.append(
                    f"complete -c osless -n {condition} -a {_fish_quote(child.path[-1])} "
                    f"-d {_fish_quote(child.help)}"
                )
        for option in command.options:
            flags = " ".join(
                f"-s {name[1:]}" if len(name) == 2 else f"-l {name[2:]}" for name in option.names
            )
            lines.append(
                f"complete -c osless -n {condition} {flags}{_fish_values(option.values, option=True)} "
                f"-d {_fish_quote(option.help)}"
            )
        if command.positionals is not None and not command.subcommands:
            lines.append(
                f"complete -c osless -n {condition}{_fish_values(command.positionals, option=False)}"
            )
    return "\n".join(lines) + "\n"


def _fish_values(values: Values | None, *, option: bool) -> str:
    if values is None:
        return ""
    required = " -r" if option else ""
    if values.kind == "words":
        return f"{required} -a {_fish_quote(' '.join(values.words))}"
    if values.kind in NAME_KINDS:
        return f"{required} -a {_fish_quote(f'(__osless_names {values.kind})')}"
    if values.kind == "files":
        return f"{required} -F"
    return required


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
