"""`python -m eval.conversations FILES... --out DIR` - scripted conversations, scored turn by turn.

Each YAML file in ``eval/conversations/`` is one conversation::

    title: The letter and the bell          # optional
    book: sample                            # a book id, or a path (relative to the file, the repo, or the
    book_id: alice                          #   repo's parent: "shared/data/novels/pg11_alice_in_wonderland.txt");
    settings: {image_models: tiny-random}   #   optional id for a path, and optional Settings overrides
    draw: {size: 64x64, steps: 2}           # optional drawing options for pictures in this conversation
    turns:
      - user: Who found the letter in the lantern room?
        expect: {intent: ask, answer_contains_any: [Wren], cites_chapter: 3, abstains: false}
      - user: where did she hide it?
        expect:
          standalone: Where did Wren hide the letter she found in the lighthouse?   # marks a follow-up
          question_contains: [Wren, letter]
          answer_contains_any: [Hester, bell]
          cites_chapter: 4

Expectations: ``answer_contains_any`` (any of these, case-insensitive, in the answer), ``cites_chapter``
(the top evidence's chapter), ``abstains`` (true/false), ``question_contains`` (all of these in the
question as understood), ``intent``, ``image`` (a picture was / was not produced), ``standalone`` (the
standalone form of a follow-up). Every question turn without ``standalone`` is also checked to have been
left exactly as typed (``unchanged``): no standalone question may be rewritten.

The conversations run through the real :class:`bot.companion.Companion` (the app's code path), each in a
fresh session. Then every follow-up's standalone form (and any question that was rewritten although it
should not have been) runs in a fresh session of its own, under the same spoiler limit, so the report can
say whether the follow-up was answered as well as its standalone form. Writes ``report.json`` and
``report.md`` in ``--out``; ``--json`` also prints the summary.
"""

from __future__ import annotations

from vignette import offline

offline.prepare()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

from vignette.errors import VignetteError  # noqa: E402
from vignette.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXPECTATIONS = ("answer_contains_any", "cites_chapter", "abstains", "question_contains", "intent", "image",
                "standalone")
CONTENT = ("answer_contains_any", "cites_chapter", "abstains")  # what "answered correctly" means
TARGETS = {"followups_as_good": 0.9, "standalone_unchanged": 1.0, "abstain_rate": 0.9, "answer_rate": 0.9}


# --------------------------------------------------------------------------------------------------------
# Loading and checking the files
# --------------------------------------------------------------------------------------------------------


@dataclass
class Conversation:
    path: Path
    title: str
    book: str
    book_id: str | None
    settings: dict[str, Any]
    turns: list[dict[str, Any]]
    draw: dict[str, Any] = field(default_factory=dict)


def load_conversation(path: str | Path) -> Conversation:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise VignetteError(f"Cannot read the conversation file {path}: {err}") from None
    if not isinstance(data, dict) or "book" not in data or not isinstance(data.get("turns"), list):
        raise VignetteError(f"{path}: a conversation needs 'book' and a list of 'turns'.")
    turns = []
    for i, turn in enumerate(data["turns"], start=1):
        if not isinstance(turn, dict) or "user" not in turn:
            raise VignetteError(f"{path}: turn {i} needs a 'user' line.")
        expect = turn.get("expect") or {}
        unknown = set(expect) - set(EXPECTATIONS)
        if unknown:
            raise VignetteError(f"{path}: turn {i} has unknown expectations {sorted(unknown)}; "
                                f"known: {', '.join(EXPECTATIONS)}.")
        turns.append({"user": str(turn["user"]) if turn["user"] is not None else "", "expect": dict(expect)})
    return Conversation(path, str(data.get("title") or path.stem), str(data["book"]), data.get("book_id"),
                        dict(data.get("settings") or {}), turns, dict(data.get("draw") or {}))


