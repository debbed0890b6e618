"""Character sheets: who the main characters are and what they look like, read from the book.

1. **Names** (:func:`analyse_names`): capitalised words that occur mid-sentence (a word capitalised only at
   the start of sentences is a common word), are rarely written in lower case, and are not places or
   things (mostly after "the", or after "in/at/to/from/of", or before Rock/Street/Hall...). Full names
   ("Cordelia Vane") and titles ("Mrs Vane", "Captain Dunmore") join a first name and a surname into one
   character; a surname shared by two first names (the Tolley children) joins nobody.
2. **Appearance** (:func:`build_character_sheets`): sentences (``retrieval.text.split_sentences``) that
   name the character, or that follow one naming it and continue with the matching he/she, and that
   contain appearance words (hair, eyes, beard, scarf, coat, spectacles, colours, tall/stout...). From
   each, the appearance noun phrases nearest the character are kept ("red wool scarf", "copper-red hair",
   "coat of green velvet" -> "green velvet coat", "his hair was silver-grey" -> "silver-grey hair").
3. **Condensing**: the phrases, most frequent first, at most :data:`MAX_PHRASES`, one per feature, make
   the description ("small girl, copper-red hair, red wool scarf").

The sheets are stored as ``characters.json`` in the book's folder (``BookStore.book_dir``). A description
edited by the user is marked ``edited`` and survives every rebuild.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vignette.errors import VignetteError

SHEETS_FILE = "characters.json"
MAX_PHRASES = 6
MAX_CHARACTERS = 16
MIN_MENTIONS = 3

# --- word lists -----------------------------------------------------------------------------------------

TITLES = set(
    """
    Mr Mrs Miss Ms Dr Sir Lady Lord Captain Capt Colonel Major Madame Mademoiselle Monsieur Professor
    Father Mother Aunt Uncle Old Young Little Master Mistress Dame Doctor Reverend Rev Inspector
    Sergeant Lieutenant Princess Prince Queen King Count Countess Duke Duchess Baron Sister Brother
    Granny Grandfather Grandmother Cousin Saint St
    """.split()
)
# Capitalised words that are never names (pronouns, days, months, exclamations, words of address).
NOT_NAMES = (
    set(
        """
    I The A An He She It They We You His Her Its Their Our My Your This That These Those There Here Then
    When Where What Who Why How And But Or If So Yes No Not Oh Ah Well Now God Lord Heaven Chapter
    CHAPTER Book Part Volume Letter Monday Tuesday Wednesday Thursday Friday Saturday Sunday January
    February March April May June July August September October November December Christmas Easter
    English French Sir Madam Ma'am Mister OK Nobody Somebody Everyone Everybody Anyone
    """.split()
    )
    | TITLES
)
PLACE_NOUNS = set(
    """
    Rock Point Square Hall Street Lane Road Light Harbour Harbor Bay House Castle Church Chapel Abbey
    Bridge Park Hill Hills Island Isle Wood Woods Forest River Inn Tower Cove Head Cliff Cliffs Moor
    Manor Court Place Gate Market Mill Farm Cottage Lodge Green Common Sea Lake Valley Mountain
    Mountains Port Town City Village Station Quay Field Fields Gardens Garden Row Walk Heath Down Downs
    Marsh Ford Cathedral Palace Hospital School College Street's
    """.split()
)
PLACE_PREPS = set(
    """
    in at to from of near into towards toward across over through beyond round around past on off reach
    reached left visit visited
    """.split()
)
SPEECH_VERBS = set(
    """
    said asked cried replied answered shouted whispered called muttered exclaimed added went says
    laughed sighed murmured snapped growled began
    """.split()
)

BODY = set(
    """
    hair plait plaits braid braids curls ringlets beard moustache mustache whiskers sideburns eyes eye
    eyebrows brows face cheeks complexion skin nose mouth lips teeth tooth chin jaw ear ears scar
    freckles forehead head hands fingers knuckles shoulders arms legs limp tail fur coat_of_fur
    """.split()
)
CLOTHES = set(
    """
    scarf headscarf coat overcoat greatcoat cloak cape jacket jersey sweater jumper waistcoat shirt
    blouse dress gown nightgown frock skirt apron shawl hat bonnet cap bowler hood boots shoes slippers
    gloves glove mittens spectacles glasses monocle ring earring earrings necklace locket brooch buttons
    cane pipe uniform trousers breeches stockings belt collar veil ribbon ribbons bow tie cravat sash
    oilskins smock robe tunic kilt eyepatch crutch stick umbrella satchel bag
    """.split()
)
FEATURES = BODY | CLOTHES
# Features worth naming even without a modifier ("a scar", "spectacles").
STANDALONE = {
    "scar",
    "beard",
    "moustache",
    "mustache",
    "whiskers",
    "spectacles",
    "monocle",
    "freckles",
    "eyepatch",
    "limp",
    "crutch",
    "earring",
    "earrings",
    "cane",
    "sideburns",
}
COLOURS = set(
    """
    red scarlet crimson copper auburn ginger orange yellow golden gold fair blond blonde flaxen brown
    chestnut hazel green blue grey gray silver white black dark pale milky clouded rosy ruddy purple
    violet pink crimson tawny sandy raven jet ivory brass bronze olive navy russet
    """.split()
)
DESCRIPTORS = set(
    """
    long short curly curling straight wavy thick thin bushy shaggy round wool woollen woolen velvet
    leather kid silk silken tweed flannel cotton linen fur patched torn shaved shaven bald broad small
    tall neat tight knitted battered ragged tattered shabby wide-brimmed bright shining sharp hooked
    crooked pointed large big tiny heavy deep piercing left right front single wild untidy tangled oiled
    grizzled wrinkled weathered freckled sunburnt tanned square narrow high low stiff starched spotless
    faded old new fine plain striped checked oilskin fisherman's sailor's bowler cocked top floppy
    pinned plaited braided loose flowing drooping one two gap-toothed silver-grey copper-red iron-grey
    snow-white jet-black sea-green sky-blue blood-red
    """.split()
)
MODIFIERS = COLOURS | DESCRIPTORS
STATURE = set(
    """
    tall short small little thin skinny stout fat plump broad heavy slender slight lean gaunt wiry
    stooped hunched bent bald bearded freckled round rosy burly lanky elderly frail sturdy muscular
    shaggy portly petite
    """.split()
)
STATURE_FORMS = {
    "tallest": "tall",
    "taller": "tall",
    "smallest": "small",
    "smaller": "small",
    "thinnest": "thin",
    "shortest": "short",
    "stoutest": "stout",
    "broadest": "broad",
    "oldest": "old",
    "youngest": "young",
}
PERSON_NOUNS = set(
    """
    man woman girl boy lad lass fellow figure child person lady gentleman dog cat horse creature giant
    old men women sailor fisherman figure bird
    """.split()
)
HEAD_NOUNS = set(
    """
    man woman girl boy lad lass lady gentleman child dog cat horse fellow creature giant
    """.split()
)
HE = {"he", "him", "his", "himself"}
SHE = {"she", "her", "hers", "herself"}
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*[A-Za-z]|[A-Za-z]|[,;:.!?\u2014()\"\u201c\u201d]")
_OPENERS = "\"'\u201c\u2018(["


# --- names ------------------------------------------------------------------------------------------------


@dataclass
class Character:
    name: str  # display name, e.g. "Cordelia Vane" (a full name when the book gives one)
    aliases: list[str]  # every form that names them: "Cordelia Vane", "Mrs Vane", "Vane", "Cordelia"
    mentions: int
    pronoun: str | None  # "he", "she" or None (unknown)


@dataclass
class NameIndex:
    characters: list[Character]  # most mentioned first
    places: list[tuple[str, int]]  # ("Gullstone Rock", 12), most mentioned first

    def named_in(self, text: str) -> list[Character]:
        """Characters any of whose names occur in ``text`` (whole words), in order of first occurrence."""
        found = []
        for ch in self.characters:
            pos = _first_alias_position(text, ch.aliases)
            if pos is not None:
                found.append((pos, ch))
        return [ch for _, ch in sorted(found, key=lambda p: p[0])]

    def places_in(self, text: str) -> list[str]:
        found = []
        for place, _ in self.places:
            m = re.search(r"\b" + re.escape(place) + r"\b", text)
            if m:
                found.append((m.start(), place))
        names = [p for _, p in sorted(found)]
        # drop a place contained in a longer one found ("Gullstone" inside "Gullstone Rock")
        return [p for p in names if not any(p != q and p in q for q in names)]


def _first_alias_position(text: str, aliases: Iterable[str]) -> int | None:
    best = None
    for alias in aliases:
        m = re.search(r"(?<![A-Za-z])" + re.escape(alias) + r"(?![A-Za-z])", text)
        if m and (best is None or m.start() < best):
            best = m.start()
    return best


def _tokens(text: str, start: int, end: int) -> list[tuple[str, int, bool]]:
    """(word, offset, sentence_initial) for each word of a sentence; a word after an opening quote counts
    as sentence-initial too (dialogue starts with a capital)."""
    out = []
    initial = True
    for m in _WORD.finditer(text, start, end):
        w = m.group(0).replace("\u2019", "'")
        if len(w) == 1 and not w.isalpha():
            if w in '"\u201c(' or w in ".!?":
                initial = True
            continue
        prev = text[m.start() - 1] if m.start() > 0 else " "
        out.append((w, m.start(), initial or prev in _OPENERS))
        initial = False
    return out


def _base(word: str) -> str:
    return word[:-2] if word.endswith("'s") else word


def _is_capitalised_word(word: str) -> bool:
    """'Wren', 'Kestrel' yes; 'I'm', 'CHAPTER', 'the' no."""
    return (
        len(word) > 1
        and word[0].isupper()
        and word[1:].replace("-", "").isalpha()
        and word[1:].replace("-", "").islower()
    )


