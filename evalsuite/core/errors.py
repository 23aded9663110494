"""Errors that cross module boundaries, with the exit code each maps to.

Exit codes are a contract: 2 for a bad spec, file or argument (the user can fix
it), 1 for a failure at run time (model, memory, backend).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem found in a user-supplied file."""

    file: str
    """Path of the file, as the user named it."""
    line: int | None
    """1-based line, when known."""
    col: int | None
    """1-based column, when known."""
    field: str
    """Dotted path of the field (``prompts.0.doc_to_text``), or ``-`` for the whole file."""
    message: str
    """What is wrong and, where possible, how to fix it."""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.field}: {self.message}"


class EvalsuiteError(Exception):
    """Base class; ``exit_code`` says how the CLI ends."""

    exit_code = 1


class SpecError(EvalsuiteError):
    """A task, suite or data file is invalid. Carries every problem found at once."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("-", None, None, "-", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(EvalsuiteError):
    """A bad command-line argument or combination of arguments."""

    exit_code = 2


class DataUnavailableError(EvalsuiteError):
    """A dataset cannot be reached (offline hub, missing file)."""

    exit_code = 2


class BackendError(EvalsuiteError):
    """The model or backend failed at run time."""

    exit_code = 1


class OutputError(EvalsuiteError):
    """Results could not be written (disk full, file size limit, folder gone)."""

    exit_code = 1


class ModelLoadError(BackendError):
    """A local model folder exists but its weights or tokenizer cannot be loaded (a corrupt checkpoint)."""
