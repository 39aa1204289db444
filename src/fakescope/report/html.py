"""Small HTML building blocks for a self-contained page: escaped text, tables, embedded PNGs, inline CSS."""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b8c0d0;font-size:13px}nav{margin-top:8px}
nav a{color:#9cc3ff;margin-right:14px;font-size:13px;text-decoration:none}
main{max-width:1200px;margin:0 auto;padding:8px 32px 40px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:8px 24px 20px;margin:20px 0}
h2{border-bottom:2px solid #e3e6eb;padding-bottom:6px}h3{margin:18px 0 8px;font-size:16px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #e0e3e8;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.figs{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0}
figure img{max-width:100%;border:1px solid #e3e6eb;border-radius:4px}
figcaption{font-size:12px;color:#5b6475;text-align:center}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{border:1px solid #e3e6eb;border-radius:6px;padding:6px;font-size:11px;text-align:center}
.card img{width:64px;height:64px;image-rendering:pixelated;margin:1px}
.grid.wide{grid-template-columns:repeat(auto-fill,minmax(230px,1fr))}
.card .name{word-break:break-all;color:#5b6475}.ok{color:#1e8449}.bad{color:#c0392b}
.note{color:#8a5a00;background:#fff6e0;border-left:3px solid #f0b400;padding:4px 10px;font-size:13px}
.muted{color:#5b6475;font-size:13px}
"""


def esc(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """Human formatting for table cells: floats rounded, None as an em dash, lists joined (escaped)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return esc(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "—"
        return esc(f"{v:.{digits}g}" if abs(v) >= 1e4 or 0 < abs(v) < 10 ** -(digits - 1) else f"{v:.{digits}f}")
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) or v is None for v in value):
        return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
    if isinstance(value, (dict, list, tuple)):
        text = str(value)
        return esc(text if len(text) <= 200 else text[:197] + "...")
    return esc(value)


def _cell(value: Any) -> str:
    cls = ' class="num"' if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else ""
    return f"<td{cls}>{fmt(value)}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table with an escaped header row and formatted cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(items: Mapping[str, Any], header: tuple[str, str] = ("key", "value")) -> str:
    """A two-column key/value table."""
    return table(header, list(items.items()))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, extra: str = "") -> str:
    """An ``<img>`` with the PNG embedded as a base64 data URI."""
    return f'<img src="{data_uri(png)}" alt="{esc(alt)}"{extra}>'


def figure_file(path: str | os.PathLike[str], caption: str) -> str:
    """A captioned figure embedding the PNG file at ``path``."""
    with open(path, "rb") as fh:
        png = fh.read()
    return f"<figure>{img(png, caption)}<figcaption>{esc(caption)}</figcaption></figure>"


def figure_bytes(png: bytes, caption: str) -> str:
    return f"<figure>{img(png, caption)}<figcaption>{esc(caption)}</figcaption></figure>"


def array_png(image: np.ndarray) -> bytes:
    """A uint8 HWC RGB array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def fig_png(fig: Any) -> bytes:
    """A matplotlib figure rendered to PNG bytes."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; ``sections`` are ``(anchor, title, body html)``."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p><nav>{nav}</nav></header>"
            f"<main>{body}</main></body></html>\n")
