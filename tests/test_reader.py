"""The extractive reader: span decoding on hand-built logits, a tiny random QA model end to end, scores
comparable across passages, abstaining, and the sentence fallback."""

from __future__ import annotations

import json
import math

import pytest
import torch

from retrieval.reader import (
    ExtractiveReader,
    SentenceReader,
    decode_spans,
    load_reader,
    reader_setup_hint,
    make_windows,
    resolve_reader,
)
from vignette.documents import Book, Candidate, Chapter, Passage

NEG = -1e4


def _window(length: int, start: dict[int, float], end: dict[int, float], context: range, base: float = 0.0):
    """Logits for one window: ``base`` everywhere, the given values at the given positions."""
    s = [base] * length
    e = [base] * length
    for i, v in start.items():
        s[i] = base + v
    for i, v in end.items():
        e[i] = base + v
    mask = [i in context for i in range(length)]
    offsets = [(10 * i, 10 * i + 5) if i in context else (0, 0) for i in range(length)]
    return s, e, mask, offsets


# ------------------------------------------------------------------------------------------ decode_spans
def test_decode_spans_finds_the_best_span_and_maps_characters():
    s, e, mask, offsets = _window(12, {4: 5.0, 6: 1.0}, {6: 4.0, 3: 3.0}, context=range(3, 11))
    spans = decode_spans(torch.tensor([s]), torch.tensor([e]), [offsets], torch.tensor([mask]), max_answer_tokens=10, top_n=3)
    best = spans[0]
    assert (best.start_token, best.end_token) == (4, 6)  # 5 + 4 beats (4, 4) = 5 and (3, 3) = 3
    assert best.score == pytest.approx(9.0)  # [CLS] logits are 0 here
    assert all(sp.end_token >= sp.start_token for sp in spans)
    assert best.start_char == offsets[best.start_token][0] and best.end_char == offsets[best.end_token][1]
    assert [sp.score for sp in spans] == sorted([sp.score for sp in spans], reverse=True)


def test_decode_spans_never_ends_before_it_starts():
    # The strongest end sits before the strongest start: the pair is not allowed.
    s, e, mask, offsets = _window(10, {7: 10.0}, {2: 10.0, 8: 1.0}, context=range(1, 10))
    best = decode_spans(s, e, offsets, mask, max_answer_tokens=30, top_n=1)[0]
    assert (best.start_token, best.end_token) == (7, 8)


def test_decode_spans_respects_the_maximum_answer_length():
    s, e, mask, offsets = _window(20, {2: 10.0}, {15: 10.0, 5: 2.0}, context=range(1, 20))
    long_ok = decode_spans(s, e, offsets, mask, max_answer_tokens=20, top_n=1)[0]
    assert (long_ok.start_token, long_ok.end_token) == (2, 15)
    short = decode_spans(s, e, offsets, mask, max_answer_tokens=4, top_n=5)
    assert (short[0].start_token, short[0].end_token) == (2, 5)
    assert all(sp.end_token - sp.start_token < 4 for sp in short)


def test_decode_spans_uses_only_context_tokens():
    # Huge logits on the question tokens (1..3) and on [CLS] must never become an answer.
    s, e, mask, offsets = _window(12, {1: 50.0, 2: 50.0, 0: 40.0, 6: 1.0}, {2: 50.0, 0: 40.0, 7: 1.0}, context=range(5, 11))
    spans = decode_spans(s, e, offsets, mask, max_answer_tokens=30, top_n=20)
    assert spans
    assert all(5 <= sp.start_token <= sp.end_token < 11 for sp in spans)


def test_no_answer_comes_from_the_cls_position():
    # The [CLS] logits (40 + 40) beat every span (1 + 1): the margin is negative, i.e. "not here".
    s, e, mask, offsets = _window(12, {0: 40.0, 6: 1.0}, {0: 40.0, 7: 1.0}, context=range(5, 11))
    best = decode_spans(s, e, offsets, mask, top_n=1)[0]
    assert best.null_logit == pytest.approx(80.0)
    assert best.score == pytest.approx(2.0 - 80.0)
    # With a weak [CLS] the same span wins with a positive margin.
    s, e, mask, offsets = _window(12, {0: -3.0, 6: 1.0}, {0: -3.0, 7: 1.0}, context=range(5, 11))
    best = decode_spans(s, e, offsets, mask, top_n=1)[0]
    assert (best.start_token, best.end_token) == (6, 7)
    assert best.score == pytest.approx(2.0 + 6.0)