def _adjacent(text: str, left: tuple[str, int, bool], right: tuple[str, int, bool]) -> bool:
    """Two words separated by exactly one space (no punctuation between them)."""
    return text[left[1] + len(left[0]) : right[1]] == " "


def analyse_names(book) -> NameIndex:
    """Characters and places of ``book`` (see the module docstring). Pure Python; a novel takes well under
    a second."""
    key = (book.book_id, len(book.text), hash(book.text[:2000]), hash(book.text[-2000:]))
    if key in _NAME_CACHE:
        return _NAME_CACHE[key]
    from retrieval.text import split_sentences

    text = book.text
    lower_counts = Counter(w.lower() for w in re.findall(r"\b[a-z][a-z'-]*\b", text))
    mid = Counter()  # capitalised, not sentence-initial
    total = Counter()
    placeish = Counter()
    personish = Counter()
    the_before = Counter()
    bigrams = Counter()
    sentences = split_sentences(text)
    heading_lines = {(c.start) for c in getattr(book, "chapters", [])}
    for s, e in sentences:
        if s in heading_lines:
            continue
        toks = _tokens(text, s, e)
        run_after_the = False  # inside a capitalised run that follows "the" ("the Black Heron")
        for i, (w, _, initial) in enumerate(toks):
            b = _base(w)
            if not _is_capitalised_word(b):
                run_after_the = False
                continue
            total[b] += 1
            prev = toks[i - 1][0] if i > 0 else ""
            nxt = toks[i + 1][0] if i + 1 < len(toks) else ""
            if not initial:
                mid[b] += 1
            adjacent_prev = i > 0 and _adjacent(text, toks[i - 1], toks[i])
            if prev.lower() == "the" and adjacent_prev:
                run_after_the = True
            elif not (adjacent_prev and _is_capitalised_word(_base(prev))):
                run_after_the = False
            if run_after_the:
                the_before[b] += 1
            if prev.lower() in PLACE_PREPS or nxt in PLACE_NOUNS:
                placeish[b] += 1
            if (
                prev in TITLES
                or prev.lower() in SPEECH_VERBS
                or nxt.lower() in SPEECH_VERBS
                or w.endswith("'s")
            ):
                personish[b] += 1
            if i + 1 < len(toks) and _adjacent(text, toks[i], toks[i + 1]) and not w.endswith("'s"):
                n2 = _base(toks[i + 1][0])
                if _is_capitalised_word(n2):
                    bigrams[(b, n2)] += 1

    def is_name_word(w: str) -> bool:
        if w in NOT_NAMES or w in PLACE_NOUNS or len(w) < 2:
            return False
        m = mid[w]
        if m < 2:
            return False
        if lower_counts.get(w.lower(), 0) > 0.25 * total[w]:
            return False  # an ordinary word that is sometimes capitalised
        if the_before[w] > 0.3 * total[w]:
            return False  # "the Marigold", "the Needles": a thing
        if placeish[w] > 0.5 * total[w] and personish[w] < 0.2 * total[w]:
            return False
        return True

    name_words = {w for w in total if is_name_word(w)}
    # Full names and titles join words into characters.
    first_names_of: dict[str, set[str]] = defaultdict(set)
    for (a, b), n in bigrams.items():
        if a in name_words and b in name_words:
            first_names_of[b].add(a)
    parent = {w: w for w in name_words}

    def find(w):
        while parent[w] != w:
            parent[w] = parent[parent[w]]
            w = parent[w]
        return w

    ambiguous = {surname for surname, firsts in first_names_of.items() if len(firsts) > 1}
    for surname, firsts in first_names_of.items():
        if surname in ambiguous:
            continue
        for first in firsts:
            if first in ambiguous:
                continue
            parent[find(first)] = find(surname)
    groups: dict[str, set[str]] = defaultdict(set)
    for w in name_words - ambiguous:
        groups[find(w)].add(w)

    characters = []
    for members in groups.values():
        aliases = set(members)
        display = max(members, key=lambda w: (total[w], w))
        full = [(n, f"{a} {b}") for (a, b), n in bigrams.items() if a in members and b in members]
        titled = [(n, f"{a} {b}") for (a, b), n in bigrams.items() if a in TITLES and b in members]
        for _, form in full + titled:
            aliases.add(form)
        if full:
            display = max(full)[1]
        elif titled and 2 * max(titled)[0] >= total[display]:
            display = max(titled)[1]  # known mostly with a title: "Captain Dunmore"
        mentions = sum(total[m] for m in members) - sum(n for n, _ in full)
        if mentions < MIN_MENTIONS or not any(personish[m] for m in members):
            continue  # never titled, never speaking, never owning anything: a firm, a ship, a house
        characters.append(
            Character(
                name=display, aliases=sorted(aliases, key=len, reverse=True), mentions=mentions, pronoun=None
            )
        )
    characters.sort(key=lambda c: -c.mentions)
    characters = characters[:MAX_CHARACTERS]
    _guess_pronouns(text, sentences, characters)

    # Places: "X Rock"-style pairs, and capitalised words mostly found after in/at/to/from/of.
    places = Counter()
    for (a, b), n in bigrams.items():
        if (
            b in PLACE_NOUNS
            and a not in NOT_NAMES
            and a not in name_words
            and lower_counts.get(a.lower(), 0) < n
        ):
            places[f"{a} {b}"] += n
    for w in total:
        if w in NOT_NAMES or w in name_words or w in PLACE_NOUNS or mid[w] < 2:
            continue
        if lower_counts.get(w.lower(), 0) > 0.25 * total[w]:
            continue
        if placeish[w] > 0.5 * total[w] and the_before[w] < 0.3 * total[w]:
            places[w] += total[w]
    index = NameIndex(characters=characters, places=places.most_common())
    _NAME_CACHE[key] = index
    return index


