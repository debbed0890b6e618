"""`python -m eval.reader_checks` - does the sentence reader's abstain check earn its place?

The sentence reader (:class:`retrieval.reader.SentenceReader`, the last-resort fallback) may turn an
answer into an abstention with its **number** check: a question asking for a number ("How many ...?",
"How old ...?") is answered only by a sentence holding one. A check is worth keeping only if it helps on
questions that were not used to write it, so this measures it on and off on data nobody studied while
writing it:

- the SQuAD 2.0 dev set (``--squad``): every article is a book, its paragraphs the passages; half of its
  questions have no answer in their paragraph, which is what an abstain check is for;
- FairytaleQA (``--stories`` / ``--questions``): every question is answerable, so a check can only lose
  answers there; that loss is the price.

For every question the check acts on, the product's sentence reader scores the sentences of the top
``--passages`` paragraphs (dense retrieval inside the article or story, the same for both variants), then
each variant decides. Reported per variant: on answerable questions the share answered, the share whose
sentence holds a gold answer ("hit"), the share answered with a sentence that holds none ("wrong"), ROUGE-L
against the gold answers; on unanswerable ones the share abstained on.

Example::

    python -m eval.reader_checks --squad ../shared/data/qa/squad2-dev/dev-v2.0.json --squad-articles 12 \\
        --stories ../shared/data/fairytaleqa/stories.jsonl --questions ../shared/data/fairytaleqa/val.jsonl \\
        --out runs/reader-checks
"""

from __future__ import annotations

from vignette import offline

offline.prepare()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from eval.metrics import max_over_gold, normalize_answer, rouge_l  # noqa: E402
from vignette.documents import Book, Candidate, Chapter, Passage  # noqa: E402
from vignette.errors import VignetteError  # noqa: E402
from vignette.settings import Settings  # noqa: E402

VARIANTS = {"no check": False, "number check (the product)": True}  # name -> number_check


def make_book(book_id: str, title: str, texts: list[str]) -> tuple[Book, list[Passage]]:
    """A book whose chapters are ``texts`` (joined by blank lines), with one passage per chapter."""
    parts, chapters, passages, offset = [], [], [], 0
    for i, text in enumerate(texts, start=1):
        chapters.append(Chapter(i, f"{title} {i}", offset, offset + len(text)))
        passages.append(Passage(f"{book_id}#{i}", book_id, i, f"{title} {i}", offset, offset + len(text), text))
        parts.append(text)
        offset += len(text) + 2
    return Book(book_id=book_id, title=title, author=None, text="\n\n".join(parts), chapters=chapters), passages


