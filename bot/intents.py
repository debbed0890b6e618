"""What a turn asks for: a question, a picture, both, a spoiler limit, help, or small talk.

A small rule-based classifier (regular expressions over the whole turn, checked in a fixed order), so
it is instant, predictable and explainable; it never calls retrieval. Kinds:

* ``ask``        - a question about the book (the default for anything else that is not empty)
* ``illustrate`` - draw the last answer ("draw it"), or a described scene ("draw the captain on the bridge")
* ``both``       - answer and draw ("show me where the sisters met the stranger")
* ``spoiler``    - set the spoiler limit ("I've read up to chapter 10", "I'm on chapter 3"); a question
                   after it in the same turn is answered under the new limit
* ``help``       - what Vignette can do
* ``smalltalk``  - "hello", "thanks", "bye"... answered without touching the book
* ``empty``      - nothing typed
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Intent", "classify", "parse_chapter_number", "KINDS"]

KINDS = ("ask", "illustrate", "both", "spoiler", "help", "smalltalk", "empty")


@dataclass
class Intent:
    kind: str
    text: str = ""  # ask/both: the question; illustrate: the scene described ("" = the last answer); spoiler: a question that followed
    chapter: int | None = None  # spoiler: the last chapter read
    clear_limit: bool = False  # spoiler: the reader has finished the book (no limit)
    smalltalk: str | None = None  # greeting, thanks, bye, how_are_you, ack

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
}
_ROMAN = re.compile(r"^(?=[mdclxvi])m{0,4}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$", re.I)
_NUM = r"([-\u2212]\s?\d{1,4}|\d{1,4}|[ivxlcdm]{1,8}|(?:twenty|thirty|forty|fifty)[\s-](?:one|two|three|four|five|six|seven|eight|nine)|" \
       + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"


def parse_chapter_number(token: str) -> int | None:
    """"10" -> 10, "x" -> 10, "ten" -> 10, "twenty-one" -> 21, "-3" -> -3; None when it is not a number."""
    t = token.strip().lower()
    if t.isdigit():
        return int(t)
    m = re.match(r"^[-\u2212]\s?(\d+)$", t)
    if m:
        return -int(m.group(1))
    if t in _NUMBER_WORDS:
        return _NUMBER_WORDS[t]
    m = re.match(r"^(twenty|thirty|forty|fifty)[\s-](\w+)$", t)
    if m and m.group(2) in _NUMBER_WORDS:
        return _NUMBER_WORDS[m.group(1)] + _NUMBER_WORDS[m.group(2)]
    if t and _ROMAN.match(t):
        values = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}
        total = 0
        for a, b in zip(t, t[1:] + " "):
            va, vb = values[a], values.get(b, 0)
            total += -va if va < vb else va
        return total or None
    return None


# ---- small talk and help -------------------------------------------------------------------------------
_GREETING = r"(?:hello|hi|hey|hiya|howdy|greetings|good\s+(?:morning|afternoon|evening|day)|yo|hallo|bonjour)"
_SMALLTALK = [
    ("greeting", re.compile(rf"^{_GREETING}(?:\s+(?:there|vignette|again|friend|everyone))?[\s!.,]*$", re.I)),
    ("thanks", re.compile(r"^(?:(?:thanks|thank\s+you|thx|ty|cheers|ta|many\s+thanks)(?:\s+(?:so\s+much|a\s+lot|very\s+much|"
                          r"again|vignette))*|(?:that'?s|that\s+is)\s+(?:great|helpful|perfect|lovely|brilliant)"
                          r"(?:,?\s+thanks)?)[\s!.,]*$", re.I)),
    ("bye", re.compile(r"^(?:bye|goodbye|good\s*bye|see\s+you(?:\s+later)?|good\s*night|farewell|cya|ciao)[\s!.,]*$", re.I)),
    ("how_are_you", re.compile(r"^(?:how\s+are\s+you(?:\s+today)?|how'?s\s+it\s+going|how\s+do\s+you\s+do|"
                               r"what'?s\s+up)[\s?!.,]*$", re.I)),
    ("ack", re.compile(r"^(?:ok(?:ay)?|k|cool|great|nice|lovely|i\s+see|got\s+it|alright|all\s+right|sure|"
                       r"wow|interesting|hmm+|oh|ah|yes|no|yep|nope)[\s!.,]*$", re.I)),
]
_HELP = re.compile(r"^(?:help|\?+|h|commands|usage|instructions|menu|what\s+can\s+(?:you|i)\s+do(?:\s+here)?|"
                   r"how\s+does\s+(?:this|it)\s+work|how\s+do\s+i\s+use\s+(?:this|you|it)|what\s+are\s+you|"
                   r"who\s+are\s+you|what\s+should\s+i\s+ask(?:\s+you)?|what\s+do\s+you\s+do)[\s?!.]*$", re.I)
_LEADING_GREETING = re.compile(rf"^{_GREETING}(?:\s+(?:there|vignette))?\s*[,!.]+\s*(?=\S)", re.I)

# ---- spoiler limit -------------------------------------------------------------------------------------
# "chapter 3", "letter 4", "stave two"; the part may be named around it ("book 2, chapter 3", "chapter 3 of
# part two"): the agent reads it from the turn's text when the book's numbering restarts in each part.
_PART_WORD = r"(?:book|part|volume|vol\.?|epilogue)\s+(?:the\s+)?[a-z0-9]+"
_CH = (rf"(?:{_PART_WORD}\s*,?\s+)?(?:chapter|ch\.?|chap\.?|letter|stave|canto)\s+{_NUM}"
       rf"(?:\s*,?\s+(?:of|in)\s+{_PART_WORD}\b)?")
_SPOILER = [
    # "I've read up to chapter 10", "I have read until chapter 4", "I've finished chapter 3", "I'm on chapter 3"
    re.compile(rf"^\s*(?:so\s+far\s+)?i\s*(?:'ve|\u2019ve|\s+have|'m|\u2019m|\s+am|\s+just|\s+only)?\s*(?:just\s+|only\s+|now\s+)?"
               rf"(?:read|reached|finished|completed|got\s+to|gotten\s+to|stopped\s+at|on|at|in|up\s+to|reading)\s+"
               rf"(?:up\s+to\s+|until\s+|till\s+|through\s+|as\s+far\s+as\s+|to\s+)?(?:the\s+end\s+of\s+)?{_CH}\b", re.I),
    # "I've read 5 chapters", "I've read the first three chapters"
    re.compile(rf"^\s*i\s*(?:'ve|\u2019ve|\s+have)?\s*(?:only\s+|just\s+)?(?:read|finished)\s+(?:the\s+first\s+)?{_NUM}\s+chapters?\b", re.I),
    # "spoiler limit 6", "set the spoiler limit to chapter 6", "limit to chapter 6", "no spoilers past chapter 2"
    re.compile(rf"^\s*(?:please\s+)?(?:set\s+)?(?:the\s+|my\s+)?(?:spoiler\s+limit|limit|spoilers?)\s*(?:to|at|is|:|=)?\s*"
               rf"(?:chapter\s+|ch\.?\s+)?{_NUM}\b", re.I),
    re.compile(rf"^\s*(?:please\s+)?(?:no|don'?t|do\s+not)\s+(?:spoilers?|spoil\s+(?:anything|it|the\s+book)?)\s*"
               rf"(?:past|after|beyond|later\s+than|from\s+after)\s+{_CH}\b", re.I),
    re.compile(rf"^\s*(?:only\s+)?(?:up\s+to|until|through)\s+{_CH}\s*(?:only|please)?\b", re.I),
]
_CLEAR = re.compile(r"^\s*(?:i\s*(?:'ve|\u2019ve|\s+have)?\s*(?:finished|read|completed)\s+(?:the\s+(?:whole\s+|entire\s+)?"
                    r"(?:book|novel|story)|it\s+all|everything|all\s+of\s+it|the\s+lot)|no\s+(?:spoiler\s+)?limit|"
                    r"(?:clear|remove|reset)\s+(?:the\s+|my\s+)?(?:spoiler\s+)?limit|spoilers?\s+(?:are\s+)?(?:fine|ok(?:ay)?|"
                    r"welcome)|spoil\s+away)\b[\s!.,]*", re.I)

# ---- illustration --------------------------------------------------------------------------------------
_DRAW_VERB = r"(?:draw|illustrate|paint|sketch|depict|picture|render|visuali[sz]e|imagine)"
_POLITE = r"(?:(?:please|pls|now|ok(?:ay)?|so)\s*,?\s+)?(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|i'?d\s+like\s+(?:you\s+)?to\s+|" \
          r"i\s+want\s+(?:you\s+)?to\s+|let'?s\s+|go\s+ahead\s+and\s+)?(?:please\s+)?"
_DRAW = re.compile(rf"^\s*{_POLITE}{_DRAW_VERB}\b\s*(?:me\s+|for\s+me\s+|us\s+)?(?P<rest>.*?)[\s?!.]*$", re.I)
_PICTURE = re.compile(rf"^\s*{_POLITE}(?:show|give|make|create|generate|get|paint|draw)\s+(?:me\s+|us\s+)?"
                      r"(?:a|an|the|one|another|some)?\s*(?:picture|image|illustration|drawing|painting|sketch|pic|"
                      r"portrait|scene|vignette)s?\b\s*(?:of\s+|for\s+|showing\s+|with\s+)?(?P<rest>.*?)[\s?!.]*$", re.I)
_SHOW_ME_WH = re.compile(rf"^\s*{_POLITE}(?:show|let\s+me\s+see)\s+(?:me\s+|us\s+)?(?P<wh>where|how|who|what|when|which)\s+"
                         r"(?P<rest>.+?)[\s?!.]*$", re.I)
_SHOW_ME_NP = re.compile(rf"^\s*{_POLITE}show\s+(?:me|us)\s+(?P<rest>(?:the|a|an|his|her|their|[A-Z]).+?)[\s?!.]*$", re.I)
_LAST_ANSWER = re.compile(r"^(?:it|that|this|them|those|the\s+(?:last\s+|previous\s+)?(?:answer|scene|one|moment|passage|quote)|"
                          r"that\s+(?:scene|moment|one|passage|answer|quote)|this\s+(?:scene|moment|one)|"
                          r"the\s+scene\s+(?:above|again)|it\s+again|that\s+again|again|me\s+(?:that|this|it)|"
                          r"(?:that|this|it)\s+for\s+me|one|something|a\s+picture|an\s+image)?$", re.I)


def classify(text: str) -> Intent:
    """The intent of one turn. Never raises; never touches the book."""
    raw = text or ""
    t = " ".join(raw.split())
    if not t:
        return Intent("empty")

    # 1. small talk and help, only when that is the whole turn
    for name, pattern in _SMALLTALK:
        if pattern.match(t):
            return Intent("smalltalk", smalltalk=name)
    if _HELP.match(t):
        return Intent("help")

    # 2. a greeting in front of a real request: "Hi! Who found the letter?"
    g = _LEADING_GREETING.match(t)
    if g:
        return classify(t[g.end():])

    # 3. the spoiler limit (possibly followed by a question in the same turn)
    if _CLEAR.match(t):
        rest = _CLEAR.sub("", t, count=1).strip(" ,.;:-")
        return Intent("spoiler", text=_follow_on(rest), clear_limit=True)
    for pattern in _SPOILER:
        m = pattern.match(t)
        if m:
            number = next((g for g in m.groups() if g), None)
            chapter = parse_chapter_number(number) if number else None
            if chapter is not None:
                rest = t[m.end():].strip(" ,.;:-!")
                return Intent("spoiler", text=_follow_on(rest), chapter=chapter)

    # 4. pictures
    m = _SHOW_ME_WH.match(t)
    if m:
        return Intent("both", text=_question_from_clause(m.group("wh"), m.group("rest")))
    m = _PICTURE.match(t) or _DRAW.match(t)
    if m:
        scene = re.sub(r"(?:[\s,]+(?:please|pls|for\s+me|now|again))+$", "", m.group("rest").strip(), flags=re.I)
        if _LAST_ANSWER.match(scene):
            return Intent("illustrate", text="")
        return Intent("illustrate", text=_strip_scene(scene))
    m = _SHOW_ME_NP.match(t)
    if m:
        return Intent("illustrate", text=_strip_scene(m.group("rest")))

    # 5. everything else is a question about the book
    return Intent("ask", text=t)


def _follow_on(rest: str) -> str:
    """After "I'm on chapter 3", an optional question: ", who is the stranger?" -> "who is the stranger?"."""
    rest = re.sub(r"^(?:and|so|now|but|then)\s*,?\s+", "", rest.strip(), flags=re.I).strip()
    rest = re.sub(r"^(?:chapters?\b|,)\s*", "", rest).strip()
    if len(rest.split()) < 2:
        return ""
    return rest[0].upper() + rest[1:]


def _strip_scene(scene: str) -> str:
    scene = re.sub(r"^(?:of|for|showing|with|this\s*:|that\s*:)\s*", "", scene.strip(), flags=re.I)
    return scene.strip(" ,.;:")


def _question_from_clause(wh: str, clause: str) -> str:
    """"where" + "the sisters met the stranger" -> "Where did the sisters meet the stranger?"."""
    from bot.followups import base_of, irregular_base, is_irregular_verb

    words = clause.rstrip(" ?.!").split()
    wh_cap = wh.capitalize()
    if not words:
        return wh_cap + "?"
    # "show me who found the letter": the clause already is a question with a subject gap
    if wh.lower() in ("who", "what", "which") and (irregular_base(words[0]) is not None or words[0].lower().endswith("ed")
                                                    or words[0].lower() in ("was", "were", "is", "are")):
        return f"{wh_cap} {' '.join(words)}?"
    # find the first verb after the subject: an irregular past form or a regular -ed
    for i, w in enumerate(words[1:], start=1):
        lw = w.lower()
        if lw in ("was", "were", "is", "are", "had", "has"):
            subject = " ".join(words[:i])
            return f"{wh_cap} {lw} {subject} {' '.join(words[i + 1:])}".strip() + "?"
        if (irregular_base(lw) is not None and not is_irregular_verb(lw)) or (lw.endswith("ed") and len(lw) > 3):
            subject = " ".join(words[:i])
            rest = " ".join(words[i + 1:])
            return f"{wh_cap} did {subject} {base_of(lw)} {rest}".strip() + "?"
    return f"{wh_cap} {' '.join(words)}?"