_NAME_CACHE: dict[tuple, NameIndex] = {}


HE_TITLES = set(
    """
    Mr Sir Lord Captain Capt Colonel Major Monsieur Father Uncle Master Brother King Prince Duke Baron
    Count Grandfather Reverend Inspector
    """.split()
)
SHE_TITLES = set(
    """
    Mrs Miss Ms Lady Madame Mademoiselle Mother Aunt Mistress Dame Sister Queen Princess Duchess
    Countess Granny Grandmother
    """.split()
)
HE_KIN = {"brother", "son", "father", "uncle", "husband", "nephew", "grandson", "boy", "man"}
SHE_KIN = {"sister", "daughter", "mother", "aunt", "wife", "niece", "granddaughter", "girl", "woman"}


def _guess_pronouns(text: str, sentences, characters: list[Character]) -> None:
    """he/she for each character: titles (Mr, Mrs, Captain...) and kinship words before the name ("her
    brother Toby") count most; then the first he/she after the name in a sentence naming only them, and a
    He/She opening the next sentence."""
    votes = {c.name: Counter() for c in characters}
    for c in characters:
        for alias in c.aliases:
            first = alias.split()[0]
            if first in HE_TITLES and alias != first:
                votes[c.name]["he"] += 5
            elif first in SHE_TITLES and alias != first:
                votes[c.name]["she"] += 5
        for m in re.finditer(r"\b(\w+) (?:" + "|".join(re.escape(a) for a in c.aliases) + r")\b", text):
            word = m.group(1).lower()
            votes[c.name]["he"] += 2 * (word in HE_KIN)
            votes[c.name]["she"] += 2 * (word in SHE_KIN)
    for k, (s, e) in enumerate(sentences):
        sentence = text[s:e]
        named = [c for c in characters if _first_alias_position(sentence, c.aliases) is not None]
        if len(named) != 1:
            continue
        pos = _first_alias_position(sentence, named[0].aliases) or 0
        first = re.search(r"\b(he|she)\b", sentence[pos:])
        if first:
            votes[named[0].name][first.group(1)] += 1
        close = re.match(r"(?:\W*\w+){1,3}?\W+(his|her)\b", sentence[pos:])  # "Silas Crook clapped his hands"
        if close:
            votes[named[0].name]["he" if close.group(1) == "his" else "she"] += 1
        if k + 1 < len(sentences):
            following = text[sentences[k + 1][0] : sentences[k + 1][1]]
            opener = re.match(r"\W*([A-Za-z]+)", following)
            if (
                opener
                and opener.group(1) in ("He", "She")
                and not any(_first_alias_position(following, c.aliases) is not None for c in characters)
            ):
                votes[named[0].name][opener.group(1).lower()] += 1
    for c in characters:
        v = votes[c.name]
        if v["he"] != v["she"]:
            c.pronoun = "he" if v["he"] > v["she"] else "she"


