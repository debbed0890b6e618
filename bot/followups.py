"""Follow-up questions rewritten into standalone questions before retrieval.

People talk in follow-ups: "Who found the letter?" then "where did she hide it?", "why?", "and his
sister?". Retrieval and the reader see one question at a time, so each turn that depends on the
conversation is rewritten into a question that stands on its own ("Where did Wren hide the letter?")
before it reaches them. Two rewriters share one contract, ``rewrite(text, history) -> Rewrite``:

* :class:`OfflineResolver` (the default; no model): a rule-based resolver in the tradition of Hobbs'
  naive algorithm and centering theory (Grosz, Joshi & Weinstein 1995), using the conversation's memory.
  Pronouns are matched by gender and number to the entities of the last question, answer and quote
  (a who-question's answer is its focus, otherwise the question's own subject stays in focus); elliptical
  turns ("why?", "where?", "and then?", "what did she do then?", "and his sister?") are rebuilt from the
  previous question. The gender of a name is learned from the book itself (:class:`CharacterIndex`: which
  third-person pronouns follow its mentions, plus honorifics and kinship words such as "Mrs" or
  "her brother Toby"): no name lists.
* :class:`ChatCondenser`: any LangChain chat model with the classic condense-question prompt
  (``settings.chat_model``: "ollama:NAME" or another ``provider:model`` through ``init_chat_model``, or a
  local transformers folder through langchain-huggingface). It falls back to the offline resolver,
  saying why, when the model cannot be loaded or returns nothing usable.

Both leave a standalone question exactly as it is: a turn is only rewritten when it has a reference it
cannot resolve inside itself (a pronoun with no antecedent in the question, an ellipsis, a trailing
"then"). The :class:`Rewrite` says what was resolved and by which method, so the reply can show how a turn
was understood.
"""

from __future__ import annotations

import logging
import re
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from retrieval.text import HONORIFICS
from vignette.errors import VignetteError

log = logging.getLogger(__name__)

__all__ = [
    "Exchange",
    "Rewrite",
    "Mention",
    "CharacterIndex",
    "OfflineResolver",
    "ChatCondenser",
    "load_chat_model",
    "make_rewriter",
    "history_from_records",
]


# --------------------------------------------------------------------------------------------------------
# Data at the seams
# --------------------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One earlier turn as the memory keeps it: the question as understood, and what the book answered."""

    question: str  # the standalone form
    answer: str = ""
    quote: str = ""
    abstained: bool = False

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Exchange":
        evidence = record.get("evidence") or []
        return cls(
            question=str(record.get("question") or ""),
            answer=str(record.get("answer") or ""),
            quote=str(evidence[0].get("quote", "")) if evidence else "",
            abstained=bool(record.get("abstained", False)),
        )


@dataclass
class Rewrite:
    """How a turn was understood."""

    question: str  # the standalone question handed to retrieval (== the turn when already standalone)
    rewritten: bool  # False: the turn was used exactly as typed
    method: str  # "standalone", "resolver", or "chat:<model>"
    resolved: dict[str, str] = field(default_factory=dict)  # e.g. {"she": "Wren", "it": "the letter", "why?": "..."}
    note: str | None = None  # e.g. why the chat model was not used

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "rewritten": self.rewritten, "method": self.method,
                "resolved": dict(self.resolved), "note": self.note}


@dataclass(frozen=True)
class Mention:
    surface: str  # as it reads in the text, e.g. "Mrs Vane", "the captain", "Wren and Toby", "the letter"
    start: int
    end: int
    kind: str  # "person", "plural", "thing"
    gender: str | None = None  # "f", "m" for persons when known; None otherwise


# --------------------------------------------------------------------------------------------------------
# English closed classes (general language, nothing about any particular book)
# --------------------------------------------------------------------------------------------------------

# pronoun -> (family, role); family f/m/pl/n, role: subj, obj, poss (determiner), pposs (stands alone), refl
PRONOUNS: dict[str, tuple[str, str]] = {
    "he": ("m", "subj"), "him": ("m", "obj"), "his": ("m", "poss"), "himself": ("m", "refl"),
    "she": ("f", "subj"), "her": ("f", "obj|poss"), "hers": ("f", "pposs"), "herself": ("f", "refl"),
    "they": ("pl", "subj"), "them": ("pl", "obj"), "their": ("pl", "poss"), "theirs": ("pl", "pposs"),
    "themselves": ("pl", "refl"),
    "it": ("n", "subj"), "its": ("n", "poss"), "itself": ("n", "refl"),
}
_GENDERED = {"he": "m", "him": "m", "his": "m", "himself": "m", "she": "f", "her": "f", "hers": "f",
             "herself": "f", "it": "n", "its": "n", "itself": "n"}


# Nouns that name people; with a gender where the word carries one.
_F_ROLES = """woman women girl girls lady ladies mother mothers sister sisters daughter daughters aunt aunts
wife wives queen queens princess duchess grandmother niece nieces widow maid maids mistress fishwife
fishwives bride nurse governess heroine""".split()
_M_ROLES = """man men boy boys gentleman gentlemen father fathers brother brothers son sons uncle uncles
husband husbands king kings prince duke grandfather nephew nephews widower lord lords lad lads fellow
fellows bridegroom hero""".split()
_N_ROLES = """person people child children captain captains keeper keepers stranger strangers doctor doctors
clockmaker baker bakers teacher friend friends sailor sailors fisherman fishermen chairman councillor
councillors servant servants guard guards watchman mate crew cook cooks parent parents cousin cousins
neighbour neighbours master masters visitor visitors villagers townspeople twins family officer officers
soldier soldiers merchant lawyer judge priest vicar farmer farmers thief thieves murderer detective
inspector witness owner owners guest guests host hostess monster creature""".split()
ROLE_GENDER: dict[str, str | None] = {**{w: "f" for w in _F_ROLES}, **{w: "m" for w in _M_ROLES},
                                      **{w: None for w in _N_ROLES}}
_KIN_WORDS = ("brother", "sister", "father", "mother", "son", "daughter", "wife", "husband", "uncle", "aunt",
              "cousin", "grandfather", "grandmother", "nephew", "niece")
_KIN_ADJ = r"(?:(?:little|elder|older|younger|big|baby|dear|late|own|twin)\s+)?"
_KIN_NAMED = re.compile(r"\b(?:her|his|their|[A-Z][a-z]+['\u2019]s)\s+" + _KIN_ADJ + r"(?P<role>" + "|".join(_KIN_WORDS)
                        + r"),?\s+(?P<name>[A-Z][a-z]+)\b")
_KIN_OWNED = re.compile(r"(?P<owner>(?:[A-Z][\w\-]+\s)*[A-Z][\w\-]+['\u2019]s)\s+" + _KIN_ADJ + r"(?P<role>"
                        + "|".join(_KIN_WORDS) + r")\b(?!,?\s+[A-Z])")
_IRREGULAR_PLURAL_ROLES = {"women", "men", "children", "people", "gentlemen", "ladies", "wives", "fishermen",
                           "fishwives", "townspeople", "villagers", "twins", "crew", "family", "thieves"}

_CALENDAR = set("""monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december christmas easter""".split())

FUNCTION_WORDS = set("""a an the and or but nor so yet for of in on at to from by with without into onto upon
over under about above below after before during since until till through across along around among
between behind beyond near off out up down away back again then there here when where why how what who
whom whose which that this these those i you we me us my your our mine yours ours he him his she her hers
they them their it its is was are were be been being am do does did done doing have has had having will
would shall should can could may might must not no yes all any some every each either neither both few
many much more most other another such only own same than too very just also even ever never always
often sometimes once twice if unless whether because although though while as like else""".split())

_LOCATIVE = {"in", "at", "on", "to", "from", "into", "onto", "towards", "toward", "near", "across", "off", "past",
             "over", "beyond", "round", "around", "inside", "outside", "through", "along"}
AUX = {"did", "does", "do", "was", "were", "is", "are", "has", "had", "have", "will", "would", "can", "could",
       "should", "shall", "may", "might", "must"}
_BE = {"was", "were", "is", "are"}
_WH = ("who", "whom", "what", "where", "when", "why", "how")
_DETS = {"the", "a", "an", "this", "that", "these", "those"}

