"""Load a novel from a file into a :class:`~vignette.documents.Book`: decoded, cleaned, split into chapters.

Formats, by extension:

- ``.txt``: UTF-8, UTF-16 or UTF-32 (with or without a byte-order mark), or any encoding
  charset-normalizer recognises (cp1251, KOI8-R, GBK, EUC-KR, Shift-JIS, the Latin code pages...). The
  decoder tries strict UTF-8 first, because text that decodes as UTF-8 almost never is anything else;
  then detection (cp1252 when it reads as well); then cp1252 or latin-1, refused with the reason when
  they give garbled text (see :func:`decode_text`).
- ``.md`` / ``.markdown``: the markup is stripped (headings become heading lines, emphasis, links and
  images lose their syntax); YAML front matter may give the title and author.
- ``.html`` / ``.htm`` / ``.xhtml``: the standard library's ``html.parser``: block elements become
  paragraphs, ``<h1>``-``<h6>`` heading lines, ``<script>`` and ``<style>`` are skipped.
- ``.epub``: EPUB 2/3 (a zip): ``META-INF/container.xml`` names the OPF package, whose spine gives the
  reading order of the XHTML documents; each is read as HTML. ``dc:title``/``dc:creator`` give title
  and author.

Then, for every format: newlines become ``\\n``, stray byte-order marks go, and the Project Gutenberg
header, footer and licence are cut away (the ``Title:`` and ``Author:`` lines of the header are read
first). ``Book.text`` is what is left; every offset in the project points into it.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree

from retrieval.chapters import find_structure
from retrieval.text import normalise_whitespace, slugify, smart_title
from vignette.documents import Book
from vignette.errors import VignetteError

__all__ = ["load_book", "SUPPORTED_EXTENSIONS", "decode_text", "strip_gutenberg"]

SUPPORTED_EXTENSIONS = {
    ".txt": "plain text",
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".html": "HTML",
    ".htm": "HTML",
    ".xhtml": "XHTML",
    ".epub": "EPUB",
}
_SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_EXTENSIONS))

_BINARY_SIGNATURES = {
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive (if it is an EPUB, rename it to end in .epub)",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0": "a Microsoft Office document",
    b"{\\rtf": "an RTF document",
    b"\x7fELF": "a program",
    b"MZ": "a program",
}


@dataclass
class _Extracted:
    """What a format reader returns: plain text plus whatever the markup says about it."""

    text: str
    title: str | None = None
    author: str | None = None
    headings: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, level) into text
    toc: list[tuple[int, str, int]] = field(default_factory=list)  # an EPUB's nav: (offset, label, depth)
    spine_starts: list[int] = field(default_factory=list)  # an EPUB's documents: where each one starts
    structure: str = ""  # where the table of contents came from: "epub-nav", "epub-ncx", or ""
    structure_note: str | None = None  # why the EPUB's own navigation could not be used, if it could not


def load_book(path: str | Path, book_id: str | None = None, max_bytes: int | None = None) -> Book:
    """Read, clean and chapter a novel. Raises :class:`VignetteError` (naming the file) on bad input:
    a missing or empty file, binary content, an unsupported extension, a file over ``max_bytes``, a
    broken EPUB, or a file with no readable text."""
    # 1. Check inputs.
    path = Path(path)
    name = path.name
    if not path.exists():
        raise VignetteError(f"Cannot find the book file {str(path)!r}.", hint="Check the path and try again.")
    if not path.is_file():
        raise VignetteError(f"{str(path)!r} is a folder, not a book file.", hint="Point to the file itself.")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        what = f"files ending in {ext!r}" if ext else "files without an extension"
        raise VignetteError(
            f"Cannot read {name!r}: Vignette does not read {what}.",
            hint=f"Supported formats: {_SUPPORTED_LIST} (plain text, Markdown, HTML and EPUB).",
        )
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise VignetteError(
            f"{name!r} is too large: {_mb(size)}, over the limit of {_mb(max_bytes)}.",
            hint="A long novel is about 1-2 MiB of text; raise VIGNETTE_MAX_FILE_MB if this is one book.",
        )
    if size == 0:
        raise VignetteError(f"{name!r} is empty: there is no text to read.")
    data = path.read_bytes()

    # 2. Extract plain text (and any title, author, headings the format carries).
    if ext == ".epub":
        extracted = _read_epub(data, name, max_bytes)
    else:
        _check_not_binary(data, name)
        raw = decode_text(
            data, declared=_declared_charset(data) if ext in (".html", ".htm", ".xhtml") else None, name=name
        )
        raw = _normalise_newlines(raw)
        if ext in (".md", ".markdown"):
            extracted = _markdown_to_text(raw)
        elif ext in (".html", ".htm", ".xhtml"):
            extracted = _html_to_text(raw)
        else:
            extracted = _Extracted(raw)

    # 3. Clean: Project Gutenberg header/footer, then surrounding white space; headings follow the cut.
    text = extracted.text
    header = _gutenberg_metadata(text)
    a, b = strip_gutenberg(text)
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    text = text[a:b]
    headings = [(s - a, e - a, lv) for s, e, lv in extracted.headings if s >= a and e <= b]
    toc = [(o - a, label, depth) for o, label, depth in extracted.toc if a <= o < b]
    spine_starts = [o - a for o in extracted.spine_starts if a <= o < b]
    if not re.search(r"[^\W\d_]", text):
        raise VignetteError(f"{name!r} contains no readable text.", hint="Is it the right file?")

    # 4. Title and author: the format's own metadata, then the Gutenberg header, then the title page.
    page_title, page_author = _title_page(text)
    title = extracted.title or header.get("title") or page_title or _title_from_filename(path)
    author = extracted.author or header.get("author") or page_author
    title = smart_title(normalise_whitespace(title))
    author = smart_title(normalise_whitespace(author)) if author else None

    # 5. Chapters: from the EPUB's navigation document, else its spine, else the headings in the text.
    found = find_structure(text, headings=headings, toc=toc, spine_starts=spine_starts,
                           toc_source=extracted.structure)
    notes = [n for n in (extracted.structure_note, found.note) if n]
    return Book(
        book_id=book_id or slugify(title),
        title=title,
        author=author,
        text=text,
        chapters=found.chapters,
        source=name,
        structure=found.source,
        structure_notes=notes,
    )


def _mb(n: int) -> str:
    # MiB, as the settings count VIGNETTE_MAX_FILE_MB (Settings.max_file_bytes).
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 100 * 1024 else f"{n:,} bytes"


# --------------------------------------------------------------------------------------------------------
# Bytes to text
# --------------------------------------------------------------------------------------------------------


def _check_not_binary(data: bytes, name: str) -> None:
    """Refuse content that is not text: a known file signature, NUL bytes (unless the text is UTF-16 or
    UTF-32, with or without a byte-order mark), or many control characters."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 with a byte-order mark: NUL bytes are expected
    for signature, what in _BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise VignetteError(f"{name!r} is not a text file: it looks like {what}.", hint=_FORMAT_HINT)
    sample = data[:65536]
    if b"\x00" in sample and _wide_encoding(data) is not None:
        return  # UTF-16 or UTF-32 without a byte-order mark
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13, 26, 27))
    if b"\x00" in sample or controls > 0.01 * len(sample):
        raise VignetteError(f"{name!r} is not a text file: it holds binary data.", hint=_FORMAT_HINT)


