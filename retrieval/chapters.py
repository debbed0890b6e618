"""Find the chapters of a cleaned book text, numbered as the book numbers them.

A heading finder in the tradition of the Project Gutenberg chapterisers, built from the conventions of
printed books rather than from any one book:

1. **Candidates**: a line that starts a paragraph (the line above it is blank, or is itself a candidate,
   as in a table of contents) and reads like a heading:
   - a keyword and a number: ``CHAPTER I.``, ``Chapter 1``, ``CHAPTER XIV. The Title``,
     ``Chapter 3: Title``, ``Chapter One``, ``Chapter the First``, ``Letter 4``, ``STAVE III``, ``ACT II``;
     or the number first: ``FIRST ACT``, ``SECOND EPILOGUE``;
   - a number and a title: ``I. A SCANDAL IN BOHEMIA`` (the stories of a collection), ``1--A Face on
     Which Time Makes but Little Impression``, ``01 My Early Home``, counted only as a rising sequence;
   - a bare numeral alone on its line: ``IV.`` or ``12``, also only as a rising sequence;
   - ``PART``/``BOOK``/``VOLUME`` and a number (also ``LITTLE WOMEN PART 2``): the levels above chapters;
   - ``PROLOGUE``, ``PRELUDE``, ``EPILOGUE``, ``FINALE``, ``CONCLUSION``: unnumbered story sections;
   - headings from the markup of an HTML, Markdown or EPUB source, read the same way (``<h2>I.</h2>``
     then ``<h4>THE PRISON-DOOR.</h4>``), or the labels of an EPUB's navigation document.
   A title on the next line (``CHAPTER I.`` then ``Down the Rabbit-Hole``), or wrapped over two lines of
   capitals, belongs to the heading.
2. **Not chapters**: a table of contents (a heading with almost no text before the next, repeated later
   or in a run of such; a paragraph listing several headings of one kind; a numbered line out of
   sequence whose number comes again later); front matter in markup (a by-line, Contents, Preface,
   Introduction, Dedication, lists of illustrations); a line of capitals inside a chapter.
3. **Level**: the strongest kind present wins: keyword headings, then markup headings, then numbered
   titles, then bare numerals, then PART/BOOK headings on their own. Weaker kinds inside the chosen
   chapters (the "I." and "II." sections inside each Sherlock Holmes story) stay part of the text.
   Parts are kept in two levels at most (Volume > Book); numbering that restarts in them is kept, and
   the citation then names the part ("Book 2, Chapter 3: ...").
4. **Back matter**: the last chapter stops at notes, appendices, an index, advertisements, a printer's
   imprint, a closing rule before an advert, or "THE END".
5. **Fallback**: a book without headings is cut into sections of about 3,000 words at paragraph bounds,
   named "Section N".

:func:`find_structure` puts the structure a file carries first: an EPUB's navigation document, then its
spine, then these headings; HTML contents links and a plain-text contents page only confirm them.
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

__all__ = ["find_chapters", "find_structure", "Structure", "parse_number", "parse_heading_line", "SECTION_WORDS"]

SECTION_WORDS = 3000  # fallback section size, in words
_MAX_HEADING_CHARS = 160  # a keyword heading with its title on one line ("CHAPTER 56. Of the Less ...")
_MAX_TITLE_CHARS = 80  # a title on a line of its own
_EMPTY_BODY_WORDS = 30  # fewer words than this after a heading that is repeated later: a contents entry
_RUN_BODY_WORDS = 12  # ... or fewer than this in a run of three or more: a contents page

_CHAPTER_KEYWORDS = ("chapter", "letter", "stave", "canto", "act")
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
_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
# "FIRST ACT", "Second Book", "FIRST EPILOGUE: 1813 - 20": the ordinal before the keyword.
_ORDINAL_FIRST_RE = re.compile(
    r"^[ \t]*[_*]*(?P<num>" + "|".join(f"{o.capitalize()}|{o.upper()}" for o in _ORDINALS) + r")[ \t]+"
    r"(?P<kw>" + _keyword_alternatives(_CHAPTER_KEYWORDS + _PART_KEYWORDS + ("epilogue",)) + r")\b\.?"
    r"(?P<rest>(?:[ \t]*[.:\-\u2013\u2014][^\n]*)?)[ \t]*$",
    re.M,
)
_TITLED_PART_RE = re.compile(
    r"^[ \t]*[A-Z][A-Z',\- ]{2,40}[ \t]+(?P<kw>PART|BOOK|VOLUME)[ \t]+(?P<num>[IVXLC]+|\d{1,2}|[A-Z]+)\.?[ \t]*$",
    re.M,
)
_SPECIAL_RE = re.compile(
    r"^[ \t]*[_*]*(?P<kw>" + _keyword_alternatives(("prologue", "prelude", "epilogue", "finale", "conclusion"))
    + r")(?P<rest>[^\n]*)$",
    re.M,
)
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
    markup_level: int = 0  # the heading level in the source's markup (h2 = 2), 0 for a line of text

    @property
    def display(self) -> str:
        return f"{self.label}: {self.title}" if self.title and self.title != self.label else self.label


@dataclass
class Structure:
    """The chapters of a book and where they were found."""

    chapters: list[Chapter]
    source: str  # "epub-nav", "epub-ncx", "spine", "headings" or "sections" (a book without headings)
    note: str | None = None  # why a better source was not used, when one was there


def find_structure(
    text: str,
    headings: list[tuple[int, int, int]] | None = None,
    toc: list[tuple[int, str, int]] | None = None,
    spine_starts: list[int] | None = None,
    toc_source: str = "",
) -> Structure:
    """The chapters from the structure a file carries before guessing: an EPUB's table of contents
    (``toc``: ``(offset, label, depth)``), then its spine (``spine_starts``: where each document begins,
    when each holds one chapter), then the headings of the text and its markup.

    A table of contents or spine is used when it gives at least two numbered chapters and no fewer than
    the headings do (a navigation document that lists only the parts is no chapter list)."""
    by_headings = find_chapters(text, headings)
    fallback = Structure(by_headings, "sections" if _numbered(by_headings) == 0 and by_headings
                         and by_headings[0].kind == "section" else "headings")
    notes = []
    if not toc and not spine_starts:
        confirmed = _confirmed_by_contents(text, by_headings)
        if confirmed is not None:
            hit, total = confirmed
            if hit == total:
                fallback.source += "+contents"
            else:
                fallback.note = f"its contents page lists {hit} of the {total} chapters found"
        return fallback
    if toc and toc_source == "html-toc":
        # A web page's contents links carry page numbers and links to pictures: they confirm the headings
        # (a chapter starts where a link lands) rather than replace them.
        targets = sorted(o for o, _, _ in toc)
        numbered = [c for c in by_headings if c.kind not in ("unnumbered", "section")]
        hit = sum(1 for c in numbered if _near(targets, c.start, 400))
        if numbered and hit == len(numbered):
            fallback.source = "headings+html-toc"
        elif numbered:
            fallback.note = f"its contents links point at {hit} of the {len(numbered)} chapters found"
        return fallback
    if toc:
        heads, labels = _toc_headings(text, toc)
        by_toc = find_chapters(text, heads, labels=labels, markup_only=True)
        headings_numbered = [c for c in by_headings if c.printed is not None and c.kind not in ("story", "section")]
        if all(c.kind in ("story", "unnumbered") for c in by_toc) and len(headings_numbered) >= 2 \
                and _numbered(by_toc) == _numbered(by_headings):
            # A nav of titles alone ("The Storm") beside numbered headings in the text: the headings carry
            # the book's numbers, the nav confirms them.
            return Structure(by_headings, f"headings+{toc_source or 'epub-nav'}")
        if _numbered(by_toc) >= 2 and _numbered(by_toc) >= _numbered(by_headings):
            return Structure(by_toc, toc_source or "epub-nav")
        what = "navigation document" if toc_source != "epub-ncx" else "NCX table of contents"
        notes.append(f"its {what} gives {_numbered(by_toc)} numbered chapters, its headings "
                     f"{_numbered(by_headings)}")
    if spine_starts and len(spine_starts) >= 2:
        # Each document's opening: its first line, and the markup headings right after it (a title).
        heads = []
        marked = sorted(headings or [])
        for start in spine_starts:
            end = text.find("\n", start)
            end = len(text) if end == -1 else end
            opening = [h for h in marked if start <= h[0] < start + 400]
            if opening and opening[0][0] == start:
                heads += opening[:2]
            elif 0 < end - start <= _MAX_HEADING_CHARS:
                heads.append((start, end, 1))
                heads += opening[:1]
        by_spine = find_chapters(text, heads, markup_only=True)
        if _numbered(by_spine) >= 2 and _numbered(by_spine) >= _numbered(by_headings):
            return Structure(by_spine, "spine", "; ".join(notes) or None)
        if toc_source == "" or notes:
            notes.append("its spine documents do not each open with a chapter")
    if notes:
        fallback.note = "; ".join(notes) + f": used the {fallback.source}"
    return fallback


_CONTENTS_RE = re.compile(r"^[ \t]*(?:table of )?contents\.?[ \t]*$", re.M | re.I)


def _confirmed_by_contents(text: str, chapters: list[Chapter]) -> tuple[int, int] | None:
    """``(confirmed, chapters)`` from a plain-text contents page before chapter 1: a chapter is confirmed
    when the page lists its title, or (untitled) its number on a line of its own kind. The page is only
    a witness: the chapters are always cut at the headings in the text. None without a contents page."""
    numbered = [c for c in chapters if c.kind not in ("unnumbered", "section")]
    if not numbered:
        return None
    m = None
    for m in _CONTENTS_RE.finditer(text, 0, numbered[0].start):
        pass
    if m is None:
        return None
    page = text[m.end() : numbered[0].start]
    flat = " ".join(re.sub(r"[^\w\s]", " ", page.casefold()).split())
    entries = []
    for line in page.split("\n"):
        tokens = re.findall(r"[A-Za-z]+|\d+", line)
        numbers = {parse_number(t) for t in tokens[:3]} - {None}
        entries.append(numbers)
    hit = 0
    vocabulary = set(flat.split())
    for c in numbered:
        if c.name:
            name = " ".join(re.sub(r"[^\w\s]", " ", c.name.casefold()).split())
            words = name.split()
            # The title as listed, or nearly (a contents page may hyphenate or abridge a long title).
            hit += bool(name) and (f" {name} " in f" {flat} " or
                                   len(words) >= 6 and sum(w in vocabulary for w in words) >= 0.85 * len(words))
        else:
            hit += any(c.printed in e for e in entries)
    return hit, len(numbered)


def _near(sorted_offsets: list[int], offset: int, within: int) -> bool:
    i = bisect.bisect_left(sorted_offsets, offset - within)
    return i < len(sorted_offsets) and sorted_offsets[i] <= offset + within


def _numbered(chapters: list[Chapter]) -> int:
    return sum(1 for c in chapters if c.kind not in ("unnumbered", "section"))


def _toc_headings(text: str, toc: list[tuple[int, str, int]]) -> tuple[list[tuple[int, int, int]], dict[int, str]]:
    """Each table-of-contents entry as a heading line in ``text``: the line at or just after the link's
    target that reads like the entry's label (the link may land on a wrapper a few lines above it)."""
    heads, labels = [], {}
    for offset, label, depth in toc:
        want = re.sub(r"\W+", "", label).lower()
        pos, found = offset, None
        for _ in range(8):  # the next few lines
            while pos < len(text) and text[pos] in " \t\n":
                pos += 1
            end = text.find("\n", pos)
            end = len(text) if end == -1 else end
            have = re.sub(r"\W+", "", text[pos:end]).lower()
            if have and want and (have.startswith(want) or want.startswith(have)):
                found = (pos, end)
                break
            pos = end
            if pos >= len(text) or pos - offset > 2000:
                break
        if found is None:
            start = offset
            while start < len(text) and text[start] in " \t\n":
                start += 1
            end = text.find("\n", start)
            found = (start, len(text) if end == -1 else end)
        if found[0] < len(text) and found[0] not in labels:
            heads.append((found[0], found[1], depth))
            labels[found[0]] = label
    return heads, labels


