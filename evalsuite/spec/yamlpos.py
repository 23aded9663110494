"""The only YAML loader: safe, and it remembers where every field stands.

``load_yaml`` returns the data plus a ``Positions`` map from field paths
(``("prompts", 0, "doc_to_text")``) to 1-based (line, column), so any later
validation can point at the line a user must edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evalsuite.core.errors import Problem, SpecError

PathT = tuple[Any, ...]

MAX_NODES = 200_000
"""Most YAML nodes a document may expand to, aliases counted at every use: an alias bomb
(each level repeating the previous one ten times) is refused before anything expands it."""


def _expanded_nodes(root: yaml.Node, limit: int) -> tuple[int, yaml.Node | None]:
    """Number of nodes ``root`` expands to (stops past ``limit``), and the node where the limit broke."""
    memo: dict[int, int] = {}
    worst: list[yaml.Node | None] = [None]

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        memo[key] = limit + 1  # a cycle (recursive alias) counts as too big
        total = 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += (k, v)
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        for child in children:
            total += size(child)
            if total > limit:
                if worst[0] is None:
                    worst[0] = node
                break
        memo[key] = total
        return total

    return size(root), worst[0]


@dataclass
class Positions:
    """Field path → (line, col) of the key (for mapping entries) or the item."""

    file: str
    marks: dict[PathT, tuple[int, int]] = field(default_factory=dict)

    def find(self, path: PathT) -> tuple[int | None, int | None]:
        """Position of ``path`` or of its nearest known ancestor."""
        p = tuple(path)
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), (None, None))

    def problem(self, path: PathT, message: str) -> Problem:
        line, col = self.find(path)
        name = ".".join(str(x) for x in path) or "-"
        return Problem(self.file, line, col, name, message)


def _walk(node: yaml.Node, path: PathT, pos: Positions, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                m = key_node.start_mark
                problems.append(
                    Problem(pos.file, m.line + 1, m.column + 1, ".".join(map(str, path)) or "-",
                            "mapping keys must be plain strings")
                )
                continue
            key = key_node.value
            m = key_node.start_mark
            if key in seen:
                problems.append(
                    Problem(pos.file, m.line + 1, m.column + 1, ".".join(map(str, path + (key,))),
                            f"duplicate key (first defined on line {seen[key]})")
                )
            seen[key] = m.line + 1
            pos.marks[path + (key,)] = (m.line + 1, m.column + 1)
            _walk(value_node, path + (key,), pos, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            m = item.start_mark
            pos.marks[path + (i,)] = (m.line + 1, m.column + 1)
            _walk(item, path + (i,), pos, problems)


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, Positions]:
    """Safe-load one YAML document; raise ``SpecError`` with file:line on any problem."""
    name = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(Problem(name, None, None, "-", f"cannot read file: {e.strerror or e}")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError(Problem(name, line, None, "-", "file is not valid UTF-8")) from None
    pos = Positions(name)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                n, where = _expanded_nodes(node, MAX_NODES)
                if n > MAX_NODES:
                    mark = (where or node).start_mark
                    raise SpecError(Problem(name, mark.line + 1, mark.column + 1, "-",
                                            f"the document expands to more than {MAX_NODES:,} values (YAML aliases "
                                            "repeating aliases); write the values out or use fewer aliases"))
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (None, None)
        msg = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        raise SpecError(Problem(name, line, col, "-", f"invalid YAML: {msg}")) from None
    except yaml.YAMLError as e:  # pragma: no cover - non-marked YAML errors are rare
        raise SpecError(Problem(name, None, None, "-", f"invalid YAML: {e}")) from None
    except RecursionError:
        raise SpecError(Problem(name, None, None, "-", "invalid YAML: nesting too deep")) from None
    if node is not None:
        pos.marks[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
        problems: list[Problem] = []
        _walk(node, (), pos, problems)
        if problems:
            raise SpecError(problems)
    return data, pos