# --- appearance ------------------------------------------------------------------------------------


POSITIONAL = {"left", "right", "front", "one", "two", "single", "top", "low", "high"}
# Words that tie a feature to its owner within the few words before it: "her red scarf", "wore a long
# coat", "in a brown bowler hat", "with copper-red hair", "had a mop of black curly hair", "Toby's jersey".
OWNER_CUES = set(
    """
    his her wore wearing wears worn in with had has having sported
    """.split()
)


def appearance_phrases(
    segment: str, pronoun: str | None = None, name_at: int | None = None, aliases: Iterable[str] = ()
) -> list[str]:
    """Appearance noun phrases in a piece of text: "red wool scarf", "silver-grey hair", "short" ...

    A feature noun (hair, eyes, scarf, coat...) with the modifiers right before it (colours, materials,
    shapes), or after it as "of green velvet" or "was silver-grey", when an owner cue precedes it ("her",
    "his", "wore", "in a", "with", "had", a possessive); stature adjectives (tall, stout...) when they
    describe a person ("a short, stout man", "was so tall", "small for her age").

    ``pronoun`` ("he"/"she"), when known, rejects features owned by the other ("his spectacles" in a
    sentence about a girl); ``name_at`` (a character offset of the character's name in ``segment``)
    rejects "her ..."/"his ..." before the name ("Her gloves fitted so closely that Wren could see...").
    """
    matches = list(_WORD.finditer(segment))
    words = [m.group(0).lower().replace("\u2019", "'") for m in matches]
    own_names = {a.lower().split()[-1] + "'s" for a in aliases} | {a.lower() + "'s" for a in aliases}
    # "the dog's white ear", "Amos's chair": a possessive of anyone else marks someone else's feature
    foreign = {
        k
        for k, m in enumerate(matches)
        if words[k].endswith("'s")
        and words[k] not in own_names
        and words[k][:-2] not in {"fisherman", "sailor", "soldier", "farmer", "gentleman"}
    }
    name_word = None
    if name_at is not None:
        name_word = next((k for k, m in enumerate(matches) if m.start() >= name_at), len(words))
    wrong_owner = {"he": {"her"}, "she": {"his"}}.get(pronoun or "", set())
    phrases: list[str] = []
    for i, w in enumerate(words):
        if w in FEATURES and not (w == "bowler" and i + 1 < len(words) and words[i + 1] == "hat"):
            mods = []
            j = i - 1
            while j >= 0 and (
                words[j] in MODIFIERS
                or (
                    words[j].endswith("'s")
                    and words[j][:-2] in {"fisherman", "sailor", "soldier", "farmer", "gentleman"}
                )
            ):
                mods.insert(0, words[j])
                j -= 1
            before = words[max(0, j - 3) : j + 1]  # the words before the phrase: look for an owner
            if j >= 1 and words[j] == "of":  # "a mop of black curly hair", "a coat of green velvet"
                before = words[max(0, j - 5) : j + 1]
            if any(k in foreign for k in range(max(0, j - 3), j + 1)):
                continue
            owned = any(b in OWNER_CUES or b in own_names for b in before)
            possessive = next((b for b in reversed(before) if b in {"his", "her", "its", "their"}), None)
            if (
                possessive in wrong_owner
                or possessive in {"its", "their"}
                or (j >= 0 and words[j] in {"its", "their"})
            ):
                continue
            if possessive in {"his", "her"} and name_word is not None and j < name_word:
                continue
            after_mods = []
            if i + 2 < len(words) and words[i + 1] == "of" and words[i + 2] in MODIFIERS:
                k = i + 2
                while k < len(words) and words[k] in MODIFIERS:
                    after_mods.append(words[k])
                    k += 1
            elif (
                i + 2 < len(words)
                and words[i + 1] in {"was", "were", "is", "are"}
                and words[i + 2] in MODIFIERS
            ):
                k = i + 2
                while k < len(words) and (
                    words[k] in MODIFIERS
                    or (words[k] == "and" and k + 1 < len(words) and words[k + 1] in MODIFIERS)
                ):
                    if words[k] != "and":
                        after_mods.append(words[k])
                    k += 1
                owned = owned or (j >= 0 and words[j] in {"his", "her"})
            if (
                not owned
                and w in STANDALONE
                and words[i + 1 : i + 2] in (["on"], ["across"], ["over"], ["above"])
                and words[i + 2 : i + 3] in (["his"], ["her"])
                and words[i + 2] not in wrong_owner
                and i + 3 < len(words)
                and words[i + 3] in BODY
            ):
                phrases.append(f"{w} {words[i + 1]} {words[i + 3]}")  # "the scar across his chin"
                continue
            if not owned:
                continue
            mods = mods + after_mods
            if all(m in POSITIONAL for m in mods):
                mods = []
            noun = "hat" if w == "bowler" else w
            if mods or w in STANDALONE:
                phrases.append(
                    " ".join(_dedupe([m for m in mods if m not in {"one", "two", "single"}] + [noun]))
                )
        elif STATURE_FORMS.get(w, w) in STATURE and _describes_person(words, i):
            phrases.append(STATURE_FORMS.get(w, w))
    return phrases