def find_chapters(
    text: str,
    headings: list[tuple[int, int, int]] | None = None,
    labels: dict[int, str] | None = None,
    markup_only: bool = False,
) -> list[Chapter]:
    """The chapters of ``text`` in book order, numbered from 1, with offsets into ``text``.

    ``headings``, optional: ``(start, end, level)`` of the heading lines known from a source's markup
    (``<h2>``, ``## ...``); used when the text has no recognisable chapter headings of its own.
    ``labels`` gives a heading's text where it differs from the line (a table of contents' label), and
    ``markup_only`` uses these headings alone (an EPUB's navigation document or spine).
    Never empty for a text with words in it: a book without headings is cut into "Section N" parts.
    """
    # 1. Collect candidates of every kind, then drop contents entries within each kind.
    lines = _LineIndex(text)
    keyword, parts, specials = _keyword_headings(text, lines, frozenset(s for s, _, _ in headings or []))
    markup = _markup_headings(text, headings or [], labels)
    stories = _roman_titled_headings(text, lines)
    bare = _bare_headings(text, lines)

    # 2. Pick the level: the strongest kind that has at least two real (non-contents) headings.
    raw: list[_Heading] = []
    chosen: list[_Heading] = []
    parts_as_chapters = [dataclasses.replace(p, level="chapter") for p in parts]
    groups = (markup,) if markup_only else (keyword, markup, stories, bare, parts_as_chapters)
    for group in groups:
        kept = _drop_contents(text, group)
        if len([h for h in kept if h.level == "chapter" and h.kind != "special"]) >= (
            3 if group is bare else 2
        ):
            raw, chosen = group, kept
            break
    if not chosen:
        return _fixed_sections(text)
    if raw is markup:
        kept_parts = [h for h in chosen if h.level == "part"]
        chosen = [h for h in chosen if h.level == "chapter"]
    elif raw is parts_as_chapters:
        kept_parts = []
    else:
        kept_parts = _kept_parts(text, parts, raw, chosen)
    if raw is not keyword and raw is not markup:
        chosen = _with_specials(text, chosen, specials)
    chosen, kept_parts = _sections_that_are_parts(text, chosen, kept_parts)
    kept_parts = _without_title_heading(kept_parts, chosen)
    chosen = _drop_strays(chosen, kept_parts)

    # 3. Cut the text: a chapter runs from its heading to the next chapter or part heading, and the last
    #    one stops where the back matter (notes, adverts, a printer's imprint) begins.
    bounds = sorted([h.start for h in chosen] + [p.start for p in kept_parts] + [len(text)])
    outer, inner = _part_levels(kept_parts)
    chapters = []
    for number, h in enumerate(chosen, start=1):
        nxt = next(b for b in bounds if b > h.start)
        if number == len(chosen):
            nxt = _back_matter_start(text, h.line_end, nxt)
        end = nxt
        while end > h.start and text[end - 1].isspace():
            end -= 1
        part = volume = None
        for p in kept_parts:
            if p.start < h.start:
                if p.kind in inner:
                    part = p.display
                else:
                    volume = p.display
                    part = None
        if not inner:
            part, volume = volume, None
        chapters.append(_chapter(number, h, end, part, volume))
    return _cite_with_parts(chapters)


