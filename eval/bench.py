"""`python -m eval.bench WHAT ...` - speed benchmarks, each a ratio measured side by side in one run.

Each benchmark lives in ``eval/bench_<what>.py`` with ``add_parser(subparsers)`` registering ``func=run``.
"""

from __future__ import annotations

import argparse
import importlib

from vignette import offline

offline.prepare()

from vignette.errors import VignetteError  # noqa: E402
from vignette.settings import Settings  # noqa: E402

BENCH_MODULES = [
    "eval.bench_ingest",
    "eval.bench_sample",
    "eval.bench_query",
    "eval.bench_app",
    "eval.bench_start",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__)
    parser.add_argument("--data-dir", help="data dir to use (default: a fresh temporary folder)")
    sub = parser.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    for name in BENCH_MODULES:
        importlib.import_module(name).add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, Settings.from_env()) or 0)
    except VignetteError as err:
        print(f"error: {err}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
