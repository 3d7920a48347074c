"""The problem-collecting TOML reader: every problem is recorded with its file, dotted key and line,
and reading goes on, so a user sees all the problems of all the recipes at once.

A recipe file is a regular file of at most MAX_RECIPE_BYTES whose arrays and tables nest at most
MAX_NESTING deep (checked before tomllib, whose recursive parser would overflow). A table reports the
keys its reader never asked for as unknown, with a did-you-mean hint.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from orchestrator.errors import RecipeProblem, did_you_mean
from orchestrator.recipe.convert import Invalid, as_table, shown
from orchestrator.recipe.model import MiB

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")

MAX_RECIPE_BYTES = 1024**2
MAX_NESTING = 64
_BARE_KEY = r"[A-Za-z0-9_-]+"
_KEY_PART = rf"""{_BARE_KEY}|"(?:[^"\\]|\\.)*"|'[^']*'"""
_DOTTED_KEY = rf"(?:{_KEY_PART})(?:\s*\.\s*(?:{_KEY_PART}))*"
_HEADER_LINE = re.compile(rf"\s*\[\[?\s*({_DOTTED_KEY})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED_KEY})\s*=")
_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in re.findall(_KEY_PART, dotted))


def _dotted(key: tuple[str, ...]) -> str:
    """`smoke[1].platforms."linux/386"`: an element of an array of tables is its key part `[1]`."""
    dotted = ""
    for part in key:
        if _ELEMENT.fullmatch(part):
            dotted += part
        else:
            dotted += ("." if dotted else "") + (part if re.fullmatch(_BARE_KEY, part) else f'"{part}"')
    return dotted


def element(index: int) -> str:
    """The key part of an array of tables' element `index` (0-based), e.g. `[0]`."""
    return f"[{index}]"


_ELEMENT = re.compile(r"\[\d+\]")


def _index_lines(text: str) -> dict[tuple[str, ...], int]:
    """The first line of each table header and key, by full key; a line scan, so approximate but cheap.
    The n-th `[[name]]` header is the table (name, `[n]`), and so are the tables and keys under it."""
    index: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}  # an array of tables -> the index of its last element
    for number, line in enumerate(text.split("\n"), start=1):
        if header := _HEADER_LINE.match(line):
            parts = _key_parts(header[1])
            if line.lstrip().startswith("[["):
                arrays[parts] = arrays.get(parts, -1) + 1
            table = ()
            for end, part in enumerate(parts, start=1):
                table += (part,)
                if parts[:end] in arrays:
                    if end == len(parts):  # the array itself: the line of its first element
                        index.setdefault(table, number)
                    table += (element(arrays[parts[:end]]),)
            index.setdefault(table, number)
        elif key := _KEY_LINE.match(line):
            index.setdefault(table + _key_parts(key[1]), number)
    return index


@dataclass
class RecipeFile:
    """One recipe file being read: where its problems go, and on which line each key is."""

    path: Path
    root: Path
    problems: list[RecipeProblem]
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)

    @property
    def rel(self) -> str:
        """The file's path as problems name it."""
        return self.path.relative_to(self.root).as_posix()

    def problem(self, key: tuple[str, ...], message: str, hint: str | None = None) -> None:
        self.problems.append(self.located(key, message, hint))

    def located(self, key: tuple[str, ...], message: str, hint: str | None = None) -> RecipeProblem:
        """A problem at `key`, not recorded: for what fails one service's targets rather than the recipes."""
        return RecipeProblem(
            file=self.rel, message=message, key=_dotted(key) or None, line=self._line(key), hint=hint
        )

    def syntax_problem(self, error: tomllib.TOMLDecodeError) -> None:
        message = str(error)
        at = _SYNTAX_AT.search(message)
        self.problems.append(
            RecipeProblem(
                file=self.rel,
                message=f"invalid TOML: {message[: at.start()] if at else message}",
                line=int(at[1]) if at else None,
                column=int(at[2]) if at else None,
            )
        )

    def reject_unknown_keys(self) -> None:
        for table in self.tables:
            table.reject_unknown_keys()

    def _line(self, key: tuple[str, ...]) -> int | None:
        """The line of the key, else of its nearest enclosing key or table; None rather than a guess."""
        for end in range(len(key), 0, -1):
            if (line := self.lines.get(key[:end])) is not None:
                return line
        return None