# Verb forms come from lemminflect's English lexicon (data in the wheel), not from a hand-written table.


@lru_cache(maxsize=65536)
def irregular_base(word: str) -> str | None:
    """The base of an irregular past or past participle ("found" -> find, "were" -> be, "put" -> put),
    else None (regular "-ed" forms, and words that are no verb form)."""
    from lemminflect import getAllInflections, getAllLemmas

    w = word.lower()
    if not w.isalpha() or w.endswith("ed"):
        return None
    for base in getAllLemmas(w, upos="VERB").get("VERB", ()):
        forms = getAllInflections(base, upos="VERB")
        if w in forms.get("VBD", ()) + forms.get("VBN", ()):
            return base
    return None


@lru_cache(maxsize=65536)
def is_irregular_verb(word: str) -> bool:
    """Whether ``word`` is the base of a verb whose past is not made with "-ed" ("hide", "keep", "be")."""
    from lemminflect import getAllInflections

    w = word.lower()
    forms = getAllInflections(w, upos="VERB") if w.isalpha() else {}
    past = forms.get("VBD", ())
    return bool(past) and w in forms.get("VB", ()) and not any(p.endswith("ed") for p in past)


# After "her", words that show it is an object ("tell her about"), not a possessive ("her sister").
_AFTER_OBJECT = FUNCTION_WORDS | {"again", "first", "last", "next", "later", "now", "today", "alone",
                                  "himself", "herself", "anything", "something", "nothing", "everything"}

_WORD_RE = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)*")
_QUOTES = {'"', "\u201c", "\u201d", "\u2018"}
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)*|[\"\u201c\u201d\u2018]")
_CAP_RUN = re.compile(r"[A-Z][A-Za-z\-]*(?:['\u2019]s\b)?(?:[ ]+(?:of[ ]+(?:the[ ]+)?)?[A-Z][A-Za-z\-]*(?:['\u2019]s\b)?)*")


_DOTTED_TITLE = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Messrs|Mme|Mlle|Capt|Col|Gen|Rev|Prof|Sgt|Lt)\.(?=\s)")


def _undot_titles(text: str) -> str:
    """"Mr. Lark" -> "Mr  Lark": the title's full stop becomes a space, so offsets stay the same and
    the title is read as one (American and older British texts write "Mr.", "Mrs.", "Dr.")."""
    return _DOTTED_TITLE.sub(lambda m: m.group(1) + " ", text)


def _strip_possessive(word: str) -> tuple[str, bool]:
    if len(word) > 2 and word[-2:] in ("'s", "\u2019s"):
        return word[:-2], True
    return word, False


def possessive(surface: str) -> str:
    """ "Wren" -> "Wren's", "Amos" -> "Amos's", "the sisters" -> "the sisters'"."""
    last = surface.split()[-1].lower()
    if last in _IRREGULAR_PLURAL_ROLES and not last.endswith("s"):
        return surface + "'s"
    if last.endswith("s") and (last in ROLE_GENDER or last.rstrip("s") in ROLE_GENDER) and last not in ("boss",):
        return surface + "'"
    return surface + "'s"


