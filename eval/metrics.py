"""Metrics for retrieval and reading.

- Retrieval: recall@k (a gold passage among the top k) and the reciprocal rank of the first gold passage
  (MRR when averaged; 0 when none is retrieved).
- Reading: SQuAD's token F1 (Rajpurkar et al. 2016: lower-case, strip punctuation and the articles a/an/the,
  collapse white space, then bag-of-tokens F1) and ROUGE-L F1 (Lin 2004: longest common subsequence of the
  same normalised tokens), each the maximum over the gold answers, as the FairytaleQA benchmark scores.
- Abstain rate, and aggregation of per-question rows overall and by group (explicit / implicit).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Sequence

from retrieval.text import normalize_answer  # noqa: F401 - SQuAD's normalisation, used by the training too


# ------------------------------------------------------------------------------------------------ retrieval
def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 if any gold id is among the first ``k`` ranked ids, else 0.0."""
    gold = set(gold)
    return 1.0 if any(pid in gold for pid in list(ranked)[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Iterable[str]) -> float:
    """1 / the rank (from 1) of the first gold id; 0.0 if no gold id was ranked."""
    gold = set(gold)
    for rank, pid in enumerate(ranked, start=1):
        if pid in gold:
            return 1.0 / rank
    return 0.0


# ------------------------------------------------------------------------------------------------ reading
def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split()


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 of one prediction against one gold answer (both empty: 1.0; one empty: 0.0)."""
    p, g = _tokens(prediction), _tokens(gold)
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F1 (beta = 1) over SQuAD-normalised tokens."""
    p, g = _tokens(prediction), _tokens(gold)
    if not p or not g:
        return float(p == g)
    lcs = _lcs(p, g)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)


def max_over_gold(metric, prediction: str, golds: Iterable[str]) -> float:
    """The best score of ``prediction`` against any gold answer (0.0 without gold answers)."""
    return max((metric(prediction, g) for g in golds), default=0.0)


# ------------------------------------------------------------------------------------------------ aggregation
def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def aggregate(rows: Sequence[Mapping[str, float]], keys: Sequence[str], group_key: str | None = None,
              percent: bool = True) -> dict:
    """Mean of each metric in ``keys`` over ``rows`` (as a percentage unless ``percent`` is False), with
    ``n``; and, when ``group_key`` is given, the same for each value of it (e.g. explicit / implicit)."""
    scale = 100.0 if percent else 1.0

    def summarise(subset: Sequence[Mapping[str, float]]) -> dict:
        out = {"n": len(subset)}
        for key in keys:
            vals = [float(r[key]) for r in subset if r.get(key) is not None]
            if vals:
                out[key] = round(scale * mean(vals), 2)
        return out

    result = {"overall": summarise(rows)}
    if group_key is not None:
        for value in sorted({str(r[group_key]) for r in rows if group_key in r}):
            result[value] = summarise([r for r in rows if str(r.get(group_key)) == value])
    return result


def markdown_table(metrics: Mapping[str, Mapping[str, float]], keys: Sequence[str]) -> str:
    """One row per group (overall, explicit, implicit ...), one column per metric."""
    present = [k for k in keys if any(k in row for row in metrics.values())]
    lines = ["| split | n | " + " | ".join(present) + " |", "| --- | --- | " + " | ".join("---" for _ in present) + " |"]
    for name, row in metrics.items():
        cells = [f"{row[k]:.1f}" if k in row else "" for k in present]
        lines.append(f"| {name} | {row.get('n', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