def _chapter(position: int, h: _Heading, end: int, part: str | None, volume: str | None = None) -> Chapter:
    kind = {"special": "unnumbered", "bare": "chapter", "numbered": "chapter", "markup": "story"}.get(h.kind, h.kind)
    if h.number is None and kind not in ("story",):
        kind = "unnumbered"
    name = h.title if kind != "story" else h.label
    label = h.label
    return Chapter(number=position, title=h.display, start=h.start, end=end, part=part, label=label,
                   printed=h.number if h.number is not None else (position if kind == "story" else None),
                   name=name, kind=kind, volume=volume)


def _without_title_heading(parts: list[_Heading], chosen: list[_Heading]) -> list[_Heading]:
    """An unnumbered heading above every chapter, alone at its level (the book's title in an ``<h1>``),
    is no part."""
    if not parts or not chosen:
        return parts
    first = parts[0]
    alone = sum(1 for p in parts if p.markup_level == first.markup_level) == 1
    above = all(first.markup_level < p.markup_level for p in parts[1:])
    if first.number is None and first.start < chosen[0].start and alone and (above or len(parts) == 1):
        return parts[1:]
    return parts


def _part_levels(parts: list[_Heading]) -> tuple[set[str], set[str]]:
    """Two part levels at most: where two kinds of part heading occur (VOLUME and BOOK, PART and BOOK), the
    one with fewer headings is the outer level."""
    counts: dict[str, int] = {}
    for p in parts:
        if p.kind not in _SIBLING_PARTS:
            counts[p.kind] = counts.get(p.kind, 0) + 1
    siblings = {p.kind for p in parts if p.kind in _SIBLING_PARTS}
    if len(counts) < 2:
        return set(counts) | siblings, set()
    ranked = sorted(counts, key=lambda k: counts[k])
    return {ranked[0]}, set(ranked[1:]) | siblings