_FORMAT_HINT = f"Vignette reads novels as {_SUPPORTED_LIST}."
_BOMS = [  # longest first: the UTF-32-LE mark begins with the UTF-16-LE one
    (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
]
_MAX_MESS = 0.2  # charset-normalizer's own threshold of "chaos" (unusual characters, odd mixtures of scripts)


def decode_text(data: bytes, declared: str | None = None, name: str = "the file") -> str:
    """Decode bytes of unknown encoding. In order: a byte-order mark (UTF-8, UTF-16, UTF-32); UTF-16 or
    UTF-32 without one (NUL bytes in text); the declared charset (HTML); strict UTF-8; the encoding
    charset-normalizer finds (cp1251, KOI8-R, GBK, EUC-KR, Shift-JIS, the Latin code pages...), cp1252
    when it reads the same; last, cp1252 or latin-1, refused with the reason when what they give does not
    look like text. Stray byte-order marks are removed."""
    # 1. What the bytes say about themselves.
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace").replace("\ufeff", "")
    if b"\x00" in data[:65536]:
        wide = _wide_encoding(data)
        if wide is not None:
            return data.decode(wide, errors="replace").replace("\ufeff", "")
    # 2. What the markup declares, then UTF-8, which text that decodes as it almost never is anything else.
    for encoding in ([declared] if declared else []) + ["utf-8"]:
        try:
            return data.decode(encoding).replace("\ufeff", "")
        except (UnicodeDecodeError, LookupError):
            continue
    # 3. A detected encoding.
    detected = detect_encoding(data)
    if detected is not None:
        return data.decode(detected, errors="replace").replace("\ufeff", "")
    # 4. The Windows and ISO Latin code pages, if what they give reads as text.
    try:
        text, encoding = data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "Latin-1"
    mess = _mess(text)
    if mess > _MAX_MESS:
        raise VignetteError(
            f"Cannot read {name!r}: its encoding is not one Vignette recognises (it is not UTF-8, and read as "
            f"{encoding} it gives garbled text: a mess score of {mess:.2f}, where text scores under {_MAX_MESS}).",
            hint="Save it as UTF-8 and try again.",
        )
    return text.replace("\ufeff", "")


def detect_encoding(data: bytes) -> str | None:
    """The encoding of ``data`` (a Python codec name) among those charset-normalizer finds plausible: cp1252,
    else latin-1, when either is among them (the encodings of older English and Western European
    e-texts, which detection cannot tell from their neighbours on short samples), else its most plausible
    one; None when no encoding gives plausible text."""
    from charset_normalizer import from_bytes

    results = from_bytes(data, threshold=_MAX_MESS)
    if not len(results):
        return None
    for codec in ("cp1252", "latin_1"):
        if any(codec in r.could_be_from_charset for r in results):
            return codec
    return results.best().encoding


def _wide_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32 (LE or BE) without a byte-order mark, when charset-normalizer finds one of them
    the plausible reading of the first 64 KiB; else None."""
    from charset_normalizer import from_bytes

    sample = data[:65536]
    sample = sample[: len(sample) - len(sample) % 4]
    wide = ["utf_16_le", "utf_16_be", "utf_32_le", "utf_32_be"]
    best = from_bytes(sample, threshold=_MAX_MESS, cp_isolation=wide).best()
    return best.encoding if best is not None else None


def _mess(text: str) -> float:
    """charset-normalizer's mess ratio over up to three 20,000-character samples (start, middle, end)."""
    from charset_normalizer.md import mess_ratio

    n, size = len(text), 20_000
    samples = [text] if n <= 3 * size else [text[:size], text[n // 2: n // 2 + size], text[-size:]]
    return max(mess_ratio(s, maximum_threshold=1.0) for s in samples)


def _declared_charset(data: bytes) -> str | None:
    m = re.search(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", data[:4096], re.I)
    if not m:
        return None
    charset = m.group(1).decode("ascii").lower()
    # Browsers read "iso-8859-1" as windows-1252; so do we (it only adds characters).
    return "cp1252" if charset in ("iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii") else charset


def _normalise_newlines(s: str) -> str:
    return s.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")


# --------------------------------------------------------------------------------------------------------
# Project Gutenberg
# --------------------------------------------------------------------------------------------------------

_PG_START = re.compile(
    r"^[^\S\n]*(?:\*{3}[^\S\n]*START OF (?:THE |THIS )?PROJECT GUTENBERG[^\n]*"
    r"|\*END\*?THE SMALL PRINT[^\n]*"
    r"|\*{3}[^\S\n]*START OF THE PROJECT GUTENBERG[^\n]*)$",
    re.M | re.I,
)
_PG_END = re.compile(
    r"^[^\S\n]*(?:\*{3}[^\S\n]*END OF (?:THE |THIS )?PROJECT GUTENBERG"
    r"|End of (?:the |this )?Project Gutenberg"
    r"|End of Project Gutenberg'?s"
    r"|End of the Project Gutenberg E-?(?:Book|text))[^\n]*$",
    re.M | re.I,
)
_PG_PRODUCED = re.compile(
    r"\s*(?:(?:Produced|Prepared|Transcribed|E-?text prepared|Scanned)\b[^\n]*(?:\n[^\S\n]*\S[^\n]*)*\s*)+",
    re.I,
)


def strip_gutenberg(text: str) -> tuple[int, int]:
    """``(start, end)`` of the book inside a Project Gutenberg file: after the ``*** START OF ...`` line
    (and a "Produced by" paragraph), before the first footer line (``*** END OF ...``, "End of the
    Project Gutenberg EBook ..."). ``(0, len(text))`` for a text without them."""
    start, end = 0, len(text)
    starts = list(_PG_START.finditer(text))
    if starts:
        # Older files carry both a "*** START" line and "*END*THE SMALL PRINT!...": the book follows the
        # last start marker before the footer ("*** START: FULL LICENSE ***" sits after the footer).
        first_end = _PG_END.search(text, starts[0].end())
        limit = first_end.start() if first_end else len(text)
        start = [m for m in starts if m.end() <= limit][-1].end()
        produced = _PG_PRODUCED.match(text, start)
        if produced:
            start = produced.end()
    m = _PG_END.search(text, start)
    if m:
        end = m.start()
    return start, end


def _gutenberg_metadata(text: str) -> dict[str, str]:
    """``Title:`` and ``Author:`` from a Gutenberg header (continuation lines are indented), or the
    "The Project Gutenberg EBook of X, by Y" first line."""
    m = _PG_START.search(text)
    if not m:
        return {}
    header = text[: m.start()]
    out: dict[str, str] = {}
    for key in ("title", "author"):
        mm = re.search(rf"^{key}:[^\S\n]*(\S[^\n]*(?:\n[^\S\n]+\S[^\n]*)*)", header, re.M | re.I)
        if mm:
            parts = [p.strip() for p in mm.group(1).split("\n")]
            value = parts[0]
            for p in parts[1:]:
                value += ("; " if p.lower().startswith("or,") and value[-1].isalnum() else " ") + p
            out[key] = value
    if "title" not in out:
        mm = re.search(
            r"Project Gutenberg(?:'s)? E-?(?:Book|text) of (.+?)(?:, by (.+))?$", header, re.M | re.I
        )
        if mm:
            out["title"] = mm.group(1).strip()
            if mm.group(2) and "author" not in out:
                out["author"] = mm.group(2).strip()
    return out


# --------------------------------------------------------------------------------------------------------
# Title page
# --------------------------------------------------------------------------------------------------------

_ILLUSTRATION = re.compile(r"\[(?:Illustration|Frontispiece)[^\]]*\]", re.I)
_BY_LINE = re.compile(r"^by\b[\s:]*(.*)$", re.I)
_HEADING_LIKE = re.compile(
    r"^(?:(?i:chapter|letter|part|book|volume|stave)\s+(?:[IVXLC]+\b|\d+|(?i:one|two|three|the)\b)"
    r"|(?i:contents|prologue)\b|[IVXLC]+\.?$|\d+\.?$)"
)


def _title_page(text: str) -> tuple[str | None, str | None]:
    """Title and author from the first lines: the non-empty lines before a "by ..." line are the title,
    the by-line names the author ("PRIDE. / and / PREJUDICE / by / Jane Austen," -> "Pride and
    Prejudice", "Jane Austen"). Without a by-line, the first line if it is short and not a heading."""
    head = _ILLUSTRATION.sub("\n", text[:6000])
    lines = [ln.strip().strip("_*#").strip() for ln in head.split("\n")]
    lines = [ln for ln in lines if ln][:12]
    if not lines:
        return None, None
    for i, line in enumerate(lines[:8]):
        m = _BY_LINE.match(line)
        if not m or i == 0:
            continue
        author = m.group(1).strip() or (lines[i + 1] if i + 1 < len(lines) else "")
        title_lines = lines[max(0, i - 4) : i]
        if len(author) > 60 or len(author.split()) > 8 or any(_HEADING_LIKE.match(t) for t in title_lines):
            break  # "By the time the sun rose..." under a chapter heading: prose, not a title page
        title = ""
        for j, tl in enumerate(title_lines):
            nxt = title_lines[j + 1] if j + 1 < len(title_lines) else ""
            if tl.endswith(".") and nxt[:1].islower():
                tl = tl[:-1]  # "PRIDE." above "and"
            title = f"{title} {tl}".strip()
        author = re.split(r",?\s+(?:with|and illustrated|illustrated)\b", author, maxsplit=1)[0]
        return title.strip(" ,;:") or None, author.strip(" ,;:.") or None
    first = lines[0]
    if len(first) <= 100 and len(first.split()) <= 12 and not _HEADING_LIKE.match(first):
        return first.strip(" ,;:"), None
    return None, None


def _title_from_filename(path: Path) -> str:
    stem = re.sub(r"^pg\d+[_\-]?", "", path.stem)
    words = re.sub(r"[_\-]+", " ", stem).strip()
    return (words[:1].upper() + words[1:]) if words else path.stem


# --------------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------------

_MD_FRONT_MATTER = re.compile(r"\A---[^\S\n]*\n(.*?)\n(?:---|\.\.\.)[^\S\n]*(?:\n|\Z)", re.S)
_MD_ATX = re.compile(r"^[ ]{0,3}(#{1,6})[^\S\n]+(.*?)[^\S\n]*#*[^\S\n]*$")
_MD_SETEXT = re.compile(r"^[ ]{0,3}(=+|-+)[^\S\n]*$")
_MD_RULE = re.compile(r"^[ ]{0,3}(?:(?:\*[^\S\n]*){3,}|(?:-[^\S\n]*){3,}|(?:_[^\S\n]*){3,})$")
_MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r""),  # images: dropped
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # reference links
    (re.compile(r"<[^>\n]+>"), r""),  # inline HTML tags
    (re.compile(r"`([^`]+)`"), r"\1"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # emphasis
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),
    (re.compile(r"~~(.+?)~~"), r"\1"),
]
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|~])")


