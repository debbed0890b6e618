"""Scene prompts: from an answer and its evidence passage to a prompt an image model can draw.

The bare answer ("a brass spyglass") is not a picture; the passage it came from is. A scene writer rewrites
the passage into five parts (subject, setting, time of day, mood, composition: the few-shot format of
``data/scene_examples.yaml``); :func:`compose_prompt` adds each named character's description from the
character sheets and the style preset (``data/styles.yaml``). Writers:

- :class:`ChatSceneWriter`: any LangChain chat model (``BaseChatModel``), few-shot as chat turns.
- :class:`TransformersSceneWriter`: a local transformers causal LM (a path), few-shot as plain text.
- :class:`RuleBasedSceneWriter`: offline, no model: characters (frequent capitalised names, see
  :mod:`illustration.characters`), the place, setting / time-of-day / weather / mood words and the key noun
  phrases of the quote.

A model writer whose reply cannot be read falls back to the rule-based parts and says so. Every
:class:`ScenePrompt` names its writer; it is shown before drawing and can be edited
(:meth:`ScenePrompt.edited`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from vignette.errors import VignetteError

EXAMPLES_PATH = Path(__file__).resolve().parents[1] / "data" / "scene_examples.yaml"
PARTS = ("subject", "setting", "time_of_day", "mood", "composition")
MAX_PROMPT_CHARACTERS = 3  # descriptions of more people than this would not fit CLIP's 77 tokens
MAX_DESCRIPTION_PHRASES = 3  # the most frequent phrases: CLIP reads 77 tokens


@dataclass
class ScenePrompt:
    text: str  # the prompt drawn (positive)
    negative: str  # the negative prompt
    parts: dict[str, str]  # subject, setting, time_of_day, mood, composition, style, characters
    writer: str  # who wrote it: "rule-based", "chat:ChatOllama", "transformers:/path", "user"
    book_id: str | None = None
    evidence: dict[str, Any] | None = None  # Evidence.to_dict() of the passage it illustrates
    style: str | None = None
    notice: str | None = None  # e.g. "the chat model's reply could not be read; rule-based parts used"

    def edited(self, text: str, negative: str | None = None) -> ScenePrompt:
        """The same scene with the user's wording (the writer becomes "user, from <writer>")."""
        text = " ".join(text.split())
        if not text:
            raise VignetteError("The edited prompt is empty: write what the picture should show.")
        writer = (
            self.writer
            if text == self.text and negative in (None, self.negative)
            else f"user (edited {self.writer})"
        )
        return replace(
            self,
            text=text,
            negative=self.negative if negative is None else " ".join(negative.split()),
            writer=writer,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- few-shot examples -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _examples(path: str, mtime: float) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def load_examples(path: Path | None = None) -> dict:
    """``{"instructions": str, "examples": [{question, answer, passage, scene: {...}}]}``."""
    path = Path(path or EXAMPLES_PATH)
    data = _examples(str(path), path.stat().st_mtime)
    for ex in data.get("examples", []):
        missing = [k for k in PARTS if k not in ex.get("scene", {})]
        if missing:
            raise ValueError(f"scene example {ex.get('question')!r} lacks {missing}")
    return data


def format_request(question: str | None, answer: str, passage: str) -> str:
    return (
        f"Question: {question or '(none)'}\nAnswer: {answer or '(none)'}\n"
        f"Passage: {' '.join(passage.split())}"
    )


# --- the rule-based writer ------------------------------------------------------------------------------

# word in the text -> phrase for the picture
TIME_WORDS = {
    "dawn": "dawn",
    "daybreak": "dawn",
    "sunrise": "sunrise",
    "first light": "first light at dawn",
    "morning": "morning light",
    "noon": "midday sun",
    "midday": "midday sun",
    "afternoon": "afternoon light",
    "evening": "evening light",
    "dusk": "dusk",
    "twilight": "twilight",
    "sunset": "sunset",
    "sundown": "sunset",
    "night": "night",
    "midnight": "midnight",
    "moonlight": "moonlight",
    "moon": "moonlit night",
    "dark": "darkness",
    "darkness": "darkness",
    "lamplight": "lamplight",
    "candlelight": "candlelight",
    "starlight": "starlit night",
}
WEATHER_WORDS = {
    "storm": "storm",
    "gale": "gale",
    "rain": "rain",
    "raining": "rain",
    "snow": "snow",
    "snowing": "snow",
    "fog": "fog",
    "mist": "mist",
    "misty": "mist",
    "wind": "wind",
    "windy": "wind",
    "thunder": "thunder",
    "lightning": "lightning",
    "frost": "frost",
    "ice": "ice",
    "hail": "hail",
    "sunshine": "sunshine",
    "sunlight": "sunlight",
    "clouds": "clouds",
    "cloudy": "overcast sky",
    "waves": "crashing waves",
}
SETTING_WORDS = set(
    """
    lighthouse lantern tower belfry bell bells clock harbour harbor quay pier market square cottage
    kitchen parlour parlor drawing-room library study bedroom attic cellar hall church chapel graveyard
    churchyard garden orchard field meadow moor forest wood woods river lake sea shore beach cliff
    cliffs rock rocks headland cove island boat ship schooner deck boathouse landing steps stairs
    staircase street lane road bridge inn tavern shop castle palace ballroom courtroom prison cave
    mountain mountains glacier valley village town city window fireplace hearth gorse heath dunes wall
    gate door table desk bed carriage coach train station
    """.split()
)
MOOD_WORDS = {
    "tense and frightening": {
        "afraid",
        "fear",
        "feared",
        "terror",
        "terrified",
        "scream",
        "screamed",
        "screaming",
        "panic",
        "dread",
        "horror",
        "trembling",
        "shaking",
        "danger",
        "desperate",
    },
    "joyful and warm": {
        "laughed",
        "laughing",
        "smiled",
        "smiling",
        "happy",
        "joy",
        "glad",
        "delight",
        "delighted",
        "cheered",
        "cheering",
        "celebrate",
        "merry",
        "grinned",
    },
    "sorrowful": {
        "wept",
        "weeping",
        "tears",
        "cried",
        "grief",
        "mourning",
        "sorrow",
        "sad",
        "sobbed",
        "lonely",
    },
    "quiet and calm": {
        "quiet",
        "quietly",
        "still",
        "silent",
        "silence",
        "calm",
        "peaceful",
        "gentle",
        "softly",
        "asleep",
        "sleeping",
    },
    "dramatic and stormy": {
        "storm",
        "roared",
        "roaring",
        "gale",
        "thunder",
        "lightning",
        "crashing",
        "howled",
        "raging",
        "wild",
        "smashed",
    },
    "mysterious": {
        "secret",
        "hidden",
        "hid",
        "whisper",
        "whispered",
        "strange",
        "mystery",
        "shadow",
        "shadows",
        "letter",
        "signal",
        "unknown",
    },
    "cold and bleak": {"cold", "bleak", "grey", "frozen", "bitter", "empty", "desolate"},
    "tender": {"hugged", "embraced", "kissed", "held", "comforted", "kindly"},
    "determined": {"climbed", "ran", "hauled", "pulled", "struggled", "rowed", "fought", "strike", "struck"},
}
_STOP = set(
    """
    a an the and or but if of at by for with about against between into through during before after
    above below to from up down in out on off over under again further then once here there when where
    why how all any both each few more most other some such no nor not only own same so than too very s
    t can will just don should now i me my myself we our ours you your he him his himself she her hers
    herself it its itself they them their what which who whom this that these those am is are was were
    be been being have has had having do does did doing would could said says say told asked went came
    got had been as like one two three upon while though although because until even also still back
    away never ever always again yet almost whole every near beside behind across along among toward
    towards around inside outside beyond past within without onto upon broke
    """.split()
)
_DETERMINERS = set(
    """
    a an the his her their its my our your this that these those some every two three four five six
    seven eight nine ten twelve old
    """.split()
)
_VERBS = set(
    """
    hung found saw made took gave stood sat ran came went held lay knew felt thought left brought kept
    put set struck rang spoke wrote read let got began seemed looked heard told someone somebody nobody
    everyone anyone is was were are be had has have did does do would could should
    """.split()
)
_NUMBERS = set(
    """
    one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred
    thousand first second third
    """.split()
)
_GENERIC = set(
    """
    top way time end side rest kind thing things something moment word words one ones part lot sort bit
    front back middle edge place day days year years minute minutes hour hours while matter same other
    others fact idea answer question first last next voice breath
    """.split()
)


def key_noun_phrases(text: str, limit: int = 4) -> list[str]:
    """Noun phrases after a determiner ("the open belfry", "a small brass spyglass" -> "open belfry",
    "small brass spyglass"), most descriptive first. No tagger: a determiner, then up to three words that
    are not function words, adverbs (-ly) or verbs in -ed/-ing right after the determiner."""
    tokens = re.findall(r"[A-Za-z][A-Za-z'-]*|[,.;:!?\"\u201c\u201d]", text)
    found: list[tuple[float, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.lower() not in _DETERMINERS:
            continue
        from illustration.characters import COLOURS, FEATURES, MODIFIERS

        words = []
        for nxt in tokens[i + 1 : i + 5]:
            low = nxt.lower()
            if (
                not nxt[0].isalpha()
                or low in _STOP
                or low in _VERBS
                or low.endswith("ly")
                or nxt[0].isupper()
            ):
                break  # a function word, a verb, an adverb, or a proper name (handled as characters/places)
            if words and low.endswith(("ed", "ing")) and low not in MODIFIERS:
                break  # "the fishermen called": a verb after the noun
            words.append(low)
        if (
            not words
            or words[-1] in _GENERIC
            or words[-1] in MODIFIERS
            or words[-1] in _NUMBERS
            or (len(words) == 1 and len(words[0]) < 4)
        ):
            continue
        if words[0].endswith(("ed", "ing")) and len(words) == 1:
            continue
        phrase = " ".join(words)

        score = (
            len(words)
            + 2 * any(w in SETTING_WORDS or w in FEATURES for w in words)
            + any(w in COLOURS for w in words)
        )
        found.append((-score, i, phrase))
    seen, out = set(), []
    for _, _, phrase in sorted(found):
        if phrase not in seen and not any(phrase in s for s in seen):
            seen.add(phrase)
            out.append(phrase)
        if len(out) >= limit:
            break
    return out


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z]+(?:-[A-Za-z]+)?", text)]


def _find_phrases(text: str, table: dict[str, str]) -> list[str]:
    low = " " + " ".join(_words(text)) + " "
    hits = []
    for word, phrase in table.items():
        pos = low.find(f" {word} ")
        if pos != -1:
            hits.append((pos, phrase))
    out = []
    for _, phrase in sorted(hits):
        if phrase not in out:
            out.append(phrase)
    return out


def _mood(text: str) -> str | None:
    words = _words(text)
    scores = {mood: sum(w in vocab for w in words) for mood, vocab in MOOD_WORDS.items()}
    best = max(scores, key=lambda m: scores[m])
    return best if scores[best] else None


def passage_window(book, evidence, sentences_around: int = 2) -> str:
    """The evidence quote with a few sentences either side, within its chapter (the scene around it)."""
    from retrieval.text import split_sentences

    if book is None or evidence is None:
        return getattr(evidence, "quote", "") or ""
    start, end = int(evidence.start), int(evidence.end)
    try:
        chapter = book.chapter(int(evidence.chapter))
        lo, hi = chapter.start, chapter.end
    except (KeyError, ValueError, AttributeError):
        lo, hi = 0, len(book.text)
    spans = split_sentences(book.text, max(lo, start - 1500), min(hi, end + 1500))
    inside = [k for k, (s, e) in enumerate(spans) if e > start and s < end]
    if not inside:
        return evidence.quote
    a = max(0, inside[0] - sentences_around)
    b = min(len(spans), inside[-1] + sentences_around + 1)
    return book.text[spans[a][0] : spans[b - 1][1]]


class SceneWriter(Protocol):
    name: str

    def write(self, answer: str, evidence, book, question: str | None = None) -> dict[str, str]: ...


class RuleBasedSceneWriter:
    """Offline scene parts from the passage itself: who (characters named in the quote, else around it),
    where (a place named in the passage, setting nouns), when (time-of-day and weather words), how it feels
    (mood words), what to show (the key noun phrases of the quote and the answer)."""

    name = "rule-based"

    def write(self, answer: str, evidence, book, question: str | None = None) -> dict[str, str]:
        from illustration.characters import analyse_names

        quote = getattr(evidence, "quote", "") or ""
        window = passage_window(book, evidence) if evidence is not None else ""
        index = analyse_names(book) if book is not None else None
        # 1. Who: characters named in the quote, then around it, then in the answer/question.
        people: list[str] = []
        if index is not None:
            if question is None:  # a scene the reader described: the people they named, if any
                people = [ch.name for ch in index.named_in(answer or "")]
            if not people:
                for source in (quote, answer or "", question or ""):
                    people += [ch.name for ch in index.named_in(source) if ch.name not in people]
            if not people:  # nobody named where the answer is: the people around the quote
                people = [ch.name for ch in index.named_in(window)]
        people = people[:MAX_PROMPT_CHARACTERS]
        # 2. What: the answer when it is a phrase (not one word: "seven", "brother", a name), and the quote's
        #    key noun phrases.
        things = []
        content = [w for w in _words(answer or "") if w not in _STOP and w not in _NUMBERS]
        if answer and len(content) >= 2 and len(answer.split()) <= 8:
            things.append(answer.strip().rstrip(".").strip('"\u201c\u201d'))
        for phrase in key_noun_phrases(quote or answer or ""):
            if not any(phrase in t.lower() for t in things):
                things.append(phrase)
        things = things[: 3 if not people else 2]
        # 3. Where: a named place (quote first) and setting nouns.
        places = (
            (
                index.places_in(answer or "")
                or index.places_in(quote)
                or index.places_in(question or "")
                or index.places_in(window)
            )
            if index is not None
            else []
        )
        shown = set(_words(" ".join(things)))
        setting_nouns = [
            w
            for w in dict.fromkeys(_words(quote) + _words(window))
            if w in SETTING_WORDS and w not in shown and w.rstrip("s") not in shown
        ][:2]
        # 4. When: time of day and weather.
        said = answer or ""  # a described scene's own words come first ("... at dawn")
        times = (
            _find_phrases(said, TIME_WORDS)
            or _find_phrases(quote, TIME_WORDS)
            or _find_phrases(window, TIME_WORDS)
        )
        weather = (
            _find_phrases(said, WEATHER_WORDS)
            or _find_phrases(quote, WEATHER_WORDS)
            or _find_phrases(window, WEATHER_WORDS)
        )
        # 5. Mood and composition.
        mood = _mood(said) or _mood(quote) or _mood(window) or "calm, evocative"
        subject = _subject(people, things)
        setting = ", ".join(places[:1] + setting_nouns)
        time_of_day = ", ".join((times[:1] or ["soft daylight"]) + weather[:2])
        if not people:
            composition = "wide establishing shot" + (f" of {places[0]}" if places else "")
        elif len(people) == 1:
            composition = f"medium shot, {people[0]} in the foreground, the setting behind"
        else:
            composition = "wide shot, " + " and ".join(people) + " together in the scene"
        return {
            "subject": subject,
            "setting": setting,
            "time_of_day": time_of_day,
            "mood": mood,
            "composition": composition,
            "characters": ", ".join(people),
        }


def _subject(people: list[str], things: list[str]) -> str:
    who = " and ".join(people)
    what = ", ".join(things)
    if who and what:
        return f"{who} with {what}"
    return who or what or "a scene from the story"


# --- model writers ------------------------------------------------------------------------------------------


def parse_scene(reply: str) -> dict[str, str] | None:
    """The first JSON object in a model's reply with at least three of the five parts, else None."""
    for m in re.finditer(r"\{[^{}]*\}", reply, flags=re.S):
        try:
            data = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(data, dict):
            parts = {
                k: " ".join(str(data[k]).split())
                for k in PARTS
                if isinstance(data.get(k), (str, int, float)) and str(data[k]).strip()
            }
            if len(parts) >= 3:
                return parts
    return None


class _ModelWriter:
    name = "model"

    def __init__(self):
        self.fallback = RuleBasedSceneWriter()
        self.last_notice: str | None = None

    def reply(self, question: str | None, answer: str, passage: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, answer: str, evidence, book, question: str | None = None) -> dict[str, str]:
        rules = self.fallback.write(answer, evidence, book, question)
        passage = passage_window(book, evidence) if evidence is not None else answer
        self.last_notice = None
        try:
            reply = self.reply(question, answer, passage)
        except Exception as err:  # a model server down, out of memory: say so, draw anyway
            self.last_notice = (
                f"the scene writer {self.name} failed ({err.__class__.__name__}); rule-based parts used"
            )
            return {**rules, "_writer": self.fallback.name}
        parts = parse_scene(reply)
        if parts is None:
            self.last_notice = f"the reply of {self.name} could not be read as a scene; rule-based parts used"
            return {**rules, "_writer": self.fallback.name}
        filled = [k for k in PARTS if k not in parts]
        out = {**rules, **parts}
        if filled:
            self.last_notice = f"{self.name} left out {', '.join(filled)}; rule-based parts filled them in"
        return out


class ChatSceneWriter(_ModelWriter):
    """Few-shot rewrite with any LangChain chat model (``BaseChatModel``): examples as alternating turns."""

    def __init__(self, chat_model):
        super().__init__()
        self.chat_model = chat_model
        label = getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None)
        self.name = f"chat:{type(chat_model).__name__}" + (f":{label}" if isinstance(label, str) else "")

    def messages(self, question: str | None, answer: str, passage: str) -> list:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        data = load_examples()
        messages = [SystemMessage(content=data["instructions"])]
        for ex in data["examples"]:
            messages.append(HumanMessage(content=format_request(ex["question"], ex["answer"], ex["passage"])))
            messages.append(AIMessage(content=json.dumps({k: ex["scene"][k] for k in PARTS})))
        messages.append(HumanMessage(content=format_request(question, answer, passage)))
        return messages

    def reply(self, question: str | None, answer: str, passage: str) -> str:
        result = self.chat_model.invoke(self.messages(question, answer, passage))
        content = getattr(result, "content", result)
        if isinstance(content, list):  # content blocks
            content = " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        return str(content)


class TransformersSceneWriter(_ModelWriter):
    """Few-shot rewrite with a local transformers causal LM (a folder): the examples as plain text, greedy
    decoding until the JSON object closes. Loaded once, lazily."""

    def __init__(self, path: str, max_new_tokens: int = 160, model=None, tokenizer=None):
        super().__init__()
        self.path = str(path)
        self.name = f"transformers:{self.path}"
        self.max_new_tokens = max_new_tokens
        self._model = model
        self._tokenizer = tokenizer

    def warm_up(self) -> None:
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                self._model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True).eval()
            except (OSError, ValueError) as err:
                raise VignetteError(f"Could not load the scene-writing model at {self.path}: {err}") from err

    def prompt(self, question: str | None, answer: str, passage: str) -> str:
        data = load_examples()
        blocks = [data["instructions"], ""]
        for ex in data["examples"]:
            blocks.append(format_request(ex["question"], ex["answer"], ex["passage"]))
            blocks.append("Scene: " + json.dumps({k: ex["scene"][k] for k in PARTS}))
            blocks.append("")
        blocks.append(format_request(question, answer, passage))
        blocks.append("Scene: {")
        return "\n".join(blocks)

    def reply(self, question: str | None, answer: str, passage: str) -> str:
        import torch

        self.warm_up()
        text = self.prompt(question, answer, passage)
        enc = self._tokenizer(text, return_tensors="pt")
        limit = getattr(self._model.config, "max_position_embeddings", None) or getattr(
            self._model.config, "n_positions", 2048
        )
        ids = enc["input_ids"][:, -max(8, int(limit) - self.max_new_tokens) :]
        with torch.no_grad():
            out = self._model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self._tokenizer.eos_token_id or self._tokenizer.pad_token_id,
            )
        continuation = self._tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        return "{" + continuation.split("\n\n")[0]