_LINKS = {"was", "is", "seemed", "looked", "grew", "stood"}
_INTENSIFIERS = {"so", "very", "too", "quite", "rather", "terribly", "remarkably", "extremely"}


def _describes_person(words: list[str], i: int) -> bool:
    """Whether the stature word at ``i`` describes a person: "a short, stout man", "the tallest boy",
    "she was very small", "small for her age"; not "a small, round room" or "the three smallest"."""
    k = i + 1
    while k < len(words) and (
        words[k] in {",", "and"} or words[k] in COLOURS or STATURE_FORMS.get(words[k], words[k]) in STATURE
    ):
        k += 1
    if k < len(words) and words[k] in PERSON_NOUNS:
        return True
    if words[i + 1 : i + 3] in (["for", "her"], ["for", "his"]) and words[i + 3 : i + 4] == ["age"]:
        return True
    j = i - 1
    if j >= 0 and words[j] in _INTENSIFIERS:
        j -= 1
    return (
        j >= 0
        and words[j] in _LINKS
        and (j == 0 or words[j - 1] in {"he", "she", ",", "and"} | HE | SHE or words[j - 1][:1].isalpha())
    )


def _dedupe(words: list[str]) -> list[str]:
    seen, out = set(), []
    for w in words:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def _head_nouns(segment: str) -> list[str]:
    """'She was a round, rosy woman' -> ['round rosy woman']: what kind of person (or animal) the text
    says they are
    ("was/is a" + descriptive words + the noun, nothing else between)."""
    words = [w.lower() for w in _WORD.findall(segment)]
    heads = []
    for i, w in enumerate(words):
        if w not in HEAD_NOUNS:
            continue
        j = i - 1
        while j >= 0 and (
            words[j] == "," or words[j] in MODIFIERS or STATURE_FORMS.get(words[j], words[j]) in STATURE
        ):
            j -= 1
        if j >= 1 and words[j] in {"a", "an"} and words[j - 1] in {"was", "is"}:
            heads.append(" ".join(x for x in words[j + 1 : i + 1] if x != ","))
    return heads