# An epilogue (or prologue) that holds chapters sits beside the books or parts, not above them.
_SIBLING_PARTS = frozenset({"epilogue", "part-special"})


def _with_specials(text: str, chosen: list[_Heading], specials: list[_Heading]) -> list[_Heading]:
    """Prologue, Epilogue or Conclusion headings beside chapters found some other way (bare numerals):
    kept when they are not a chapter's title line and not in the front matter's contents."""
    if not chosen:
        return chosen
    out = list(chosen)
    for sp in specials:
        if any(h.start <= sp.start < h.line_end + 1 for h in chosen):
            continue  # "XXIV." then "CONCLUSION": the chapter's title
        if sp.start < chosen[0].start and _body_words(text, [sp, chosen[0]])[0] < _EMPTY_BODY_WORDS:
            continue
        out.append(sp)
    return sorted(out, key=lambda h: h.start)


def _sections_that_are_parts(
    text: str, chosen: list[_Heading], parts: list[_Heading]
) -> tuple[list[_Heading], list[_Heading]]:
    """An EPILOGUE (or PROLOGUE) heading followed at once by numbered chapters is a part that holds them
    (War and Peace's "FIRST EPILOGUE"), not a chapter of its own."""
    keep, more_parts = [], []
    for i, h in enumerate(chosen):
        nxt = chosen[i + 1] if i + 1 < len(chosen) else None
        if h.kind == "special" and nxt is not None and nxt.number is not None:
            body = text[h.line_end : nxt.start]
            if len(re.findall(r"[^\W\d_]{2,}", body)) < _EMPTY_BODY_WORDS:
                more_parts.append(dataclasses.replace(h, level="part", kind="part-special"))
                continue
        keep.append(h)
    if not more_parts:
        return chosen, parts
    return keep, sorted(parts + more_parts, key=lambda p: p.start)


def _drop_strays(chosen: list[_Heading], parts: list[_Heading]) -> list[_Heading]:
    """A numbered heading out of sequence whose number comes again later in the same part is a stray (the
    last line of a table of contents, a running head): the later one is the chapter."""
    def part_of(h: _Heading) -> int:
        return sum(1 for p in parts if p.start < h.start)

    keys = [(part_of(h), h.kind, h.number) for h in chosen]
    out = []
    for i, h in enumerate(chosen):
        if h.number is None:
            out.append(h)
            continue
        prev = next((c for c in reversed(out) if c.number is not None and c.kind == h.kind), None)
        in_sequence = (
            (prev is None and h.number <= 1)
            or (prev is not None and part_of(prev) == keys[i][0] and h.number == prev.number + 1)
            or (prev is not None and part_of(prev) != keys[i][0] and h.number in (1, prev.number + 1))
        )
        if not in_sequence and (
            keys[i] in keys[i + 1 :] or prev is None and any(k[1:] == keys[i][1:] for k in keys[i + 1 :])
        ):
            continue
        if parts and keys[i][0] == 0 and any(k[0] > 0 and k[1:] == keys[i][1:] for k in keys[i + 1 :]):
            continue  # before the first part, numbered like a chapter inside the parts: a contents line
        out.append(h)
    return out


def _cite_with_parts(chapters: list[Chapter]) -> list[Chapter]:
    """Where numbering restarts in each part, a chapter is cited with its part: "Book 2, Chapter 3: Title"."""
    numbers = [(c.kind, c.printed) for c in chapters if c.printed is not None and c.kind != "story"]
    if len(numbers) == len(set(numbers)):
        return chapters
    out = []
    for c in chapters:
        if (c.part or c.volume) and c.printed is not None:
            part = ", ".join(p.split(":")[0] for p in (c.volume, c.part) if p)
            title = f"{part}, {c.label}" + (f": {c.name}" if c.name else "")
            c = dataclasses.replace(c, title=title)
        out.append(c)
    return out


# Headings that begin the back matter, as a line of their own: notes, appendices, an index, adverts.
_BACK_MATTER_RE = re.compile(
    r"^[ \t]*[_*\[]*(?:(?:historical |explanatory |editor'?s? |author'?s? |translator'?s? )?notes?|footnotes?|"
    r"endnotes|transcriber'?s? notes?|appendix(?:[ \t]+[ivxlc\d]+)?|index|glossary|advertisements?|"
    r"catalogue[^\n]{0,40}|books by [^\n]{0,40}|by the same author[^\n]{0,30}|about the author|also by [^\n]{0,40}|"
    r"acknowledge?ments|"
    r"(?:the )?end of (?:the |vol)[^\n]{0,40}|"
    r"(?:[a-z]+: )?(?:printed|electrotyped)(?: and printed)? by [^\n]{0,60})[.:\]_*]*[ \t]*$"
    r"|^[ \t]*(?-i:[A-Z][A-Z'&.]+(?: [A-Z][A-Z'&.]+)* PRESS\b)[^\n]{0,60}$",  # "CHISWICK PRESS:--..."
    re.M | re.I,
)
_THE_END_RE = re.compile(r"^[ \t]*[_*\[]*(?:THE END|The End|FINIS|Finis)\b[^\n]{0,40}$", re.M)
_RULE_RE = re.compile(r"^[ \t]*(?:-{5,}|_{5,}|={5,})[ \t]*$", re.M)


