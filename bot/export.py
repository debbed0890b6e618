"""A conversation as one Markdown file: each question, the answer, its quote with the chapter, and the
pictures with the prompts they were drawn from.

Pictures are embedded as ``data:`` URIs by default, so the file stands alone (it can be mailed or kept
beside the book); ``images="link"`` writes their paths instead. Book text and the reader's own words are
written as Markdown *text*: characters Markdown would read as markup are escaped, so a quote can never turn
into a link, a heading or HTML.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

from vignette.errors import VignetteError

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def md_escape(text: str) -> str:
    """Plain text for Markdown: every character Markdown could read as markup is backslash-escaped, and
    line breaks are kept as hard breaks."""
    lines = [_MD_SPECIAL.sub(r"\\\1", line.rstrip()) for line in str(text or "").splitlines()]
    return "  \n".join(lines)


def _blockquote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in md_escape(text).split("\n"))


def _image(path: str, alt: str, images: str) -> str | None:
    file = Path(path)
    if not file.is_file():
        return None
    alt = md_escape(" ".join(alt.split())[:120]).replace("\n", " ")
    if images == "link":
        return f"![{alt}](<{file.resolve()}>)"
    data = base64.b64encode(file.read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{data})"


def export_markdown(records: list[dict[str, Any]], title: str, session: str, *, author: str | None = None,
                    images: str = "embed") -> str:
    """The conversation's turn records (``Companion.history``) as Markdown (see the module docstring)."""
    from bot.agent import chapter_label

    if images not in ("embed", "link"):
        raise VignetteError(f"Pictures are either embedded or linked, not {images!r}.")
    head = [f"# {md_escape(title)}", ""]
    if author:
        head += [f"*by {md_escape(author)}*", ""]
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    head += [f"A conversation with Vignette (session {md_escape(session)}), exported {stamp}. "
             f"{len(records)} turn{'s' if len(records) != 1 else ''}.", ""]
    body: list[str] = []
    for n, record in enumerate(records, 1):
        user = record.get("user") or ""
        body += [f"## {n}. {md_escape(' '.join(user.split())[:120]) or '(empty)'}", ""]
        if record.get("upto_chapter"):
            body += [f"*Read up to chapter {int(record['upto_chapter'])}.*", ""]
        if record.get("rewritten") and record.get("question"):
            body += [f"*Understood as:* {md_escape(record['question'])}", ""]
        reply = record.get("reply") or ""
        image = record.get("image")
        evidence = [e for e in record.get("evidence") or [] if e.get("quote")]
        if record.get("answer") and not record.get("abstained") and evidence:
            # the answer, then its quote and chapter (the reply says the same in chat form)
            body += [f"**Answer:** {md_escape(' '.join(str(record['answer']).split()))}", ""]
            for e in evidence:
                body += [_blockquote(" ".join(str(e["quote"]).split())), "", f"\u2014 {md_escape(chapter_label(e))}",
                         ""]
        else:
            if image:
                reply = reply.replace(f" Picture: {image}", "").replace(f"Picture: {image}", "")
            body += [md_escape(reply), ""]
        if image:
            picture = _image(image, record.get("scene_prompt") or "picture", images)
            if picture:
                body += [picture, ""]
            if record.get("scene_prompt"):
                body += [f"*Prompt:* {md_escape(record['scene_prompt'])}", ""]
    return "\n".join(head + body).rstrip() + "\n"


def export_conversation(companion: Any, book_id: str, session: str, images: str = "embed") -> str:
    """The Markdown of one conversation (session, book) kept by ``companion``."""
    records = companion.history(session, book_id)
    book = companion.book(book_id)
    return export_markdown(records, book.title, session, author=book.author, images=images)