def _cap_first(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _finish_question(text: str) -> str:
    text = " ".join(text.split()).strip()
    text = re.sub(r"\s+([?.,!;:])", r"\1", text)
    text = text.rstrip(" .,;:")
    if not text.endswith("?"):
        text += "?"
    return _cap_first(text)


# --------------------------------------------------------------------------------------------------------
# Verb forms (for rebuilding "who found the letter?" + "why?" into "Why did Wren find the letter?")
# --------------------------------------------------------------------------------------------------------


def base_of(verb: str) -> str:
    """Base form of a past or third-person form (lemminflect): found -> find, hoped -> hope, stopped -> stop,
    keeps -> keep."""
    from lemminflect import getLemma

    v = verb.lower()
    base = irregular_base(v)
    if base is not None:
        return base
    lemmas = getLemma(v, upos="VERB") if v.isalpha() else ()
    return lemmas[0] if lemmas else v


def past_of(base: str) -> str:
    """Simple past of a base form (lemminflect): hide -> hid, climb -> climbed, stop -> stopped."""
    from lemminflect import getInflection

    b = base.lower()
    forms = getInflection(b, tag="VBD") if b.isalpha() else ()
    return forms[0] if forms else b + "ed"


def is_past_form(word: str) -> bool:
    w = word.lower()
    return irregular_base(w) is not None or (w.endswith("ed") and len(w) > 3)


# --------------------------------------------------------------------------------------------------------
# What the book teaches: its names, their gender, and its vocabulary
# --------------------------------------------------------------------------------------------------------


@dataclass
class CharacterIndex:
    """Names in a book and the gender the book gives them.

    A name word is a capitalised word that appears mid-sentence (twice, or once among three capitalised
    uses) and hardly ever in lower case ("Wren", "Vane", "Hester"). Its gender is voted by the subject or
    possessive pronoun that follows each mention in its sentence, or opens the next one (he/his vs
    she/her vs it), when no quotation mark or other name comes between; honorifics ("Mrs", "Captain") and kinship words before the name ("her brother Toby")
    add strong votes. Common nouns for people ("the captain", "the stranger") are voted the same way.
    """

    name_words: dict[str, int] = field(default_factory=dict)  # capitalised word -> mid-sentence count
    votes: dict[str, Counter] = field(default_factory=dict)  # name word or role noun -> Counter(f, m, n)
    lexicon: frozenset[str] = frozenset()  # lower-case words of the book
    places: frozenset[str] = frozenset()  # name words mostly found after "in/at/on/to/from": places, not people
    nounish: frozenset[str] = frozenset()  # lower-case words the book puts right after a determiner
    kin: dict[str, Counter] = field(default_factory=dict)  # "brother" -> Counter of names: "her brother Toby"
    speakers: frozenset[str] = frozenset()  # common nouns the book has speak: "said the squire" -> "squire"

    # ---- building -------------------------------------------------------------------------------------
    @classmethod
    def from_book(cls, book: Any) -> "CharacterIndex":
        return cls.from_text(book.text)

    @classmethod
    def from_text(cls, text: str) -> "CharacterIndex":
        from retrieval.text import split_sentences

        text = _undot_titles(text)
        sentences = [text[s:e] for s, e in split_sentences(text)]
        tokenised = [[m.group(0) for m in _TOKEN_RE.finditer(s)] for s in sentences]
        cap_mid: Counter = Counter()
        cap_all: Counter = Counter()
        lower: Counter = Counter()
        located: Counter = Counter()  # capitalised words right after "in/at/on/to/from (the)": places
        nounish: set[str] = set()  # words right after a determiner: nouns (and adjectives), not verbs
        for toks in tokenised:
            for i, tok in enumerate(toks):
                if tok in _QUOTES:
                    continue
                word, _ = _strip_possessive(tok)
                prev = toks[i - 1].lower() if i > 0 else ""
                if word[:1].isupper():
                    cap_all[word] += 1
                    if i > 0:
                        cap_mid[word] += 1
                    if prev in _LOCATIVE or (prev == "the" and i > 1 and toks[i - 2].lower() in _LOCATIVE):
                        located[word] += 1
                else:
                    lower[word] += 1
                    if prev in _DETS | {"his", "her", "its", "their", "my", "your", "our"}:
                        nounish.add(word)
        name_words = {
            w: c for w, c in cap_mid.items()
            if (c >= 2 or cap_all[w] >= 3) and len(w) > 1 and w.isalpha() and not w.isupper() and w.lower() not in FUNCTION_WORDS and w.lower() not in _CALENDAR
            and w.lower() not in HONORIFICS and lower[w.lower()] <= 0.2 * cap_all[w]
        }
        places = {w for w in name_words if located[w] >= max(2, 0.3 * cap_all[w])}
        kin: dict[str, Counter] = {}
        for m in _KIN_NAMED.finditer(text):
            if m.group("name") in name_words:
                kin.setdefault(m.group("role").lower(), Counter())[m.group("name")] += 1
        spoke: Counter = Counter()
        for pattern in _SPEAKER_PATTERNS:
            for m in pattern.finditer(text):
                noun = m.group("noun").lower()
                if noun not in FUNCTION_WORDS and noun not in AUX and noun not in _SPEECH_VERBS:
                    spoke[noun] += 1
        index = cls(name_words=name_words, lexicon=frozenset(lower), places=frozenset(places),
                    nounish=frozenset(nounish), kin=kin,
                    speakers=frozenset(w for w, c in spoke.items() if c >= 2 and w not in ROLE_GENDER))
        index._vote(tokenised)
        return index

    def relative(self, owner: str, role: str) -> str | None:
        """The name the book gives ``owner``'s ``role`` ("Wren Tolley", "brother" -> "Toby"), from phrases
        such as "her brother Toby"; None when the book names no one, or several about as often."""
        names = self.kin.get(role.lower())
        if not names:
            return None
        mine = {_strip_possessive(w)[0] for w in owner.split()}
        ranked = sorted(((c, n) for n, c in names.items() if n not in mine), reverse=True)
        if not ranked or (len(ranked) > 1 and ranked[0][0] < 2 * ranked[1][0]):
            return None
        return ranked[0][1]

    def name_relatives(self, question: str) -> tuple[str, dict[str, str]]:
        """ "How old is Wren Tolley's brother?" -> "How old is Wren Tolley's brother Toby?" when the book
        names him: retrieval then finds the passages about Toby, which rarely say "Wren's brother"."""
        resolved: dict[str, str] = {}

        def add(m: re.Match) -> str:
            name = self.relative(m.group("owner"), m.group("role"))
            if name is None or name in question:
                return m.group(0)
            resolved[m.group(0)] = f"{m.group(0)} {name}"
            return f"{m.group(0)} {name}"

        return _KIN_OWNED.sub(add, question), resolved

    def _vote(self, tokenised: list[list[str]]) -> None:
        """Gender votes: the pronoun a name's own clause or the next sentence uses for it.

        Counted: the first subject or possessive pronoun after the name in its sentence (he/his/she/her +
        noun/it/its), unless a quotation mark or another name comes first (then it may be someone
        else's); reflexives; and a He/She/It opening the next sentence. Not counted: object pronouns (him,
        "beside her"), which by binding theory cannot be the subject of their own clause.
        """
        votes: dict[str, Counter] = {}
        for si, toks in enumerate(tokenised):
            nxt = tokenised[si + 1] if si + 1 < len(tokenised) else []
            i = 0
            n = len(toks)
            while i < n:
                word, _ = _strip_possessive(toks[i])
                key_words: list[str] = []
                strong: str | None = None
                j = i
                if word in self.name_words or (word.lower() in HONORIFICS and word[:1].isupper() and i + 1 < n
                                               and _strip_possessive(toks[i + 1])[0] in self.name_words):
                    # a run of capitalised words: "Mrs Cordelia Vane"
                    while j < n:
                        w, _ = _strip_possessive(toks[j])
                        if w in self.name_words:
                            key_words.append(w)
                        elif w.lower() in HONORIFICS and w[:1].isupper():
                            strong = HONORIFICS[w.lower()] or strong
                        else:
                            break
                        j += 1
                    # kinship just before the run: "her brother Toby", "his sister Mary"
                    if i >= 1 and toks[i - 1].lower() in ROLE_GENDER and ROLE_GENDER[toks[i - 1].lower()]:
                        strong = ROLE_GENDER[toks[i - 1].lower()]
                elif ((word.lower() in ROLE_GENDER or word.lower() in self.speakers) and i >= 1
                      and toks[i - 1].lower() in ("the", "this", "that")):
                    key_words = [word.lower()]
                    j = i + 1
                if not key_words:
                    i += 1
                    continue
                vote = self._pronoun_after(toks, j, key_words)
                if vote is None and i <= 1 and nxt:
                    first = nxt[0].lower()
                    if first in ("he", "she", "his", "her", "it", "its"):
                        vote = _GENDERED[first]
                for kw in key_words:
                    c = votes.setdefault(kw, Counter())
                    if vote:
                        c[vote] += 1
                    if strong:
                        c[strong] += 3
                i = max(j, i + 1)
        self.votes = votes

    def _pronoun_after(self, toks: list[str], j: int, key_words: list[str]) -> str | None:
        for k in range(j, len(toks)):
            w = toks[k]
            lw = w.lower()
            if w in _QUOTES:
                return None
            if lw in ("he", "she", "his", "himself", "herself", "its", "itself"):
                return _GENDERED[lw]
            if lw == "her":
                after = toks[k + 1].lower() if k + 1 < len(toks) else ""
                if after and after not in _AFTER_OBJECT and after not in _QUOTES:
                    return "f"
                continue
            if lw == "it" and k > j:
                continue  # too often "it was", "made it"
            bare, _ = _strip_possessive(w)
            if bare in self.name_words and bare not in key_words:
                return None  # another name intervenes: the pronoun may be theirs
        return None

    # ---- queries --------------------------------------------------------------------------------------
    def gender_of_word(self, word: str) -> str | None:
        """"f", "m", "n" (a thing: the book calls it "it"), or None (unknown)."""
        c = self.votes.get(word) or self.votes.get(word.lower())
        if not c:
            return None
        (top, count), *rest = c.most_common(2) + [(None, 0)]
        second = rest[0][1] if rest else 0
        if count >= 2 and count >= 2 * second:
            return top
        return None

    def gender_of(self, surface: str) -> str | None:
        words = [_strip_possessive(w)[0] for w in _undot_titles(surface).split()]
        neutral_title = None
        for w in words:  # an honorific decides: "Mrs Vane", "Mr Pellow"
            lw = w.lower()
            if lw in HONORIFICS and w[:1].isupper() and len(words) > 1:
                if HONORIFICS[lw]:
                    return HONORIFICS[lw]
                neutral_title = lw
        head = words[-1].lower() if words else ""
        if head in ROLE_GENDER:
            g = ROLE_GENDER[head] or self.gender_of_word(head)
            return g if g in ("f", "m") else None
        for w in words:
            if w in self.name_words:
                g = self.gender_of_word(w)
                if g:
                    return g
        if neutral_title:  # "Captain Dunmore": what the book calls "the captain"
            g = self.gender_of_word(neutral_title)
            return g if g in ("f", "m") else None
        return None

    def is_name_word(self, word: str) -> bool:
        return word in self.name_words

    def mentions(self, text: str) -> list[Mention]:
        """People, groups and things mentioned in ``text``, in order of appearance."""
        original, text = text, _undot_titles(text)
        if text != original:  # found on the undotted text (same offsets), told as the text has them
            out = []
            for m in self.mentions(text):
                end = m.end
                while end < len(original) and original[end].isalpha() and original[end - 1].isalpha():
                    end += 1  # a name measured without the title's extra space ends one letter early
                out.append(dataclasses.replace(m, surface=original[m.start:end], end=end))
            return out
        found: list[Mention] = []
        taken: list[tuple[int, int]] = []

        def free(s: int, e: int) -> bool:
            return all(e <= a or s >= b for a, b in taken)

        # 1. groups: "Wren and Toby", "the sisters"
        for m in re.finditer(r"\b((?:the )?[A-Z][A-Za-z\-]+(?: [A-Z][A-Za-z\-]+)*) and "
                             r"((?:the )?[A-Z][A-Za-z\-]+(?: [A-Z][A-Za-z\-]+)*)\b", text):
            a, b = m.group(1).split()[-1], m.group(2).split()[-1]
            if (a in self.name_words or a.lower() in HONORIFICS) and (b in self.name_words or b.lower() in HONORIFICS):
                found.append(Mention(m.group(0), m.start(), m.end(), "plural"))
                taken.append((m.start(), m.end()))
        for m in re.finditer(r"\b(?:the|both|all the|his|her|their|two|three)\s+(?:[a-z\-]+\s+)?([a-z]+)\b", text):
            head = m.group(1)
            if head in ROLE_GENDER and (head in _IRREGULAR_PLURAL_ROLES or
                                        (head.endswith("s") and head[:-1] in ROLE_GENDER)):
                if free(m.start(), m.end()):
                    found.append(Mention(m.group(0), m.start(), m.end(), "plural"))
                    taken.append((m.start(), m.end()))

        # 2. people named by a common noun: "the captain", "the old keeper", "her brother", "Toby's sister"
        for m in re.finditer(r"\b(the|a|an|this|that|his|her|their|its|(?:[A-Z][A-Za-z]+\s+)*[A-Z][A-Za-z]+['\u2019]s)\s+"
                             r"([a-z\-]+)(?:\s+([a-z]+))?\b", text):
            first, second = m.group(2), m.group(3)
            if self._person_noun(first):
                head, end = first, m.end(2)
            elif second and self._person_noun(second) and first not in FUNCTION_WORDS and first not in AUX:
                head, end = second, m.end(3)
            else:
                continue
            if free(m.start(), end):
                plural = head in _IRREGULAR_PLURAL_ROLES or (head.endswith("s") and head[:-1] in ROLE_GENDER)
                g = ROLE_GENDER.get(head) or self.gender_of_word(head)
                found.append(Mention(text[m.start():end], m.start(), end, "plural" if plural else "person",
                                     g if g in ("f", "m") else None))
                taken.append((m.start(), end))

        # 3. names: capitalised runs holding a name word or a title
        for m in _CAP_RUN.finditer(text):
            words = m.group(0).split()
            start = m.start()
            at_sentence_start = start == 0 or re.search(r"[.!?\"\u201c:]\s*$", text[:start]) is not None
            # drop leading words that are only capitalised because they open the sentence ("Where", "Did")
            while words and not self._nameish(words[0], len(words) > 1):
                if not at_sentence_start and _strip_possessive(words[0])[0].lower() not in FUNCTION_WORDS:
                    break
                start = text.index(words[0], start) + len(words[0])
                start = len(text[:start]) + (len(text[start:]) - len(text[start:].lstrip()))
                words = words[1:]
                at_sentence_start = True
            if not words or all(_strip_possessive(w)[0].lower() in _CALENDAR for w in words):
                continue
            last, poss = _strip_possessive(words[-1])
            core = " ".join(words[:-1] + [last])
            if core.lower() in FUNCTION_WORDS:
                continue
            if len(words) == 1 and last.lower() in HONORIFICS:
                # "the Queen", "the Captain": a title used as a name
                if text[max(0, start - 4):start].lower() != "the ":
                    continue
                g = HONORIFICS[last.lower()] or self.gender_of_word(last.lower())
                s = start - 4
                if free(s, start + len(last)):
                    found.append(Mention(text[s:start + len(last)], s, start + len(last), "person",
                                         g if g in ("f", "m") else None))
                    taken.append((s, start + len(last)))
                continue
            end = start + len(core)
            s = start
            for det in ("the ", "a ", "an "):
                if text[max(0, start - len(det)):start].lower() == det:
                    s = start - len(det)
                    break
            surface = text[s:end]
            if not free(s, end):
                continue
            gender = self.gender_of(core)
            known = any(_strip_possessive(w)[0] in self.name_words for w in words)
            has_title = any(w.lower() in HONORIFICS and w[:1].isupper() for w in words[:-1])
            place = any(_strip_possessive(w)[0] in self.places for w in words) and not has_title
            if place:  # "Ashford Park": where people go, whatever pronouns happen to follow it
                kind = "thing"
                gender = None
            elif gender in ("f", "m") or has_title:
                kind = "person"
            elif gender == "n" or (not known and s != start):
                kind = "thing"
            elif known:
                kind = "person" if gender else "unknown"
            else:
                kind = "unknown"  # an unknown capitalised word mid-sentence: a name the book index missed
            found.append(Mention(surface, s, end, kind, gender if gender in ("f", "m") else None))
            taken.append((s, end))

        # 4. things: "the letter", "a brass spyglass", "Toby's key"
        for m in re.finditer(r"\b(the|a|an|this|that|[A-Z][A-Za-z]+['\u2019]s)\s+((?:[a-z][a-z\-]*\s+){0,3}[a-z][a-z\-]*)",
                             text):
            owner = m.group(1)
            if owner[-2:-1] in ("'", "\u2019") and (owner[:-2].lower() in FUNCTION_WORDS or owner[:-2].lower() in PRONOUNS):
                continue  # "That's right", "It's gone": a contraction of "is", not an owner
            words = []
            for w in m.group(2).split():
                if w in FUNCTION_WORDS or w in AUX or irregular_base(w) is not None or (
                        words and (is_irregular_verb(w) or (w.endswith(("ed", "ing")) and len(w) > 4)
                                   or (w not in self.nounish and _looks_like_verb(w, self)))):
                    break
                words.append(w)
            if not words:
                continue
            end = m.start(2) + len(" ".join(words))
            head = words[-1]
            if head in ROLE_GENDER or m.group(1).lower() in ("this", "that") and len(words) == 1 and head in FUNCTION_WORDS:
                continue
            if free(m.start(), end):
                found.append(Mention(text[m.start():end], m.start(), end, "thing"))
                taken.append((m.start(), end))
        found.sort(key=lambda x: x.start)
        return found

    def _person_noun(self, word: str) -> bool:
        """A common noun for a person: a general one ("captain", "sister") or one this book has speak."""
        return word in ROLE_GENDER or word in self.speakers

    def binders(self, text: str) -> list[Mention]:
        """What a pronoun in ``text`` may refer to inside ``text`` itself: its mentions, plus an owner and
        what it owns counted apart ("Mr. Lee's daughter ... with him", "Ann's jug ... dropped it") and
        things owned through a pronoun ("his bags ... when they were stolen"). Used only to decide whether a
        pronoun is bound; a follow-up's referents come from :meth:`mentions`."""
        found = list(self.mentions(text))
        for m in re.finditer(r"\b((?:[A-Z][A-Za-z\-]+\s+)*[A-Z][A-Za-z\-]+)['\u2019]s\s+((?:[a-z][a-z\-]*\s+){0,3}[a-z][a-z\-]*)",
                             text):
            owner = m.group(1).split()
            if owner[0].lower() in FUNCTION_WORDS and len(owner) == 1:
                continue
            g = self.gender_of(m.group(1))
            found.append(Mention(m.group(1), m.start(1), m.end(1), "person" if g in ("f", "m") else "unknown", g
                                 if g in ("f", "m") else None))
            found.extend(self._owned(m.group(2), m.start(2)))
        for m in re.finditer(r"\b(?:his|her|their|its|my|your|our)\s+((?:[a-z][a-z\-]*\s+){0,3}[a-z][a-z\-]*)", text):
            found.extend(self._owned(m.group(1), m.start(1)))
        found.sort(key=lambda x: x.start)
        return found

    def _owned(self, phrase: str, start: int) -> list[Mention]:
        """The noun phrase at the start of ``phrase`` (cut at its first function word or verb) as a thing,
        or as a plural when its head is a plural noun."""
        words: list[str] = []
        for w in phrase.split():
            if w in FUNCTION_WORDS or w in AUX or irregular_base(w) is not None or (
                    words and (is_irregular_verb(w) or (w.endswith(("ed", "ing")) and len(w) > 4)
                               or (w not in self.nounish and _looks_like_verb(w, self)))):
                break
            words.append(w)
        if not words or self._person_noun(words[-1]):
            return []
        surface = " ".join(words)
        return [Mention(surface, start, start + len(surface), "plural" if _is_plural_noun(words[-1]) else "thing")]

    def _nameish(self, word: str, followed: bool) -> bool:
        bare, _ = _strip_possessive(word)
        if bare in self.name_words:
            return True
        return bare.lower() in HONORIFICS and followed


# --------------------------------------------------------------------------------------------------------
# Parsing the previous question (enough to rebuild elliptical turns)
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    kind: str  # "do": WH did SUBJ VERB TAIL; "who": who VERBED TAIL; "be": WH was SUBJ PARTICIPLE TAIL
    wh: str
    aux: str = ""
    subj: str = ""
    verb: str = ""
    tail: str = ""


def _split_subject(words: list[str], index: CharacterIndex) -> tuple[list[str], list[str]]:
    """Split "the old keeper climb the stairs" into (subject, rest) by finding where the verb begins."""
    if not words:
        return [], []
    if words[0].lower() in PRONOUNS:
        return words[:1], words[1:]
    i = 0
    if words[0][:1].isupper():
        while i < len(words) and words[i][:1].isupper():
            i += 1
        if i < len(words) and words[i - 1].endswith(("'s", "\u2019s")):
            i += 1  # "Wren's brother"
        return words[:i], words[i:]
    if words[0].lower() in _DETS | {"his", "her", "their", "its"}:
        i = 1
        while i < len(words) and i < 5:
            w = words[i].lower()
            if _looks_like_verb(w, index):
                break
            i += 1
        return words[:i], words[i:]
    return words[:1], words[1:]


def _looks_like_verb(word: str, index: CharacterIndex) -> bool:
    if is_irregular_verb(word):
        return True
    lex = index.lexicon
    return any(form in lex for form in (word + "ed", word + "d", word[:-1] + "ied" if word.endswith("y") else "",
                                        word + word[-1:] + "ed")) and word not in ROLE_GENDER


def _parse_question(question: str, index: CharacterIndex) -> _Parsed | None:
    q = question.strip().rstrip("?").strip()
    words = q.split()
    if len(words) < 2:
        return None
    wh = words[0].lower()
    if wh not in _WH:
        return None
    second = words[1].lower()
    if second in ("did", "does", "do") and len(words) >= 4:
        subj, rest = _split_subject(words[2:], index)
        if not subj or not rest:
            return None
        return _Parsed("do", wh, second, " ".join(subj), rest[0].lower(), " ".join(rest[1:]))
    if second in _BE and len(words) >= 4:
        subj, rest = _split_subject(words[2:], index)
        if subj and rest and (rest[0].lower().endswith(("ed", "en", "ing")) or irregular_base(rest[0]) is not None):
            return _Parsed("be", wh, second, " ".join(subj), rest[0].lower(), " ".join(rest[1:]))
        return None
    if wh == "who" and second not in AUX and second not in FUNCTION_WORDS and len(words) >= 2:
        return _Parsed("who", wh, "", "", second, " ".join(words[2:]))
    return None


# --------------------------------------------------------------------------------------------------------
# The offline resolver
# --------------------------------------------------------------------------------------------------------

_BARE_WH = re.compile(r"^\s*(?:and|but|so|ok(?:ay)?,?)?\s*(why|how|when|where|who|what)"
                      r"(?:\s+(?:not|so|exactly|then|though))?\s*(?:there)?\s*[?.!]*\s*$", re.I)
_THEN_ONLY = re.compile(r"^\s*(?:and\s+)?(?:(?:then\s+)?what\s+(?:happened|happens|happened\s+to\s+them)"
                        r"(?:\s+(?:next|then|after\s+that|afterwards|later))?|then\s+what(?:\s+happened)?|"
                        r"and\s+then(?:\s+what)?|then|what\s+next|what\s+then|and\s+after\s+that|after\s+that|"
                        r"what\s+happened\s+after\s+that)\s*[?.!]*\s*$", re.I)
_NP_ONLY = re.compile(r"^\s*(?:and|what\s+about|how\s+about|and\s+what\s+about|and\s+how\s+about)\s+"
                      r"(?P<np>[^?]+?)\s*[?.!]*\s*$", re.I)
_PLACE_THERE = re.compile(r"\bthere\b(?!\s*(?:is|was|were|are|be|been|'s|\u2019s|seems?|seemed|lived|stood)\b)", re.I)
_EXISTENTIAL_THERE = re.compile(r"\b(?:is|was|were|are|will|would|had|has)\s+there\b|^\s*there\b", re.I)
_TRAILING_THEN = re.compile(r"\s+(?:then|next|after\s+that|afterwards|after\s+this)\s*(?P<q>[?.!]*)\s*$", re.I)

# "it" that refers to nothing: "is it true that", "what time was it", "how long did it take"
_EXPLETIVE_IT = re.compile(
    r"\b(?:it\s+(?:is|was|'s|\u2019s|seems?|seemed|takes?|took|rained|snowed|rains|snows|happened\s+that|"
    r"turns?\s+out|turned\s+out|matters?|mattered)\s+(?:true|possible|likely|said|known|time|far|long|late|"
    r"early|cold|dark|raining|snowing|that|to|him|her|them|the\s+(?:first|last)|so|not)\b|"
    r"(?:what\s+time|how\s+(?:long|far|late|early|cold|dark|many\s+\w+))\s+(?:is|was|did|does|will|would)\s+it\b|"
    r"(?:is|was)\s+it\s+(?:true|possible|likely|that)\b|"
    r"how\s+(?:long|much|many\s+\w+)\s+(?:did|does|will|would)\s+it\s+take\b)", re.I)


# Speech: a common noun the book has say something is a person ("said the squire", "the farrier replied").
_SPEECH_VERBS = {"said", "asked", "cried", "replied", "answered", "exclaimed", "shouted", "whispered", "called",
                 "added", "continued", "muttered", "observed", "remarked", "returned", "inquired", "enquired"}
_SPEAKER_PATTERNS = (
    re.compile(r"\b(?:" + "|".join(sorted(_SPEECH_VERBS)) + r")\s+(?:the|an?)\s+(?:[a-z]+\s+)?(?P<noun>[a-z]+)\b"),
    re.compile(r"\b(?:the|an?)\s+(?:[a-z]+\s+)?(?P<noun>[a-z]+)\s+(?:" + "|".join(sorted(_SPEECH_VERBS)) + r")\b"),
)
# Words that open a subordinate clause: a pronoun after one is inside the question's own sentence.
_SUBORDINATORS = {"because", "when", "while", "after", "before", "since", "until", "till", "as", "if", "though",
                  "although", "once", "whenever", "so", "that", "who", "whom", "which", "where"}


_PREPOSITIONS = {"in", "on", "at", "of", "with", "from", "to", "for", "into", "onto", "about", "under", "over",
                 "behind", "beside", "inside", "through", "by", "near"}


@lru_cache(maxsize=4096)
def _is_plural_noun(word: str) -> bool:
    """A plural noun by lemminflect's lexicon ("bags" -> "bag"), not by its last letter alone."""
    from lemminflect import getLemma

    if not word.endswith("s") or word.endswith("ss"):
        return word in _IRREGULAR_PLURAL_ROLES
    lemma = getLemma(word, upos="NOUN")
    return bool(lemma) and lemma[0] != word


class OfflineResolver:
    """Rule-based follow-up resolution from the conversation's memory (see the module docstring)."""

    method = "resolver"

    def __init__(self, index: CharacterIndex, max_lookback: int = 3):
        self.index = index
        self.max_lookback = max_lookback

    # ---- the contract ---------------------------------------------------------------------------------
    def rewrite(self, text: str, history: Sequence[Exchange]) -> Rewrite:
        original = text
        text = " ".join(text.split())
        history = [h for h in history if h.question.strip()]
        if not text or not history:
            return Rewrite(original, False, "standalone")
        last = history[-1]
        resolved: dict[str, str] = {}

        # 1. bare wh-questions: "why?", "and where?", "how so?"
        m = _BARE_WH.match(text)
        if m:
            question = self._swap_wh(last, m.group(1).lower())
            resolved[text] = question
            return Rewrite(question, True, self.method, resolved)

        # 2. "and then?", "what happened next?"
        if _THEN_ONLY.match(text):
            event = self._event(last)
            question = f"What happened after {event}?" if event else f"{_finish_question(last.question)} What happened next?"
            resolved[text] = question
            return Rewrite(_finish_question(question), True, self.method, resolved)

        # 3. "and his sister?", "what about the captain?"
        m = _NP_ONLY.match(text)
        if m and not self._is_clause(m.group("np")):
            np_text, np_resolved = self.resolve_pronouns(m.group("np"), history)
            question = self._substitute(last, np_text)
            question, kin = self.index.name_relatives(question)
            resolved.update(np_resolved)
            resolved[text] = question
            resolved.update(kin)
            return Rewrite(question, True, self.method, resolved)

        # 4. pronouns without an antecedent in the question
        question, pronouns = self.resolve_pronouns(text, history)
        resolved.update(pronouns)

        # 5. "what else did he find there?": the place the last turn was set in
        question, place = self.resolve_there(question, history)
        if place:
            resolved["there"] = place

        # 6. a trailing "then" / "next": the time of the previous event
        t = _TRAILING_THEN.search(question)
        if t and len(question.split()) <= 12:
            event = self._event(last)
            if event:
                event = self._pronominalise(event, question)
                question = question[:t.start()] + f" after {event}" + (t.group("q") or "?")
                resolved[t.group(0).strip(" ?.!")] = f"after {event}"
        if not resolved:
            return Rewrite(original, False, "standalone")
        question, kin = self.index.name_relatives(question)  # only where the resolver wrote an owner in
        resolved.update(kin)
        return Rewrite(_finish_question(question), True, self.method, resolved)

    def needs_context(self, text: str) -> bool:
        """Whether a turn depends on the conversation at all (used to gate a chat model)."""
        text = " ".join(text.split())
        if _BARE_WH.match(text) or _THEN_ONLY.match(text) or _TRAILING_THEN.search(text):
            return True
        m = _NP_ONLY.match(text)
        if m and not self._is_clause(m.group("np")):
            return True
        return bool(self._unbound_pronouns(text))

    # ---- pronouns -------------------------------------------------------------------------------------
    def resolve_pronouns(self, text: str, history: Sequence[Exchange]) -> tuple[str, dict[str, str]]:
        """Replace the first unbound pronoun of each family (she/he/they/it) by its referent."""
        edits: list[tuple[int, int, str]] = []
        resolved: dict[str, str] = {}
        for tok, nxt in self._unbound_pronouns(text):
            word = tok.group(0)
            lw = word.lower()
            family, role = PRONOUNS[lw]
            ref = self._referent(family, history)
            if ref is None:
                continue
            surface = ref.surface
            if role == "poss" or role == "pposs" or (role == "obj|poss" and nxt is not None
                                                     and nxt.lower() not in _AFTER_OBJECT):
                replacement = possessive(surface)
            else:
                replacement = surface
            if tok.start() == 0:
                replacement = _cap_first(replacement)
            elif replacement.startswith(("The ", "A ", "An ")) and not re.search(r"[.!?]\s*$", text[:tok.start()]):
                replacement = replacement[0].lower() + replacement[1:]
            edits.append((tok.start(), tok.end(), replacement))
            resolved[lw] = surface
        for s, e, rep in sorted(edits, reverse=True):
            text = text[:s] + rep + text[e:]
        return text, resolved

    def resolve_there(self, text: str, history: Sequence[Exchange]) -> tuple[str, str | None]:
        """Replace a place-"there" ("what did he find there?", "who lived there?") by the place of the last
        turn: the short answer to a where-question ("in the lantern room"), else the question's own place
        phrase ("... on Kestrel Point?"). An existential "there" ("was there a dog?") is left alone."""
        m = _PLACE_THERE.search(text)
        if not m or text.strip().lower().startswith("where") or _EXISTENTIAL_THERE.search(text):
            return text, None
        for ex in list(history)[::-1][:2]:
            place = self._place_of(ex)
            if place:
                return text[:m.start()] + place + text[m.end():], place
        return text, None

    def _place_of(self, ex: Exchange) -> str | None:
        if ex.question.strip().lower().startswith("where") and not ex.abstained:
            answer = ex.answer.strip().rstrip(".!?")
            first = answer.split()[0].lower() if answer.split() else ""
            if first in _WHERE_PREPS | {"on", "under", "behind", "beside", "by"} and len(answer.split()) <= 8:
                return answer[0].lower() + answer[1:]
        places = []
        for mention in self.index.mentions(ex.question):
            before = ex.question[:mention.start].split()
            prep = before[-1].lower() if before else ""
            if prep in _WHERE_PREPS | {"on", "under", "behind", "beside"} and mention.kind in ("thing", "unknown"):
                places.append(f"{prep} {_lower_det(_definite(mention).surface)}")
        return places[-1] if places else None

    def _unbound_pronouns(self, text: str) -> list[tuple[re.Match, str | None]]:
        tokens = list(_WORD_RE.finditer(text))
        mentions = self.index.binders(text)
        lower = text.lower()
        first_word = tokens[0].group(0).lower() if tokens else ""
        second_word = tokens[1].group(0).lower() if len(tokens) > 1 else ""
        wh_subject = first_word in ("who", "which") and second_word not in _BE and second_word not in ("'s",)
        out: list[tuple[re.Match, str | None]] = []
        seen: set[str] = set()
        for i, tok in enumerate(tokens):
            lw = tok.group(0).lower()
            if lw not in PRONOUNS:
                continue
            family, role = PRONOUNS[lw]
            if role == "refl" or family in seen:
                continue
            seen.add(family)
            before = [m for m in mentions if m.end <= tok.start()]
            if self._bound(family, before):
                continue
            if wh_subject and role in ("poss", "obj|poss", "pposs") and family in ("f", "m", "pl"):
                continue  # "Who lost his hat?": bound by "who"
            opens_clause = i > 1 and tokens[i - 1].group(0).lower() in _SUBORDINATORS
            if first_word == "who" and opens_clause and role == "subj" and family in ("f", "m"):
                continue  # "Who was blamed because he left the gate open?": "who" is the one who left it
            after_preposition = i > 0 and tokens[i - 1].group(0).lower() in _PREPOSITIONS
            if role in ("poss", "obj|poss") and family in ("f", "m") and after_preposition and any(
                    m.start >= tok.end() and m.kind == "person" and m.gender == family for m in mentions):
                continue  # "What did the smith find in his shoe that Tom had lost?": Tom's (cataphora inside a
                # phrase; "What did his sister tell Tom?" still asks whose sister)
            if family == "n" and self._expletive(lower, tok):
                continue
            nxt = tokens[i + 1].group(0) if i + 1 < len(tokens) else None
            if lw == "her" and nxt is None:
                nxt = None
            out.append((tok, nxt))
        return out

    @staticmethod
    def _bound(family: str, before: list[Mention]) -> bool:
        for m in before:
            if family in ("f", "m") and m.kind in ("person", "unknown") and m.gender in (family, None):
                return True
            if family == "pl" and m.kind == "plural":
                return True
            if family == "n" and (m.kind == "thing" or (m.kind == "unknown" and m.gender is None)):
                return True  # "the Brindle Fox ... when it vanished": a named creature of no stated sex
        if family == "pl" and sum(1 for m in before if m.kind == "person") >= 2:
            return True
        return False

    @staticmethod
    def _expletive(lower: str, tok: re.Match) -> bool:
        window = lower[max(0, tok.start() - 30):tok.end() + 40]
        for m in _EXPLETIVE_IT.finditer(window):
            s = max(0, tok.start() - 30) + m.start()
            e = max(0, tok.start() - 30) + m.end()
            if s <= tok.start() < e:
                return True
        return False

    def _referent(self, family: str, history: Sequence[Exchange]) -> Mention | None:
        recent = list(history)[::-1][: self.max_lookback if family != "n" else 1]  # "it": the last turn only
        for ex in recent:
            ref = self._referent_in(family, ex)
            if ref is not None:
                return ref
        if recent:
            return self._referent_in(family, recent[0], lenient=True)
        return None

    def _referent_in(self, family: str, ex: Exchange, lenient: bool = False) -> Mention | None:
        q_mentions = self.index.mentions(ex.question)
        a_mentions = [] if ex.abstained else self.index.mentions(ex.answer)
        quote_mentions = [] if ex.abstained else self.index.mentions(ex.quote)
        who_question = ex.question.strip().lower().startswith(("who ", "whom ", "whose "))
        q_names = {m.surface.lower() for m in q_mentions}
        if who_question:
            # the answer to "who gave Wren the compass?" is not Wren; and an answer sentence that opens with
            # "he ..." does not say who he is
            a_mentions = [m for m in a_mentions if m.surface.lower() not in q_names]
            if self._opens_with_pronoun(ex.answer):
                a_mentions, quote_mentions = [], []
            order = [a_mentions, q_mentions, quote_mentions]
        else:
            order = [q_mentions, a_mentions, quote_mentions]
        short_answer = len(ex.answer.split()) <= 12
        if family in ("f", "m"):
            for group in order:
                for m in group:
                    if m.kind == "person" and m.gender == family:
                        return m
            if not lenient:
                return None
            # nobody of that gender: a named character whose gender the book left unclear
            for group in order[:2]:
                for m in group:
                    if m.kind in ("person", "unknown") and m.gender is None and any(
                            _strip_possessive(w)[0] in self.index.name_words for w in m.surface.split()):
                        return m
            return None
        if family == "pl":
            for group in order:
                for m in group:
                    if m.kind == "plural":
                        return m
            people = []
            for group in order[:2]:
                for m in group:
                    if m.kind == "person" and m.surface not in [p.surface for p in people]:
                        people.append(m)
            if len(people) >= 2:
                return Mention(f"{people[0].surface} and {people[1].surface}", 0, 0, "plural")
            return None
        # "it": a what-question's short answer is the new focus ("What did he give her?" "a compass");
        # otherwise the things of the question come first
        what_question = ex.question.strip().lower().startswith(("what ", "which "))
        q_text = ex.question.lower()
        # the answer's new things only: "a brindle fox" answering a question about the Brindle Fox is not new
        a_mentions = [m for m in a_mentions if m.surface.split()[-1].lower() not in q_text]
        if not short_answer:
            # a sentence for an answer: only a name it brings in ("a White Rabbit") can be the new focus
            named = [m for m in a_mentions if m.kind in ("thing", "unknown")
                     and any(_strip_possessive(w)[0] in self.index.name_words for w in m.surface.split())]
            if what_question and named:
                return _definite(named[0])
            groups = [q_mentions]
        elif what_question:
            groups = [a_mentions, q_mentions]
        else:
            groups = [q_mentions, a_mentions]
        for group in groups:
            # "in the lantern room", "on Kestrel Point": where it happened, not what it was about
            things = [m for m in group if (m.kind == "thing" or (m.kind == "unknown" and m.gender is None))
                      and not _after_locative(ex.question, m)]
            if things:
                return _definite(things[0])
        return None

    def _opens_with_pronoun(self, answer: str) -> bool:
        """Whether the first reference to a person in ``answer`` is a pronoun ("Every Saturday he climbed...")."""
        first_pronoun = re.search(r"\b(?:he|she|they|him|them|his|her)\b", answer, re.I)
        if not first_pronoun:
            return False
        people = [m for m in self.index.mentions(answer) if m.kind in ("person", "plural", "unknown")]
        return not people or first_pronoun.start() < people[0].start

    # ---- ellipsis -------------------------------------------------------------------------------------
    def _answer_subject(self, ex: Exchange) -> str | None:
        """The person (or short phrase) a who-question's answer names."""
        if ex.abstained or not ex.answer.strip():
            return None
        q_names = {m.surface.lower() for m in self.index.mentions(ex.question)}
        if self._opens_with_pronoun(ex.answer):
            return None
        for m in self.index.mentions(ex.answer):
            if m.kind in ("person", "plural") and m.surface.lower() not in q_names:
                return m.surface
        words = ex.answer.strip().rstrip(".!").split()
        if 0 < len(words) <= 4:
            return " ".join(words)
        return None

    def _short_answer(self, ex: Exchange) -> str | None:
        if ex.abstained:
            return None
        words = ex.answer.strip().rstrip(".!").split()
        if 0 < len(words) <= 6:
            return " ".join(words)
        return None

    def _swap_wh(self, ex: Exchange, new_wh: str) -> str:
        p = _parse_question(ex.question, self.index)
        New = new_wh.capitalize()
        if p is not None:
            if p.kind == "do":
                tail = p.tail
                if p.wh in ("what", "who", "whom") and new_wh not in ("what", "who"):
                    filler = self._short_answer(ex) if p.wh == "what" else self._answer_subject(ex)
                    if filler and p.verb != "do":
                        tail = f"{filler} {tail}".strip()
                return _finish_question(f"{New} {p.aux} {p.subj} {p.verb} {tail}")
            if p.kind == "who" and new_wh != "who":
                subj = self._answer_subject(ex)
                if subj:
                    if is_past_form(p.verb):
                        aux = "did"
                    elif p.verb.endswith("s"):
                        aux = "does"
                    else:
                        aux = "do"
                    return _finish_question(f"{New} {aux} {subj} {base_of(p.verb)} {p.tail}")
            if p.kind == "be" and p.wh not in ("what", "who"):
                return _finish_question(f"{New} {p.aux} {p.subj} {p.verb} {p.tail}")
        return f"{_finish_question(ex.question)} {New}?"

    def _event(self, ex: Exchange) -> str | None:
        """The previous question as a statement: "Who found the letter?" + "Wren" -> "Wren found the letter"."""
        p = _parse_question(ex.question, self.index)
        if p is None:
            return None
        if p.kind == "do" and p.verb != "do":
            tail = p.tail
            if p.wh in ("what", "who", "whom"):
                filler = self._short_answer(ex) if p.wh == "what" else self._answer_subject(ex)
                if not filler:
                    return None
                tail = f"{filler} {tail}".strip()
            verb = past_of(p.verb) if p.aux == "did" else p.verb + ("s" if p.aux == "does" else "")
            return " ".join(f"{_lower_det(p.subj)} {verb} {tail}".split())
        if p.kind == "who":
            subj = self._answer_subject(ex)
            if subj:
                return " ".join(f"{subj} {p.verb} {p.tail}".split())
        if p.kind == "be" and p.wh not in ("what", "who"):
            return " ".join(f"{_lower_det(p.subj)} {p.aux} {p.verb} {p.tail}".split())
        return None

    def _pronominalise(self, event: str, question: str) -> str:
        """In "What did Wren do after Wren hid the letter?" the second Wren becomes "she"."""
        words = event.split()
        for m in self.index.mentions(event):
            if m.start == 0 and m.kind == "person" and m.gender and m.surface in question:
                return ("she" if m.gender == "f" else "he") + event[m.end:]
        return " ".join(words)

    def _substitute(self, ex: Exchange, np_text: str) -> str:
        """Put a new noun phrase in the previous question: "How old is Toby?" + "his sister" -> "How old is Toby's sister?"."""
        prev = ex.question.strip()
        new = self.index.mentions(np_text)
        new_kind = "thing"
        if new:
            kinds = {m.kind for m in new}
            if kinds & {"person", "plural", "unknown"}:
                new_kind = "person"
        head = np_text.split()[-1].lower() if np_text.split() else ""
        if head in ROLE_GENDER:
            new_kind = "person"
        prev_mentions = self.index.mentions(prev)
        poss = re.search(r"\b[A-Z][A-Za-z\-]+(?: [A-Z][A-Za-z\-]+)*['\u2019]s\s+[a-z]+", prev)
        if poss and re.search(r"['\u2019]s\s+[a-z]+$", np_text):
            return _finish_question(prev[:poss.start()] + np_text + prev[poss.end():])
        if new_kind == "person":
            targets = [m for m in prev_mentions if m.kind in ("person", "plural", "unknown")]
            if targets:
                t = targets[0]
                rep = np_text if t.start != 0 else _cap_first(np_text)
                return _finish_question(prev[:t.start] + rep + prev[t.end:])
        else:
            targets = [m for m in prev_mentions if m.kind == "thing"]
            if targets:
                t = targets[-1]
                return _finish_question(prev[:t.start] + np_text + prev[t.end:])
        return f"{_finish_question(prev)} What about {np_text.rstrip('?')}?"

    @staticmethod
    def _is_clause(np: str) -> bool:
        words = np.lower().split()
        if not words:
            return True
        if words[0] in _WH or words[0] in AUX:
            return True
        return any(w in AUX for w in words[1:]) or len(words) > 6


_WHERE_PREPS = {"in", "at", "inside", "into", "through", "across", "near", "from", "towards", "toward", "within",
                "around", "round", "beyond", "past"}


def _after_locative(text: str, m: Mention) -> bool:
    """"in the lantern room", "at the market": a place the question is set in (but "written on the bottle" is
    about the bottle)."""
    before = text[:m.start].split()
    if not before or text[m.start:m.end] != m.surface:
        return False
    prep = before[-1].lower()
    # "on Kestrel Point" is a place too (a named one); "written on the bottle" stays about the bottle
    return prep in _WHERE_PREPS or (prep == "on" and m.surface.split()[-1][:1].isupper())


def _definite(m: Mention) -> Mention:
    """A thing introduced as "a brass compass" is "the brass compass" when mentioned again."""
    first, _, rest = m.surface.partition(" ")
    if first.lower() in ("a", "an") and rest:
        return Mention("the " + rest, m.start, m.end, m.kind, m.gender)
    return m


def _lower_det(subj: str) -> str:
    first, _, rest = subj.partition(" ")
    if first in ("The", "A", "An", "His", "Her", "Their", "Its"):
        return (first.lower() + " " + rest).strip()
    return subj


# --------------------------------------------------------------------------------------------------------
# A chat model as condenser
# --------------------------------------------------------------------------------------------------------

CONDENSE_SYSTEM = (
    "You rewrite a reader's follow-up question about a novel into a standalone question that can be "
    "understood without the conversation. Replace pronouns and elliptical references (\"why?\", \"and his "
    "sister?\", \"what did she do then?\") with the names and things they refer to in the conversation. "
    "If the question is already standalone, return it exactly as it is. Do not answer it. Reply with the "
    "question only, on one line."
)
CONDENSE_HUMAN = "Conversation so far:\n{history}\n\nFollow-up question: {question}\nStandalone question:"


@lru_cache(maxsize=4)
def load_chat_model(spec: str) -> Any:
    """A LangChain chat model from ``settings.chat_model``.

    * a local folder (a transformers causal LM with a chat template) -> langchain-huggingface's
      ``ChatHuggingFace`` over a ``HuggingFacePipeline`` (runs here, offline);
    * ``provider:model`` (e.g. ``ollama:llama3.1``) -> ``langchain.chat_models.init_chat_model``, which
      needs that provider's integration package (``langchain-ollama`` for Ollama).
    Raises VignetteError saying what is missing.
    """
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        try:
            from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
            from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
        except ImportError as err:  # pragma: no cover - both are in requirements
            raise VignetteError(f"The chat model {spec} needs langchain-huggingface and transformers ({err}).")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path))
        except (OSError, ValueError) as err:
            raise VignetteError(f"Could not load the chat model in {path}: {err}") from None
        if getattr(tokenizer, "chat_template", None) is None:
            raise VignetteError(f"The model in {path} has no chat template, so it cannot be used as a chat model.",
                                hint="Use an instruction-tuned model (e.g. a *-Instruct checkpoint).")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, max_new_tokens=48, do_sample=False,
                        return_full_text=False)
        llm = HuggingFacePipeline(pipeline=pipe, model_id=str(path))
        return ChatHuggingFace(llm=llm, tokenizer=tokenizer, model_id=str(path))
    if ":" not in spec:
        raise VignetteError(
            f"The chat model {spec!r} is neither a local model folder nor 'provider:model'.",
            hint="Examples: VIGNETTE_CHAT_MODEL=ollama:llama3.1, or a folder holding an instruction-tuned "
                 "transformers model.")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as err:  # pragma: no cover
        raise VignetteError(f"langchain is not installed ({err}).")
    provider = spec.split(":", 1)[0]
    try:
        return init_chat_model(spec, temperature=0)
    except ImportError as err:
        raise VignetteError(
            f"The chat model {spec!r} needs the LangChain integration for {provider!r}, which is not installed.",
            hint=f"Install it (for Ollama: pip install langchain-ollama), or unset VIGNETTE_CHAT_MODEL to use "
                 f"the offline resolver. ({err})") from None
    except ValueError as err:
        raise VignetteError(f"The chat model {spec!r} is not understood: {err}") from None