def _markdown_to_text(src: str) -> _Extracted:
    """Markdown to plain text; headings become lines of their own (recorded with their level)."""
    title = author = None
    fm = _MD_FRONT_MATTER.match(src)
    if fm:
        for line in fm.group(1).split("\n"):
            key, _, value = line.partition(":")
            value = value.strip().strip("\"'")
            if key.strip().lower() == "title" and value:
                title = value
            elif key.strip().lower() in ("author", "creator") and value:
                author = value
        src = src[fm.end() :]

    lines = src.split("\n")
    out: list[str] = []  # output lines
    heading_lines: list[tuple[int, int]] = []  # (output line index, level)
    in_fence = False
    for i, line in enumerate(lines):
        if re.match(r"^[ ]{0,3}(```|~~~)", line):
            in_fence = not in_fence
            continue
        if in_fence:
            out.append(line)
            continue
        if re.match(r"^[ ]{0,3}\[[^\]]+\]:\s*\S+", line):
            continue  # a link reference definition
        m = _MD_ATX.match(line)
        if m:
            _blank(out)
            heading_lines.append((len(out), len(m.group(1))))
            out.append(_md_inline(m.group(2)))
            out.append("")
            continue
        m = _MD_SETEXT.match(line)
        if m and i > 0 and lines[i - 1].strip() and out and out[-1].strip():
            # "Title" underlined with === or ---: the line above is a heading.
            if len(out) > 1 and out[-2].strip():
                out.insert(len(out) - 1, "")
            heading_lines.append((len(out) - 1, 1 if m.group(1).startswith("=") else 2))
            out.append("")
            continue
        if _MD_RULE.match(line):
            _blank(out)
            out.append("* * *")
            out.append("")
            continue
        if not line.strip() and out and not out[-1].strip():
            continue  # one blank line is enough
        line = re.sub(r"^[ ]{0,3}>[^\S\n]?", "", line)  # block quotes
        line = re.sub(r"^([ \t]*)[-*+][ \t]+", r"\1", line)  # bullets
        out.append(_md_inline(line))

    text = "\n".join(out)
    starts = [0]
    for ln in out:
        starts.append(starts[-1] + len(ln) + 1)
    headings = [
        (starts[idx], starts[idx] + len(out[idx]), lv) for idx, lv in heading_lines if out[idx].strip()
    ]
    if title is None:
        top = [(s, e) for s, e, lv in headings if lv == 1]
        if len(top) == 1 and headings and headings[0][2] == 1 and any(lv > 1 for _, _, lv in headings):
            title = text[top[0][0] : top[0][1]]
            headings = [h for h in headings if h[2] > 1]
    return _Extracted(text, title, author, headings)


