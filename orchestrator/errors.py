"""Errors a user can act on, each class with its own process exit code.

Every error carries a message that says what is wrong and, where there is one, what to do about it.
The CLI prints it on one line (no traceback) and exits with the class's code.
"""

from __future__ import annotations

from dataclasses import dataclass


class OslessError(Exception):
    """Base of all errors osless reports to the user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(OslessError):
    """The command line asks for something that does not exist (service, platform, option)."""

    exit_code = 2


@dataclass(frozen=True, kw_only=True)
class RecipeProblem:
    """One problem found in one recipe file, located as precisely as known."""

    file: str
    message: str
    key: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.key + ': ' if self.key else ''}{self.message}"
        return text + (f" ({self.hint})" if self.hint else "")


class RecipeError(OslessError):
    """One or more recipes are invalid; all problems are reported at once."""

    exit_code = 3

    def __init__(self, problems: list[RecipeProblem]) -> None:
        count = len(problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in recipes")
        self.problems = problems


class EngineError(OslessError):
    """The Docker engine cannot be reached or refused a request."""

    exit_code = 4


class ToolchainError(OslessError):
    """A toolchain image could not be provisioned."""

    exit_code = 5


class TargetsFailed(OslessError):
    """The run finished but at least one target failed a stage."""

    exit_code = 6


class VerificationFailed(OslessError):
    """`osless verify` found a file that would not run in an empty image."""

    exit_code = 7


class RegistryError(OslessError):
    """`osless push` failed: a broken layout, an unreachable registry, or one that refused the image."""

    exit_code = 8


class Interrupted(OslessError):
    """The run was interrupted (Ctrl-C or SIGTERM); its containers were removed."""

    exit_code = 130
