"""`python -m eval.recap_quality BOOK...`: how much of each chapter's cast and places a recap names.

For every chapter of every book, the chapter's *salient names* are the characters (every alias of each,
from :func:`illustration.characters.analyse_names` over the whole book) and places that the chapter names
at least ``--min-mentions`` times. A recap of that chapter (``--sentences`` sentences, the same budget for
every method) scores the share of them it names; the table gives the mean over chapters, per method and
book, and the sentences' mean length (a method could buy names with long sentences). No human summaries
of these chapters exist in public-domain form here, so there is no ROUGE column.

Methods: ``mmr`` at several weights, ``centroid``, ``lead`` and ``random`` (mean of 3 seeds); see
:mod:`bot.recap`. Books are files (.txt, .epub...) read with the project's loader; sentence vectors are
cached under ``--cache`` so a second run is fast.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from vignette import offline

offline.prepare()


def salient_names(book, chapter, index, min_mentions: int) -> dict[str, list[str]]:
    """{display name: its forms} of the characters and places the chapter names often enough."""
    text = book.text[chapter.start:chapter.end]
    found = {}
    entities = [(c.name, c.aliases) for c in index.characters] + [(p, [p]) for p, _ in index.places[:40]]
    for name, forms in entities:
        pattern = re.compile(r"(?<![A-Za-z])(?:" + "|".join(re.escape(f) for f in sorted(forms, key=len,
                                                                                         reverse=True)) + r")(?![A-Za-z])")
        if len(pattern.findall(text)) >= min_mentions:
            found[name] = forms
    return found


def coverage(sentences: list[str], names: dict[str, list[str]]) -> float:
    text = " ".join(sentences)
    hit = sum(any(re.search(r"(?<![A-Za-z])" + re.escape(f) + r"(?![A-Za-z])", text) for f in forms)
              for forms in names.values())
    return hit / len(names)


def measure(path: Path, encode, methods: list[tuple[str, str, float]], k: int, min_mentions: int,
            cache: Path) -> dict[str, dict[str, float]]:
    from bot.recap import build_recap
    from illustration.characters import analyse_names
    from retrieval.loading import load_book

    book = load_book(path)
    index = analyse_names(book)
    names = {c.number: salient_names(book, c, index, min_mentions) for c in book.chapters}
    scored = [n for n, found in names.items() if found]
    out = {}
    for label, method, lam, dangle in methods:
        seeds = [0, 1, 2] if method == "random" else [0]
        scores, lengths = [], []
        for seed in seeds:
            recap = build_recap(book, encode, None, sentences=k, method=method, lam=lam, cache_dir=cache / book.book_id,
                                model_key="minilm", seed=seed,
                                dangling_penalty=dangle)
            by_chapter = {c.chapter: [s.text for s in c.sentences] for c in recap.chapters}
            scores.append(statistics.mean(coverage(by_chapter[n], names[n]) for n in scored))
            lengths.append(statistics.mean(len(s.text.split()) for s in recap.sentences()))
        out[label] = {"coverage": statistics.mean(scores), "words": statistics.mean(lengths)}
    out["_chapters"] = {"coverage": len(scored), "words": statistics.mean(len(v) for v in names.values())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.recap_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("books", nargs="+", type=Path, help="book files")
    parser.add_argument("--sentences", type=int, default=3, help="sentences per chapter (default 3)")
    parser.add_argument("--min-mentions", type=int, default=2, help="times a chapter must name a character or "
                        "place for it to count (default 2)")
    parser.add_argument("--lambdas", default="0.5,0.7,0.85", help="MMR weights to measure (default 0.5,0.7,0.85)")
    parser.add_argument("--dangling", default="0", help="penalties for a sentence opening with a pronoun "
                        "(comma-separated; 0: none)")
    parser.add_argument("--cache", type=Path, help="where sentence vectors are kept (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)

    from retrieval.embedding import encode as encode_texts
    from retrieval.embedding import load_encoder

    model = load_encoder("all-MiniLM-L6-v2", "cpu")

    def encode(texts):
        return encode_texts(model, list(texts), 32)

    methods = [(f"mmr {float(x):g}", "mmr", float(x), 0.0) for x in args.lambdas.split(",")]
    methods += [(f"mmr {float(x):g} + named opening {float(d):g}", "mmr", float(x), float(d))
                for x in args.lambdas.split(",") for d in args.dangling.split(",") if float(d)]
    methods += [("centroid", "centroid", 1.0, 0.0), ("lead", "lead", 0.0, 0.0), ("random", "random", 0.0, 0.0)]
    cache = args.cache or Path(tempfile.mkdtemp(prefix="vignette-recap-"))
    results = {}
    for path in args.books:
        results[path.name] = measure(path, encode, methods, args.sentences, args.min_mentions, cache)
        print(f"measured {path.name}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    labels = [m[0] for m in methods]
    print("| book | chapters scored | names per chapter | " + " | ".join(labels) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in labels) + " |")
    for name, row in results.items():
        cells = [f"{100 * row[m]['coverage']:.1f}% ({row[m]['words']:.0f} w)" for m in labels]
        print(f"| {name} | {row['_chapters']['coverage']} | {row['_chapters']['words']:.1f} | " + " | ".join(cells) + " |")
    means = {m: statistics.mean(r[m]["coverage"] for r in results.values()) for m in labels}
    print("| **mean** | | | " + " | ".join(f"**{100 * means[m]:.1f}%**" for m in labels) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
