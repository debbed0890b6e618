"""Text from a book (or typed by a reader) shown as text, never as markup.

The browser renders chat messages as Markdown with HTML, and notifications as HTML. A book may hold
anything: ``<img src="http://...">`` (which every reader's browser would fetch), ``[a link](javascript:...)``,
``_underscores_`` for italics, ``<the old keeper>`` that a sanitiser silently deletes. These functions
escape exactly what a renderer would interpret, so the words appear as they are in the book.
"""

from __future__ import annotations

import html
import re

__all__ = ["markdown_literal", "html_literal"]

# Always escaped: characters that open inline Markdown (emphasis, code, links, images, strikethrough,
# tables, LaTeX) wherever they stand.
_INLINE = re.compile(r"([\\`*_\[\]~|$])")
# Escaped at the start of a line only: block markers (headings, lists, block quotes, setext underlines).
_LINE_START = re.compile(r"^([ \t]*)([#+\-=>])", re.M)
_ORDERED = re.compile(r"^([ \t]*\d{1,9})([.)])", re.M)
# Bare addresses that GitHub-flavoured Markdown would turn into links.
_SCHEME = re.compile(r"(?i)\b(https?|ftp|mailto|javascript|data|file|vbscript)(:)")
_WWW = re.compile(r"(?i)\b(www)(\.)")


def markdown_literal(text: str) -> str:
    """``text`` escaped so that a Markdown renderer (CommonMark or GitHub-flavoured, with HTML allowed)
    shows it literally: HTML special characters become entities, Markdown punctuation is escaped with a
    backslash, bare URLs and addresses cannot become links, and indentation cannot make a code block.
    Line breaks are kept."""
    text = str(text or "")
    text = _INLINE.sub(r"\\\1", text)
    text = html.escape(text, quote=False)  # & < > as entities: no tag, no autolink, no block quote
    text = _LINE_START.sub(r"\1\\\2", text)
    text = _ORDERED.sub(r"\1\\\2", text)
    text = _SCHEME.sub(r"\1\\\2", text)
    text = _WWW.sub(r"\1\\\2", text)
    text = text.replace("@", "\\@")
    # Four leading spaces would start a code block: leading white space goes (it carries no meaning here).
    return "\n".join(line.lstrip(" \t") for line in text.split("\n"))


def html_literal(text: str) -> str:
    """``text`` for a place that renders HTML (Gradio's notifications): ``& < >`` as entities."""
    return html.escape(str(text or ""), quote=False)
