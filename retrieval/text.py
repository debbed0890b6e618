"""Small text utilities shared by loading, chunking, reading and illustration.

``split_sentences`` is a rule-based sentence boundary detector in the spirit of Punkt (Kiss & Strunk,
*Unsupervised Multilingual Sentence Boundary Detection*, Computational Linguistics 2006), with the
abbreviation list written by hand instead of learned: a candidate boundary is a run of ``.``, ``!``, ``?``
or an ellipsis, optionally followed by closing quotes or brackets, then white space; it is accepted when
the next word starts with a capital letter (or an opening quote before one) and the full stop does not
close a known abbreviation ("Mr.", "St.", "Dec.") or an initial ("J. R."). A blank line always ends a
sentence, so headings and paragraphs never run into each other. Offsets point into the text given, so
every sentence can be cited. Pure Python and regular expressions: a whole novel splits in well under a
second.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "HONORIFICS",
    "split_sentences",
    "split_paragraphs",
    "normalise_whitespace",
    "normalize_answer",
    "slugify",
    "smart_title",
]

# Titles before a name ("Mrs. Bennet", "Colonel Forster"), and the gender they imply (None: either).
HONORIFICS: dict[str, str | None] = {
    "mr": "m", "mrs": "f", "miss": "f", "ms": "f", "madam": "f", "madame": "f", "mme": "f", "mlle": "f",
    "sir": "m", "lady": "f", "lord": "m", "king": "m", "queen": "f", "prince": "m", "princess": "f",
    "duke": "m", "duchess": "f", "count": "m", "countess": "f", "baron": "m", "baroness": "f",
    "aunt": "f", "uncle": "m", "father": "m", "mother": "f", "brother": "m", "sister": "f",
    "master": "m", "mistress": "f", "dame": "f", "dr": None, "doctor": None, "captain": None, "capt": None,
    "colonel": None, "admiral": None, "mister": "m", "earl": "m", "professor": None, "old": None, "young": None, "little": None, "saint": None, "st": None,
    "reverend": None, "rev": None, "judge": None, "general": None, "major": None, "lieutenant": None,
}

# Closing and opening punctuation that may sit between a full stop and the next sentence.
_CLOSERS = "\"'\u201d\u2019\u00bb)]_*"
_OPENERS = "\"'\u201c\u2018\u00ab([_*"

# A candidate end of sentence: terminal punctuation, closing quotes, then white space (or the end).
_TERMINAL = re.compile(r"(?:\.{3,}|\u2026|[.!?]+)[" + re.escape(_CLOSERS) + r"]*(?=\s|$)")
# One or more blank lines (lines holding only spaces or tabs count as blank).
_BLANK_LINES = re.compile(r"\n[^\S\n]*\n\s*")
# The word that a full stop closes, e.g. "Mr" in "Mr." or "e.g" in "e.g.".
_WORD_BEFORE = re.compile(r"([\w.]+)$")

# Titles, honorifics, months and Latin abbreviations that end in a full stop without ending a sentence.
# "etc." is deliberately absent: in novels it ends a sentence more often than not.
ABBREVIATIONS = frozenset(
    """
    Mr Mrs Ms Messrs Mme Mlle Mssrs Dr Drs St Ste Mt Ft Jr Sr Snr Jnr Esq Rev Revd Hon Prof Capt Cpt Col
    Gen Lt Maj Sgt Cpl Adm Cmdr Comdr Gov Sen Rep Pres Supt Insp Bart Bt Gent Sec Mons Fr Br Sq Ave Rd
    No Nos Vol Vols Ch Chap Fig Figs pp cf vs viz al ibid Co Corp Inc Ltd Bros
    Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
    e.g i.e a.m p.m A.M P.M
    """.split()
)

# Words kept in lower case inside a title ("A Scandal in Bohemia"), unless first or last.
_SMALL_WORDS = frozenset(
    "a an and as at but by for from in into nor of off on onto or per the to upon via with".split()
)
_ROMAN = re.compile(r"^(?=[MDCLXVI])M{0,4}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")


def split_paragraphs(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Offsets of the paragraphs of ``text[start:end]`` (separated by blank lines), trimmed of white space."""
    end = len(text) if end is None else min(end, len(text))
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _BLANK_LINES.finditer(text, start, end):
        _append_trimmed(spans, text, pos, m.start())
        pos = m.end()
    _append_trimmed(spans, text, pos, end)
    return spans


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Offsets ``(start, end)`` of the sentences of ``text[start:end]``, in order, trimmed of white space.

    Handles abbreviations (Mr. Mrs. Dr. St. ...), initials, closing quotes after the stop (``."`` ``?'``),
    dialogue tags ("Oh!" said Alice), ellipses and line-wrapped paragraphs; a blank line always ends a
    sentence. Every non-space character of the range falls in exactly one sentence.
    """
    end = len(text) if end is None else min(end, len(text))
    spans: list[tuple[int, int]] = []
    for p_start, p_end in split_paragraphs(text, start, end):
        s = p_start
        for m in _TERMINAL.finditer(text, p_start, p_end):
            if m.end() < p_end and _is_boundary(text, m, p_end):
                _append_trimmed(spans, text, s, m.end())
                s = m.end()
        _append_trimmed(spans, text, s, p_end)
    return spans


def _is_boundary(text: str, m: re.Match, limit: int) -> bool:
    """Whether the terminal punctuation matched by ``m`` ends a sentence."""
    # 1. The next sentence must start with a capital (possibly after an opening quote or bracket).
    j = m.end()
    while j < limit and text[j].isspace():
        j += 1
    while j < limit and text[j] in _OPENERS:
        j += 1
    if j >= limit or not text[j].isupper():
        return False
    punct = m.group(0).rstrip(_CLOSERS)
    # 2. An ellipsis ends a sentence only before a capital that is not the pronoun "I" ("Well... I think").
    if punct.startswith("..") or punct == "\u2026":
        return not (text[j] == "I" and (j + 1 >= limit or not text[j + 1].isalpha()))
    if punct != ".":
        return True  # "!" or "?" (or "?!") before a capital
    # 3. A single full stop: not after an abbreviation or an initial.
    w = _WORD_BEFORE.search(text, max(0, m.start() - 12), m.start())
    if w is None:
        return True
    token = w.group(1)
    if token in ABBREVIATIONS:
        return False
    word = token.rsplit(".", 1)[-1]  # "J.R" -> "R"
    if len(word) == 1 and word.isupper() and word != "I":
        return False  # an initial: "J. R. Hartley", "Mrs. F. gave"
    return True


def _append_trimmed(spans: list[tuple[int, int]], text: str, s: int, e: int) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        spans.append((s, e))


def normalise_whitespace(s: str) -> str:
    """Collapse every run of white space (newlines included) to one space and trim the ends."""
    return " ".join(s.split())


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")  # string.punctuation


def normalize_answer(s: str) -> str:
    """SQuAD v1.1 normalisation: lower case, no punctuation, no articles, single spaces (answers are compared,
    and training finds the sentences that state them, in this form)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def slugify(s: str, max_length: int = 60) -> str:
    """A lower-case ASCII id made of letters, digits and hyphens: "Alice's Adventures" -> "alices-adventures".

    Accents are folded ("Les Misérables" -> "les-miserables"); apostrophes vanish rather than split words.
    Returns "book" when nothing usable is left.
    """
    folded = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii").lower()
    folded = re.sub(r"['\u2019]", "", folded)
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return slug or "book"


def smart_title(s: str) -> str:
    """Title case for a heading written in capitals: "THE ADVENTURE OF THE ENGINEER'S THUMB" ->
    "The Adventure of the Engineer's Thumb". Small words stay lower case except first and last; roman
    numerals stay upper case ("HENRY VIII"). Text that is not mostly capitals is returned unchanged."""
    letters = [c for c in s if c.isalpha()]
    if not letters or sum(c.isupper() for c in letters) < 0.7 * len(letters):
        return s
    words = s.split()
    out = []
    for i, word in enumerate(words):
        core = word.strip(_OPENERS + _CLOSERS + ".,;:!?")
        if core and _ROMAN.match(core) and (len(core) > 1 or core == "I"):
            out.append(word)
            continue
        lower = word.lower()
        if 0 < i < len(words) - 1 and core.lower() in _SMALL_WORDS:
            out.append(lower)
            continue
        out.append("-".join(_capitalise_first(part) for part in lower.split("-")))
    return " ".join(out)


def _capitalise_first(word: str) -> str:
    for i, c in enumerate(word):
        if c.isalpha():
            return word[:i] + c.upper() + word[i + 1 :]
    return word