@dataclass
class CharacterSheet:
    name: str
    description: str  # what goes into prompts
    appearance: list[str] = field(default_factory=list)  # the phrases found, most frequent first
    aliases: list[str] = field(default_factory=list)
    mentions: int = 0
    kind: str | None = None  # "girl", "man", "dog"... when the book says
    sources: list[list[int]] = field(
        default_factory=list
    )  # [start, end] of the sentences the phrases came from
    edited: bool = False  # a user's description: kept by every rebuild

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CharacterSheets:
    book_id: str
    characters: list[CharacterSheet]

    def get(self, name: str) -> CharacterSheet | None:
        """By display name or any alias (case-insensitive)."""
        want = name.strip().lower()
        for sheet in self.characters:
            if sheet.name.lower() == want or want in (a.lower() for a in sheet.aliases):
                return sheet
        return None

    def mentioned_in(self, text: str) -> list[CharacterSheet]:
        """Sheets (with a description) of the characters named in ``text``, in order of first mention."""
        found = []
        for sheet in self.characters:
            pos = _first_alias_position(text, sheet.aliases or [sheet.name])
            if pos is not None and sheet.description:
                found.append((pos, sheet))
        return [s for _, s in sorted(found, key=lambda p: p[0])]

    def to_dict(self) -> dict:
        return {"book_id": self.book_id, "version": 1, "characters": [c.to_dict() for c in self.characters]}

    @classmethod
    def from_dict(cls, data: dict) -> CharacterSheets:
        return cls(
            book_id=data["book_id"], characters=[CharacterSheet(**c) for c in data.get("characters", [])]
        )

    def describe(self) -> str:
        """One line per character, for showing."""
        lines = []
        for s in self.characters:
            mark = " (edited)" if s.edited else ""
            lines.append(f"{s.name}: {s.description or '(no appearance found in the book)'}{mark}")
        return "\n".join(lines)