def _format_history(history: Sequence[Exchange], turns: int = 3) -> str:
    lines = []
    for ex in list(history)[-turns:]:
        lines.append(f"Reader: {ex.question}")
        answer = "(the book doesn't say)" if ex.abstained else " ".join(ex.answer.split())[:300]
        lines.append(f"Vignette: {answer}")
    return "\n".join(lines)


def _clean_model_output(raw: str) -> str:
    for line in raw.strip().splitlines():
        line = line.strip().strip("\"'\u201c\u201d").strip()
        line = re.sub(r"^(standalone question|question|rewritten question)\s*:\s*", "", line, flags=re.I)
        line = line.strip().strip("\"'\u201c\u201d").strip()
        if line:
            return line
    return ""


def _grounded_in(question: str, text: str, history: Sequence[Exchange], min_share: float = 0.6) -> bool:
    """A condensed question reuses the conversation's words: most of its words must occur in the follow-up,
    the recent questions and answers, or be function words. Guards against a model that rambles."""
    vocab = set(FUNCTION_WORDS) | set(PRONOUNS)
    for chunk in [text] + [f"{h.question} {h.answer} {h.quote}" for h in list(history)[-3:]]:
        vocab.update(w.lower() for w in _WORD_RE.findall(chunk))
    words = [w.lower() for w in _WORD_RE.findall(question)]
    if not words:
        return False
    known = sum(1 for w in words if w in vocab or _strip_possessive(w)[0] in vocab)
    return known / len(words) >= min_share


