"""`python -m eval.bench app`: how soon the app's chat starts answering (target: first token < 1 s, 2 cores).

The sample novel is ingested into a fresh data dir (not timed). Then, in one process:

1. **startup**: what ``python app.py`` does: ``app.build_companion`` and ``app.build_demo`` (after which
   the page is served: ``serve_s``), and the background :class:`bot.startup.Startup` (the sample checked,
   the answer models warmed: ``startup_s``);
2. **first token**: for each question (fact questions from ``data/sample-novel.facts.yaml``), a fresh
   browser session sends it through the chat handler the page runs (``VignetteApp.respond``, the same
   generator Gradio streams from); timed from the call to the first streamed text after the "…"
   placeholder, and to the finished reply;
3. **API round trip**: the same questions through ``/ask`` with ``gradio_client`` against the app served
   on 127.0.0.1 (HTTP, queue and JSON included).

The first question after startup is reported apart (``first_question_s``): it pays for anything the
warm-up did not load. Reported: median and worst of each, the core count and torch's thread count.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from vignette.settings import Settings

TARGET_FIRST_TOKEN_S = 1.0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "app", help="time from a chat message to the first streamed token, and /ask round trips",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--questions", type=int, default=12, help="fact questions to ask (default 12)")
    parser.add_argument("--json", action="store_true",
                        help='print {"startup_s", "first_question_s", "first_token_s": {...}, "reply_s", '
                             '"api_s", ...}')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    parent = getattr(args, "data_dir", None)
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="vignette-bench-app-", dir=parent))
    settings = settings.replace(data_dir=data_dir, chroma_host=None, image_models="tiny-random")
    try:
        return _measure(args, settings)
    finally:
        if not parent:
            shutil.rmtree(data_dir, ignore_errors=True)


def _questions(n: int) -> list[str]:
    import yaml

    path = Path(__file__).resolve().parents[1] / "data" / "sample-novel.facts.yaml"
    facts = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [f["question"] for f in facts if f.get("kind") == "fact" and not f.get("followup_of")][:n]


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3),
            "min": round(min(values), 3)}


def _measure(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import socket

    import torch

    import app
    from retrieval.store import BookStore

    # 0. The library, as `make run` leaves it after its first start (not timed).
    BookStore(settings).ensure_sample()
    questions = _questions(max(2, args.questions))

    # 1. Startup: what `python app.py` does: the page can be served after build_demo, the models warm behind.
    from bot.startup import Startup

    started = time.perf_counter()
    companion = app.build_companion(settings)
    startup = Startup(companion, app.SAMPLE_BOOK, on_message=lambda text: None).start()
    demo = app.build_demo(companion, startup)
    serve_s = time.perf_counter() - started
    startup.wait()
    startup_s = time.perf_counter() - started
    handlers = demo.vignette

    # 2. First token through the chat handler, one fresh browser session per question.
    first_tokens, replies = [], []
    for question in questions:
        stored = {"session": app.new_web_session(), "book": app.SAMPLE_BOOK}
        history = [{"role": "user", "content": question}]
        t0 = time.perf_counter()
        first = None
        for chat, *_ in handlers.respond(question, history, stored, None):
            text = chat[-1]["content"] if chat and chat[-1]["role"] == "assistant" else ""
            if first is None and isinstance(text, str) and text.strip() and text != "\u2026":
                first = time.perf_counter() - t0
        replies.append(time.perf_counter() - t0)
        first_tokens.append(first if first is not None else replies[-1])

    # 3. /ask through HTTP.
    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(demo, settings, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    api = []
    try:
        client = Client(demo.local_url, verbose=False)
        for question in questions:
            t0 = time.perf_counter()
            client.predict(question, api_name="/ask")
            api.append(time.perf_counter() - t0)
        client.close()
    finally:
        demo.close()
        companion.close()

    result = {
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "questions": len(questions),
        "serve_s": round(serve_s, 2),
        "startup_s": round(startup_s, 2),
        "first_question_s": round(first_tokens[0], 3),
        "first_token_s": _summary(first_tokens[1:]),
        "reply_s": _summary(replies[1:]),
        "api_s": _summary(api),
        "target_first_token_s": TARGET_FIRST_TOKEN_S,
        "meets_target": max(first_tokens) < TARGET_FIRST_TOKEN_S,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    ft, rp, ap = result["first_token_s"], result["reply_s"], result["api_s"]
    print(f"{result['cores']} cores, torch threads {result['torch_threads']}, {len(questions)} questions")
    print(f"page served after {result['serve_s']:.2f} s; sample and answer models ready after {result['startup_s']:.2f} s")
    print(f"first question after startup: first token {result['first_question_s']:.3f} s")
    print(f"first token   median {ft['median']:.3f} s  max {ft['max']:.3f} s   "
          f"(target < {TARGET_FIRST_TOKEN_S:g} s: {'met' if result['meets_target'] else 'NOT met'})")
    print(f"whole reply   median {rp['median']:.3f} s  max {rp['max']:.3f} s")
    print(f"/ask (HTTP)   median {ap['median']:.3f} s  max {ap['max']:.3f} s")
    return 0