def make_scene_writer(writer=None, settings=None):
    """A writer from what is given: a writer, a LangChain chat model, a local model folder; else, when
    ``settings.chat_model`` is a local folder, a transformers writer on it; else the rule-based writer."""
    if writer is None and settings is not None:
        path = getattr(settings, "chat_model", None)
        if path and Path(str(path)).expanduser().is_dir():
            writer = str(Path(str(path)).expanduser())
    if writer is None:
        return RuleBasedSceneWriter()
    if isinstance(writer, (str, Path)):
        return TransformersSceneWriter(str(writer))
    if hasattr(writer, "write"):
        return writer
    try:
        from langchain_core.language_models import BaseChatModel
    except ImportError:  # pragma: no cover - langchain is a dependency
        BaseChatModel = ()
    if isinstance(writer, BaseChatModel) or hasattr(writer, "invoke"):
        return ChatSceneWriter(writer)
    raise TypeError(f"not a scene writer: {writer!r}")


# --- the prompt ------------------------------------------------------------------------------------


def compose_prompt(
    parts: dict[str, str], style: str | None = None, sheets=None
) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative, parts): the five parts in order, each named character followed by their description
    from the character sheets ("Wren (small, red wool scarf, copper plait)"), then the style preset."""
    from illustration.options import default_style, load_style_file, styles

    table = styles()
    style = style or default_style()
    if style not in table:
        raise VignetteError(f"Unknown style {style!r}. Choose one of: {', '.join(table)}.")
    preset = table[style]
    body = ", ".join(parts[k].strip() for k in PARTS if parts.get(k, "").strip())
    if parts.get("mood") and not parts["mood"].lower().endswith("mood"):
        body = body.replace(parts["mood"].strip(), parts["mood"].strip() + " mood", 1)
    described = []
    if sheets is not None:
        for sheet in sheets.mentioned_in(body)[:MAX_PROMPT_CHARACTERS]:
            short = ", ".join(
                p.strip() for p in sheet.description.split(",")[:MAX_DESCRIPTION_PHRASES] if p.strip()
            )
            for alias in sorted(set(sheet.aliases or [sheet.name]) | {sheet.name}, key=len, reverse=True):
                m = re.search(r"(?<![A-Za-z])" + re.escape(alias) + r"(?![A-Za-z'])", body)
                if m:
                    body = body[: m.end()] + f" ({short})" + body[m.end() :]
                    described.append(f"{sheet.name}: {short}")
                    break
    lead = str(preset.get("lead", "")).strip()
    prompt = f"{lead} of {body}, {preset['positive']}" if lead else f"{body}, {preset['positive']}"
    negative = ", ".join(
        x for x in (preset.get("negative", ""), load_style_file().get("default_negative", "")) if x
    )
    out_parts = {k: parts.get(k, "") for k in PARTS}
    out_parts.update({"style": style, "characters": "; ".join(described) or parts.get("characters", "")})
    return prompt, negative, out_parts


def write_scene_prompt(
    answer: str,
    evidence,
    book,
    *,
    question: str | None = None,
    writer=None,
    style: str | None = None,
    sheets=None,
) -> ScenePrompt:
    """The scene prompt for an answer and its evidence (see the module docstring)."""
    writer = writer or RuleBasedSceneWriter()
    parts = writer.write(answer, evidence, book, question)
    used = parts.pop("_writer", None) or writer.name
    prompt, negative, parts = compose_prompt(parts, style, sheets)
    return ScenePrompt(
        text=prompt,
        negative=negative,
        parts=parts,
        writer=used,
        book_id=getattr(book, "book_id", None),
        evidence=evidence.to_dict()
        if hasattr(evidence, "to_dict")
        else (dict(evidence) if evidence else None),
        style=parts["style"],
        notice=getattr(writer, "last_notice", None),
    )


__all__ = [
    "ScenePrompt",
    "RuleBasedSceneWriter",
    "ChatSceneWriter",
    "TransformersSceneWriter",
    "make_scene_writer",
    "write_scene_prompt",
    "compose_prompt",
    "key_noun_phrases",
    "load_examples",
    "parse_scene",
]