def _md_inline(s: str) -> str:
    # Escaped characters ("\\*") hide in the private-use area while the markup is stripped.
    s = _MD_ESCAPE.sub(lambda m: chr(0xE000 + ord(m.group(1))), s)
    for pattern, repl in _MD_INLINE:
        s = pattern.sub(repl, s)
    return re.sub("[\ue000-\ue07f]", lambda m: chr(ord(m.group(0)) - 0xE000), s)


def _blank(out: list[str]) -> None:
    if out and out[-1].strip():
        out.append("")


# --------------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    "address article aside blockquote body center dd details dialog div dl dt fieldset figcaption figure "
    "footer form header hgroup hr li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
)
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BR = "\x00"  # marks a <br> while white space is collapsed
_SKIP_TAGS = frozenset(["script", "style", "head", "noscript", "template", "svg", "math"])


class _HTMLText(HTMLParser):
    """Collects paragraphs of text; headings as their own paragraphs, with their level."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, int]] = []  # (text, heading level or 0)
        self._buf: list[str] = []
        self._skip = 0
        self._pre = 0
        self._heading = 0
        self._in_title = False
        self.title: str | None = None
        self.author: str | None = None
        self._title_buf: list[str] = []
        self.anchors: dict[str, int] = {}  # element id -> index of the block it opens or sits in
        self.links: list[tuple[str, str]] = []  # links inside the page ("#chap03", "III. The Storm"), in order
        self._link: list[str] | None = None
        self._link_target = ""

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag == "meta":
            a = dict(attrs)
            if (a.get("name") or "").lower() in ("author", "dc.creator") and a.get("content"):
                self.author = a["content"]
            return
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if tag == "br":
            self._buf.append(_BR)
        elif tag in _HEADING_TAGS:
            self._flush()
            self._heading = _HEADING_TAGS[tag]
            self._anchor(tag, attrs)
        elif tag in _BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self._pre += 1
            self._anchor(tag, attrs)
        else:
            self._anchor(tag, attrs)
        if tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt and not self._skip:
                # A drop capital ("T" as an image, then "he grass-plot") joins the word it begins.
                self._buf.append(alt if len(alt) == 1 and alt.isupper() else f" {alt} ")

    def _anchor(self, tag: str, attrs) -> None:
        # Where a link of the table of contents ("chapter.xhtml#ch03") lands: the block being read next.
        a = dict(attrs)
        href = a.get("href") or ""
        if tag == "a" and href.startswith("#") and len(href) > 1 and not self._skip:
            self._link, self._link_target = [], unquote(href[1:])
        anchor = a.get("id") or (a.get("name") if tag == "a" else None)
        if anchor and anchor not in self.anchors:
            self.anchors[anchor] = len(self.blocks)

    def handle_startendtag(self, tag: str, attrs) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            self.title = normalise_whitespace("".join(self._title_buf)) or None
            return
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if tag == "a" and self._link is not None:
            label = normalise_whitespace("".join(self._link))
            if label:
                self.links.append((self._link_target, label))
            self._link = None
        if tag in _HEADING_TAGS:
            self._flush()
            self._heading = 0
        elif tag in _BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_buf.append(data)
        elif not self._skip:
            self._buf.append(data.replace(_BR, ""))
            if self._link is not None:
                self._link.append(data)

    def _flush(self) -> None:
        raw = "".join(self._buf)
        self._buf = []
        if self._pre:
            text = raw.replace(_BR, "\n").strip("\n")
        elif self._heading:
            text = normalise_whitespace(raw.replace(_BR, " "))
        else:
            # Collapse HTML white space, but keep <br> line breaks.
            text = "\n".join(normalise_whitespace(part) for part in raw.split(_BR) if part.strip())
        if text.strip():
            self.blocks.append((text, self._heading))

    def close(self) -> None:
        super().close()
        self._flush()


def _html_to_text(src: str) -> _Extracted:
    parser = _HTMLText()
    parser.feed(src)
    parser.close()
    offsets: list[int] = []
    extracted = _blocks_to_extracted(parser.blocks, _clean_html_title(parser.title), parser.author, offsets)
    extracted.toc = _html_toc(parser, offsets)
    extracted.structure = "html-toc" if extracted.toc else ""
    return extracted


def _html_toc(parser: _HTMLText, offsets: list[int]) -> list[tuple[int, str, int]]:
    """A page's table of contents: its links to headings inside the page ("#chap03" landing on, or just
    above, an ``<h2>``), in link order, one per target. Links to notes or pictures land elsewhere."""
    toc, seen = [], set()
    for target, label in parser.links:
        block = parser.anchors.get(target)
        if block is None or block in seen or block >= len(parser.blocks):
            continue
        near = parser.blocks[block : block + 2]
        if not any(level for _, level in near):
            continue
        seen.add(block)
        toc.append((offsets[block], label, 1))
    return toc if len(toc) >= 2 else []


def _clean_html_title(title: str | None) -> str | None:
    if not title:
        return None
    m = re.search(r"Project Gutenberg(?:'s)? e-?(?:Book|text) of (.+?)(?:, by .+)?$", title, re.I)
    return m.group(1).strip() if m else title


def _blocks_to_extracted(
    blocks: list[tuple[str, int]], title: str | None, author: str | None, block_offsets: list[int] | None = None
) -> _Extracted:
    """Join blocks with blank lines; ``block_offsets``, when given, is filled with each block's offset."""
    parts: list[str] = []
    headings: list[tuple[int, int, int]] = []
    pos = 0
    merged: list[tuple[str, int]] = []
    owner: list[int] = []  # block index -> index in merged
    for text, level in blocks:
        if merged and len(merged[-1][0]) == 1 and merged[-1][0].isupper() and not level and text[:1].islower():
            text = merged.pop()[0] + text  # a drop capital set apart from the rest of its word ("T" + "he")
        merged.append((text, level))
        owner.append(len(merged) - 1)
    starts = []
    for text, level in merged:
        if parts:
            pos += 2  # the "\n\n" joining blocks
        starts.append(pos)
        if level:
            headings.append((pos, pos + len(text), level))
        parts.append(text)
        pos += len(text)
    if block_offsets is not None:
        block_offsets.extend(starts[i] for i in owner)
        block_offsets.append(pos)  # one past the last block
    return _Extracted("\n\n".join(parts), title, author, headings)