def resolve_book(conv: Conversation, store: Any) -> tuple[str | None, str | None]:
    """(book_id, None) ready to use, or (None, reason to skip)."""
    spec = conv.book
    if spec == "sample":
        store.ensure_sample()
        return "sample", None
    if "/" not in spec and "." not in spec and store.has_book(spec):
        return spec, None
    candidates = [conv.path.parent / spec, ROOT / spec, ROOT.parent / spec, ROOT.parent / "shared" / spec,
                  ROOT.parent / "shared" / "data" / spec]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        return None, (f"the book {spec!r} is not ingested and no file was found at "
                      f"{', '.join(str(p) for p in candidates[:4])}")
    from retrieval.text import slugify

    book_id = conv.book_id or slugify(found.stem)
    if not store.has_book(book_id):
        print(f"ingesting {found} as {book_id!r} ...", file=sys.stderr)
        store.ingest(found, book_id=book_id)
    return book_id, None


# --------------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------------


def check_turn(expect: dict[str, Any], turn: Any) -> list[dict[str, Any]]:
    """One check per expectation: {kind, expected, actual, passed}."""
    checks = []
    answer = turn.answer
    answer_text = "" if answer is None or answer.abstained else (answer.answer or "")
    top = answer.evidence[0] if answer is not None and answer.evidence else None
    for kind, expected in expect.items():
        if kind == "standalone":
            continue
        if kind == "answer_contains_any":
            wanted = [str(w) for w in (expected if isinstance(expected, list) else [expected])]
            passed = any(w.lower() in answer_text.lower() for w in wanted)
            actual = answer_text[:200]
        elif kind == "cites_chapter":
            actual = None if top is None or answer.abstained else top.chapter
            passed = actual == int(expected)
        elif kind == "abstains":
            actual = None if answer is None else bool(answer.abstained)
            passed = actual == bool(expected)
        elif kind == "question_contains":
            wanted = [str(w) for w in (expected if isinstance(expected, list) else [expected])]
            actual = turn.question
            passed = bool(actual) and all(w.lower() in actual.lower() for w in wanted)
        elif kind == "intent":
            actual = turn.intent
            passed = actual == expected
        elif kind == "image":
            actual = bool(turn.image)
            passed = actual == bool(expected)
        else:  # pragma: no cover - load_conversation refuses unknown kinds
            continue
        checks.append({"kind": kind, "expected": expected, "actual": actual, "passed": bool(passed)})
    if turn.intent in ("ask", "both") and "standalone" not in expect:
        # a standalone question must reach retrieval as typed ("show me where..." becomes its question clause)
        as_typed = turn.intent == "both" or (turn.question or "").strip() == turn.text.strip()
        checks.append({"kind": "unchanged", "expected": turn.text, "actual": turn.question,
                       "passed": not turn.rewritten and as_typed})
    return checks


def correct(expect: dict[str, Any], turn: Any) -> bool | None:
    """Whether the content expectations hold (None when the turn has none)."""
    content = {k: v for k, v in expect.items() if k in CONTENT}
    if not content:
        return None
    return all(c["passed"] for c in check_turn(content, turn) if c["kind"] in CONTENT)