def build_character_sheets(book) -> CharacterSheets:
    """Read each main character's appearance from the book (see the module docstring)."""
    from retrieval.text import split_sentences

    index = analyse_names(book)
    text = book.text
    # phrase -> weight per character: a sentence naming the character counts 1, one reached through
    # he/she counts 0.5 (pronouns are often someone else, seen through the main character's eyes)
    scores: dict[str, Counter] = {c.name: Counter() for c in index.characters}
    first_seen: dict[str, dict[str, int]] = {c.name: {} for c in index.characters}
    heads: dict[str, Counter] = {c.name: Counter() for c in index.characters}
    sources: dict[str, dict[str, list[int]]] = {c.name: {} for c in index.characters}
    focus: dict[str, Character] = {}  # "he"/"she" -> the character the pronoun most likely refers to
    paragraph_end = -1
    for s, e in split_sentences(text):
        if s > paragraph_end:  # a new paragraph: pronouns no longer reach back
            focus = {}
            nl = text.find("\n\n", s)
            paragraph_end = nl if nl != -1 else len(text)
        sentence = text[s:e]
        mentions = sorted(
            (pos, possessive, c)
            for c in index.characters
            for pos, possessive in _alias_matches(sentence, c.aliases)
        )
        segments = _segments(sentence, mentions)
        if mentions:
            subjects = [c for _, possessive, c in mentions if not possessive] or [c for _, _, c in mentions]
            for pronoun in ("he", "she"):  # "she" in the next sentence: only when one woman was named
                same = {c.name: c for c in subjects if c.pronoun == pronoun}
                if len(same) == 1:
                    focus[pronoun] = next(iter(same.values()))
                elif same:
                    focus.pop(pronoun, None)
        else:
            words = {w.lower() for w in re.findall(r"[A-Za-z]+", sentence)}
            for pronoun, forms, other in (("she", SHE, HE), ("he", HE, SHE)):
                if words & forms and pronoun in focus and not (words & other):
                    segments.append((focus[pronoun], sentence, None, 0.5))
        for c, segment, name_at, weight in segments:
            found = appearance_phrases(segment, c.pronoun, name_at, c.aliases)
            for p in found:
                scores[c.name][p] += weight
                first_seen[c.name].setdefault(p, s)
                sources[c.name].setdefault(p, [s, e])
            for head in _head_nouns(segment):
                heads[c.name][head] += weight
    _make_exclusive(scores)
    sheets = []
    for c in index.characters:
        found = scores[c.name]
        ranked = sorted(found, key=lambda p: (-found[p], first_seen[c.name][p]))
        kind_phrase = heads[c.name].most_common(1)[0][0] if heads[c.name] else None
        kind = kind_phrase.split()[-1] if kind_phrase else None
        condensed = condense(ranked, kind_phrase, counts=found)
        spans = sorted({tuple(sources[c.name][p]) for p in ranked})
        sheets.append(
            CharacterSheet(
                name=c.name,
                description=", ".join(condensed),
                appearance=ranked,
                aliases=c.aliases,
                mentions=c.mentions,
                kind=kind,
                sources=[list(span) for span in spans[:20]],
            )
        )
    return CharacterSheets(book_id=book.book_id, characters=sheets)


def _segments(sentence: str, mentions: list[tuple[int, bool, Character]]):
    """(character, text, name offset, weight) pieces of a sentence: the whole sentence when it names one
    character; otherwise each name up to the next name. A possessive ("Wren's red scarf") owns only the
    few words after it; the rest of the clause stays with whoever was named before."""
    if not mentions:
        return []
    if len({c.name for _, _, c in mentions}) == 1:
        return [(mentions[0][2], sentence, mentions[0][0], 1.0)]
    pieces = []
    owner = None
    for k, (pos, possessive, c) in enumerate(mentions):
        nxt = mentions[k + 1][0] if k + 1 < len(mentions) else len(sentence)
        if possessive:
            clause_end = re.search(r"[,;:.!?]", sentence[pos:])
            stop = min(nxt, pos + (clause_end.start() if clause_end else len(sentence) - pos), pos + 60)
            pieces.append((c, sentence[pos:stop], 0, 1.0))
            if owner is not None and owner.name != c.name:
                pieces.append((owner, sentence[stop:nxt], None, 1.0))
            continue
        owner = c
        pieces.append((c, sentence[pos:nxt], 0, 1.0))
    return [p for p in pieces if p[1].strip()]


def _make_exclusive(scores: dict[str, Counter]) -> None:
    """A feature of one colour ("green ... coat") belongs to the character who has it most; the others
    lose it."""

    def key(phrase: str) -> tuple[str, str] | None:
        words = phrase.split()
        if len(words) < 2 or words[-1] not in FEATURES:
            return None
        colour = next((w for w in words if w in COLOURS or w.split("-")[0] in COLOURS), "")
        return (words[-1].rstrip("s"), colour)

    totals: dict[tuple, Counter] = defaultdict(Counter)
    for name, found in scores.items():
        for phrase, weight in found.items():
            k = key(phrase)
            if k is not None:
                totals[k][name] += weight
    for k, by_name in totals.items():
        if len(by_name) < 2:
            continue
        best = max(by_name.values())
        owner = min(n for n, w in by_name.items() if w == best)
        for name in by_name:
            if name != owner:
                for phrase in [p for p in scores[name] if key(p) == k]:
                    del scores[name][phrase]