# --------------------------------------------------------------------------------------------------------
# EPUB
# --------------------------------------------------------------------------------------------------------

_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_MAX_NAV_BYTES = 4 * 1024 * 1024  # an EPUB's navigation document larger than this is not read
_XHTML_TYPES = ("application/xhtml+xml", "text/html", "application/xml", "text/x-oeb1-document")


def _broken_epub(name: str, why: str) -> VignetteError:
    return VignetteError(
        f"Cannot read {name!r}: it is not a readable EPUB ({why}).",
        hint="The file may be damaged or incomplete; try downloading it again, or use a plain-text copy.",
    )


def _read_epub(data: bytes, name: str, max_bytes: int | None) -> _Extracted:
    """Spine order, per the EPUB Open Container Format (OCF) and Open Packaging Format (OPF). The archive
    is read within limits (:mod:`retrieval.archive`): at most ``max_bytes`` unpacked in all, each member
    streamed and checked, and its XML parsed without entity expansion."""
    from retrieval.archive import SafeZip, parse_xml

    # 1. Open the container and find the package document.
    with SafeZip(data, name, max_total=max_bytes) as zf:
        names = set(zf.namelist())
        if "META-INF/encryption.xml" in names and _has_drm(zf):
            raise VignetteError(
                f"Cannot read {name!r}: the EPUB is protected by DRM (its text is encrypted).",
                hint="Use a DRM-free copy of the book.",
            )
        opf_path = None
        if "META-INF/container.xml" in names:
            try:
                root = parse_xml(zf.read("META-INF/container.xml"), f"{name!r}")
                rootfile = root.find(".//c:rootfile", _NS)
                opf_path = rootfile.get("full-path") if rootfile is not None else None
            except (ElementTree.ParseError, zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
                raise _broken_epub(name, f"META-INF/container.xml is damaged: {exc}") from None
        if opf_path is None:
            opfs = sorted(n for n in names if n.lower().endswith(".opf"))
            if not opfs:
                raise _broken_epub(name, "it has no META-INF/container.xml and no package (.opf) file")
            opf_path = opfs[0]
        if opf_path not in names:
            raise _broken_epub(name, f"the package file {opf_path!r} it names is missing")

        # 2. Read metadata, manifest and spine from the package.
        try:
            opf = parse_xml(zf.read(opf_path), f"{name!r}")
        except (ElementTree.ParseError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _broken_epub(name, f"its package file is damaged: {exc}") from None
        title_el = opf.find(".//dc:title", _NS)
        creator_el = opf.find(".//dc:creator", _NS)
        title = normalise_whitespace(title_el.text or "") if title_el is not None and title_el.text else None
        author = (
            normalise_whitespace(creator_el.text or "")
            if creator_el is not None and creator_el.text
            else None
        )
        base = posixpath.dirname(opf_path)
        manifest = {}
        for item in opf.findall(".//opf:manifest/opf:item", _NS):
            href = item.get("href")
            if item.get("id") and href:
                manifest[item.get("id")] = (
                    posixpath.normpath(posixpath.join(base, unquote(href))),
                    item.get("media-type", ""),
                )
        spine = [
            ref.get("idref")
            for ref in opf.findall(".//opf:spine/opf:itemref", _NS)
            if ref.get("linear", "yes") != "no"
        ]
        docs = [manifest[i] for i in spine if i in manifest]
        docs = [
            path
            for path, media in docs
            if media in _XHTML_TYPES or path.lower().endswith((".xhtml", ".html", ".htm"))
        ]
        if not docs:
            raise _broken_epub(name, "its reading order (spine) lists no text documents")

        # 3. Read each document in spine order as HTML; documents are separated like blocks.
        blocks: list[tuple[str, int]] = []
        doc_blocks: dict[str, int] = {}  # document -> index of its first block
        anchors: dict[tuple[str, str], int] = {}  # (document, element id) -> block index
        for path in docs:
            if path not in names:
                raise _broken_epub(name, f"the chapter file {path!r} listed in its spine is missing")
            try:
                raw = zf.read(path)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC errors, truncation, lying sizes
                raise _broken_epub(name, f"{path!r} is damaged: {exc}") from None
            parser = _HTMLText()
            parser.feed(_normalise_newlines(decode_text(raw, declared=_declared_charset(raw), name=name)))
            parser.close()
            doc_blocks.setdefault(path, len(blocks))
            anchors.update({(path, k): len(blocks) + v for k, v in parser.anchors.items()})
            blocks.extend(parser.blocks)

        # 4. The book's own table of contents (nav or NCX), its links resolved to blocks.
        from retrieval.structure_epub import read_epub_toc

        def read_nav(path: str) -> bytes:
            raw = zf.read(path)  # through the same reader as every other member of the archive
            if len(raw) > _MAX_NAV_BYTES:  # a table of contents is small
                raise ValueError(f"{path} is over {_MAX_NAV_BYTES:,} bytes")
            return raw

        entries, source, problem = read_epub_toc(
            read_nav, opf, opf_path, _NS, parse=lambda raw: parse_xml(raw, f"{name!r}")
        )
    offsets: list[int] = []
    extracted = _blocks_to_extracted(blocks, title, author, offsets)
    toc = []
    for e in entries:
        block = anchors.get((e.path, e.fragment)) if e.fragment else doc_blocks.get(e.path)
        if block is None and e.fragment is None:
            continue
        if block is None:
            block = doc_blocks.get(e.path)  # an id the parser did not see: the document's start
        if block is not None and e.label:
            toc.append((offsets[min(block, len(offsets) - 1)], e.label, e.depth))
    if entries and not toc:
        problem, source = "its navigation document points at nothing in the spine", ""
    extracted.toc = toc
    extracted.spine_starts = sorted({offsets[i] for i in doc_blocks.values() if i < len(offsets) - 1})
    extracted.structure, extracted.structure_note = source, problem
    return extracted


def _has_drm(zf) -> bool:
    # Font obfuscation also uses encryption.xml; only encrypted documents mean DRM.
    try:
        enc = zf.read("META-INF/encryption.xml").decode("utf-8", "replace")
    except (KeyError, zipfile.BadZipFile, OSError):
        return False
    return bool(re.search(r'URI="[^"]+\.(x?html?|xml)"', enc))
