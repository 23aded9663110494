"""The one jinja2 environment: immutable sandbox, strict undefined variables, bounded work.

A template that reaches for ``__class__`` or ``__globals__`` raises a
``SecurityError``; a template that names a missing field raises ``UndefinedError``.
Both become ``SpecError`` with the field's file and line at the call sites.

A task file is written by strangers, so a template may also try to exhaust memory or
time (``{{ 'a' * 3000000000 }}``, nested ``range(100000)`` loops, a string doubled in a
loop). The sandbox refuses, with a ``SecurityError``: sequence-building operators whose
result would exceed ``MAX_CHARS`` (they are intercepted, so jinja never folds them at
compile time), huge integer powers, more than ``MAX_ITERATIONS`` loop iterations per
render (every ``for`` loop is rewritten to iterate through a counter), and rendered
text longer than ``MAX_CHARS``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_CHARS = 4_000_000
"""Longest string or sequence a template may build, and longest rendered prompt."""
MAX_ITERATIONS = 100_000
"""Loop iterations one render may run, all loops together."""
MAX_INT_BITS = 100_000
"""Largest integer (in bits) an arithmetic operator may produce."""

_budget = threading.local()


def _take(n: int = 1) -> None:
    left = getattr(_budget, "iterations", MAX_ITERATIONS) - n
    _budget.iterations = left
    if left < 0:
        raise SecurityError(f"template runs more than {MAX_ITERATIONS:,} loop iterations")


def _bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _take()
        yield item


def _bounded_concat(*parts: Any) -> str:
    out = "".join(str(p) for p in parts)
    if len(out) > MAX_CHARS:
        raise SecurityError(f"template builds a string longer than {MAX_CHARS:,} characters")
    return out


def _size(x: Any) -> int | None:
    return len(x) if isinstance(x, (str, bytes, list, tuple)) else None


def _too_big_int(left: Any, right: Any, operator: str) -> bool:
    if not (isinstance(left, int) and isinstance(right, int)):
        return False
    if operator == "**":
        return abs(left) > 1 and right > 0 and right * max(1, abs(left).bit_length()) > MAX_INT_BITS
    return left.bit_length() + right.bit_length() > MAX_INT_BITS


class _Guard(NodeTransformer):
    """Route every loop and ``~`` concatenation through the budgeted helpers."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name("_evalsuite_iter", "load"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.Name("_evalsuite_concat", "load"), list(node.nodes), [], None, None, lineno=node.lineno)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus caps on memory and time (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _check_constants(tree)
        guarded = _Guard().visit(tree)
        guarded.set_environment(self)
        return guarded

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Raise ``SecurityError`` before an operator builds something over the caps."""
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(n, int) and size * n > MAX_CHARS:
                raise SecurityError(f"template builds a sequence of {size * n:,} items (limit {MAX_CHARS:,})")
    if operator == "+":
        a, b = _size(left), _size(right)
        if a is not None and b is not None and a + b > MAX_CHARS:
            raise SecurityError(f"template builds a sequence longer than {MAX_CHARS:,} items")
    if operator == "%" and isinstance(left, str):
        # printf-style widths ("%3000000000s") allocate before anything can be checked
        if any(int(w) > MAX_CHARS for w in _PRINTF_WIDTH.findall(left)):
            raise SecurityError(f"template formats a field wider than {MAX_CHARS:,} characters")
    if operator in ("*", "**") and _too_big_int(left, right, operator):
        raise SecurityError(f"template computes an integer larger than {MAX_INT_BITS:,} bits")


_PRINTF_WIDTH = re.compile(r"%[-+ #0]*(\d+)")
_BINOPS = {nodes.Mul: "*", nodes.Pow: "**", nodes.Add: "+", nodes.Mod: "%", nodes.FloorDiv: "//"}


def _check_constants(tree: nodes.Template) -> None:
    """Refuse at compile time (so ``validate`` reports it) an operator on two literals that is over the caps."""
    for node in tree.find_all(tuple(_BINOPS)):
        try:
            left, right = node.left.as_const(), node.right.as_const()
        except Exception:  # noqa: BLE001 - not a constant: checked when rendered
            continue
        try:
            check_binop(_BINOPS[type(node)], left, right)
        except SecurityError as e:
            raise SecurityError(f"{e} (template line {node.lineno})") from None


def _width_guarded(name: str, env: BoundedSandbox) -> None:
    original = env.filters[name]

    def guarded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > MAX_CHARS:
            raise SecurityError(f"filter {name}: width {width:,} is over the limit of {MAX_CHARS:,}")
        return original(value, width, *args, **kwargs)

    env.filters[name] = guarded


@lru_cache(maxsize=1)
def environment() -> BoundedSandbox:
    env = BoundedSandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text, never HTML
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.globals["_evalsuite_iter"] = _bounded_iter
    env.globals["_evalsuite_concat"] = _bounded_concat
    for name in ("center", "indent", "truncate", "wordwrap"):
        _width_guarded(name, env)
    return env


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    """Compile (and cache) a template; raises ``jinja2.TemplateSyntaxError`` or ``SecurityError``."""
    try:
        return environment().from_string(source)
    except MemoryError:  # a constant jinja still folds at compile time: refuse, never crash
        raise SecurityError("template needs too much memory to compile") from None


def template_error_message(e: Exception) -> str:
    """A one-line, user-facing description of a template failure."""
    if isinstance(e, jinja2.TemplateSyntaxError):
        return f"template syntax error on template line {e.lineno}: {e.message}"
    if isinstance(e, jinja2.exceptions.SecurityError):
        return f"template refused by the sandbox: {e}"
    if isinstance(e, jinja2.UndefinedError):
        return f"template uses an undefined field: {e.message}"
    return f"template failed: {type(e).__name__}: {e}"


def render(source: str, variables: dict) -> str:
    """Render a template string with the example's fields (bounded in iterations and size)."""
    template = compile_template(source)
    _budget.iterations = MAX_ITERATIONS
    out: list[str] = []
    n = 0
    try:
        for chunk in template.generate(**variables):
            n += len(chunk)
            if n > MAX_CHARS:
                raise SecurityError(f"template renders more than {MAX_CHARS:,} characters")
            out.append(chunk)
    except MemoryError:
        raise SecurityError("template needs too much memory to render") from None
    return "".join(out)