def _alias_matches(sentence: str, aliases: list[str]) -> list[tuple[int, bool]]:
    """(offset, possessive) of each naming of the character in the sentence (the longest alias wins where
    they overlap; "Wren's" is possessive)."""
    taken: list[tuple[int, int, bool]] = []
    for alias in aliases:  # longest first
        for m in re.finditer(r"(?<![A-Za-z])" + re.escape(alias) + r"(?![A-Za-z])", sentence):
            if not any(a <= m.start() < b for a, b, _ in taken):
                possessive = sentence[m.end() : m.end() + 2] in ("'s", "\u2019s")
                taken.append((m.start(), m.end(), possessive))
    return sorted((a, p) for a, _, p in taken)


OPPOSITES = [
    {"tall", "short", "small", "little"},
    {"thin", "skinny", "slender", "lean", "gaunt", "stout", "fat", "plump", "portly", "burly"},
]


def condense(
    phrases: list[str],
    kind: str | None = None,
    limit: int = MAX_PHRASES,
    counts: dict[str, float] | None = None,
) -> list[str]:
    """Most frequent first; one phrase per feature noun (the most specific); stature words joined with
    the kind ("short, stout" + "man" -> "short stout man")."""
    stature = [p for p in phrases if p in STATURE]
    features = [p for p in phrases if p not in STATURE]
    chosen: list[str] = []
    nouns_taken: set[str] = set()
    counts = counts or Counter(phrases)
    for p in features:
        noun = p.split()[-1].rstrip("s")
        if noun in nouns_taken:
            continue
        # the group's first phrase is its most frequent; a longer one holding all its words is more specific
        # ("red scarf" -> "red wool scarf"), so it wins when it was seen too
        longer = [
            q
            for q in features
            if q != p and q.split()[-1].rstrip("s") == noun and set(p.split()) <= set(q.split())
        ]
        chosen.append(max(longer, key=lambda q: (counts[q], -features.index(q))) if longer else p)
        nouns_taken.add(noun)
    out: list[str] = []
    if kind and len(kind.split()) > 1:  # "short stout man": the book's own words
        out.append(kind)
    else:
        kept = []
        for word in stature:  # the better-attested of two opposites ("tall" vs "short")
            if not any(word in pair and other in pair for pair in OPPOSITES for other in kept):
                kept.append(word)
        out.append(" ".join(_dedupe(kept[:2] + [kind])) if kind else ", ".join(kept[:2]))
        out = [o for o in out if o]
    for p in chosen:
        if len(out) >= limit:
            break
        out.append(p)
    return out


# --- storage ----------------------------------------------------------------------------------------------


def sheets_path(store, book_id: str) -> Path:
    return Path(store.book_dir(book_id)) / SHEETS_FILE


def load_character_sheets(store, book_id: str, rebuild: bool = False) -> CharacterSheets:
    """The stored sheets, built (and stored) on first use; ``rebuild`` re-reads the book but keeps every
    description the user edited."""
    path = sheets_path(store, book_id)
    old = None
    if path.is_file():
        try:
            old = CharacterSheets.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError):
            old = None  # a damaged file is rebuilt (edits in it are unreadable anyway)
        if old is not None and not rebuild:
            return old
    sheets = build_character_sheets(store.get_book(book_id))
    if old is not None:
        sheets = _keep_edits(sheets, old)
    save_character_sheets(store, sheets)
    return sheets


def _keep_edits(new: CharacterSheets, old: CharacterSheets) -> CharacterSheets:
    for edited in (s for s in old.characters if s.edited):
        target = new.get(edited.name)
        if target is None:
            new.characters.append(edited)  # a character the user added
        else:
            target.description = edited.description
            target.edited = True
    return new


def save_character_sheets(store, sheets: CharacterSheets) -> Path:
    path = sheets_path(store, sheets.book_id)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(sheets.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def edit_character(store, book_id: str, name: str, description: str) -> CharacterSheet:
    """Set a character's description (a new name adds a character). Kept by every rebuild."""
    description = " ".join(description.split())
    if not name.strip():
        raise VignetteError("Give the name of the character whose description you want to change.")
    sheets = load_character_sheets(store, book_id)
    sheet = sheets.get(name)
    if sheet is None:
        sheet = CharacterSheet(
            name=name.strip(), description=description, aliases=[name.strip()], edited=True
        )
        sheets.characters.append(sheet)
    else:
        sheet.description = description
        sheet.edited = True
    save_character_sheets(store, sheets)
    return sheet
