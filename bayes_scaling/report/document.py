"""A report as plain data (sections of text, tables and figures) and its two renderings.

HTML is self-contained (figures embedded as base64 PNG, no script, no external resource), so it
opens offline and can be mailed around; Markdown writes the figures beside it as PNG files.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..storage import write_atomically
from .format import markdown_table


@dataclass(frozen=True)
class Text:
    """A paragraph; ``kind`` is "p", "ok", "warn" (shown in red) or "code"."""

    text: str
    kind: str = "p"


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]
    kind: str = "p"


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    png: bytes
    name: str  # file stem in the Markdown variant; alt text
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    anchor: str = ""


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1150px;margin:auto;padding:1em;color:#222}"
         "img{max-width:100%;display:block;margin:.5em 0}h2{border-bottom:1px solid #ccc;margin-top:1.6em}"
         "nav{font-size:13px}nav a{margin-right:1em}"
         ".tab{border-collapse:collapse;font-size:12px;margin:.4em 0}"
         ".tab td,.tab th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
         ".tab th{background:#f4f4f4}.cap{font-size:12px;color:#555}"
         ".warn{color:#b00;font-weight:bold}.ok{color:#070;font-weight:bold}"
         "code,pre{background:#f6f6f6;padding:1px 4px}")


def to_html(doc: Document) -> str:
    parts = [f"<h1>{html.escape(doc.title)}</h1>", f"<p class='cap'>{html.escape(doc.subtitle)}</p>",
             "<nav>" + "".join(f"<a href='#{_slug(s.title)}'>{html.escape(s.title)}</a>" for s in doc.sections)
             + "</nav>"]
    for s in doc.sections:
        parts.append(f"<h2 id='{_slug(s.title)}'>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Text):
                if b.kind == "code":
                    parts.append(f"<pre>{html.escape(b.text)}</pre>")
                else:
                    parts.append(f"<p class='{b.kind}'>{html.escape(b.text)}</p>")
            elif isinstance(b, Items):
                parts.append(f"<ul class='{b.kind}'>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items)
                             + "</ul>")
            elif isinstance(b, Table):
                parts.append(b.frame.to_html(index=False, border=0, classes="tab", float_format=_fmt))
                if b.caption:
                    parts.append(f"<p class='cap'>{html.escape(b.caption)}</p>")
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png).decode()
                parts.append(f"<figure><img alt='{html.escape(b.name)}' src='data:image/png;base64,{data}'>"
                             f"<figcaption class='cap'>{html.escape(b.caption)}</figcaption></figure>")
            else:  # pragma: no cover - a programming error
                raise TypeError(f"unknown report block {b!r}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(doc.title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def _md_table(df: pd.DataFrame) -> str:
    return markdown_table([str(c) for c in df.columns],
                          ([_fmt(v).replace("|", "/") for v in r] for r in df.itertuples(index=False)))


def to_markdown(doc: Document, figure_dir: Path, link_prefix: str) -> str:
    """Markdown text; writes each figure as ``figure_dir/NAME.png`` linked as ``link_prefix/NAME.png``."""
    figure_dir.mkdir(parents=True, exist_ok=True)
    out = [f"# {doc.title}", "", f"_{doc.subtitle}_", ""]
    for s in doc.sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Text):
                text = f"```\n{b.text}\n```" if b.kind == "code" else (f"**{b.text}**" if b.kind == "warn"
                                                                           else b.text)
                out += [text, ""]
            elif isinstance(b, Items):
                out += [f"- {i}" for i in b.items] + [""]
            elif isinstance(b, Table):
                out += [_md_table(b.frame), ""] + ([f"_{b.caption}_", ""] if b.caption else [])
            elif isinstance(b, Figure):
                write_atomically(figure_dir / f"{b.name}.png", b.png)
                out += [f"![{b.name}]({link_prefix}/{b.name}.png)", "", f"_{b.caption}_", ""]
    return "\n".join(out)
