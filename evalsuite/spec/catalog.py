"""The task catalog: shipped tasks plus user folders, resolved lazily by name.

Broken files are never skipped silently: they are listed in ``Catalog.broken`` and
named whenever a lookup fails.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from evalsuite.core.errors import Problem, SpecError, UsageError
from evalsuite.spec.loader import LoadedSuite, LoadedTask, file_kind, load_suite, parse_task
from evalsuite.spec.yamlpos import load_yaml
from evalsuite.spec.models import SuiteSpec


def shipped_dir(name: str) -> Path:
    """A shipped top-level folder (``tasks``, ``leaderboards``): inside the installed package, or in the checkout."""
    packaged = Path(str(resources.files("evalsuite"))) / f"_{name}"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / name


def shipped_tasks_dir() -> Path:
    """The ``tasks/`` folder: inside the installed package, or beside it in a checkout."""
    return shipped_dir("tasks")


def _display(path: Path, root: Path) -> str:
    try:
        return str(Path(root.name) / path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class Catalog:
    """Tasks and suites found under some folders."""

    tasks: dict[str, LoadedTask] = field(default_factory=dict)
    suites: dict[str, LoadedSuite] = field(default_factory=dict)
    broken: list[SpecError] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)
    """Shipped tasks replaced by an included file of the same name (``--override-tasks``): name → shipped file."""

    @classmethod
    def discover(cls, extra: list[Path] | None = None, include_shipped: bool = True,
                 allow_override: bool = False) -> "Catalog":
        """Shipped tasks, then the ``extra`` folders/files.

        An included task with a shipped task's name is an error naming both files (it would silently
        replace the shipped task's data and labels under the shipped name) unless ``allow_override``.
        """
        missing = [p for p in extra or [] if not p.exists()]
        if missing:
            raise SpecError([Problem(str(p), None, None, "--include", "no such file or folder") for p in missing])
        cat = cls()
        if include_shipped:
            cat._add_root(shipped_tasks_dir(), set())
        shipped = dict(cat.tasks)
        conflicts: list[Problem] = []
        for root in extra or []:
            for name in cat._add_root(root, set(shipped)):
                old = shipped.get(name)
                new = cat.tasks.get(name)
                if old is None or new is None or old.file == new.file:
                    continue
                if allow_override:
                    cat.overrides[name] = old.display
                else:
                    conflicts.append(new.problem(("task",), f"task '{name}' shadows the shipped task of the same name in "
                                                            f"{old.display}; rename your task, or pass --override-tasks "
                                                            "to evaluate your file under the shipped name"))
                    cat.tasks[name] = old
        if conflicts:
            raise SpecError(conflicts)
        return cat

    def _add_root(self, root: Path, shipped: set[str]) -> list[str]:
        files = [root] if root.is_file() else sorted(root.rglob("*.yaml")) + sorted(root.rglob("*.yml"))
        names = []
        for f in files:
            if any(part.startswith(".") for part in f.parts[-3:]):
                continue
            before = len(self.broken)
            name = self.add_file(f, _display(f, root if root.is_dir() else root.parent))
            if name is not None:
                names.append(name)
                # a shipped name redefined by an include is reported by discover, not as a broken file
                if name in shipped and len(self.broken) > before:
                    self.broken.pop()
        return names

    def add_file(self, f: Path, display: str | None = None) -> str | None:
        """Load one file into the catalog; returns the task/suite name or None."""
        display = display or str(f)
        try:
            data, pos = load_yaml(f, display)
            kind = file_kind(data)
            if kind == "suite":
                s = load_suite(f, display)
                self.suites[s.spec.suite] = s
                return s.spec.suite
            if kind is None:
                raise SpecError(pos.problem((), "not a task or suite file: it needs a top-level 'task:' or 'suite:' key"))
            t = parse_task(data, pos, f)
        except SpecError as e:
            self.broken.append(e)
            return None
        name = t.spec.task
        if name in self.tasks and self.tasks[name].file != t.file:
            self.broken.append(SpecError(t.problem(("task",), f"task name '{name}' is also defined in {self.tasks[name].display}")))
        self.tasks[name] = t
        return name

    def _unknown(self, kind: str, name: str, known: list[str]) -> SpecError:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {kind} '{name}'"
        if close:
            msg += f"; did you mean {', '.join(close)}?"
        else:
            msg += "; see 'evalsuite tasks list'"
        if self.broken:
            msg += f" ({len(self.broken)} task file(s) could not be read; run 'evalsuite validate')"
        return SpecError(Problem("-", None, None, kind, msg))

    def task(self, name: str) -> LoadedTask:
        if name in self.tasks:
            return self.tasks[name]
        raise self._unknown("task", name, list(self.tasks))

    def suite(self, name: str) -> LoadedSuite:
        if name in self.suites:
            return self.suites[name]
        raise self._unknown("suite", name, list(self.suites))


def resolve_selection(
    catalog: Catalog, suite: str | None, tasks: str | None
) -> tuple[SuiteSpec | None, list[tuple[LoadedTask, int | None, int | None]]]:
    """Turn ``--suite``/``--tasks`` into (suite, [(task, limit, shots)]).

    ``--tasks`` takes comma-separated names or paths to task files/folders.
    """
    if bool(suite) == bool(tasks):
        raise UsageError("give exactly one of --suite NAME or --tasks A,B")
    if suite:
        s = catalog.suite(suite)
        missing = [e for e in s.spec.tasks if e.task not in catalog.tasks]
        if missing:
            problems = [s.positions.problem(("tasks", i, "task"), f"unknown task '{e.task}'")
                        for i, e in enumerate(s.spec.tasks) if e in missing]
            raise SpecError(problems)
        return s.spec, [(catalog.task(e.task), e.limit, e.shots) for e in s.spec.tasks]
    out: list[tuple[LoadedTask, int | None, int | None]] = []
    assert tasks is not None
    for item in [x.strip() for x in tasks.split(",") if x.strip()]:
        p = Path(item)
        if item.endswith((".yaml", ".yml")) or p.is_dir():
            if not p.exists():
                raise SpecError(Problem(item, None, None, "-", "task file not found"))
            errors_before = len(catalog.broken)
            files = [p] if p.is_file() else sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml"))
            names: list[str] = []
            for f in files:
                n = catalog.add_file(f, str(f))
                if n is not None and n in catalog.tasks and catalog.tasks[n].file == f.resolve():
                    names.append(n)
            if len(catalog.broken) > errors_before:
                problems: list[Problem] = []
                for e in catalog.broken[errors_before:]:
                    problems.extend(e.problems)
                raise SpecError(problems)
            out.extend((catalog.tasks[n], None, None) for n in names)
        else:
            out.append((catalog.task(item), None, None))
    if not out:
        raise UsageError("--tasks selected no task")
    return None, out