def test_scores_are_comparable_across_windows():
    """Window 0's logits are all shifted up by 30 (softmax does not care); its best raw span logit is
    the highest, but it prefers "no answer". Window 1 has the answer: it must win on the margin."""
    s0, e0, m0, o0 = _window(10, {0: 6.0, 4: 1.0}, {0: 6.0, 4: 1.0}, context=range(2, 10), base=30.0)
    s1, e1, m1, o1 = _window(10, {0: 0.0, 5: 4.0}, {0: 0.0, 6: 4.0}, context=range(2, 10), base=0.0)
    spans = decode_spans([s0, s1], [e0, e1], [o0, o1], [m0, m1], top_n=100)
    assert spans[0].window == 1 and (spans[0].start_token, spans[0].end_token) == (5, 6)
    raw_best = max(spans, key=lambda sp: sp.logit)
    assert raw_best.window == 0  # what the uncalibrated ranking would have picked


def test_decode_spans_handles_fewer_spans_than_asked():
    s, e, mask, offsets = _window(6, {3: 1.0}, {3: 1.0}, context=range(3, 4))
    spans = decode_spans(s, e, offsets, mask, top_n=10)
    assert len(spans) == 1 and math.isfinite(spans[0].score)


# ------------------------------------------------------------------------------------------ a tiny model
BOOK_TEXT = (
    "CHAPTER I. The Harbour\n\n"
    "The fishing boats came home at dusk. Old Amos kept the light on Gullstone Rock, and he had kept it "
    "for forty-seven years. Nobody in Saltmarrow remembered a night when the lamp had failed.\n\n"
    "CHAPTER II. The Storm\n\n"
    "The wind rose in the night. Wren climbed the tower stairs with a lantern in her hand, because the "
    "great lamp had gone out and a ship called the Marigold was out on the black water. She struck a "
    "match, and the wick caught at last."
)


def _book() -> Book:
    c2 = BOOK_TEXT.index("CHAPTER II")
    return Book(
        book_id="tiny",
        title="Tiny",
        author=None,
        text=BOOK_TEXT,
        chapters=[
            Chapter(1, "Chapter 1: The Harbour", 0, c2),
            Chapter(2, "Chapter 2: The Storm", c2, len(BOOK_TEXT)),
        ],
    )


def _passage(book: Book, first_words: str, chapter: int) -> Passage:
    ch = book.chapter(chapter)
    start = book.text.index(first_words)
    end = ch.end
    return Passage(f"p{chapter}", book.book_id, chapter, ch.title, start, end, book.text[start:end])


