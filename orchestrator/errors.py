"""Errors a user can act on, each class with its own process exit code.

Every error carries a message that says what is wrong and, where there is one, what to do about it.
The CLI prints it on one line (no traceback) and exits with the class's code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The hint "did you mean 'x'?" for the choice closest to a mistyped word; None when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


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
    """The run finished but a target failed; the subclasses name the stage, this is for the others.

    Exit 6: the package stage, an internal error before any stage, or `--check-reproducible` found
    that two clean builds differ.
    """

    exit_code = 6


class OutputError(TargetsFailed):
    """A file of the output could not be written (disk full, a read-only or vanished directory).

    The message names the file and the reason; nothing written half looks valid (atomic writes).
    """


class TargetsFailedAtToolchain(TargetsFailed):
    """A target could not be built because its toolchain image could not be provisioned."""

    exit_code = ToolchainError.exit_code  # 5: the same class of failure


class TargetsFailedAtBuild(TargetsFailed):
    """A target's build command failed (or timed out)."""

    exit_code = 10


class TargetsFailedAtVerify(TargetsFailed):
    """A target's binary was built but is not a static ELF for its platform, or breaks the policy."""

    exit_code = 11


class TargetsFailedAtSmoke(TargetsFailed):
    """A target's image ran, but its stdout or exit code was not what the recipe expects."""

    exit_code = 12


# The stages of a target in pipeline order, each with the error a run exits with when that stage is
# the earliest one at which a target failed.
STAGE_ERRORS: dict[str, type[TargetsFailed]] = {
    "toolchain": TargetsFailedAtToolchain,
    "build": TargetsFailedAtBuild,
    "verify": TargetsFailedAtVerify,
    "package": TargetsFailed,
    "smoke": TargetsFailedAtSmoke,
}


def targets_failed(message: str, failed_stages: Iterable[str | None]) -> TargetsFailed:
    """The error of a run whose targets failed at these stages: the earliest in pipeline order decides.

    So one exit code says what to look at first; stages it does not know (a target stopped before its
    first stage) count as other failures (6) unless a known stage failed too.
    """
    order = list(STAGE_ERRORS)
    known = sorted((s for s in failed_stages if s in STAGE_ERRORS), key=order.index)
    kind = STAGE_ERRORS[known[0]] if known else TargetsFailed
    return kind(message)


class VerificationFailed(OslessError):
    """`osless verify` found a file that would not run in an empty image."""

    exit_code = 7


class RegistryError(OslessError):
    """`osless push` failed: a broken layout, an unreachable registry, or one that refused the image."""

    exit_code = 8


class Interrupted(OslessError):
    """The run was interrupted (Ctrl-C or SIGTERM); its containers were removed."""

    exit_code = 130