def squad_items(path: Path, limit_articles: int | None) -> list[dict]:
    """One item per article: its paragraphs and questions (answers [] when unanswerable)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    items = []
    for a, article in enumerate(data[:limit_articles] if limit_articles else data):
        texts, questions = [], []
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else sorted({x["text"] for x in qa["answers"]})
                questions.append({"qid": qa["id"], "question": qa["question"], "answers": answers})
        items.append({"book_id": f"squad-{a}", "title": article["title"], "texts": texts, "questions": questions})
    return items


def fairytale_items(stories: Path, questions: Path) -> list[dict]:
    by_story: dict[str, list[dict]] = {}
    for line in Path(questions).read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            by_story.setdefault(q["story_id"], []).append(
                {"qid": q["qid"], "question": q["question"], "answers": list(q.get("answers") or [])})
    items = []
    for line in Path(stories).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        story = json.loads(line)
        if story["story_id"] in by_story:
            items.append({"book_id": story["story_id"], "title": story.get("title", story["story_id"]),
                          "texts": [s["text"] for s in story["sections"]], "questions": by_story[story["story_id"]]})
    return items


def measure(items: list[dict], reader, passages_read: int) -> list[dict]:
    """One row per question and variant, for the questions the check acts on (number questions); the
    others are answered alike by both variants."""
    from retrieval.reader import expected_answer_type

    rows = []
    for item in items:
        book, passages = make_book(item["book_id"], item["title"], item["texts"])
        p_vecs = reader._encode([p.text for p in passages])
        q_vecs = reader._encode([q["question"] for q in item["questions"]])
        for q, q_vec in zip(item["questions"], q_vecs):
            if expected_answer_type(q["question"]) != "number":
                continue  # the check does not act on it: both variants answer alike
            order = np.argsort(-(p_vecs @ q_vec))[:passages_read]
            candidates = [Candidate(passages[i], float(p_vecs[i] @ q_vec)) for i in order]
            scored = reader.score_sentences(q["question"], candidates, book)
            for name, number_check in VARIANTS.items():
                chosen = reader.choose(q["question"], scored, number_check=number_check)
                sentence = " ".join(chosen.text.split()) if chosen is not None else ""
                gold = [normalize_answer(a) for a in q["answers"]]
                rows.append({
                    "qid": q["qid"], "variant": name, "answerable": bool(q["answers"]),
                    "abstained": chosen is None,
                    "hit": bool(sentence) and any(g and g in normalize_answer(sentence) for g in gold),
                    "rouge_l": max_over_gold(rouge_l, sentence, q["answers"]) if q["answers"] and sentence else 0.0,
                })
    return rows


def summarise(rows: list[dict]) -> dict:
    """Per variant, over the questions the check acts on."""
    out: dict = {}
    for name in VARIANTS:
        mine = [r for r in rows if r["variant"] == name]
        out[name] = {}
        for subset, keep in (("checked", lambda r: True),):
            sel = [r for r in mine if keep(r)]
            ans = [r for r in sel if r["answerable"]]
            una = [r for r in sel if not r["answerable"]]
            pct = lambda xs, key: round(100.0 * sum(bool(x[key]) for x in xs) / len(xs), 1) if xs else None  # noqa: E731
            out[name][subset] = {
                "answerable": len(ans), "answered": 100.0 - pct(ans, "abstained") if ans else None,
                "hit": pct(ans, "hit"),
                "wrong_answers": round(100.0 * sum(not r["abstained"] and not r["hit"] for r in ans) / len(ans), 1) if ans else None,
                "rouge_l": round(100.0 * sum(r["rouge_l"] for r in ans) / len(ans), 1) if ans else None,
                "unanswerable": len(una), "abstained_unanswerable": pct(una, "abstained"),
            }
    return out


def markdown(results: dict) -> str:
    lines = []
    for data, summary in results.items():
        summary = dict(summary)
        counts = summary.pop("questions", {})
        lines += [f"## {data}", "", f"{counts.get('checked')} of {counts.get('all')} questions have a check acting on them.",
                  "", "| variant | subset | answerable | answered % | hit % | wrong answers % | ROUGE-L "
                  "| unanswerable | abstained % |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, subsets in summary.items():
            for subset, m in subsets.items():
                cells = [m[k] if m[k] is not None else "-" for k in ("answerable", "answered", "hit", "wrong_answers",
                                                                       "rouge_l", "unanswerable", "abstained_unanswerable")]
                lines.append(f"| {name} | {subset} | " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.reader_checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, help="SQuAD 2.0 JSON (dev-v2.0.json)")
    parser.add_argument("--squad-articles", type=int, help="only the first N articles")
    parser.add_argument("--stories", type=Path, help="FairytaleQA stories.jsonl")
    parser.add_argument("--questions", type=Path, help="FairytaleQA questions (val.jsonl)")
    parser.add_argument("--passages", type=int, default=3, help="paragraphs the reader reads per question (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="folder for checks.json and checks.md")
    args = parser.parse_args(argv)
    try:
        if not args.squad and not (args.stories and args.questions):
            raise VignetteError("Give --squad FILE and/or --stories FILE --questions FILE.")
        for path in (args.squad, args.stories, args.questions):
            if path is not None and not path.is_file():
                raise VignetteError(f"{path} does not exist.")
        from retrieval.reader import load_reader

        reader = load_reader(Settings.from_env().replace(reader="sentence"))
        sets = {}
        if args.squad:
            sets["SQuAD 2.0 dev"] = squad_items(args.squad, args.squad_articles)
        if args.stories and args.questions:
            sets["FairytaleQA"] = fairytale_items(args.stories, args.questions)
        results, began = {}, time.time()
        args.out.mkdir(parents=True, exist_ok=True)
        for data, items in sets.items():
            rows = measure(items, reader, args.passages)
            results[data] = summarise(rows)
            total = sum(len(item["questions"]) for item in items)
            results[data]["questions"] = {"all": total, "checked": len(rows) // len(VARIANTS)}
            print(f"{data}: {total} questions, {len(rows) // len(VARIANTS)} checked, {time.time() - began:.0f} s",
                  file=sys.stderr)
    except VignetteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results_meta = {"command": "python -m eval.reader_checks " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "reader": reader.name, "passages": args.passages}
    (args.out / "checks.json").write_text(json.dumps({"meta": results_meta, "results": results}, indent=2) + "\n")
    text = markdown(results)
    (args.out / "checks.md").write_text(f"# Sentence-reader checks\n\n`{results_meta['command']}`\n\n{text}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