@pytest.fixture(scope="module")
def tiny_qa_dir(tmp_path_factory, minilm_path):
    """A random BertForQuestionAnswering with a tiny config and the packaged MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    model = BertForQuestionAnswering(config)
    out = tmp_path_factory.mktemp("tiny-qa")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_windows_overlap_by_the_stride_and_keep_offsets(tiny_qa_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_qa_dir))
    context = BOOK_TEXT
    w = make_windows(tok, ["Who kept the light?"], [context], max_length=40, stride=10)
    assert len(w) > 3 and set(w.sample) == {0}
    covered = set()
    for row, mask in zip(w.offsets, w.context_mask.tolist()):
        for (a, b), m in zip(row, mask):
            if m:
                assert 0 <= a < b <= len(context) and context[a:b].strip()
                covered.add(a)
    # every word of the context is seen by some window
    assert all(m.start() in covered for m in __import__("re").finditer(r"\w+", context))


def test_tiny_random_model_end_to_end(tiny_qa_dir, settings):
    book = _book()
    p1 = _passage(book, "The fishing", 1)
    p2 = _passage(book, "The wind", 2)
    reader = ExtractiveReader(tiny_qa_dir, settings, max_length=48, stride=16, abstain_threshold=-1e9)
    answer = reader.read("Who lit the lamp?", [Candidate(p1, 1.0), Candidate(p2, 0.5)], book=book)
    assert not answer.abstained and answer.answer
    assert answer.reader == f"extractive:{tiny_qa_dir.name}"
    ev = answer.evidence[0]
    passage = p1 if ev.passage_id == "p1" else p2
    assert ev.chapter == passage.chapter and ev.chapter_title == passage.chapter_title
    # the quote is verbatim book text at its offsets, holds the answer, and is made of whole sentences
    assert book.text[ev.start : ev.end] == ev.quote
    assert answer.answer in ev.quote
    assert passage.start <= ev.start < ev.end <= passage.end
    spans = reader.read_spans("Who lit the lamp?", [Candidate(p1, 1.0), Candidate(p2, 0.5)])
    for sp in spans:
        assert book.text[sp.start : sp.end] == sp.text  # offsets map back to the exact book text
        assert sp.passage.start <= sp.start < sp.end <= sp.passage.end


def test_tiny_model_abstains_under_the_threshold(tiny_qa_dir, settings):
    book = _book()
    p1 = _passage(book, "The fishing", 1)
    reader = ExtractiveReader(tiny_qa_dir, settings, abstain_threshold=1e9)
    answer = reader.read("Who lit the lamp?", [Candidate(p1, 1.0)], book=book)
    assert answer.abstained and answer.answer == "" and answer.evidence == []


class _ShiftedQA(torch.nn.Module):
    """A stand-in QA model whose logits we control: it points at the token ``target`` when a window holds
    it; every window whose tokens include ``shifted`` gets all its logits raised by 20 (a scale the
    softmax ignores), with a confident "no answer"."""

    def __init__(self, target: int, shifted: int):
        super().__init__()
        self.target, self.shifted = target, shifted
        self.windows_read = 0

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        from types import SimpleNamespace

        self.windows_read += input_ids.shape[0]
        start = torch.zeros(input_ids.shape)
        end = torch.zeros(input_ids.shape)
        for w in range(input_ids.shape[0]):
            ids = input_ids[w]
            if (ids == self.target).any():
                start[w][ids == self.target] = 5.0
                end[w][ids == self.target] = 5.0
            else:
                start[w, 0] = end[w, 0] = 8.0
            if (ids == self.shifted).any():
                start[w] += 20.0
                end[w] += 20.0
        return SimpleNamespace(start_logits=start, end_logits=end)


def test_best_passage_wins_even_when_ranked_second(tiny_qa_dir, settings):
    from transformers import AutoTokenizer

    book = _book()
    p1 = _passage(book, "The fishing", 1)
    p2 = _passage(book, "The wind", 2)
    tok = AutoTokenizer.from_pretrained(str(tiny_qa_dir))
    reader = ExtractiveReader(tiny_qa_dir, settings)
    reader._tokenizer = tok
    reader._model = _ShiftedQA(target=tok.convert_tokens_to_ids("wren"), shifted=tok.convert_tokens_to_ids("amos"))
    candidates = [Candidate(p1, 1.0), Candidate(p2, 0.5)]
    best_in_1 = reader.read_spans("Who climbed the tower stairs?", candidates[:1])[0]
    best_in_2 = reader.read_spans("Who climbed the tower stairs?", candidates[1:])[0]
    assert best_in_1.logit > best_in_2.logit  # raw logits would answer from the wrong chapter
    assert best_in_1.score < 0 < best_in_2.score  # the margins do not
    answer = reader.read("Who climbed the tower stairs?", candidates, book=book)
    assert answer.answer == "Wren"
    assert answer.evidence[0].passage_id == "p2" and answer.evidence[0].chapter == 2
    assert answer.evidence[0].quote.startswith("Wren climbed the tower stairs")


# ------------------------------------------------------------------------------------------ the fallback
def test_sentence_reader_picks_the_matching_sentence(minilm_path):
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(minilm_path), device="cpu")
    book = _book()
    candidates = [Candidate(_passage(book, "The fishing", 1), 1.0), Candidate(_passage(book, "The wind", 2), 0.5)]
    reader = SentenceReader(encoder, model_name="all-MiniLM-L6-v2")
    answer = reader.read("How many years had Amos kept the light?", candidates, book)
    assert not answer.abstained
    assert "forty-seven years" in answer.answer
    assert answer.evidence[0].chapter == 1 and book.text[answer.evidence[0].start : answer.evidence[0].end] == answer.evidence[0].quote
    assert answer.reader == "sentence:all-MiniLM-L6-v2"
    assert "best-matching sentence" in answer.notice
    off_topic = reader.read("What is the boiling point of mercury in kelvin?", candidates, book)
    assert off_topic.abstained and off_topic.answer == ""
    # A retrieval-rank penalty moves every sentence of a lower-ranked passage down by that much per rank.
    plain = {s.text: s.score for s in reader.score_sentences("How many years had Amos kept the light?", candidates, book)}
    ranked = SentenceReader(encoder, model_name="all-MiniLM-L6-v2", rank_penalty=0.5)
    moved = ranked.score_sentences("How many years had Amos kept the light?", candidates, book)
    first = {s.text for s in moved if s.passage.passage_id == candidates[0].passage.passage_id}
    for sent in moved:
        assert sent.score == pytest.approx(plain[sent.text] - (0.0 if sent.text in first else 0.5))


def test_the_sentence_reader_answers_a_number_question_only_with_a_number(minilm_path):
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(minilm_path), device="cpu")
    book = _book()
    storm = [Candidate(_passage(book, "The wind", 2), 1.0)]  # chapter 2 holds no number at all
    both = [Candidate(_passage(book, "The fishing", 1), 1.0)] + storm
    question = "How many lanterns did Wren carry up the tower?"
    unchecked = SentenceReader(encoder, model_name="all-MiniLM-L6-v2", number_check=False)
    checked = SentenceReader(encoder, model_name="all-MiniLM-L6-v2")
    assert not unchecked.read(question, storm, book).abstained  # the best sentence, number or not
    answer = checked.read(question, storm, book)
    assert answer.abstained and answer.answer == "" and answer.evidence == []
    # With chapter 1 read too, the one sentence holding a number answers, though it is not the best match.
    checked.type_window = 10
    scored = checked.score_sentences(question, both, book)
    assert "forty-seven" not in scored[0].text
    answer = checked.read(question, both, book)
    assert not answer.abstained and "forty-seven years" in answer.answer and answer.evidence[0].chapter == 1
    # A question that asks for no number is answered by the best sentence, checked or not.
    why = "Why did Wren climb the tower stairs?"
    assert checked.read(why, both, book).answer == unchecked.read(why, both, book).answer == \
        " ".join(checked.score_sentences(why, both, book)[0].text.split())


def test_load_reader_falls_back_and_says_why(settings, tiny_qa_dir):
    missing = settings.replace(reader="some-org/not-on-this-machine")
    choice = resolve_reader(missing)
    assert choice.kind == "sentence"
    reader = load_reader(missing, encoder=object())
    assert isinstance(reader, SentenceReader)
    assert "some-org/not-on-this-machine" in reader.reason and "best-matching sentence" in reader.notice
    assert len(reader.notice.split()) < 25 and "VIGNETTE_" not in reader.notice  # plain words in every answer
    hint = reader_setup_hint(missing)  # the set-up advice, for the app's About panel
    assert "VIGNETTE_ALLOW_DOWNLOADS=1" in hint and "VIGNETTE_READER" in hint
    no_folder = load_reader(settings.replace(reader=str(tiny_qa_dir / "nope")), encoder=object())
    assert isinstance(no_folder, SentenceReader) and "does not exist" in no_folder.reason
    local = load_reader(settings.replace(reader=str(tiny_qa_dir)))
    assert isinstance(local, ExtractiveReader) and local.notice is None


# ------------------------------------------------------------------------------------------ training
def _squad_file(tmp_path) -> "Path":
    import json

    story = [
        "Old Amos kept the light on Gullstone Rock for forty-seven years. His dog was called Pilot.",
        "The new bell was cast in Port Ember and came north on the Marigold.",
        "Wren climbed one hundred and twelve steps to the lantern room and lit the lamp with a match.",
    ]
    qas = [
        (0, "How long did Amos keep the light?", "forty-seven years"),
        (0, "What was the dog called?", "Pilot"),
        (1, "Where was the new bell cast?", "Port Ember"),
        (1, "Which ship carried the bell?", "the Marigold"),
        (2, "How many steps did Wren climb?", "one hundred and twelve"),
        (2, "What did Wren light the lamp with?", "a match"),
    ]
    paragraphs = []
    for i, context in enumerate(story):
        items = [{"id": f"q{n}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
                 for n, (p, q, a) in enumerate(qas) if p == i]
        paragraphs.append({"context": context, "qas": items})
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "Gullstone", "paragraphs": paragraphs}]}))
    return path


def test_training_windows_point_at_the_answer(tmp_path, minilm_path):
    from transformers import AutoTokenizer

    from retrieval.train_reader import featurize, load_squad

    examples = load_squad(_squad_file(tmp_path), negatives=1.0, seed=1)
    assert load_squad(_squad_file(tmp_path), negatives=1.0, seed=1) == examples  # same every run
    negatives = [e for e in examples if e.negative]
    assert len(negatives) == 6
    answers = {e.question: e.answer_text for e in examples if not e.negative}
    for neg in negatives:  # a no-answer section never holds the answer
        assert answers[neg.question].lower() not in neg.context.lower()
    tok = AutoTokenizer.from_pretrained(str(minilm_path))
    feats = featurize(tok, examples, max_length=24, stride=8)  # tiny windows: most lack the answer
    positives = [e for e in examples if not e.negative]
    found = set()
    for f in feats:
        if f.start == 0:
            assert f.end == 0
            continue
        text = tok.decode(f.input_ids[f.start : f.end + 1]).replace(" ", "")  # word pieces, spaces dropped
        assert text in {a.lower().replace(" ", "") for a in answers.values()}
        found.add(text)
    assert found == {e.answer_text.lower().replace(" ", "") for e in positives}  # each answer whole in a window


def test_training_lowers_the_loss_saves_a_reader_and_resumes_exactly(tmp_path, tiny_qa_dir, settings):
    from safetensors.torch import load_file

    from retrieval.train_reader import build_parser, train

    data = _squad_file(tmp_path)

    def run(out, *extra):
        args = build_parser().parse_args(["--train", str(data), "--out", str(out), "--base", str(tiny_qa_dir),
                                          "--batch-size", "4", "--lr", "3e-3", "--negatives", "--save-every", "5",
                                          "--log-every", "100", "--seed", "3", *extra])
        return train(args)

    full = run(tmp_path / "full", "--epochs", "40", "--max-steps", "24")
    first, last = sum(full["losses"][:4]) / 4, sum(full["losses"][-4:]) / 4
    assert last < 0.8 * first, (first, last)
    reader = ExtractiveReader(tmp_path / "full", settings)
    assert reader.max_length == 384 and reader.stride == 128  # read back from vignette_reader.json
    assert reader.read_spans("Where was the new bell cast?", [Candidate(_passage(_book(), "The wind", 2), 1.0)])

    stopped = run(tmp_path / "split", "--epochs", "40", "--max-steps", "24", "--stop-after", "7")  # "killed" at 7
    assert stopped["steps"] == 7
    resumed = run(tmp_path / "split", "--epochs", "40", "--max-steps", "24", "--resume")
    assert resumed["steps"] == 24 and resumed["losses"] == full["losses"][7:]
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# The sentence fallback's answer-type check ------------------------------------------------------------


@pytest.mark.parametrize(
    "question, kind",
    [
        ("How old is Captain Elias Dunmore?", "number"),
        ("How many bells hang in the belfry?", "number"),
        ("In what year does the story take place?", "number"),
        ("Who found the letter?", None),  # answered by a relation or a role as often as by a name
        ("What was the name of the Marigold's mate?", "name"),
        ("What is the miller's real name?", "name"),
        ("Why did Wren hide the letter?", None),
        ("Where did she hide it?", None),
    ],
)
def test_expected_answer_type(question, kind):
    from retrieval.reader import expected_answer_type

    assert expected_answer_type(question) == kind


def test_has_answer_type_needs_a_number_or_a_new_name():
    from retrieval.reader import has_answer_type

    assert has_answer_type("number", "She had cracked thirty-one years ago.", "How long?")
    assert has_answer_type("number", "It cost 300 pounds.", "How much?")
    assert has_answer_type("number", "Toby was sixteen, and he was the tallest boy.", "How old is Toby?")
    assert not has_answer_type("number", "He was broad, with a shaved head.", "How long was the voyage?")
    assert has_answer_type("name", "Wren found it behind the loose stone.", "Who found the letter?")
    # Names already in the question do not answer it (nor their possessives); a capitalised opening
    # function word is no name.
    assert not has_answer_type("name", "The captain spoke to Wren.", "Who did Wren meet?")
    assert not has_answer_type("name", "Then Wren's captain spoke.", "What was the name of Wren's captain?")
    assert has_answer_type("name", "Their cook, Hobb, came in.", "What was the name of the Larks' cook?")


def test_rank_penalty_weighs_the_retrievers_order_but_never_beats_an_answer(tiny_qa_dir, settings):
    from transformers import AutoTokenizer

    book = _book()
    p1, p2 = _passage(book, "The fishing", 1), _passage(book, "The wind", 2)
    tok = AutoTokenizer.from_pretrained(str(tiny_qa_dir))
    candidates = [Candidate(p1, 1.0), Candidate(p2, 0.5)]
    reader = ExtractiveReader(tiny_qa_dir, settings, rank_penalty=30.0)
    reader._tokenizer = tok
    reader._model = _ShiftedQA(target=tok.convert_tokens_to_ids("wren"), shifted=tok.convert_tokens_to_ids("amos"))
    spans = reader.read_spans("Who climbed the tower stairs?", candidates)
    assert spans[0].passage is p1  # -16 - 0 beats 10 - 30 on the combined score...
    assert spans[0].combined == pytest.approx(spans[0].score)
    answer = reader.read("Who climbed the tower stairs?", candidates, book=book)
    assert answer.answer == "Wren"  # ...but only spans that beat "no answer" may answer


def test_a_confident_top_passage_is_answered_without_reading_the_rest(tiny_qa_dir, settings):
    from transformers import AutoTokenizer

    book = _book()
    p1, p2 = _passage(book, "The fishing", 1), _passage(book, "The wind", 2)
    tok = AutoTokenizer.from_pretrained(str(tiny_qa_dir))
    fake = _ShiftedQA(target=tok.convert_tokens_to_ids("wren"), shifted=tok.convert_tokens_to_ids("amos"))
    for early_exit, expected_windows in [(5.0, 1), (None, 2), (50.0, 2)]:
        reader = ExtractiveReader(tiny_qa_dir, settings, early_exit=early_exit)
        reader._tokenizer, reader._model = tok, fake
        fake.windows_read = 0
        answer = reader.read("Who climbed the tower stairs?", [Candidate(p2, 1.0), Candidate(p1, 0.5)], book=book)
        assert answer.answer == "Wren" and answer.evidence[0].passage_id == "p2"
        assert fake.windows_read == expected_windows  # margin 10 >= 5: the second passage is never read


def test_the_reader_re_ranks_the_passages_it_reads_and_answers_from_them(tiny_qa_dir, settings):
    from dataclasses import replace

    from transformers import AutoTokenizer

    from retrieval.reader_protocol import rerank_by_reader

    book = _book()
    p1, p2 = _passage(book, "The fishing", 1), _passage(book, "The wind", 2)
    p3 = replace(p1, passage_id="p3")
    tok = AutoTokenizer.from_pretrained(str(tiny_qa_dir))
    fake = _ShiftedQA(target=tok.convert_tokens_to_ids("wren"), shifted=-1)
    reader = ExtractiveReader(tiny_qa_dir, settings, early_exit=None, rank_penalty=1.0)
    reader._tokenizer, reader._model = tok, fake
    candidates = [Candidate(p1, 2.0), Candidate(p2, 1.0), Candidate(p3, 0.5)]
    question = "Who climbed the tower stairs?"
    # Only p2 holds "Wren" (margin +10; the others -16): with weight it moves up, and the passage past the
    # depth stays where it was.
    ranked = rerank_by_reader(reader, question, candidates, depth=2, weight=2.0)
    assert [c.passage.passage_id for c in ranked] == ["p2", "p1", "p3"]
    assert fake.windows_read == 2  # the third passage is past the depth: never read
    answer = reader.read(question, ranked[:2], book)
    assert fake.windows_read == 2  # reading after judging reads nothing again
    assert answer.answer == "Wren" and answer.evidence[0].passage_id == "p2"
    # Weight 0: retrieval's order stands, and the answer is what reading those passages gives.
    ranked = rerank_by_reader(reader, question, candidates, depth=2, weight=0.0)
    assert [c.passage.passage_id for c in ranked] == ["p1", "p2", "p3"]
    assert reader.read(question, ranked[:2], book).answer == "Wren"
    # A new model reads afresh; when nothing answers, the re-ranked list still comes back, and an abstention.
    reader._model = _ShiftedQA(target=-1, shifted=-1)
    ranked = rerank_by_reader(reader, question, candidates, depth=3, weight=1.0)
    assert sorted(c.passage.passage_id for c in ranked) == ["p1", "p2", "p3"]
    assert reader.read(question, ranked, book).abstained


# ------------------------------------------------------------------------------- answer types and abstaining
def test_a_number_question_is_not_answered_by_a_span_without_a_number(tiny_qa_dir, settings):
    from transformers import AutoTokenizer

    book = _book()
    p1 = _passage(book, "The fishing", 1)
    tok = AutoTokenizer.from_pretrained(str(tiny_qa_dir))
    reader = ExtractiveReader(tiny_qa_dir, settings, max_answer_tokens=3)  # no span reaches "forty-seven"
    reader._tokenizer = tok
    reader._model = _ShiftedQA(target=tok.convert_tokens_to_ids("amos"), shifted=-1)
    assert reader.read("Who kept the light on Gullstone Rock?", [Candidate(p1, 1.0)], book=book).answer == "Amos"
    # "How many years ...?" pointed at "Amos": no number in the span, so the book is not said to answer it.
    answer = reader.read("How many years had Amos kept the light?", [Candidate(p1, 1.0)], book=book)
    assert answer.abstained and answer.evidence == []
    reader._model = _ShiftedQA(target=tok.convert_tokens_to_ids("forty"), shifted=-1)
    answer = reader.read("How many years had Amos kept the light?", [Candidate(p1, 1.0)], book=book)
    assert not answer.abstained and answer.answer.lower().startswith("forty")


def test_the_reader_folder_carries_its_calibrated_threshold(tiny_qa_dir, tmp_path):
    import shutil

    from retrieval.reader import READER_CONFIG
    from vignette.settings import Settings

    folder = tmp_path / "calibrated-reader"
    shutil.copytree(tiny_qa_dir, folder)
    (folder / READER_CONFIG).write_text(json.dumps({"abstain_threshold": 1e9}))
    book = _book()
    cands = [Candidate(_passage(book, "The fishing", 1), 1.0)]
    unset = Settings.from_env(env={}, data_dir=tmp_path / "d")
    assert unset.abstain_threshold is None
    reader = ExtractiveReader(folder, unset, max_length=48, stride=16)
    assert reader.abstain_threshold == 1e9
    assert reader.read("Who lit the lamp?", cands, book=book).abstained  # the folder's margin: nothing passes
    overridden = Settings.from_env(env={"VIGNETTE_ABSTAIN_THRESHOLD": "-1e9"}, data_dir=tmp_path / "d")
    reader = ExtractiveReader(folder, overridden, max_length=48, stride=16)
    assert reader.abstain_threshold == -1e9
    assert not reader.read("Who lit the lamp?", cands, book=book).abstained
    # A folder without a calibration: the margin must simply beat "not here".
    assert ExtractiveReader(tiny_qa_dir, unset).abstain_threshold == 0.0


def test_cutting_the_answer_sentence_out_of_a_passage():
    from eval.reader import answer_sentences, without_answer

    book = _book()
    p1 = _passage(book, "The fishing", 1)
    cut = without_answer(p1, ["forty-seven years"])
    assert cut is not None and "forty-seven" not in cut.text
    assert cut.text.startswith("The fishing boats came home at dusk.") and "Nobody in Saltmarrow" in cut.text
    assert cut.passage_id == p1.passage_id and cut.chapter == p1.chapter
    assert without_answer(p1, ["a purple elephant"]) is None  # the answer is not there: nothing to cut
    assert len(answer_sentences(p1.text, ["Old Amos", "the lamp"])) == 2


def test_choose_threshold_separates_answerable_from_unanswerable():
    from eval.reader import choose_threshold

    chosen = choose_threshold([3.0, 2.0, 1.0, 0.5, -1.0], [-2.0, -3.0, 0.2, -5.0, float("-inf")])
    assert 0.2 < chosen["threshold"] < 0.5  # midway between the closest margins on either side
    assert chosen["answered"] == pytest.approx(0.8) and chosen["abstained"] == pytest.approx(1.0)
    # Nothing to separate: the margin must beat "not here", as before calibration.
    assert choose_threshold([1.0, 2.0], [])["threshold"] < 1.0
    assert choose_threshold([], [])["threshold"] == 0.0


def test_calibrate_writes_the_threshold_into_the_reader_folder(tiny_qa_dir, tmp_path, shared_data, monkeypatch):
    import shutil

    from retrieval.reader import READER_CONFIG
    from eval.reader import main

    root = shared_data / "fairytaleqa"
    story = next(json.loads(line) for line in (root / "stories.jsonl").read_text().splitlines()
                 if line.strip() and json.loads(line)["split"] == "val")
    questions = [json.loads(line) for line in (root / "val.jsonl").read_text().splitlines() if line.strip()]
    mine = [q for q in questions if q["story_id"] == story["story_id"] and q["explicit"]][:4]
    (tmp_path / "stories.jsonl").write_text(json.dumps(story) + "\n")
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in mine))
    folder = tmp_path / "reader"
    shutil.copytree(tiny_qa_dir, folder)
    (folder / READER_CONFIG).write_text(json.dumps({"max_length": 128, "stride": 32, "step": 7}))
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(tmp_path / "data"))
    args = ["--calibrate", str(folder), "--stories", str(tmp_path / "stories.jsonl"), "--questions",
            str(tmp_path / "questions.jsonl"), "--retriever", "bm25", "--cache-dir", "", "--threads", "1"]
    assert main(args + ["--no-write", "--report", str(tmp_path / "dry.json")]) == 0
    assert "abstain_threshold" not in json.loads((folder / READER_CONFIG).read_text())  # --no-write: unchanged
    assert main(args) == 0
    config = json.loads((folder / READER_CONFIG).read_text())
    assert config["step"] == 7 and config["max_length"] == 128  # what was there is kept
    report = json.loads((tmp_path / "dry.json").read_text())
    assert config["abstain_threshold"] == report["abstain_threshold"]
    cal = config["calibration"]
    assert cal["answerable"] == cal["unanswerable"] and cal["answerable"] + cal["answer_not_retrieved"] == len(mine)
    # An explicit setting still wins over the calibrated value.
    monkeypatch.setenv("VIGNETTE_ABSTAIN_THRESHOLD", "2.5")
    from vignette.settings import Settings

    assert ExtractiveReader(folder, Settings.from_env()).abstain_threshold == 2.5
    assert main(["--calibrate", str(tmp_path / "nowhere"), "--stories", str(tmp_path / "stories.jsonl"),
                 "--questions", str(tmp_path / "questions.jsonl")]) == 2  # a clear error, not a traceback


def test_evaluate_reads_gold_and_retrieved_sections(tiny_qa_dir, tmp_path, shared_data, monkeypatch):
    from eval.reader import main

    root = shared_data / "fairytaleqa"
    story = next(json.loads(line) for line in (root / "stories.jsonl").read_text().splitlines()
                 if line.strip() and json.loads(line)["split"] == "val")
    questions = [json.loads(line) for line in (root / "val.jsonl").read_text().splitlines() if line.strip()]
    mine = [q for q in questions if q["story_id"] == story["story_id"]][:3]
    (tmp_path / "stories.jsonl").write_text(json.dumps(story) + "\n")
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in mine))
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(tmp_path / "data"))
    report = tmp_path / "report.json"
    assert main(["--evaluate", str(tiny_qa_dir), "--stories", str(tmp_path / "stories.jsonl"), "--questions",
                 str(tmp_path / "questions.jsonl"), "--retriever", "bm25+window", "--passages", "1,3",
                 "--cache-dir", "", "--threads", "1", "--report", str(report)]) == 0
    summary = json.loads(report.read_text())
    text = json.dumps(summary)
    assert "top1" in text and "top3" in text and "gold" in text
    assert main(["--evaluate", str(tiny_qa_dir), "--stories", str(tmp_path / "stories.jsonl"), "--questions",
                 str(tmp_path / "questions.jsonl"), "--retriever", "bm25+colour"]) == 2  # a clear error


def test_cut_negatives_are_the_own_section_without_the_answer(tmp_path):
    from retrieval.train_reader import load_squad

    context = ("The storm came in from the west on the last night of October. Old Amos kept the light on "
               "Gullstone Rock for forty-seven years. The lamp burned oil from the barrels in the cellar, and "
               "every evening he climbed the stairs to trim the wicks. Wren brought him bread on Sundays.")
    question = "How long did Amos keep the light?"
    qa = {"id": "q", "question": question, "answers": [{"text": "forty-seven years",
                                                        "answer_start": context.index("forty-seven years")}]}
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [qa]}]}]}))
    plain = load_squad(path)
    assert [e.negative for e in plain] == [False]
    with_cut = load_squad(path, cut_negatives=1.0)
    assert [e.negative for e in with_cut] == [False, True]
    cut = with_cut[1]
    assert cut.question == question and cut.answer_start == -1
    assert "forty-seven" not in cut.context and "Gullstone Rock" not in cut.context
    assert cut.context.startswith("The storm came in from the west") and cut.context.endswith("on Sundays.")