@dataclass
class Runner:
    data_dir: Path | None = None
    run_standalone: bool = True
    companions: dict[str, Any] = field(default_factory=dict)
    sessions: list[tuple[Any, str, str]] = field(default_factory=list)  # (companion, session, book) to forget
    reader: str | None = None  # overrides VIGNETTE_READER (and a file's settings) when given

    def forget_sessions(self) -> None:
        """Remove the evaluation's conversations from the memory file (the report keeps what they said)."""
        for companion, session, book_id in self.sessions:
            companion.reset(session, book_id)
        self.sessions.clear()

    def companion(self, overrides: dict[str, Any]):
        from bot.companion import Companion

        key = json.dumps(overrides, sort_keys=True)
        if key not in self.companions:
            if self.data_dir is not None:
                overrides = {**overrides, "data_dir": self.data_dir}
            if self.reader is not None:
                overrides = {**overrides, "reader": self.reader}
            self.companions[key] = Companion(Settings.from_env(**overrides))
        return self.companions[key]

    def run(self, conv: Conversation) -> dict[str, Any]:
        started = time.time()
        companion = self.companion(conv.settings)
        result: dict[str, Any] = {"file": str(conv.path), "title": conv.title, "book": conv.book, "turns": []}
        try:
            book_id, reason = resolve_book(conv, companion.store)
        except VignetteError as err:
            book_id, reason = None, err.message
        if book_id is None:
            result["skipped"] = reason
            return result
        result["book_id"] = book_id
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in conv.path.stem)[:40]
        session = f"eval-{stem}-{uuid.uuid4().hex[:8]}"
        self.sessions.append((companion, session, book_id))
        for i, spec in enumerate(conv.turns, start=1):
            expect = spec["expect"]
            t0 = time.time()
            turn = companion.reply(session, book_id, spec["user"], draw_options=conv.draw or None)
            record = {
                "n": i, "user": spec["user"], "intent": turn.intent, "question": turn.question,
                "rewritten": turn.rewritten, "answer": None if turn.answer is None else turn.answer.answer,
                "abstained": turn.abstained,
                "chapter": turn.answer.evidence[0].chapter if turn.answer is not None and turn.answer.evidence else None,
                "quote": turn.answer.evidence[0].quote if turn.answer is not None and turn.answer.evidence else None,
                "image": turn.image, "upto_chapter": turn.upto_chapter, "expect": expect,
                "checks": check_turn(expect, turn), "correct": correct(expect, turn),
                "seconds": round(time.time() - t0, 3),
            }
            # the standalone path: a fresh session, the same spoiler limit
            needs_rerun = "standalone" in expect or (turn.intent in ("ask", "both") and turn.rewritten)
            if self.run_standalone and turn.intent in ("ask", "both") and record["correct"] is not None:
                if needs_rerun:
                    question = expect.get("standalone") or spec["user"]
                    alone_session = f"eval-alone-{uuid.uuid4().hex[:10]}"
                    self.sessions.append((companion, alone_session, book_id))
                    alone = companion.reply(alone_session, book_id, question, upto_chapter=turn.upto_chapter or 0)
                    record["standalone"] = {"question": question, "correct": correct(expect, alone),
                                            "abstained": alone.abstained,
                                            "answer": None if alone.answer is None else alone.answer.answer,
                                            "rerun": True}
                else:  # a standalone question used as typed: the standalone path is this very turn
                    record["standalone"] = {"question": spec["user"], "correct": record["correct"],
                                            "abstained": turn.abstained, "answer": record["answer"], "rerun": False}
            result["turns"].append(record)
        result["seconds"] = round(time.time() - started, 2)
        return result


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    kinds: dict[str, list[int]] = {}
    followups = []
    unanswerable = answerable = 0
    abstained_ok = answered_ok = 0
    all_answerable = all_answered = 0  # every turn the book answers, whatever the standalone path did
    graded = right = wrong = 0  # answerable turns with expected words: right words (and chapter), or wrong ones
    turns = passed_turns = 0
    for conv in results:
        for t in conv.get("turns", []):
            turns += 1
            passed_turns += all(c["passed"] for c in t["checks"])
            for c in t["checks"]:
                kinds.setdefault(c["kind"], [0, 0])
                kinds[c["kind"]][0] += c["passed"]
                kinds[c["kind"]][1] += 1
            expect = t["expect"]
            alone = t.get("standalone")
            if "standalone" in expect and alone is not None:
                followups.append({"file": Path(conv["file"]).name, "n": t["n"], "user": t["user"],
                                  "understood_as": t["question"], "standalone": alone["question"],
                                  "followup_correct": t["correct"], "standalone_correct": alone["correct"],
                                  "as_good": bool(t["correct"]) or not alone["correct"]})
            if expect.get("abstains") is False:
                all_answerable += 1
                all_answered += t["abstained"] is False
                passed = {c["kind"]: c["passed"] for c in t["checks"]}
                if "answer_contains_any" in passed:
                    graded += 1
                    right += bool(passed["answer_contains_any"] and passed.get("cites_chapter", True))
                    wrong += t["abstained"] is False and not passed["answer_contains_any"]
            if expect.get("abstains") is True:
                unanswerable += 1
                abstained_ok += bool(t["abstained"])
            elif t["correct"] is not None and alone is not None and alone.get("abstained") is False:
                answerable += 1
                answered_ok += t["abstained"] is False
    rate = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    n_f = len(followups)
    summary = {
        "conversations": len(results),
        "skipped": [{"file": r["file"], "reason": r["skipped"]} for r in results if r.get("skipped")],
        "turns": turns,
        "turns_all_checks_passed": rate(passed_turns, turns),
        "pass_rate_by_expectation": {k: {"passed": v[0], "total": v[1], "rate": rate(*v)} for k, v in sorted(kinds.items())},
        "followups": {
            "count": n_f,
            "followup_correct": rate(sum(bool(f["followup_correct"]) for f in followups), n_f),
            "standalone_correct": rate(sum(bool(f["standalone_correct"]) for f in followups), n_f),
            "as_good_as_standalone": rate(sum(f["as_good"] for f in followups), n_f),
            "items": followups,
        },
        "standalone_unchanged": {"passed": kinds.get("unchanged", [0, 0])[0], "total": kinds.get("unchanged", [0, 0])[1],
                                 "rate": rate(*kinds.get("unchanged", [0, 0]))},
        "abstain_on_unanswerable": {"abstained": abstained_ok, "total": unanswerable, "rate": rate(abstained_ok, unanswerable)},
        "answer_on_answerable": {"answered": answered_ok, "total": answerable, "rate": rate(answered_ok, answerable),
                                 "note": "answerable turns whose standalone form the bot answers"},
        "answer_on_all_answerable": {"answered": all_answered, "total": all_answerable,
                                     "rate": rate(all_answered, all_answerable),
                                     "note": "every turn the book answers, including those the standalone path abstains on"},
        "right_words_and_chapter": {"right": right, "wrong": wrong, "total": graded, "rate": rate(right, graded),
                                    "note": "answerable turns with expected words: the answer holds them and the "
                                            "top evidence cites the expected chapter (when one is given); wrong: "
                                            "answered without them"},
    }
    summary["targets"] = {
        "followups_as_good (>= 0.9)": _meets(summary["followups"]["as_good_as_standalone"], TARGETS["followups_as_good"]),
        "standalone_unchanged (= 1.0)": _meets(summary["standalone_unchanged"]["rate"], TARGETS["standalone_unchanged"]),
        "abstain_on_unanswerable (>= 0.9)": _meets(summary["abstain_on_unanswerable"]["rate"], TARGETS["abstain_rate"]),
        "answer_on_answerable (>= 0.9)": _meets(summary["answer_on_answerable"]["rate"], TARGETS["answer_rate"]),
    }
    return summary