def _back_matter_start(text: str, body_start: int, end: int) -> int:
    """Where the back matter after the last chapter begins, else ``end``: a back-matter heading standing
    as a paragraph of its own after the first fifth of the chapter; the line after "THE END"; or, in the
    chapter's last tenth, a rule that closes the story before an advertisement."""
    span = end - body_start
    cut = end
    for m in _BACK_MATTER_RE.finditer(text, body_start + span // 5, end):
        if _own_paragraph(text, m.start(), m.end()):
            cut = m.start()
            break
    for m in _THE_END_RE.finditer(text, body_start + span // 2, cut):
        if _own_paragraph(text, m.start(), m.end()):
            cut = m.start()  # "THE END" closes the story and is not part of it
            break
    for m in _RULE_RE.finditer(text, max(body_start, end - max(span // 10, 1500)), cut):
        # A rule is also a scene break: it ends the story only before what reads like a publisher's note.
        if _own_paragraph(text, m.start(), m.end()) and _ADVERT_RE.search(text, m.end(), cut):
            cut = m.start()
            break
    return cut


_ADVERT_RE = re.compile(
    r"\b(?:published|publishers?|price|cloth|volumes?|series|sequel|uniform\s+with|now\s+ready|in\s+press|"
    r"here\s+ends|the\s+end|by\s+the\s+same\s+author|to\s+be\s+continued|will\s+be\s+(?:found|told|continued))\b",
    re.I,
)


def _own_paragraph(text: str, start: int, end: int) -> bool:
    """Whether the line ``start``..``end`` begins a paragraph (a printer's imprint may go on below it)."""
    return start == 0 or text[max(0, start - 2) : start] == "\n\n"


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
    if _in_capitals(s):
        s = re.sub(r"(?<=[A-Z.!?])\s+\d{1,3}$", "", s)  # a footnote mark after a title in capitals
    s = re.sub(r"^[.:\-\u2013\u2014,]+\s*", "", s)
    s = s.rstrip(" .")
    s = smart_title(s)
    return s[:1].upper() + s[1:]  # "Book the Second--the Golden Thread": a title starts in capitals


def _title_like(rest: str) -> bool:
    """Whether the text after a heading's number reads like a title rather than the rest of a sentence."""
    r = rest.strip().strip("_*]").strip()
    if not r:
        return True
    if len(r) > _MAX_HEADING_CHARS:
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
    if re.match(r"(?i)scene\b|persons\b|dramatis\b", t):
        return False  # a play's SCENE line is a stage direction, not the act's title
    if t.endswith((",", ";", ":", "\u201d", "\u2019", '"', "'")):
        return False  # the end of a line of dialogue or the middle of a sentence
    if t.endswith(".") and not _in_capitals(t):
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
        # "1" / "" / "The Cyclone": a short line in title case, without a sentence's full stop.
        title_case = len(c) <= 60 and c[:1].isupper() and not c.endswith((".", "!", "?")) and _title_cased(c)
        if (in_capitals or is_markup or title_case) and _looks_like_title(cand):
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
        if number is None or number > 400:  # "ACT D. ROP...": a capital D is no chapter 500
            continue
        if len(m.group(0).strip()) > _MAX_HEADING_CHARS or not _title_like(rest):
            continue
        raw.append((m, kw, number, rest))
    for m in _ORDINAL_FIRST_RE.finditer(text):
        kw = m.group("kw").lower()
        raw.append((m, "epilogue-part" if kw == "epilogue" else kw, parse_number(m.group("num")), m.group("rest")))
    for m in _SPECIAL_RE.finditer(text):
        rest = m.group("rest")
        if rest.strip() and not re.match(r"^\s*[.:\-\u2013\u2014]", rest):
            continue
        if len(m.group(0).strip()) > _MAX_HEADING_CHARS:
            continue
        raw.append((m, "special", None, rest))
    raw.sort(key=lambda r: r[0].start())
    candidate_lines = {lines.line_no(r[0].start()) for r in raw}
    # "CHAPTER XXVII" then "CONCLUSION": a prologue-like word under a numbered heading is its title.
    numbered_lines = {lines.line_no(r[0].start()) for r in raw if r[1] != "special"}

    chapters, parts = [], []
    taken_until = -1  # the end of the last heading and its title: a "CONCLUSION" title line is no heading
    for m, kw, number, rest in raw:
        line_no = lines.line_no(m.start())
        if not _starts_paragraph(lines, line_no, candidate_lines) or m.start() < taken_until:
            continue
        start = m.start() + len(m.group(0)) - len(m.group(0).lstrip(" \t_*"))
        line_end = lines.span(line_no)[1]
        title = _clean_title(rest) or None
        if title is None:
            found = _next_line_title(text, lines, line_no, numbered_lines, markup_starts)
            later = sum(1 for r in raw if r[1] == kw and r[2] == number and r[0].start() > m.start())
            if found and later and _SPECIAL_RE.match(found[0]):
                found = None  # the last line of a contents page, then the book's "PRELUDE": not its title
            if found:
                title, line_end = _clean_title(found[0]) or None, found[1]
        elif _in_capitals(rest) and len(rest.strip()) >= 40:
            # A long title in capitals that wraps onto more lines of capitals, then a blank line.
            extra, k = [], line_no + 1
            while len(extra) < 3 and lines.line(k).strip() and _in_capitals(lines.line(k)) \
                    and len(lines.line(k).strip()) <= _MAX_TITLE_CHARS and k not in candidate_lines:
                extra.append(lines.line(k))
                k += 1
            if extra and not lines.line(k).strip():
                title = _clean_title(" ".join([rest] + extra))
                line_end = lines.span(k - 1)[1]
        taken_until = line_end
        if kw == "special":
            label = m.group("kw").capitalize()
            h = _Heading("special", "chapter", None, start, line_end, label, title)
        elif kw == "epilogue-part":  # "FIRST EPILOGUE": a part of its own, with chapters inside
            h = _Heading("epilogue", "part", number, start, line_end, f"Epilogue {number}", title)
        else:
            level = "part" if kw in _PART_KEYWORDS else "chapter"
            h = _Heading(kw, level, number, start, line_end, f"{kw.capitalize()} {number}", title)
            if level == "chapter" and _lists_more_of_its_kind(lines, line_no, lines.line_no(line_end), kw):
                continue  # "STAVE I / MARLEY'S GHOST / STAVE II / ...": a table of contents, line by line
        (parts if h.level == "part" else chapters).append(h)
    # "LITTLE WOMEN PART 2": a part heading after the book's title, in capitals on a line of its own.
    for m in _TITLED_PART_RE.finditer(text):
        line_no = lines.line_no(m.start())
        number = parse_number(m.group("num"))
        if number is None or lines.line(line_no - 1).strip() or lines.line(line_no + 1).strip():
            continue
        kw = m.group("kw").lower()
        label = f"{kw.capitalize()} {number}"
        parts.append(_Heading(kw, "part", number, m.start(), lines.span(line_no)[1], label, None))
    parts.sort(key=lambda p: p.start)
    specials = [h for h in chapters if h.kind == "special"]
    if not [h for h in chapters if h.kind != "special"]:
        chapters = []  # a prologue alone does not make a book of chapters
    return chapters, parts, specials


def _lists_more_of_its_kind(lines: _LineIndex, first: int, last: int, kw: str) -> bool:
    """Whether the paragraph around a heading (lines ``first``..``last``) holds another heading of the same
    keyword, above or below it: a table of contents set line by line."""
    for k, step in ((last + 1, 1), (first - 1, -1)):
        while lines.line(k).strip() and abs(k - first) < 40:
            m = _KEYWORD_RE.match(lines.line(k))
            if m and m.group("kw").lower() == kw:
                return True
            k += step
    return False


def _in_capitals(s: str) -> bool:
    letters = [ch for ch in s if ch.isalpha()]
    return len(letters) >= 3 and all(ch.isupper() for ch in letters)


def _roman_titled_headings(text: str, lines: _LineIndex) -> list[_Heading]:
    raw = []
    for m in _ROMAN_TITLED_RE.finditer(text):
        number = parse_number(m.group("num"))
        rest = m.group("rest").strip()
        if number is None or len(rest) > _MAX_TITLE_CHARS or rest.endswith((",", ";")):
            continue
        if not rest[0].isupper() or not (_in_capitals(rest) or _title_cased(rest)):
            continue
        raw.append((m, number, rest))
    arabic = []
    for m in _ARABIC_TITLED_RE.finditer(text):
        rest = m.group("rest").strip()
        if len(rest) > _MAX_TITLE_CHARS or rest.endswith((",", ";")) or not _title_cased(rest, 0.6):
            continue
        arabic.append((m, int(m.group("num")), rest))
    # Numbers and titles ("1--A Face on Which Time...", "01 My Early Home") count only as a rising
    # sequence that may restart at 1, never as stray numbered lines.
    rising = sum(1 for a, b in zip(arabic, arabic[1:]) if b[1] in (a[1] + 1, 1))
    if len(arabic) < 3 or rising < 0.8 * (len(arabic) - 1):
        arabic = []
    candidate_lines = {lines.line_no(m.start()) for m, _, _ in raw + arabic}
    out = []
    for m, number, rest in sorted(raw + arabic, key=lambda r: r[0].start()):
        line_no = lines.line_no(m.start())
        if not _starts_paragraph(lines, line_no, candidate_lines):
            continue
        start = m.start() + len(m.group(0)) - len(m.group(0).lstrip(" \t"))
        title = _clean_title(rest)
        end = lines.span(line_no)[1]
        if m.re is _ARABIC_TITLED_RE:
            nxt = lines.line(line_no + 1)  # a title that wraps onto a second line
            if nxt.strip() and not lines.line(line_no + 2).strip() and len(rest) > 45 and _title_cased(nxt) \
                    and len(nxt.strip()) < 60 and not _ARABIC_TITLED_RE.match(nxt):
                title, end = _clean_title(rest + " " + nxt), lines.span(line_no + 1)[1]
            out.append(_Heading("chapter", "chapter", number, start, end, f"Chapter {number}", title))
        else:
            out.append(_Heading("story", "chapter", number, start, end, title, None))
    # Like bare numerals, numbered titles count only as a rising sequence: "C. VERNON." under a letter is a
    # signature, not story 100.
    rising = sum(1 for a, b in zip(out, out[1:]) if b.number in ((a.number or 0) + 1, 1))
    return out if out and rising >= 0.6 * (len(out) - 1) else []


_ARABIC_TITLED_RE = re.compile(
    r"^[ \t]*(?P<num>\d{1,3})(?:--|\.|:|\u2014|\u2013|[ \t]+-)?[ \t]*(?P<rest>[\"'\u201c\u2018]?[A-Z][^\n]*)$", re.M
)


_MINOR_WORDS = frozenset(
    "a an the and but or nor for so yet of in on at to by from with upon into onto over under against among "
    "about after before between through without within as is are was be his her its their our my".split()
)


def _title_cased(rest: str, share: float = 0.75) -> bool:
    """Title case: the words that are not articles, prepositions or conjunctions mostly start in capitals."""
    words = [w for w in re.findall(r"[A-Za-z\u2019']+", rest) if w.lower() not in _MINOR_WORDS]
    return bool(words) and sum(w[0].isupper() for w in words) >= share * len(words)


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


_NUMBERED_TITLE_RE = re.compile(
    r"^(?P<num>[IVXLC]+|\d{1,3})(?:\.|:|--|\u2014|\u2013|[ \t]-)[ \t]*(?P<rest>\S.*)$"
    r"|^(?P<num2>\d{1,3})[ \t]+(?P<rest2>[A-Z].*)$"
)
_FRONT_BACK_RE = re.compile(
    r"^(?:the\s+)?(?:(?:table\s+of\s+)?contents|list\s+of\s+(?:illustrations|plates)|illustrations|dedication|"
    r"preface|foreword|introduction|author'?s\s+(?:note|preface)|transcriber'?s?\s+notes?|footnotes?|notes|"
    r"cover|title\s*page|half\s+title|copyright|acknowledge?ments?|about\s+the\s+(?:author|publisher)|"
    r"also\s+by|other\s+books\b.*|praise\s+for\b.*|epigraph|frontispiece|imprint|landmarks|"
    r"index|appendix|glossary|advertisements?|catalogue|the\s+end[.!]?$|finis[.]?$|colophon|by\b.*|"
    r"(?:the\s+)?full\s+project\s+gutenberg.*|.*project\s+gutenberg.*)\b",
    re.I,
)


def _markup_headings(
    text: str, headings: list[tuple[int, int, int]], labels: dict[int, str] | None = None
) -> list[_Heading]:
    """Chapters from the headings of the source's markup (``<h2>``, ``## ...``).

    Each heading's text is read like a heading line: a keyword and a number (``CHAPTER I.``, ``STAVE
    ONE.``, ``Book the First--Recalled to Life``), a number and a title (``I. The Period``, ``11. The
    Wonderful City of Oz``), a bare number (``I.``, then its title in the next heading), a prologue or
    epilogue, or words alone. When numbered headings are present, they are the chapters and an unnumbered
    heading is kept only as a prologue/epilogue-like section; front and back matter (Contents, Preface,
    a "by" line, Transcriber's Notes) never are. Without numbered headings (a collection of stories), the
    level that occurs most often gives the chapters, and the levels above it the parts."""
    if not headings:
        return []
    heads = sorted(headings)
    consumed: set[int] = set()
    out: list[_Heading] = []
    for i, (start, end, level) in enumerate(heads):
        if i in consumed:
            continue
        raw = normalise_whitespace((labels or {}).get(start) or text[start:end]).strip(" _*")
        if not raw:
            continue
        h = _classify_heading_text(raw, start, end)
        # A bare number's (or a keyword's) title in the heading that follows it directly.
        if h.kind != "markup" and h.title is None and i + 1 < len(heads):
            ns, ne, _ = heads[i + 1]
            nxt = normalise_whitespace((labels or {}).get(ns) or text[ns:ne]).strip(" _*")
            if not text[end:ns].strip() and nxt and _classify_heading_text(nxt, ns, ne).kind in ("markup", "special"):
                if not _FRONT_BACK_RE.match(nxt) and len(nxt) <= _MAX_HEADING_CHARS:
                    h.title, h.line_end = _clean_title(nxt) or None, ne
                    consumed.add(i + 1)
        h.markup_level = level
        out.append(h)
    numbered = [h for h in out if h.level == "chapter" and h.number is not None]
    if len(numbered) >= 2 and _sections_of_stories(out, numbered):
        # Titled stories, each cut into "I.", "II." sections: the stories are the chapters.
        top = min(h.markup_level for h in numbered)
        story_level = max(h.markup_level for h in out if h.kind == "markup" and h.markup_level < top)
        return [dataclasses.replace(h, level="chapter") for h in out
                if h.kind == "markup" and h.markup_level == story_level and not _FRONT_BACK_RE.match(h.label)]
    if len(numbered) >= 2:
        # Numbered headings at two levels ("Chapter 1" in the nav, its "I.", "II." sections below it): the
        # shallower level holding at least two of them gives the chapters.
        by_level: dict[int, int] = {}
        for h in numbered:
            by_level[h.markup_level] = by_level.get(h.markup_level, 0) + 1
        top = min(lv for lv, n in by_level.items() if n >= 2) if max(by_level.values()) >= 2 else 0
        inner = {id(h) for h in numbered if top and h.markup_level > top}
        if sum(1 for h in numbered if h.kind in _CHAPTER_KEYWORDS) >= 2:
            inner |= {id(h) for h in numbered if h.kind == "bare"}  # "Chapter 1" then its "1", "2" sections
        numbered = [h for h in numbered if id(h) not in inner]
        levels = {h.markup_level for h in numbered}
        deepest = max(levels)
        kept = []
        for h in out:
            if id(h) in inner:
                continue
            if h.number is not None or h.kind == "special":
                kept.append(h)
            elif h.kind == "markup" and h.markup_level < min(levels) and not _FRONT_BACK_RE.match(h.label):
                kept.append(dataclasses.replace(h, level="part", kind="part"))  # a level above the chapters
            elif h.kind == "markup" and h.markup_level <= deepest and _is_section_word(h.label):
                kept.append(dataclasses.replace(h, kind="special"))
        return _join_part_lines(text, kept)
    # No numbers: the most frequent level, as stories of a collection.
    counts: dict[int, int] = {}
    for h in out:
        counts[h.markup_level] = counts.get(h.markup_level, 0) + 1
    chapter_level = max(counts, key=lambda lv: (counts[lv], -lv))
    result = []
    for h in out:
        if h.markup_level > chapter_level or _FRONT_BACK_RE.match(h.label):
            continue
        level = "chapter" if h.markup_level == chapter_level else "part"
        result.append(dataclasses.replace(h, level=level, kind="markup" if level == "chapter" else "part"))
    return result


def _sections_of_stories(out: list[_Heading], numbered: list[_Heading]) -> bool:
    """Whether bare numerals ("I.", "II.") restart under each of several titled headings of a higher
    level (The Adventures of Sherlock Holmes in HTML): then the titled headings are the stories."""
    if any(h.kind != "bare" or h.title for h in numbered):
        return False
    top = min(h.markup_level for h in numbered)
    above = [h for h in out if h.kind == "markup" and h.markup_level < top and not _FRONT_BACK_RE.match(h.label)]
    if len(above) < 2:
        return False
    level = max(h.markup_level for h in above)  # the level right above the numerals
    above = [h for h in above if h.markup_level == level]
    restarts = 0
    for a in above:
        first = next((h for h in numbered if h.start > a.start), None)
        restarts += first is not None and first.number == 1
    return restarts >= 2 and restarts >= 0.6 * len(above)


_SECTION_WORDS_RE = re.compile(
    r"^(?:prologue|prelude|epilogue|finale|conclusion|postscript|afterword|envoi|l'envoi)\b", re.I
)


def _is_section_word(label: str) -> bool:
    return bool(_SECTION_WORDS_RE.match(label.strip()))


def parse_heading_line(line: str) -> tuple[str, int | None, str]:
    """``(label, number, kind)`` of one heading line: ``"CHAPTER XIV. The Storm"`` -> ``("Chapter 14", 14,
    "chapter")``; a line that is no numbered heading -> ``(its text, None, "unnumbered")``."""
    raw = normalise_whitespace(line).strip(" _*")
    h = _classify_heading_text(raw, 0, len(raw))
    if h.number is None:
        return (h.label or raw), None, "unnumbered"
    return h.label, h.number, h.kind if h.kind in _CHAPTER_KEYWORDS else "chapter"


def _classify_heading_text(raw: str, start: int, end: int) -> _Heading:
    """Read one heading's text (from markup) as a chapter, part, prologue or plain heading."""
    m = _KEYWORD_RE.match(raw)
    if m and len(raw) <= _MAX_HEADING_CHARS:
        kw = m.group("kw").lower()
        kw = "volume" if kw == "vol" else kw
        number, rest = parse_number(m.group("num")), m.group("rest")
        if number is None:
            first = re.split(r"[- ]", m.group("num").strip())[0]
            number = parse_number(first)
            rest = m.group("num").strip()[len(first):] + rest
        if number is not None:
            level = "part" if kw in _PART_KEYWORDS else "chapter"
            return _Heading(kw, level, number, start, end, f"{kw.capitalize()} {number}", _clean_title(rest) or None)
    m = _ORDINAL_FIRST_RE.match(raw)
    if m:
        kw = m.group("kw").lower()
        number = parse_number(m.group("num"))
        level = "part" if kw in _PART_KEYWORDS + ("epilogue",) else "chapter"
        title = _clean_title(m.group("rest")) or None
        return _Heading(kw, level, number, start, end, f"{kw.capitalize()} {number}", title)
    m = _BARE_RE.match(raw)
    if m and parse_number(m.group("num")) is not None:
        number = parse_number(m.group("num"))
        return _Heading("bare", "chapter", number, start, end, f"Chapter {number}", None)
    m = _NUMBERED_TITLE_RE.match(raw)
    if m:
        num = m.group("num") or m.group("num2")
        number = parse_number(num)
        rest = m.group("rest") if m.group("num") else m.group("rest2")
        if number is not None:
            return _Heading("numbered", "chapter", number, start, end, f"Chapter {number}", _clean_title(rest) or None)
    m = _SPECIAL_RE.match(raw)
    if m and (not m.group("rest").strip() or re.match(r"^\s*[.:\-\u2013\u2014]", m.group("rest"))):
        return _Heading("special", "chapter", None, start, end, m.group("kw").capitalize(),
                        _clean_title(m.group("rest")) or None)
    label = _clean_title(re.sub(r"^p\.\s*\d+\s*", "", raw))  # a page number printed into a heading
    return _Heading("markup", "chapter", None, start, end, label, None)


def _join_part_lines(text: str, heads: list[_Heading]) -> list[_Heading]:
    """A part heading directly followed by an unnumbered part-level heading ("BOOK I." / "MISS BROOKE.")
    takes that line as its title."""
    out: list[_Heading] = []
    for h in heads:
        prev = out[-1] if out else None
        if (prev is not None and prev.level == "part" and h.level == "part" and h.number is None
                and prev.title is None and not text[prev.line_end:h.start].strip()):
            prev.title, prev.line_end = h.label, h.line_end
            continue
        out.append(h)
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
    if group[0].markup_level:
        # Markup parts stay with the chapters; contents pages rarely use heading tags for their entries.
        kept = set(id(h) for h in kept_chapters)
        return [h for h in group if h.level == "part" or id(h) in kept]
    return kept_chapters


def _kept_parts(text: str, parts: list[_Heading], raw: list[_Heading], kept: list[_Heading]) -> list[_Heading]:
    """PART/BOOK headings that introduce real chapters: the next chapter heading after the part is one that
    was kept (a part listed in a table of contents is followed by contents entries instead)."""
    kept_ids = {id(h) for h in kept}
    first = kept[0].start if kept else 0
    out = []
    for i, p in enumerate(parts):
        nxt = next((h for h in raw if h.start > p.start), None)
        if nxt is None or id(nxt) not in kept_ids:
            continue
        # A part out of sequence before the first chapter whose number comes again later: a contents line.
        later = [q for q in parts[i + 1 :] if q.kind == p.kind and q.number == p.number and q.start > first]
        if p.start < first and p.number not in (None, 1) and later:
            continue
        # A part heading followed by a list of lines (its contents) before its first chapter: a contents line.
        between = [ln.strip() for ln in text[p.line_end : nxt.start].split("\n") if ln.strip()]
        short = sum(1 for ln in between if len(ln) < 60)
        if len(between) > 12 and short > 0.6 * len(between):
            continue  # a list of short lines, not a preface's prose
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
        Chapter(number=i, title=f"Section {i}", start=s, end=e, label=f"Section {i}", printed=i, kind="section")
        for i, (s, e, _) in enumerate(sections, 1)
    ]
