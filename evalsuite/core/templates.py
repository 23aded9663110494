"""The one jinja2 environment: immutable sandbox, strict undefined variables.

A template that reaches for ``__class__`` or ``__globals__`` raises a
``SecurityError``; a template that names a missing field raises ``UndefinedError``.
Both become ``SpecError`` with the field's file and line at the call sites.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text, never HTML
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    """Compile (and cache) a template; raises ``jinja2.TemplateSyntaxError``."""
    return environment().from_string(source)


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
    """Render a template string with the example's fields."""
    return compile_template(source).render(**variables)