def _meets(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


# --------------------------------------------------------------------------------------------------------
# Writing the report
# --------------------------------------------------------------------------------------------------------


def _cell(value: Any, limit: int = 90) -> str:
    text = "" if value is None else " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text.replace("|", "\\|")


def markdown(results: list[dict[str, Any]], summary: dict[str, Any], meta: dict[str, Any]) -> str:
    out = ["# Scripted conversations", "",
           f"Run {meta['when']}; reader: {meta.get('reader') or 'see status'}; follow-ups: {meta.get('followups')}.", ""]
    out += ["## Summary", "", "| measure | value | target |", "| --- | --- | --- |"]
    f = summary["followups"]
    out.append(f"| follow-ups answered as well as their standalone form | {f['as_good_as_standalone']} "
               f"({f['count']} follow-ups; follow-up correct {f['followup_correct']}, standalone correct "
               f"{f['standalone_correct']}) | \u2265 0.9 |")
    s = summary["standalone_unchanged"]
    out.append(f"| standalone questions left unchanged | {s['rate']} ({s['passed']}/{s['total']}) | 1.0 |")
    a = summary["abstain_on_unanswerable"]
    out.append(f"| abstained on unanswerable turns | {a['rate']} ({a['abstained']}/{a['total']}) | \u2265 0.9 |")
    b = summary["answer_on_answerable"]
    out.append(f"| answered answerable turns (that the standalone path answers) | {b['rate']} "
               f"({b['answered']}/{b['total']}) | \u2265 0.9 |")
    c = summary["answer_on_all_answerable"]
    out.append(f"| answered answerable turns (all of them) | {c['rate']} ({c['answered']}/{c['total']}) | |")
    r = summary["right_words_and_chapter"]
    out.append(f"| answerable turns answered with the right words and chapter | {r['rate']} ({r['right']}/{r['total']}; "
               f"answered wrongly: {r['wrong']}) | |")
    out.append(f"| turns with every check passed | {summary['turns_all_checks_passed']} ({summary['turns']} turns) | |")
    out += ["", "### Pass rate per kind of expectation", "", "| expectation | passed | total | rate |",
            "| --- | --- | --- | --- |"]
    for kind, v in summary["pass_rate_by_expectation"].items():
        out.append(f"| {kind} | {v['passed']} | {v['total']} | {v['rate']} |")
    if f["items"]:
        out += ["", "### Follow-ups and their standalone forms", "",
                "| file | # | follow-up | understood as | standalone form | follow-up correct | standalone correct |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for item in f["items"]:
            out.append(f"| {item['file']} | {item['n']} | {_cell(item['user'], 50)} | {_cell(item['understood_as'], 70)} | "
                       f"{_cell(item['standalone'], 70)} | {_mark(item['followup_correct'])} | "
                       f"{_mark(item['standalone_correct'])} |")
    for skipped in summary["skipped"]:
        out += ["", f"**Skipped** {skipped['file']}: {skipped['reason']}"]
    for conv in results:
        if conv.get("skipped"):
            continue
        out += ["", f"## {conv['title']} ({Path(conv['file']).name}, book {conv.get('book_id')})", "",
                "| # | user | intent | question as understood | answer | ch. | checks |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for t in conv["turns"]:
            answer = "(abstained)" if t["abstained"] else t["answer"]
            if t["image"]:
                answer = f"{answer or ''} [image]".strip()
            checks = ", ".join(f"{_mark(c['passed'])} {c['kind']}" for c in t["checks"]) or "-"
            question = t["question"] if t["rewritten"] else ("= as typed" if t["question"] else "")
            out.append(f"| {t['n']} | {_cell(t['user'], 60)} | {t['intent']} | {_cell(question, 70)} | "
                       f"{_cell(answer, 80)} | {t['chapter'] or ''} | {checks} |")
    return "\n".join(out) + "\n"


def _mark(value: Any) -> str:
    return {True: "\u2713", False: "\u2717"}.get(value, "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.conversations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="conversation YAML files (eval/conversations/*.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json and report.md")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--data-dir", type=Path, help="data dir (default: $VIGNETTE_DATA_DIR or ./var)")
    parser.add_argument("--reader", help="who answers: by default the product's default reader (VIGNETTE_READER, "
                        "resolved as the bot resolves it); a QA model folder or hub id, or 'sentence'")
    parser.add_argument("--no-standalone", action="store_true",
                        help="skip running each follow-up's standalone form (faster; no comparison)")
    args = parser.parse_args(argv)
    try:
        conversations = [load_conversation(p) for p in args.files]
        runner = Runner(data_dir=args.data_dir, run_standalone=not args.no_standalone, reader=args.reader)
        results = []
        for conv in conversations:
            print(f"{conv.path.name}: {len(conv.turns)} turns ...", file=sys.stderr)
            results.append(runner.run(conv))
        summary = summarise(results)
        status = next(iter(runner.companions.values())).status() if runner.companions else {}
        answers = status.get("answers") or {}
        meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"),
                "reader": answers.get("reader") if isinstance(answers, dict) else str(answers),
                "followups": status.get("followups"), "status": status}
        args.out.mkdir(parents=True, exist_ok=True)
        report = {"meta": meta, "summary": summary, "conversations": results}
        (args.out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str),
                                             encoding="utf-8")
        (args.out / "report.md").write_text(markdown(results, summary, meta), encoding="utf-8")
        runner.forget_sessions()
        for companion in runner.companions.values():
            companion.close()
    except VignetteError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(err.hint, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        f = summary["followups"]
        print(f"wrote {args.out / 'report.md'} and report.json: {summary['turns']} turns; follow-ups as good as "
              f"standalone {f['as_good_as_standalone']}; standalone unchanged {summary['standalone_unchanged']['rate']}; "
              f"abstain {summary['abstain_on_unanswerable']['rate']}; answer {summary['answer_on_answerable']['rate']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
