"""Follow-ups: the offline resolver, gender learned from the book, no false rewrites, the chat condenser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.followups import (CharacterIndex, ChatCondenser, Exchange, OfflineResolver, base_of, load_chat_model,
                           make_rewriter, past_of)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-novel.txt"
E = Exchange


@pytest.fixture(scope="module")
def index() -> CharacterIndex:
    return CharacterIndex.from_text(SAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def resolver(index) -> OfflineResolver:
    return OfflineResolver(index)


# ---- gender and names, learned from the text -------------------------------------------------------------

def test_gender_is_learned_from_the_book(index):
    assert index.gender_of("Wren") == "f"
    assert index.gender_of("Toby") == "m"
    assert index.gender_of("Amos") == "m"
    assert index.gender_of("Nell Pritchard") == "f"
    assert index.gender_of("Mrs Vane") == "f"  # the honorific decides
    assert index.gender_of("Mr Pellow") == "m"


def test_gender_comes_from_pronouns_not_from_name_lists():
    # invented names, with the genders a name list would get wrong if it guessed from endings
    text = (
        "Ysolde Marrow came down the hill at dawn. He carried a lantern in his left hand. "
        "Ysolde Marrow was the miller, and he had never missed a morning. Brannoc waited by the gate. "
        "She had been waiting since midnight, and her boots were wet. Brannoc did not mind the cold. "
        "Then Ysolde spoke. He said the river was rising. Brannoc nodded. She turned away from him. "
        "In the morning Ysolde went to market, and Brannoc stayed behind. "
    )
    index = CharacterIndex.from_text(text)
    assert index.gender_of("Ysolde") == "m"
    assert index.gender_of("Brannoc") == "f"
    resolver = OfflineResolver(index)
    rewrite = resolver.rewrite("Where did she wait?", [E("Who met Ysolde at the gate?", "Brannoc")])
    assert rewrite.question == "Where did Brannoc wait?"


def test_mentions_find_people_groups_and_things(index):
    kinds = {m.surface: m.kind for m in index.mentions("Where did Mrs Vane and Silas Crook take the green lantern?")}
    assert kinds == {"Mrs Vane and Silas Crook": "plural", "the green lantern": "thing"}
    mentions = index.mentions("Who is Toby's sister?")
    assert [(m.surface, m.kind, m.gender) for m in mentions] == [("Toby's sister", "person", "f")]


def test_verb_forms():
    assert base_of("found") == "find"
    assert base_of("hid") == "hide"
    assert base_of("hoped") == "hope"
    assert base_of("stopped") == "stop"
    assert base_of("climbed") == "climb"
    assert base_of("carried") == "carry"
    assert base_of("keeps") == "keep"
    assert past_of("hide") == "hid"
    assert past_of("climb") == "climbed"
    assert past_of("stop") == "stopped"
    # forms no hand-written table here ever listed come from the lexicon too
    assert base_of("slew") == "slay" and base_of("strewn") == "strew" and base_of("were") == "be"
    assert past_of("slay") == "slew" and past_of("bring") == "brought"


# ---- follow-ups rewritten ---------------------------------------------------------------------------------

FOLLOW_UPS = [
    # (history, follow-up, standalone)
    ([E("Who found the letter in the lantern room?",
        "It was Wren who found the letter, though Pilot would certainly have claimed the credit if he could talk.")],
     "Where did she hide it?", "Where did Wren hide the letter?"),
    ([E("Who found the letter in the lantern room?", "Wren")], "why?",
     "Why did Wren find the letter in the lantern room?"),
    ([E("Who found the letter in the lantern room?", "Wren")], "and then?",
     "What happened after Wren found the letter in the lantern room?"),
    ([E("Where did Wren hide the letter?", "inside Old Hester")], "why there?", "Why did Wren hide the letter?"),
    ([E("Where did Wren hide the letter?", "inside Old Hester")], "what did she do then?",
     "What did Wren do after she hid the letter?"),
    ([E("Where did Wren hide the letter?", "inside Old Hester")], "where?", "Where did Wren hide the letter?"),
    # the book says "her brother Toby" and "his little sister Wren": the relative is named for retrieval
    ([E("How old is Toby?", "sixteen")], "and his sister?", "How old is Toby's sister Wren?"),
    ([E("How old is Wren Tolley?", "twelve")], "and her brother?", "How old is Wren Tolley's brother Toby?"),
    ([E("Who is Toby's sister?", "Wren")], "how old is she?", "How old is Wren?"),
    ([E("What did Captain Dunmore give Wren?", "a brass compass")], "How many times had it been round the world?",
     "How many times had the brass compass been round the world?"),
    ([E("Who found the green lantern on Kestrel Point?", "Toby")], "What else did he find there?",
     "What else did Toby find on Kestrel Point?"),
    # "there": the answer to a where-question, or the place the last question was set in
    ([E("Where did Wren hide the letter?", "inside Old Hester")], "Who found it there?",
     "Who found the letter inside Old Hester?"),
    ([E("What did Toby find on Kestrel Point?", "a black glove")], "who dropped it there?",
     "Who dropped the black glove on Kestrel Point?"),
    # a named place the last question was set on is where, not what: "it" is the thing found there
    ([E("What else did Toby find on Kestrel Point?", "a single black kid glove")], "What was stitched inside it?",
     "What was stitched inside the single black kid glove?"),
    ([E("What did Toby find beside the green lantern on Kestrel Point?", "a single black kid glove")],
     "What was stitched inside it?", "What was stitched inside the single black kid glove?"),
    ([E("Who winds the clock in the clock tower every Saturday?", "Toby")], "Where does he keep the key to the tower?",
     "Where does Toby keep the key to the tower?"),
    ([E("What did Amos give Wren in the lantern room?", "a small brass spyglass")], "Who did it belong to before him?",
     "Who did the small brass spyglass belong to before Amos?"),
    ([E("Who climbed the tower on Sunday night?", "Wren and Toby waited until the town was asleep.")],
     "what did they find?", "What did Wren and Toby find?"),
    ([E("Where did Wren hide the letter?", "inside Old Hester")], "and Toby?", "Where did Toby hide the letter?"),
    ([E("Who found the letter?", "Wren")], "and the glove?", "Who found the glove?"),
    ([E("What did Mrs Vane offer Amos?", "Two hundred guineas")], "what did he say?", "What did Amos say?"),
    ([E("What did Mrs Vane offer Amos?", "Two hundred guineas")], "why did she want the Rock?",
     "Why did Mrs Vane want the Rock?"),
    # memory reaches back past a turn that names nobody of that gender
    ([E("Who found the letter?", "Wren"), E("What was painted on the lid of the tin box?", "a ship in full sail")],
     "what did she do with the letter?", "What did Wren do with the letter?"),
]


@pytest.mark.parametrize("history,text,standalone", FOLLOW_UPS, ids=[f[1] for f in FOLLOW_UPS])
def test_follow_ups_are_rewritten(resolver, history, text, standalone):
    rewrite = resolver.rewrite(text, history)
    assert rewrite.rewritten
    assert rewrite.method == "resolver"
    assert rewrite.question == standalone


STANDALONE = [
    "Who lost his hat in the storm?", "Is it true that the bell was cracked?",
    "How long did it take Wren to light the lamp?", "What did Toby do with his key?", "What colour was Wren's scarf?",
    "What was in the box?", "How many steps does the lighthouse have?",
    "What did Mrs Vane say to Amos when she visited him?", "What time was it when the light failed?",
    "Who found the letter in the lantern room?", "Where did Wren hide the letter she found in the lighthouse?",
    "How old is Wren Tolley?", "Who is Toby to Wren?", "Why did Mrs Vane want Gullstone Rock?",
    "What did Nell Pritchard give Wren at the market?", "What is the name of Amos Fenwick's dog?",
    "How often does the Gullstone light flash?", "What did Wren see on Kestrel Point through her spyglass?",
    "What was painted on the lid of the tin box Wren found?", "What colour was the wax seal on the letter?",
    "How much money did Mrs Vane offer Amos to leave the Rock?", "At what time did the great storm break?",
    "Why had the oil barrels on Gullstone Rock run dry?", "How did Amos hurt his foot on the night of the storm?",
    "How many matches did it take Wren to light the wicks again?", "What colour is the Marigold's hull?",
    "Who rang the bells of the clock tower on the night of the storm?", "What did Captain Dunmore give Wren?",
    "What letters were stitched inside the cuff of the black glove?", "Who kept the light while Amos's ankle healed?",
    "Who smashed the glass of the harbour lamp?", "How many times did Wren strike Old Hester in the belfry?",
    "What was Nell Pritchard holding when she came into the square at night?",
    "Who recognised one of the signatures on the Keeper's Promise?", "How did Mrs Vane leave Saltmarrow?",
    "What was the new bell named?", "Where was Old Hester put after the new bell was hung?",
    "What title did the council give Wren?", "Who wrote the Keeper's Promise?", "Does Wren have a sister?",
    "What does Wren wear around her neck?", "Who was Silas Crook working for?", "Where is Port Ember?",
    "Why did Toby give Wren his key?", "What did the captain tell the council?",
    "Who kept his promise to the town?", "What is the story about?", "Who is the main character?",
    "Was there a dog on Gullstone Rock?", "Is there a cellar under the tower?", "There was a storm, wasn't there?",
    # pronouns bound inside the question itself: by an owner ("Amos Fenwick's"), by what is owned ("Wren's
    # lamp", "his barrels"), by "who" across "because", and by a name after a phrase ("in her pocket ... Wren")
    "What did Amos Fenwick's sister give him?", "Into how many pieces did Wren's lamp break when she dropped it?",
    "What did Amos keep in his barrels before they ran dry?",
    "Who was blamed for the fire because he left the lamp burning?",
    "What was in her pocket when Wren climbed the tower?",
]


@pytest.mark.parametrize("text", STANDALONE)
def test_standalone_questions_are_left_exactly_as_they_are(resolver, text):
    history = [E("Who found the letter?", "It was Wren who found the letter, though Pilot would certainly have "
                 "claimed the credit if he could talk.", "It was Wren who found the letter"),
               E("What did Captain Dunmore give Wren?", "a brass compass")]
    rewrite = resolver.rewrite(text, history)
    assert not rewrite.rewritten, rewrite
    assert rewrite.question == text
    assert not resolver.needs_context(text)


def test_a_pronoun_before_a_name_is_still_a_follow_up_unless_inside_a_phrase(resolver):
    history = [E("What did Captain Dunmore give Wren?", "a brass compass")]
    assert resolver.rewrite("What did his sister say to Toby?", history).question.startswith(
        "What did Captain Dunmore's sister")
    assert not resolver.rewrite("What was in his coat when Toby came home?", history).rewritten


def test_nouns_the_book_has_speak_are_people():
    text = ("The farrier looked at the hoof. \"It is cracked,\" said the farrier. The farrier said he would mend it. "
            "\"Good,\" said the farrier, and he went. Tom waited. Tom ran. Tom was glad.") * 2
    index = CharacterIndex.from_text(text)
    assert "farrier" in index.speakers
    assert "hoof" not in index.speakers
    assert [m.kind for m in index.mentions("What did the farrier say?")] == ["person"]
    resolver = OfflineResolver(index)
    assert not resolver.rewrite("What did the farrier tell Tom when he came?", [E("Who ran?", "Tom")]).rewritten


def test_relatives_are_named_only_when_the_book_is_clear():
    text = ("Ann Lark lived by the mill. Ann Lark sang. Ann Lark laughed. \"Come,\" said her brother Tom. Tom ran. "
            "Tom hid. Ann walked with her sister Bea. Later her sister Cat came. Bea and Cat sang. Bea slept. Cat woke.")
    index = CharacterIndex.from_text(text)
    assert index.relative("Ann Lark's", "brother") == "Tom"
    assert index.relative("Ann", "sister") is None  # Bea and Cat, once each: ambiguous
    assert index.relative("Tom", "brother") is None  # nobody is Tom's own brother
    resolver = OfflineResolver(index)
    assert resolver.rewrite("and her brother?", [E("How old is Ann Lark?", "nine")]).question == \
        "How old is Ann Lark's brother Tom?"
    assert resolver.rewrite("and her sister?", [E("How old is Ann Lark?", "nine")]).question == \
        "How old is Ann Lark's sister?"


def test_a_place_stays_a_place_whatever_pronoun_follows_it():
    text = ("Tom rode to Ashford. He liked it. They dined at Ashford and he sang. Ann walked to Ashford. "
            "In Ashford he slept. Tom laughed. Tom ran. Ann sang. She smiled. Ann left.")
    index = CharacterIndex.from_text(text)
    assert [(m.surface, m.kind) for m in index.mentions("Who has taken Ashford?")] == [("Ashford", "thing")]


def test_dotted_titles_are_titles():
    text = ("Mr. Lark came home. He was tired. Mr. Lark sat down and he slept. Mrs. Lark laughed. She sang. "
            "Mrs. Lark said she would go. Dr. Finch came and he stayed.")
    index = CharacterIndex.from_text(text)
    found = [(m.surface, m.kind, m.gender) for m in index.mentions("Mr. Lark gave Mrs. Lark a letter from Dr. Finch.")]
    assert found[:2] == [("Mr. Lark", "person", "m"), ("Mrs. Lark", "person", "f")]
    assert ("Dr. Finch", "person") in [f[:2] for f in found]
    resolver = OfflineResolver(index)
    assert resolver.rewrite("where did he go?", [E("Who gave Mrs. Lark a letter?", "Mr. Lark")]).question == \
        "Where did Mr. Lark go?"


def test_a_creature_named_in_the_question_binds_it_and_contractions_are_not_things():
    text = ("Nell met the Brindle Fox. The Brindle Fox grinned. The Brindle Fox vanished. Nell sighed. "
            "Nell said she would go. The Queen shouted. The Queen was angry and she shouted.")
    resolver = OfflineResolver(CharacterIndex.from_text(text))
    history = [E("What did the Queen shout when she was angry?", "\u201cThat\u2019s right!\u201d shouted the Queen.",
                 "\u201cThat\u2019s right!\u201d shouted the Queen.")]
    question = "What did the Brindle Fox leave behind when it vanished?"
    rewrite = resolver.rewrite(question, history)
    assert (rewrite.question, rewrite.rewritten) == (question, False)
    assert [m.surface for m in resolver.index.mentions(history[0].answer)] == ["the Queen"]


def test_nothing_is_rewritten_without_a_conversation(resolver):
    for text in ("why?", "where did she hide it?", "and his sister?"):
        rewrite = resolver.rewrite(text, [])
        assert (rewrite.question, rewrite.rewritten) == (text, False)


def test_an_abstained_answer_names_nobody(resolver):
    # the book did not answer: its closest passage must not lend a referent
    history = [E("Who found the letter?", "Wren"),
               E("Who was the Prime Minister?", "", "Pilot was a shaggy brown dog", abstained=True)]
    assert resolver.rewrite("how old is she?", history).question == "How old is Wren?"


# ---- the chat-model condenser ----------------------------------------------------------------------------

class ScriptedChatModel:
    """A LangChain chat model that answers from a script and records every prompt it is shown."""

    def __new__(cls, replies: list[str]):
        from langchain_core.language_models.fake_chat_models import FakeListChatModel

        class Recording(FakeListChatModel):
            prompts: list = []

            def _call(self, messages, stop=None, run_manager=None, **kwargs: Any) -> str:
                self.prompts.append([m.content for m in messages])
                return super()._call(messages, stop=stop, run_manager=run_manager, **kwargs)

        return Recording(responses=replies, prompts=[])


def test_condenser_uses_the_chat_model_for_follow_ups_only(resolver):
    model = ScriptedChatModel(["Standalone question: Where did Wren hide the letter?"])
    condenser = ChatCondenser(None, resolver, model=model)
    history = [E("Who found the letter?", "Wren")]
    standalone = condenser.rewrite("How many steps does the lighthouse have?", history)
    assert (standalone.rewritten, standalone.method) == (False, "standalone")
    assert model.prompts == []  # a standalone question never reaches the model
    rewrite = condenser.rewrite("where did she hide it?", history)
    assert rewrite.question == "Where did Wren hide the letter?"
    assert rewrite.method.startswith("chat:")
    prompt = "\n".join(model.prompts[0])
    assert "Who found the letter?" in prompt and "where did she hide it?" in prompt and "Wren" in prompt


def test_condenser_rejects_a_rambling_model_and_says_so(resolver):
    model = ScriptedChatModel(["Certainly! Here is a poem about sailing ships and marmalade."])
    condenser = ChatCondenser(None, resolver, model=model)
    rewrite = condenser.rewrite("where did she hide it?", [E("Who found the letter?", "Wren")])
    assert rewrite.question == "Where did Wren hide the letter?"
    assert rewrite.method == "resolver"
    assert "chat model" in rewrite.note


def test_unavailable_chat_model_falls_back_with_a_reason(resolver, settings):
    import importlib.util

    if importlib.util.find_spec("langchain_ollama") is not None:
        pytest.skip("langchain-ollama is installed here")
    condenser = make_rewriter(settings.replace(chat_model="ollama:llama3.1"), resolver.index)
    rewrite = condenser.rewrite("where did she hide it?", [E("Who found the letter?", "Wren")])
    assert rewrite.question == "Where did Wren hide the letter?"
    assert "langchain-ollama" in rewrite.note


def test_local_transformers_chat_model_through_langchain_huggingface(resolver, tmp_path, minilm_path):
    """A real (tiny, random) causal LM in a local folder loads as a ChatHuggingFace; its babble is refused."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=512, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "chat")
    tokenizer.save_pretrained(tmp_path / "chat")

    model = load_chat_model(str(tmp_path / "chat"))
    assert type(model).__name__ == "ChatHuggingFace"
    condenser = ChatCondenser(str(tmp_path / "chat"), resolver)
    rewrite = condenser.rewrite("where did she hide it?", [E("Who found the letter?", "Wren")])
    assert rewrite.question == "Where did Wren hide the letter?"  # random weights: the resolver's rewrite
    assert rewrite.method == "resolver" and rewrite.note
