"""Generate docs/tasks.md from the shipped task YAML (source, license notes, metrics, prompts)."""

from __future__ import annotations

from evalsuite.spec.catalog import Catalog


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render_tasks_md(catalog: Catalog) -> str:
    lines = ["# Tasks", "", "Generated from the task YAML by `evalsuite tasks docs`; do not edit by hand.", ""]
    lines += ["## Suites", ""]
    for name, s in sorted(catalog.suites.items()):
        lines.append(f"- **{name}** ({s.spec.title or name}): {', '.join(e.task for e in s.spec.tasks)}")
    lines += ["", "## Tasks", "", "| task | languages | output | headline | metrics | prompt variants | data |", "|---|---|---|---|---|---|---|"]
    for name in sorted(catalog.tasks):
        sp = catalog.tasks[name].spec
        src = []
        if sp.data.hub:
            src.append(f"hub `{sp.data.hub.path}`" + (f" ({sp.data.hub.name})" if sp.data.hub.name else "") + f" {sp.data.hub.split}")
        if sp.data.local:
            src.append(f"local `{sp.data.local.path}`")
        lines.append(f"| `{name}` | {', '.join(sp.languages)} | {sp.output_type.value} | {sp.metrics[0].name} | "
                     f"{', '.join(m.name for m in sp.metrics)} | {', '.join(p.id for p in sp.prompts)} | {'; '.join(src)} |")
    lines.append("")
    for name in sorted(catalog.tasks):
        t = catalog.tasks[name]
        sp = t.spec
        lines += [f"### `{name}` — {_md(sp.title or name)}", "", _md(sp.card) if sp.card else "", ""]
        lines.append(f"- file: `{t.display}`; category: {sp.category}; random baseline: {sp.random_baseline}")
        if sp.labels:
            lines.append(f"- labels: {', '.join(sp.labels)}")
        for p in sp.prompts:
            choice = f" → choices: {' / '.join(p.doc_to_choice)}" if p.doc_to_choice else ""
            lines.append(f"- prompt `{p.id}`: `{_md(p.description + p.doc_to_text)}`{_md(choice)}")
        lines.append("")
    return "\n".join(lines) + "\n"
