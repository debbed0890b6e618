"""Find the chapters of a cleaned book text.

A heuristic heading finder in the tradition of the Project Gutenberg chapterisers (e.g. the rules of
Gutenberg's own ``gutenbergr``/``chapterize`` scripts), made robust to what real editions contain:

1. **Candidates**: a line that starts a paragraph (the line above it is blank, or is itself a candidate,
   as in a table of contents) and reads like a heading:
   - a keyword and a number: ``CHAPTER I.``, ``Chapter 1``, ``CHAPTER XIV. The Title``,
     ``Chapter 3: Title``, ``Chapter One``, ``Chapter the First``, ``Letter 4``, ``STAVE III``,
     ``PROLOGUE``/``EPILOGUE``;
   - a roman numeral and a title in capitals or title case: ``I. A SCANDAL IN BOHEMIA`` (the stories of
     a collection);
   - a bare numeral alone on its line: ``IV.`` or ``12``;
   - ``PART``/``BOOK``/``VOLUME`` and a number: a level above chapters, kept as ``Chapter.part``;
   - headings from the markup of an HTML, Markdown or EPUB source, when the loader passes them.
   A title on the next line (``CHAPTER I.`` then ``Down the Rabbit-Hole``) belongs to the heading.
2. **Table of contents**: a heading with (almost) no text after it that is repeated later, or that sits in
   a run of such empty headings, is a contents entry and is dropped; the later occurrence, which has a
   body, is kept.
3. **Level**: the strongest kind present wins: keyword headings, then markup headings, then titled roman
   numerals, then bare numerals, then PART/BOOK headings on their own. Weaker kinds inside the chosen
   chapters (the "I." and "II." sections inside each Sherlock Holmes story) stay part of the text.
4. **Fallback**: a book without headings is cut into sections of about 3,000 words at paragraph bounds,
   titled "Section N".

Text before the first chapter (title page, contents, a preface) belongs to no chapter: it stays in
``Book.text`` but passages and chapter-based features ignore it.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass

from retrieval.text import normalise_whitespace, smart_title, split_paragraphs
from vignette.documents import Chapter

__all__ = ["find_chapters", "parse_number", "SECTION_WORDS"]

SECTION_WORDS = 3000  # fallback section size, in words
_MAX_HEADING_CHARS = 100
_MAX_TITLE_CHARS = 80
_EMPTY_BODY_WORDS = 30  # fewer words than this after a heading that is repeated later: a contents entry
_RUN_BODY_WORDS = 12  # ... or fewer than this in a run of three or more: a contents page

_CHAPTER_KEYWORDS = ("chapter", "letter", "stave", "canto")
_PART_KEYWORDS = ("part", "book", "volume")


def _keyword_alternatives(words: tuple[str, ...]) -> str:
    # Capitalised or in capitals, never lower case: "chapter 3" inside a sentence is not a heading.
    return "|".join(f"{w.capitalize()}|{w.upper()}" for w in words)


_NUMBER = r"(?:the[ \t]+|THE[ \t]+|The[ \t]+)?(?P<num>[IVXLCDM]+|\d{1,4}|[A-Za-z]+(?:[- ][A-Za-z]+)?)"
_KEYWORD_RE = re.compile(
    r"^[ \t]*[_*]*(?P<kw>" + _keyword_alternatives(_CHAPTER_KEYWORDS + _PART_KEYWORDS + ("vol",)) + r")\.?"
    r"[ \t]+" + _NUMBER + r"(?P<rest>[^\n]*)$",
    re.M,
)
_SPECIAL_RE = re.compile(r"^[ \t]*[_*]*(?P<kw>Prologue|PROLOGUE|Epilogue|EPILOGUE)(?P<rest>[^\n]*)$", re.M)
_ROMAN_TITLED_RE = re.compile(r"^[ \t]*(?P<num>[IVXLC]+)\.[ \t]+(?P<rest>\S[^\n]*)$", re.M)
_BARE_RE = re.compile(r"^[ \t]*[_*]*(?P<num>[IVXLC]+|\d{1,3})\.?[_*]*[ \t]*$", re.M)

_UNITS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60,
    "seventieth": 70, "eightieth": 80, "ninetieth": 90,
}  # fmt: skip
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_ROMAN_OK = re.compile(r"^(?=[MDCLXVI])M{0,4}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")


def parse_number(token: str) -> int | None:
    """A chapter number written as digits ("12"), a roman numeral ("XIV") or words ("Twenty-One",
    "the First"); None when the token is none of these."""
    t = token.strip()
    if t.isdigit():
        return int(t)
    if _ROMAN_OK.match(t.upper()) and (t.isupper() or len(t) > 1 and t.islower()):
        total, prev = 0, 0
        for c in reversed(t.upper()):
            v = _ROMAN_VALUES[c]
            total += -v if v < prev else v
            prev = max(prev, v)
        return total
    words = [w for w in re.split(r"[- ]+", t.lower()) if w]
    if len(words) == 1 and words[0] in _UNITS:
        return _UNITS[words[0]]
    if len(words) == 1 and words[0] in _TENS:
        return _TENS[words[0]]
    if len(words) == 2 and words[0] in _TENS and words[1] in _UNITS and _UNITS[words[1]] < 10:
        return _TENS[words[0]] + _UNITS[words[1]]
    return None


@dataclass
class _Heading:
    kind: str  # "chapter", "letter", ..., "part", "book", "volume", "special", "story", "bare", "markup"
    level: str  # "chapter" or "part"
    number: int | None  # as printed (roman/words converted), None for a prologue or a markup heading
    start: int  # offset of the heading's first character
    line_end: int  # offset of the end of the heading (and of its title line, if any)
    label: str  # "Chapter 3", "Letter 4", "Prologue", or the title for stories and markup headings
    title: str | None  # "The Letter", or None

    @property
    def display(self) -> str:
        return f"{self.label}: {self.title}" if self.title and self.title != self.label else self.label


def find_chapters(text: str, headings: list[tuple[int, int, int]] | None = None) -> list[Chapter]:
    """The chapters of ``text`` in book order, numbered from 1, with offsets into ``text``.

    ``headings``, optional: ``(start, end, level)`` of the heading lines known from a source's markup
    (``<h2>``, ``## ...``); used when the text has no recognisable chapter headings of its own.
    Never empty for a text with words in it: a book without headings is cut into "Section N" parts.
    """
    # 1. Collect candidates of every kind, then drop contents entries within each kind.
    lines = _LineIndex(text)
    keyword, parts = _keyword_headings(text, lines, frozenset(s for s, _, _ in headings or []))
    markup = _markup_headings(text, headings or [])
    stories = _roman_titled_headings(text, lines)
    bare = _bare_headings(text, lines)

    # 2. Pick the level: the strongest kind that has at least two real (non-contents) headings.
    raw: list[_Heading] = []
    chosen: list[_Heading] = []
    parts_as_chapters = [dataclasses.replace(p, level="chapter") for p in parts]
    for group in (keyword, markup, stories, bare, parts_as_chapters):
        kept = _drop_contents(text, group)
        if len([h for h in kept if h.level == "chapter" and h.kind != "special"]) >= (
            3 if group is bare else 2
        ):
            raw, chosen = group, kept
            break
    if not chosen:
        return _fixed_sections(text)
    if chosen[0].kind == "markup":
        kept_parts = [h for h in chosen if h.level == "part"]
        chosen = [h for h in chosen if h.level == "chapter"]
    elif raw is parts_as_chapters:
        kept_parts = []
    else:
        kept_parts = _kept_parts(parts, raw, chosen)

    # 3. Cut the text: a chapter runs from its heading to the next chapter or part heading.
    bounds = sorted([h.start for h in chosen] + [p.start for p in kept_parts] + [len(text)])
    chapters = []
    for number, h in enumerate(chosen, start=1):
        nxt = next(b for b in bounds if b > h.start)
        end = nxt
        while end > h.start and text[end - 1].isspace():
            end -= 1
        part = None
        for p in kept_parts:
            if p.start < h.start:
                part = p.display
        chapters.append(_chapter(number, h, end, part))
    return chapters


def _chapter(position: int, h: _Heading, end: int, part: str | None, volume: str | None = None) -> Chapter:
    kind = {"special": "unnumbered", "bare": "chapter", "markup": "chapter"}.get(h.kind, h.kind)
    if h.number is None and h.kind != "story":
        kind = "unnumbered"
    name = h.title if h.kind != "story" else h.label
    return Chapter(number=position, title=h.display, start=h.start, end=end, part=part, label=h.label,
                   printed=h.number if h.number is not None else (position if h.kind == "story" else None),
                   name=name, kind=kind, volume=volume)


class _LineIndex:
    """Line starts and ends, to look at the lines around a match quickly."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    def line_no(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def line(self, no: int) -> str:
        if no < 0 or no >= len(self.starts):
            return ""
        end = self.starts[no + 1] - 1 if no + 1 < len(self.starts) else len(self.text)
        return self.text[self.starts[no] : end]

    def span(self, no: int) -> tuple[int, int]:
        end = self.starts[no + 1] - 1 if no + 1 < len(self.starts) else len(self.text)
        return self.starts[no], end


def _starts_paragraph(lines: _LineIndex, line_no: int, candidate_lines: set[int]) -> bool:
    prev = line_no - 1
    return prev < 0 or not lines.line(prev).strip() or prev in candidate_lines


def _clean_title(s: str) -> str:
    s = normalise_whitespace(s).strip(" _*[]")
    s = re.sub(r"^[.:\-\u2013\u2014,]+\s*", "", s)
    s = s.rstrip(" .")
    return smart_title(s)


def _title_like(rest: str) -> bool:
    """Whether the text after a heading's number reads like a title rather than the rest of a sentence."""
    r = rest.strip().strip("_*]").strip()
    if not r:
        return True
    if len(r) > _MAX_TITLE_CHARS:
        return False
    if r[0] in ".:-\u2013\u2014":
        return True
    if r[0] in "([":
        return True
    return r[0].isupper() or r[0] in "\"'\u201c\u2018"


def _looks_like_title(line: str) -> bool:
    """A short line that reads like a title, not like the first sentence of the chapter."""
    t = line.strip().strip("_*")
    if not t or len(t) > _MAX_TITLE_CHARS or t.startswith("[") or _BARE_RE.match(t):
        return False
    if t.endswith((",", ";", ":", "\u201d", "\u2019", '"', "'")):
        return False  # the end of a line of dialogue or the middle of a sentence
    if t.endswith("."):
        words = [w for w in re.findall(r"[^\W\d_][\w\u2019']*", t) if len(w) > 3]
        return bool(words) and sum(w[0].isupper() for w in words) >= 0.5 * len(words)
    return True


def _next_line_title(
    text: str,
    lines: _LineIndex,
    line_no: int,
    candidate_lines: set[int],
    markup_starts: frozenset[int] = frozenset(),
) -> tuple[str, int] | None:
    """A title on the line after a heading ("CHAPTER I." / "Down the Rabbit-Hole"): the next line, if it is
    short, reads like a title and is followed by a blank line; or, after one or two blank lines, a short
    line in capitals, or a heading of the source's markup (``<h2>Chapter 1</h2><h3>The Storm</h3>``)."""
    nxt = lines.line(line_no + 1)
    if nxt.strip():
        if (
            line_no + 1 not in candidate_lines
            and not lines.line(line_no + 2).strip()
            and _looks_like_title(nxt)
        ):
            return nxt, lines.span(line_no + 1)[1]
        return None
    for gap in (2, 3):
        cand = lines.line(line_no + gap)
        if not cand.strip():
            continue
        if line_no + gap in candidate_lines or lines.line(line_no + gap + 1).strip():
            return None
        c = cand.strip().strip("_*")
        letters = [ch for ch in c if ch.isalpha()]
        in_capitals = len(letters) >= 3 and all(ch.isupper() for ch in letters) and len(c) <= 60
        is_markup = lines.span(line_no + gap)[0] in markup_starts
        if (in_capitals or is_markup) and _looks_like_title(cand):
            return cand, lines.span(line_no + gap)[1]
        return None
    return None


def _keyword_headings(
    text: str, lines: _LineIndex, markup_starts: frozenset[int] = frozenset()
) -> tuple[list[_Heading], list[_Heading]]:
    raw = []
    for m in _KEYWORD_RE.finditer(text):
        kw = m.group("kw").lower()
        kw = "volume" if kw == "vol" else kw
        num_token, rest = m.group("num"), m.group("rest")
        number = parse_number(num_token)
        if number is None and " " in num_token.strip() or number is None and "-" in num_token:
            # "Chapter One The Storm": the regex took two words; retry with the first alone.
            first = re.split(r"[- ]", num_token.strip())[0]
            number = parse_number(first)
            rest = num_token.strip()[len(first) :] + rest
        if number is None:
            continue
        if len(m.group(0).strip()) > _MAX_HEADING_CHARS or not _title_like(rest):
            continue
        raw.append((m, kw, number, rest))
    for m in _SPECIAL_RE.finditer(text):
        rest = m.group("rest")
        if rest.strip() and not re.match(r"^\s*[.:\-\u2013\u2014]", rest):
            continue
        if len(m.group(0).strip()) > _MAX_HEADING_CHARS:
            continue
        raw.append((m, "special", None, rest))
    raw.sort(key=lambda r: r[0].start())
    candidate_lines = {lines.line_no(r[0].start()) for r in raw}

    chapters, parts = [], []
    for m, kw, number, rest in raw:
        line_no = lines.line_no(m.start())
        if not _starts_paragraph(lines, line_no, candidate_lines):
            continue
        start = m.start() + len(m.group(0)) - len(m.group(0).lstrip(" \t_*"))
        line_end = lines.span(line_no)[1]
        title = _clean_title(rest) or None
        if title is None:
            found = _next_line_title(text, lines, line_no, candidate_lines, markup_starts)
            if found:
                title, line_end = _clean_title(found[0]) or None, found[1]
        if kw == "special":
            label = m.group("kw").capitalize()
            h = _Heading("special", "chapter", None, start, line_end, label, title)
        else:
            level = "part" if kw in _PART_KEYWORDS else "chapter"
            h = _Heading(kw, level, number, start, line_end, f"{kw.capitalize()} {number}", title)
        (parts if h.level == "part" else chapters).append(h)
    if not [h for h in chapters if h.kind != "special"]:
        chapters = []  # a prologue alone does not make a book of chapters
    return chapters, parts


def _roman_titled_headings(text: str, lines: _LineIndex) -> list[_Heading]:
    raw = []
    for m in _ROMAN_TITLED_RE.finditer(text):
        number = parse_number(m.group("num"))
        rest = m.group("rest").strip()
        if number is None or len(rest) > _MAX_TITLE_CHARS or rest.endswith((",", ";")):
            continue
        words = [w for w in re.findall(r"[A-Za-z\u2019']+", rest) if len(w) > 3]
        if not words or sum(w[0].isupper() for w in words) < 0.75 * len(words) or not rest[0].isupper():
            continue
        raw.append((m, number, rest))
    candidate_lines = {lines.line_no(m.start()) for m, _, _ in raw}
    out = []
    for m, number, rest in raw:
        line_no = lines.line_no(m.start())
        if not _starts_paragraph(lines, line_no, candidate_lines):
            continue
        start = m.start() + len(m.group(0)) - len(m.group(0).lstrip(" \t"))
        title = _clean_title(rest)
        out.append(_Heading("story", "chapter", number, start, lines.span(line_no)[1], title, None))
    return out


def _bare_headings(text: str, lines: _LineIndex) -> list[_Heading]:
    out = []
    for m in _BARE_RE.finditer(text):
        number = parse_number(m.group("num"))
        line_no = lines.line_no(m.start())
        if number is None or lines.line(line_no - 1).strip():
            continue
        start = m.start() + len(m.group(0)) - len(m.group(0).lstrip(" \t_*"))
        line_end = lines.span(line_no)[1]
        title = None
        found = _next_line_title(text, lines, line_no, set())
        if found:
            title, line_end = _clean_title(found[0]) or None, found[1]
        elif lines.line(line_no + 1).strip():
            continue  # a number at the start of a paragraph, not a heading
        out.append(_Heading("bare", "chapter", number, start, line_end, f"Chapter {number}", title))
    # Bare numerals count only as a rising sequence: "1" ... "12", not page numbers or stray digits.
    rising = sum(1 for a, b in zip(out, out[1:]) if b.number == (a.number or 0) + 1)
    return out if out and rising >= 0.6 * (len(out) - 1) else []


def _markup_headings(text: str, headings: list[tuple[int, int, int]]) -> list[_Heading]:
    """Chapters from the markup's heading level that occurs most often (ties: the higher level); the levels
    above it become parts."""
    if not headings:
        return []
    counts: dict[int, int] = {}
    for _, _, level in headings:
        counts[level] = counts.get(level, 0) + 1
    chapter_level = max(counts, key=lambda lv: (counts[lv], -lv))
    out = []
    for start, end, level in sorted(headings):
        if level > chapter_level:
            continue
        label = _clean_title(text[start:end])
        if not label:
            continue
        out.append(
            _Heading("markup", "chapter" if level == chapter_level else "part", None, start, end, label, None)
        )
    return out


def _body_words(text: str, group: list[_Heading]) -> list[int]:
    """Words between each heading (and its title) and the next heading of the same group."""
    out = []
    for i, h in enumerate(group):
        nxt = group[i + 1].start if i + 1 < len(group) else len(text)
        body = text[h.line_end : nxt] if nxt > h.line_end else ""
        out.append(len(re.findall(r"[^\W\d_]{2,}", body[:2000])))  # enough to tell a contents line apart
    return out


def _drop_contents(text: str, group: list[_Heading]) -> list[_Heading]:
    """Drop the headings that belong to a table of contents (see the module docstring, step 2)."""
    if not group:
        return []
    chapters = [h for h in group if h.level == "chapter"]
    words = _body_words(text, chapters)
    keys = [(h.kind, h.number, h.label if h.number is None else None) for h in chapters]
    drop = set()
    later: set[tuple] = set()
    for i in range(len(chapters) - 1, -1, -1):
        if words[i] < _EMPTY_BODY_WORDS and keys[i] in later:
            drop.add(i)
        later.add(keys[i])
    i = 0
    while i < len(chapters):
        j = i
        while j < len(chapters) and words[j] < _RUN_BODY_WORDS:
            j += 1
        if j - i >= 3:
            drop.update(range(i, j))
        i = j + 1
    kept_chapters = [h for k, h in enumerate(chapters) if k not in drop]
    if group[0].kind == "markup":
        # Markup parts stay with the chapters; contents pages rarely use heading tags for their entries.
        kept = set(id(h) for h in kept_chapters)
        return [h for h in group if h.level == "part" or id(h) in kept]
    return kept_chapters


def _kept_parts(parts: list[_Heading], raw: list[_Heading], kept: list[_Heading]) -> list[_Heading]:
    """PART/BOOK headings that introduce real chapters: the next chapter heading after the part is one that
    was kept (a part listed in a table of contents is followed by contents entries instead)."""
    kept_ids = {id(h) for h in kept}
    out = []
    for p in parts:
        nxt = next((h for h in raw if h.start > p.start), None)
        if nxt is not None and id(nxt) in kept_ids:
            out.append(p)
    return out


def _fixed_sections(text: str) -> list[Chapter]:
    """About ``SECTION_WORDS`` words each, cut at paragraph ends; a short tail joins the section before."""
    paragraphs = split_paragraphs(text)
    if not paragraphs:
        return []
    sections: list[list[int]] = []  # [start, end, words]
    current = None
    for s, e in paragraphs:
        n = len(text[s:e].split())
        if current is None:
            current = [s, e, n]
        elif current[2] >= SECTION_WORDS:
            sections.append(current)
            current = [s, e, n]
        else:
            current[1], current[2] = e, current[2] + n
    if sections and current[2] < 0.3 * SECTION_WORDS:
        sections[-1][1] = current[1]
    else:
        sections.append(current)
    return [
        Chapter(number=i, title=f"Section {i}", start=s, end=e) for i, (s, e, _) in enumerate(sections, 1)
    ]
