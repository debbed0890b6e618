"""`python -m eval.bench start`: what a new user waits for after `make run` (target: the first answer within
10 s of the address).

Runs ``python app.py`` as a user would, in a process of its own, on a fresh data dir (``--stored`` keeps the
library between runs, as on a second start). From the process start it records the first line printed and
the address ("Running on ..."). The moment the address is printed, a client starts asking the sample novel a
question through ``/ask`` (gradio_client, over HTTP); the app holds it until its models are ready, then
answers. Reported per run: first line, address, and first answer (from the start and after the
address); then the median over runs. The whole process is real: imports, the sample's ingest, the models'
warm-up and the HTTP round trip all count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from vignette.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TARGET_AFTER_ADDRESS_S = 10.0
QUESTION = "Who found the letter in the lantern room?"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "start", help="`python app.py` on a fresh data dir: seconds to its address and to the first answer",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="starts to time (default 3)")
    parser.add_argument("--stored", action="store_true",
                        help="keep the library between runs: the first run is fresh, the rest are second starts")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a run after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the runs and their medians as JSON")
    parser.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_start(data_dir: Path, timeout: float) -> dict[str, Any]:
    """Start the app, time its output, ask until answered; the app is stopped before returning."""
    port = _free_port()
    env = {**os.environ, "VIGNETTE_DATA_DIR": str(data_dir), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    marks: dict[str, float] = {}
    lines: list[str] = []
    address = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            now = time.perf_counter() - started
            if line.strip():
                marks.setdefault("first_line_s", now)
            if "Running on" in line:
                marks.setdefault("address_s", now)
                address.set()
            if line.startswith("Ready ("):
                marks.setdefault("ready_s", now)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    answer = ""
    try:
        if not address.wait(timeout):
            raise RuntimeError("the app printed no address within the timeout:\n" + "\n".join(lines[-20:]))
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        reply, _details = client.predict(QUESTION, api_name="/ask")  # waits while the app is still loading
        answer = str(reply or "")
        marks["answer_s"] = time.perf_counter() - started
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = {k: round(v, 2) if isinstance(v, float) else v for k, v in marks.items()}
    if "answer_s" in marks and "address_s" in marks:
        out["answer_after_address_s"] = round(marks["answer_s"] - marks["address_s"], 2)
    out["answer"] = answer
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    parent = getattr(args, "data_dir", None)
    base = Path(tempfile.mkdtemp(prefix="vignette-bench-start-", dir=parent))
    runs = []
    try:
        for i in range(max(1, args.runs)):
            data_dir = base / ("library" if args.stored else f"run-{i}")
            runs.append(_one_start(data_dir, args.timeout))
            if not args.json:
                r = runs[-1]
                print(f"run {i + 1}: first line {r.get('first_line_s', float('nan')):.1f} s, address "
                      f"{r.get('address_s', float('nan')):.1f} s, first answer {r.get('answer_s', float('nan')):.1f} s "
                      f"({r.get('answer_after_address_s', float('nan')):.1f} s after the address): {r['answer'][:60]!r}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    after = [r["answer_after_address_s"] for r in runs if "answer_after_address_s" in r]
    result = {
        "cores": os.cpu_count(),
        "fresh": not args.stored,
        "runs": runs,
        "median_address_s": round(statistics.median(r["address_s"] for r in runs if "address_s" in r), 2),
        "median_answer_after_address_s": round(statistics.median(after), 2) if after else None,
        "target_after_address_s": TARGET_AFTER_ADDRESS_S,
        "meets_target": bool(after) and max(after) <= TARGET_AFTER_ADDRESS_S,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"median: address {result['median_address_s']:.1f} s; first answer "
              f"{result['median_answer_after_address_s']} s after it (target <= {TARGET_AFTER_ADDRESS_S:g} s: "
              f"{'met' if result['meets_target'] else 'NOT met'})")
    return 0