class Table:
    """Typed reads from one TOML table: problems are recorded, not raised, and keys never read are unknown."""

    def __init__(self, file: RecipeFile, key: tuple[str, ...], data: Mapping[str, object] | None) -> None:
        self.file = file
        self.key = key
        self.present = data is not None  # an absent table reads as empty and reports no missing keys
        self.data: Mapping[str, object] = data or {}
        self.known: list[str] = []
        file.tables.append(self)

    def optional(self, key: str, convert: Callable[[object], T]) -> T | None:
        """The value, or None when absent or invalid (then a problem is recorded)."""
        self.known.append(key)
        if key not in self.data:
            return None
        try:
            return convert(self.data[key])
        except Invalid as invalid:
            self.file.problem((*self.key, key), str(invalid), invalid.hint)
            return None

    def get(self, key: str, convert: Callable[[object], T], default: T) -> T:
        value = self.optional(key, convert)
        return default if value is None else value

    def required(self, key: str, convert: Callable[[object], T], hint: str | None = None) -> T | None:
        if self.present and key not in self.data:
            self.file.problem((*self.key, key), "required but missing", hint)
        return self.optional(key, convert)

    def section(self, key: str, *, required: bool = False, hint: str | None = None) -> Table:
        """The sub-table `key`, read like this one; empty when absent or invalid."""
        data = self.required(key, as_table, hint) if required else self.optional(key, as_table)
        return Table(self.file, (*self.key, key), data)

    def tables(self, key: str) -> tuple[list[Table], bool]:
        """`[key]` (one table) or `[[key]]` (an array of tables, each element keyed `[n]`): the tables to
        read, and whether it was an array. Absent: one absent table, read as empty."""
        self.known.append(key)
        value = self.data.get(key)
        if isinstance(value, list):
            if not value:
                self.file.problem((*self.key, key), "must not be empty", f"leave [{key}] out, or give one")
            tables = []
            for number, item in enumerate(value):
                try:
                    tables.append(Table(self.file, (*self.key, key, element(number)), as_table(item)))
                except Invalid as invalid:
                    self.file.problem((*self.key, key, element(number)), str(invalid))
            return tables, True
        return [self.section(key)], False

    def entries(self) -> list[str]:
        """All keys, for a table whose keys are data (platform names) rather than schema."""
        self.known.extend(self.data)
        return list(self.data)

    def reject_unknown_keys(self) -> None:
        for key, value in self.data.items():
            if key not in self.known:
                kind = "table" if isinstance(value, dict) else "key"
                valid = f"valid keys: {', '.join(dict.fromkeys(self.known)) or 'none'}"
                hint = did_you_mean(key, self.known) or valid
                self.file.problem((*self.key, key), f"unknown {kind}", hint)


def read_file(
    path: Path, root: Path, problems: list[RecipeProblem], read: Callable[[Table], T | None]
) -> T | None:
    """Parses one file and lets `read` turn its top-level table into an object (None when it cannot)."""
    file = RecipeFile(path=path, root=root, problems=problems)
    try:
        text = _read_text(path)
    except (OSError, UnicodeDecodeError) as error:
        file.problem((), f"cannot read: {error}")
        return None
    except Invalid as invalid:
        file.problem((), str(invalid), invalid.hint)
        return None
    if (deep := _too_deep(text)) is not None:
        file.problems.append(
            RecipeProblem(
                file=file.rel,
                message=f"arrays and tables nest more than {MAX_NESTING} deep",
                line=deep,
                hint="recipes need a few levels",
            )
        )
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        file.syntax_problem(error)
        return None
    except (ValueError, RecursionError) as error:  # e.g. an integer of more than 4300 digits
        file.problem((), f"invalid TOML: {shown(str(error), 200)[1:-1]}")
        return None
    file.lines = _index_lines(text)
    result = read(Table(file, (), data))
    file.reject_unknown_keys()
    return result


def _read_text(path: Path) -> str:
    """A recipe's text: a regular file (a FIFO would block) of at most MAX_RECIPE_BYTES."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, and is refused
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise Invalid("not a regular file", "a recipe is a TOML file")
        data = stream.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise Invalid(f"larger than {MAX_RECIPE_BYTES // MiB} MiB", "a recipe is a few lines of TOML")
    return data.decode("utf-8")


_NESTING_TOKEN = re.compile(r"""#|"{3}|'{3}|["'\[\]{}]""")
_STRING_END = {
    '"': re.compile(r'\\.|"', re.DOTALL),
    '"""': re.compile(r'\\.|"""', re.DOTALL),
    "'": re.compile("'"),
    "'''": re.compile("'''"),
}


def _too_deep(text: str) -> int | None:
    """The line where arrays and tables nest more than MAX_NESTING deep, if they do; None otherwise.

    A cheap scan before tomllib, whose recursive parser would end in a RecursionError: brackets and
    braces are counted outside strings and comments (an unterminated string is left to tomllib).
    """
    depth = 0
    position = 0
    while (token := _NESTING_TOKEN.search(text, position)) is not None:
        position = token.end()
        if token[0] == "#":
            position = text.find("\n", position)
            if position < 0:
                return None
        elif token[0] in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return text.count("\n", 0, position) + 1
        elif token[0] in "]}":
            depth = max(depth - 1, 0)
        else:  # a string: skip to its end, over escapes
            end = _STRING_END[token[0]]
            while (close := end.search(text, position)) is not None and close[0][0] == "\\":
                position = close.end()
            if close is None:
                return None
            position = close.end()
            # A closing triple quote may come after up to two quotes that belong to the string.
            while len(token[0]) == 3 and text.startswith(token[0][0], position):
                position += 1
    return None