class ChatCondenser:
    """Condense a follow-up with a chat model (the "condense question" prompt of conversational retrieval).

    The offline resolver decides first whether the turn depends on the conversation at all; a standalone
    question never reaches the model, so it can never be rewritten into something else. When the model
    cannot be loaded, or answers with nothing usable, the offline resolver's rewrite is used and ``note``
    says why.
    """

    def __init__(self, spec: str | None, resolver: OfflineResolver, model: Any | None = None):
        self.spec = spec
        self.resolver = resolver
        self._model = model
        self.error: str | None = None

    @property
    def name(self) -> str:
        return f"chat:{self.spec or type(self._model).__name__}"

    def model(self) -> Any | None:
        if self._model is None and self.error is None and self.spec:
            try:
                self._model = load_chat_model(self.spec)
            except VignetteError as err:
                self.error = err.message + (f" {err.hint}" if err.hint else "")
                log.warning("chat model unavailable: %s", self.error)
        return self._model

    def rewrite(self, text: str, history: Sequence[Exchange]) -> Rewrite:
        history = [h for h in history if h.question.strip()]
        if not history or not self.resolver.needs_context(text):
            return Rewrite(text, False, "standalone")
        offline = self.resolver.rewrite(text, history)
        model = self.model()
        if model is None:
            offline.note = f"chat model unavailable ({self.error}); the offline resolver rewrote the question"
            return offline
        try:
            from langchain_core.prompts import ChatPromptTemplate

            prompt = ChatPromptTemplate.from_messages([("system", CONDENSE_SYSTEM), ("human", CONDENSE_HUMAN)])
            message = (prompt | model).invoke({"history": _format_history(history), "question": text})
            raw = message.content if hasattr(message, "content") else str(message)
            if isinstance(raw, list):  # content blocks
                raw = " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in raw)
        except Exception as err:  # a server that is down, a model that fails: never lose the turn
            offline.note = f"the chat model failed ({type(err).__name__}: {err}); the offline resolver rewrote the question"
            return offline
        question = _clean_model_output(str(raw))
        if not question or len(question) > max(300, 3 * len(text) + 200) or not re.search(r"[A-Za-z]", question):
            offline.note = "the chat model gave no usable question; the offline resolver rewrote it"
            return offline
        if not _grounded_in(question, text, history):
            offline.note = ("the chat model's rewrite used words from neither the question nor the conversation "
                            f"({question[:60]!r}); the offline resolver rewrote it")
            return offline
        question = _finish_question(question)
        return Rewrite(question, question != text, self.name, offline.resolved)


def make_rewriter(settings: Any, index: CharacterIndex, model: Any | None = None) -> OfflineResolver | ChatCondenser:
    resolver = OfflineResolver(index)
    if model is not None or getattr(settings, "chat_model", None):
        return ChatCondenser(getattr(settings, "chat_model", None), resolver, model=model)
    return resolver


def history_from_records(records: Iterable[dict[str, Any]]) -> list[Exchange]:
    """The memory's turn records -> the exchanges the rewriters read: questions asked (with what the book
    answered) and scenes described for a picture ("draw the captain on the bridge", then "why is he there?")."""
    out = []
    for r in records:
        if r.get("question"):
            out.append(Exchange.from_record(r))
        elif r.get("scene"):
            out.append(Exchange(question=str(r["scene"])))
    return out
