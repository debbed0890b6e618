"""`python -m bot illustrate` (draw a scene of a book) and `python -m bot characters` (its character
sheets)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap

from vignette.settings import Settings

EXAMPLES = """examples:
  python -m bot illustrate --book sample "Where did Wren hide the letter?" --out letter.png
  python -m bot illustrate --book sample "Wren rowing the Little Auk at dawn" --preset quality --seed 7
  python -m bot illustrate --book sample --models tiny-random --size 64x48 --json "Toby rings the bells"
  python -m bot illustrate --book sample --prompt-only "Who found the green lantern?"
  python -m bot characters --book sample --set "Wren=small girl, red wool scarf, copper-red plait"
"""


def add_parser(subparsers) -> None:
    from illustration.options import MAX_SIDE, MAX_STEPS

    p = subparsers.add_parser(
        "illustrate",
        help="draw a scene of a book (a question's answer, or a scene you describe)",
        description=textwrap.fill(
            "Draw a picture of a scene from the book. A question is answered first and the passage "
            "that answers it is drawn; anything else is a scene description, drawn from the passage that "
            "best matches it. The scene prompt (who, where, when, mood, composition, style, and the "
            "characters' looks from their character sheets) is printed before drawing. The PNG carries the "
            "prompt, seed, sampler, models and the evidence in its metadata.",
            width=100,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("text", help="a question about the book, or a scene to draw")
    p.add_argument(
        "--book", required=True, help="the book's id (see `python -m bot books`; 'sample' is built in)"
    )
    p.add_argument(
        "--models",
        dest="image_models",
        metavar="PROFILE",
        help="image models: default, tiny-random (noise, to try the mechanics), a Hub id, a diffusers "
        "folder or a .safetensors checkpoint (default: $VIGNETTE_IMAGE_MODELS or 'default')",
    )
    p.add_argument(
        "--preset",
        dest="image_preset",
        metavar="NAME",
        help="fast (few steps, no CLIP guidance; for CPUs) or quality (more steps, CLIP guidance) "
        "(default: $VIGNETTE_IMAGE_PRESET or 'fast')",
    )
    p.add_argument(
        "--style", help="the look: storybook, engraving, oil, watercolour, cinematic (see data/styles.yaml)"
    )
    p.add_argument(
        "--seed", type=int, help="the random seed (same seed, same picture; default: random, printed)"
    )
    p.add_argument("--steps", type=int, help=f"sampling steps, 1 to {MAX_STEPS} (default: the preset's)")
    p.add_argument(
        "--size",
        metavar="WxH",
        help=f"picture size in pixels, multiples of 8 up to {MAX_SIDE} a side "
        "(default: the preset's, 512x512)",
    )
    p.add_argument(
        "--sampler", help="dpmpp_2m, dpmpp_2m_sde, euler_ancestral, euler, heun, ... (default: the preset's)"
    )
    p.add_argument(
        "--cfg-scale", type=float, help="classifier-free guidance scale; 1 turns it off (default 7)"
    )
    p.add_argument(
        "--clip-scale", type=float, help="CLIP guidance scale; 0 turns it off (default: the preset's)"
    )
    p.add_argument("--clip-cutouts", type=int, help="random crops CLIP looks at per guided step")
    p.add_argument("--clip-every", type=int, help="apply CLIP guidance every N steps")
    p.add_argument("--upto-chapter", type=int, metavar="N", help="use only chapters 1..N (no spoilers)")
    p.add_argument(
        "--prompt",
        dest="edited_prompt",
        metavar="TEXT",
        help="draw this prompt instead of the written one (the evidence is still recorded)",
    )
    p.add_argument("--negative", metavar="TEXT", help="the negative prompt (default: the style's)")
    p.add_argument("--prompt-only", action="store_true", help="print the scene prompt and stop (to edit it)")
    p.add_argument(
        "--out", metavar="PATH", help="also write the PNG here (it is always kept in the data dir)"
    )
    p.add_argument("--device", help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--dtype", help="auto, float32, float16 or bfloat16 (default: auto: fp16 on GPUs)")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"prompt", "negative_prompt", "image", "seed", '
        '"sampler", "steps", "evidence", ...} as JSON',
    )
    p.set_defaults(func=run)

    c = subparsers.add_parser(
        "characters",
        help="show or edit a book's character sheets (how each character looks in pictures)",
        description="Show the main characters of a book with the appearance read from the text (added to "
        "every "
        "scene prompt that names them). --set changes a description; your edits survive --rebuild.",
    )
    c.add_argument("--book", required=True, help="the book's id")
    c.add_argument(
        "--set",
        dest="set_description",
        metavar="NAME=DESCRIPTION",
        action="append",
        help='e.g. --set "Wren=small girl, red wool scarf, copper-red plait" (repeatable)',
    )
    c.add_argument("--rebuild", action="store_true", help="read the book again (your edits are kept)")
    c.add_argument("--json", action="store_true", help="print the sheets as JSON")
    c.set_defaults(func=run_characters)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from illustration.illustrator import Illustrator
    from illustration.models import require_image_models
    from illustration.options import resolve_options

    # 1. Check inputs and models: before loading a book or a model.
    options = resolve_options(
        settings.image_preset,
        settings=settings,
        seed=args.seed,
        steps=args.steps,
        size=args.size,
        sampler=args.sampler,
        cfg_scale=args.cfg_scale,
        clip_scale=args.clip_scale,
        clip_cutouts=args.clip_cutouts,
        clip_every=args.clip_every,
        style=args.style,
        preview_every=0,
    )
    if not args.prompt_only:
        require_image_models(settings)
    # 2. The scene prompt.
    from retrieval.store import BookStore

    store = BookStore(settings)
    if args.book == "sample":
        store.ensure_sample()
    illustrator = Illustrator(settings, store)
    from bot.scenes import scene_for
    from retrieval.pipeline import AnswerPipeline

    prompt, answer = scene_for(illustrator, AnswerPipeline(store, settings), args.book, args.text,
                               upto_chapter=args.upto_chapter, style=args.style)
    if args.edited_prompt:
        prompt = prompt.edited(args.edited_prompt, args.negative)
    elif args.negative is not None:
        prompt = prompt.edited(prompt.text, args.negative)
    if not args.json:
        _show_prompt(prompt, answer)
    if args.prompt_only:
        if args.json:
            print(
                json.dumps(
                    {
                        "prompt": prompt.text,
                        "negative_prompt": prompt.negative,
                        "writer": prompt.writer,
                        "parts": prompt.parts,
                        "evidence": prompt.evidence,
                    },
                    ensure_ascii=False,
                )
            )
        return 0
    # 3. Draw.
    progress = None if args.json else _progress_printer(options.steps)
    picture = illustrator.draw(prompt, options, callback=progress, book_id=args.book)
    image = picture.path
    if args.out:
        shutil.copyfile(picture.path, args.out)
        image = args.out
    if args.json:
        print(
            json.dumps(
                {
                    "prompt": picture.prompt,
                    "negative_prompt": picture.negative_prompt,
                    "image": image,
                    "seed": picture.seed,
                    "sampler": picture.sampler,
                    "steps": picture.steps,
                    "evidence": picture.evidence,
                    "size": list(picture.size),
                    "writer": picture.writer,
                    "models": picture.models,
                    "clip_guidance": picture.clip_guidance,
                    "saved": picture.path,
                    "notice": picture.notice,
                    "answer": getattr(answer, "answer", None),
                },
                ensure_ascii=False,
            )
        )
    else:
        print(
            f"Image: {image}  (seed {picture.seed}, {picture.sampler}, {picture.steps} steps, "
            f"{picture.size[0]}x{picture.size[1]}, {picture.elapsed_s:.1f} s)"
        )
        if picture.notice:
            print(f"Note: {picture.notice}")
    return 0


def _show_prompt(prompt, answer) -> None:
    if answer is not None:
        print(f"Answer: {answer.answer}")
    print(f"Scene prompt ({prompt.writer}):\n  {prompt.text}")
    print(f"Negative prompt:\n  {prompt.negative}")
    if prompt.evidence:
        ev = prompt.evidence
        quote = " ".join(str(ev.get("quote", "")).split())
        print(
            f"Evidence: {ev.get('chapter_title') or 'chapter ' + str(ev.get('chapter'))}: \u201c{quote}\u201d"
        )
    if prompt.notice:
        print(f"Note: {prompt.notice}")
    sys.stdout.flush()


def _progress_printer(steps: int):
    tty = sys.stderr.isatty()

    def report(info: dict) -> None:
        end = "\r" if tty and info["step"] < info["steps"] else "\n"
        if tty or info["step"] == info["steps"]:
            print(f"drawing: step {info['step']}/{info['steps']}", end=end, file=sys.stderr, flush=True)

    return report


def run_characters(args: argparse.Namespace, settings: Settings) -> int:
    from illustration.illustrator import Illustrator
    from retrieval.store import BookStore
    from vignette.errors import VignetteError

    store = BookStore(settings)
    if args.book == "sample":
        store.ensure_sample()
    illustrator = Illustrator(settings, store)
    for item in args.set_description or []:
        name, sep, description = item.partition("=")
        if not sep or not name.strip():
            raise VignetteError(
                f'--set {item!r} is not NAME=DESCRIPTION, e.g. --set "Wren=red scarf, copper plait".'
            )
        illustrator.edit_character(args.book, name.strip(), description)
    sheets = illustrator.character_sheets(args.book, rebuild=args.rebuild)
    if args.json:
        print(json.dumps(sheets.to_dict(), ensure_ascii=False))
    else:
        print(sheets.describe())
    return 0
