"""A report page as data (sections of tables, plots, text) and its two renderings: Markdown and a
self-contained HTML page (inline CSS, plots embedded as data: URIs, no network). Tables also
render to CSV. Report pages, paper tables and compare summaries all go through here."""
from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""
    align: list[str] | None = None  # "l" | "r" | "c" per column; default: first column left, the rest right
    row_classes: list[str] | None = None  # HTML only: a class per row (e.g. "regression")


@dataclass
class Plot:
    file: str  # relative to the page's directory
    title: str


@dataclass
class Text:
    text: str


@dataclass
class Details:
    summary: str
    body: str  # preformatted


Block = Union[Table, Plot, Text, Details]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def cell(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _aligns(t: Table) -> list[str]:
    return t.align or ["l"] + ["r"] * (len(t.headers) - 1)


# ---- Markdown ---------------------------------------------------------------------------------
def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def table_md(t: Table) -> str:
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(_md_escape(h) for h in t.headers) + " |",
             "|" + "|".join(marks[a] for a in _aligns(t)) + "|"]
    lines += ["| " + " | ".join(_md_escape(cell(c)) for c in row) + " |" for row in t.rows]
    if t.caption:
        lines = [f"*{t.caption}*", ""] + lines
    return "\n".join(lines)


def render_md(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Table):
                out += [table_md(b), ""]
            elif isinstance(b, Plot):
                out += [f"![{b.title}]({b.file})", ""]
            elif isinstance(b, Text):
                out += [b.text, ""]
            elif isinstance(b, Details):
                out += [f"<details><summary>{html.escape(b.summary)}</summary>", "", "```", b.body, "```", "",
                        "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


# ---- CSV --------------------------------------------------------------------------------------
def _csv_cell(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    return repr(x) if isinstance(x, float) else str(x)


def table_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(t.headers)
    w.writerows([[_csv_cell(c) for c in row] for row in t.rows])
    return buf.getvalue()


# ---- HTML -------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
     padding:0 1rem;color:#1d1d1f;background:#fff;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #4C72B0;padding-bottom:.3rem}
h2{font-size:1.2rem;margin-top:2rem;color:#2b3f63}
.m1-scroll{overflow-x:auto;max-width:100%}
table.m1-table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.86rem}
table.m1-table caption{caption-side:top;text-align:left;font-style:italic;color:#555;padding-bottom:.3rem}
table.m1-table th,table.m1-table td{border:1px solid #d0d4dc;padding:.28rem .55rem;vertical-align:top}
table.m1-table th{background:#eef1f7}
table.m1-table tr:nth-child(even) td{background:#fafbfd}
td.l{text-align:left} td.r{text-align:right;font-variant-numeric:tabular-nums} td.c{text-align:center}
tr.regression td{background:#fde8e8 !important} tr.improvement td{background:#e7f6ea !important}
tr.incomparable td{background:#fff4d6 !important}
figure.m1-plot{margin:1rem 0} figure.m1-plot img{max-width:100%;border:1px solid #e3e6ec}
figure.m1-plot figcaption{font-size:.85rem;color:#555}
pre{background:#f5f6f8;padding:.6rem;overflow:auto;font-size:.8rem;max-height:28rem}
.m1-broken{color:#b00020;font-weight:600}
"""

# A plot that fails to decode is replaced by a visible notice instead of an empty box; the page
# records how many plots rendered (data-plots-ok / data-plots-total on <body>).
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure.m1-plot img'), ok = 0;
  imgs.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { ok++; return; }
    var p = document.createElement('p'); p.className = 'm1-broken';
    p.textContent = 'plot failed to render: ' + img.alt; img.replaceWith(p);
  });
  document.body.dataset.plotsOk = ok; document.body.dataset.plotsTotal = imgs.length;
});
"""


def table_html(t: Table) -> str:
    aligns = _aligns(t)
    out = ['<div class="m1-scroll"><table class="m1-table">']
    if t.caption:
        out.append(f"<caption>{html.escape(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.headers) + "</tr></thead><tbody>")
    for i, row in enumerate(t.rows):
        cls = f' class="{html.escape(t.row_classes[i])}"' if t.row_classes and t.row_classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="{a}">{html.escape(cell(c))}</td>' for a, c in zip(aligns, row))
                   + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _data_uri(path: Path) -> str:
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def render_html(title: str, sections: list[Section], base_dir: Path | None = None) -> str:
    """A standalone page; plot files are read from base_dir and embedded."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for sec in sections:
        body.append(f"<section><h2>{html.escape(sec.title)}</h2>")
        for b in sec.blocks:
            if isinstance(b, Table):
                body.append(table_html(b))
            elif isinstance(b, Plot):
                src = _data_uri(base_dir / b.file) if base_dir is not None else b.file
                body.append(f'<figure class="m1-plot"><img src="{src}" alt="{html.escape(b.title)}">'
                            f"<figcaption>{html.escape(b.title)}</figcaption></figure>")
            elif isinstance(b, Text):
                body.append(f"<p>{html.escape(b.text)}</p>")
            elif isinstance(b, Details):
                body.append(f"<details><summary>{html.escape(b.summary)}</summary><pre>{html.escape(b.body)}</pre>"
                            "</details>")
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
