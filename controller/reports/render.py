"""A ``View`` as a rich table, Markdown, CSV or an HTML fragment (escaped, no scripts)."""

from __future__ import annotations

import html

from rich.markup import escape
from rich.table import Table

from controller.reports.views import View


def rich_table(view: View) -> Table:
    table = Table(title=escape(view.title), caption=escape("\n".join(view.notes)) or None, caption_justify="left")
    for i, header in enumerate(view.headers):
        table.add_column(escape(header), justify="right" if i in view.numeric else "left", overflow="fold")
    for row in view.rows:
        table.add_row(*(escape(c) for c in row))
    return table


def markdown(view: View) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"### {esc(view.title)}", "", "| " + " | ".join(esc(h) for h in view.headers) + " |",
             "|" + "|".join("---:" if i in view.numeric else "---" for i in range(len(view.headers))) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in view.rows]
    lines += [""] + [f"_{esc(n)}_" for n in view.notes]
    return "\n".join(lines) + "\n"


def html_table(view: View) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in view.headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if i in view.numeric else "txt"}">{html.escape(c)}</td>'
                         for i, c in enumerate(row)) + "</tr>"
        for row in view.rows
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in view.notes)
    return (f'<section class="table"><h3>{html.escape(view.title)}</h3><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{notes}</section>")


PAGE_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
p.note{color:#555;font-size:.8rem;max-width:60rem}"""


def html_page(view: View) -> str:
    """One table as a complete, self-contained HTML page (inline style, nothing fetched)."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(view.title)}</title>'
            f"<style>{PAGE_STYLE}</style></head><body>{html_table(view)}</body></html>\n")
