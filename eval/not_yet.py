"""`python -m eval.not_yet`: "not yet" versus "not in the book" on the sample novel's facts.

Every answerable fact of ``data/sample-novel.facts.yaml`` stated in chapter c >= 2 is asked under the limit
c - 1: the answer lies after the limit, so the right reply is "The book tells you later" (or, fairly, an
answer found earlier in the book: some facts are told twice). The same facts asked under the limit c
("within") should be answered, never "later". Every unanswerable question is asked under
limits 2 and 5: the right reply is "The book doesn't say", never "later". A reply leaks when any eight
words of it occur only after the limit. The counts are printed per case; ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from vignette import offline

offline.prepare()

ROOT = Path(__file__).resolve().parents[1]


def _shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    w = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.not_yet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="the data dir holding the ingested sample (default: settings)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--always", action="store_true", help="ask the whole book after every question, not only "
                        "after an abstention: \"later\" whenever its answer lies after the limit (a variant)")
    args = parser.parse_args(argv)

    import yaml

    from bot.spoilers import answered_later
    from retrieval.pipeline import AnswerPipeline
    from retrieval.store import BookStore
    from vignette.settings import Settings

    settings = Settings.from_env(**({"data_dir": args.data_dir} if args.data_dir else {}))
    store = BookStore(settings)
    store.ensure_sample()
    pipeline = AnswerPipeline(store, settings)
    book = store.get_book("sample")
    facts = yaml.safe_load((ROOT / "data" / "sample-novel.facts.yaml").read_text(encoding="utf-8"))
    counts: Counter = Counter()
    leaks = []
    cases = [(f["question"], int(f["chapter"]) - 1, "later") for f in facts
             if f.get("answerable", True) and int(f.get("chapter") or 0) >= 2]
    cases += [(f["question"], limit, "never") for f in facts if f.get("answerable") is False for limit in (2, 5)]
    last = max(c.number for c in book.chapters)
    cases += [(f["question"], int(f["chapter"]), "within") for f in facts
              if f.get("answerable", True) and 1 <= int(f.get("chapter") or 0) < last]
    for question, limit, truth in cases:
        answer = pipeline.ask("sample", question, upto_chapter=limit)
        if answer.abstained or args.always:
            later = answered_later(pipeline, "sample", question, limit)
            outcome = "later" if later else ("doesn't say" if answer.abstained else "answered")
        else:
            outcome = "answered"
        counts[(truth, outcome)] += 1
        end = book.chapter(limit).end
        shown = " ".join([answer.answer] + [e.quote for e in answer.evidence]) if outcome == "answered" else ""
        if any(e.chapter > limit for e in answer.evidence) or (
                _shingles(shown) & _shingles(book.text[end:]) - _shingles(book.text[:end])):
            leaks.append(question)
    result = {f"{truth} -> {outcome}": n for (truth, outcome), n in sorted(counts.items())}
    result["leaks"] = len(leaks)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, n in result.items():
            print(f"{key}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
