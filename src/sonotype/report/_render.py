"""Render a report, given as a list of blocks, to Markdown and to a self-contained HTML page.

Blocks are plain tuples:
``("h2", text)``, ``("p", text)``, ``("warn", text)``, ``("table", headers, rows)``,
``("figure", title, png, svg_or_None)`` (paths relative to the report folder, POSIX form) and
``("list", caption, items)``. Every text is escaped for its target: HTML with ``html.escape``,
Markdown by backslash-escaping its markup characters and writing ``& < >`` as entities (so no
raw HTML from the data reaches a Markdown renderer either).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np

Block = tuple

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|#"})


def fmt(v: Any, *, max_chars: int = 300) -> str:
    """A value as table text: numbers compact, lists summarised, dicts as JSON."""
    if v is None:
        s = "—"
    elif isinstance(v, (bool, np.bool_)):
        s = "yes" if v else "no"
    elif isinstance(v, (int, np.integer)):
        s = str(int(v))
    elif isinstance(v, (float, np.floating)):
        s = "NaN" if math.isnan(v) else f"{float(v):.4g}"
    elif isinstance(v, Mapping):
        s = json.dumps(v, default=str, ensure_ascii=False)
    elif isinstance(v, (list, tuple)):
        items = [fmt(x, max_chars=80) for x in v[:8]]
        s = ", ".join(items) if len(v) <= 8 else f"{len(v):,} items: {', '.join(items[:3])}, …"
        s = s or "(none)"
    else:
        s = str(v)
    return s if len(s) <= max_chars else s[: max_chars - 1] + "…"


def md_text(s: Any) -> str:
    """Escape text for Markdown (one line)."""
    one = " ".join(str(s).split())
    return html.escape(one.translate(_MD_SPECIAL), quote=False)


def url(path: str) -> str:
    """A relative POSIX path as a URL (percent-encoded, '/' kept)."""
    return quote(path, safe="/")


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    out = [f"# {md_text(title)}", ""]
    for b in blocks:
        kind = b[0]
        if kind == "h2":
            out += [f"## {md_text(b[1])}", ""]
        elif kind == "p":
            out += [md_text(b[1]), ""]
        elif kind == "warn":
            out += [f"> **Warning:** {md_text(b[1])}", ""]
        elif kind == "table":
            _, headers, rows = b
            out.append("| " + " | ".join(md_text(h) for h in headers) + " |")
            out.append("|" + "---|" * len(headers))
            out += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "figure":
            _, cap, png, svg = b
            links = f"[PNG]({url(png)})" + (f" · [SVG]({url(svg)})" if svg else "")
            out += [f"![{md_text(cap)}]({url(png)})", "", f"*{md_text(cap)}* — {links}", ""]
        elif kind == "list":
            _, cap, items = b
            out += [f"{md_text(cap)}:", ""] + [f"- {md_text(i)}" for i in items] + [""]
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown block {kind!r}")
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 68rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #eee; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #555; }
.warn { background: #fff3cd; border-left: 4px solid #e0a800; padding: .5rem .8rem; }
details { margin: .6rem 0; }
"""


def _h(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _num(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def to_html(title: str, blocks: Sequence[Block]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{_h(title)} — sonotype model report</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{_h(title)}</h1>"]
    for b in blocks:
        kind = b[0]
        if kind == "h2":
            out.append(f"<h2>{_h(b[1])}</h2>")
        elif kind == "p":
            out.append(f"<p>{_h(b[1])}</p>")
        elif kind == "warn":
            out.append(f'<p class="warn"><strong>Warning:</strong> {_h(b[1])}</p>')
        elif kind == "table":
            _, headers, rows = b
            out.append("<table>")
            out.append("<thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in headers) + "</tr></thead>")
            out.append("<tbody>")
            for row in rows:
                cells = "".join(f'<td class="num">{_h(c)}</td>' if _num(str(c)) else f"<td>{_h(c)}</td>"
                                for c in row)
                out.append(f"<tr>{cells}</tr>")
            out.append("</tbody></table>")
        elif kind == "figure":
            _, cap, png, svg = b
            target = url(svg or png)
            extra = f' — <a href="{_h(url(svg))}">SVG</a>' if svg else ""
            out.append(f'<figure><a href="{_h(target)}"><img src="{_h(url(png))}" alt="{_h(cap)}" '
                       f'loading="lazy"></a><figcaption>{_h(cap)}{extra}</figcaption></figure>')
        elif kind == "list":
            _, cap, items = b
            out.append(f"<details><summary>{_h(cap)}</summary><ul>")
            out += [f"<li>{_h(i)}</li>" for i in items]
            out.append("</ul></details>")
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown block {kind!r}")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
