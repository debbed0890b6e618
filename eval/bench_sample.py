"""`python -m eval.bench sample`: the sampler's overhead over bare k-diffusion, and what CLIP guidance costs.

In one process, on the same denoiser (tiny-random components unless ``--models`` says otherwise), the same
Karras sigmas and the same seed:

1. **Overhead**: ``illustration.sampler.sample`` (seeding, noise samplers, the progress callback, the
   cancel checks) against calling ``k_diffusion.sampling.sample_<name>`` directly on the same
   classifier-free-guided denoiser with the same initial noise. Runs alternate (A, B, A, B...) so machine
   load hits both alike; the median of ``--repeats`` each. ``overhead = ours / direct - 1`` (target <= 5%).
   The two results are also compared: they must be the same latents.
2. **CLIP guidance**: the median time of a step guided on every step (VAE decode + CLIP on the cutouts
   + the backward pass through both) over an unguided step: ``clip_step_ratio``.
3. **Per preset at 512x512** on a CUDA GPU, when there is one (the number a GPU user cares about); without
   CUDA it says so instead of guessing.

``--full-size`` times the product's own path instead (scene prompt in, PNG out, ``Illustrator.draw``) with
Stable Diffusion 1.5's components at full size and random weights (``sd15-random``: time and memory
depend on the architecture, not the weights), on the device and in the dtype the app would choose. For
each preset, after a warm-up: the median of ``--repeats`` pictures, seconds per step with and without CLIP
guidance, and peak GPU memory; once: the time to build and move the models. ``--optimize`` then re-times
the presets with each speed-up applied on top of the previous ones and compares the picture with the
unoptimised one of the same seed (mean and largest pixel difference, 0-255).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from vignette.settings import Settings


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="the sampler's overhead over bare k-diffusion, and the cost of CLIP guidance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", default="tiny-random", help="image model profile (default: tiny-random)")
    parser.add_argument("--sampler", default="dpmpp_2m", help="sampler to time (default: dpmpp_2m)")
    parser.add_argument("--steps", type=int, default=8, help="steps per run (default: 8)")
    parser.add_argument("--size", default="64x64", help="picture size for the overhead runs (default: 64x64)")
    parser.add_argument(
        "--repeats", type=int, default=15, help="runs of each side; the median is kept (default: 15)"
    )
    parser.add_argument("--clip-cutouts", type=int, default=8, help="cutouts per guided step (default: 8)")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's; 1 is steadier on a busy machine)"
    )
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="time Illustrator.draw per preset with Stable Diffusion 1.5-sized random models (for a GPU)",
    )
    parser.add_argument("--presets", default="fast,quality", help="with --full-size: presets to time")
    parser.add_argument("--preset-size", default="512x512", help="with --full-size: picture size (default 512x512)")
    parser.add_argument(
        "--optimize",
        default="",
        help="with --full-size: speed-ups to add one after another, comma-separated, from "
        + ", ".join(OPTIMIZATIONS),
    )
    parser.add_argument("--out", help="with --full-size: write the JSON report (and the last pictures) here")
    parser.set_defaults(func=run)


# Speed-ups --optimize can add (each on top of the ones before it); see apply_optimization.
OPTIMIZATIONS = ("no_sdpa", "channels_last", "clip_fp16", "compile", "clip_decode_half", "clip_every_4")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    if args.full_size:
        return run_full_size(args, settings)

    from illustration.denoiser import CFGDenoiser, encode_prompts, make_denoiser
    from illustration.guidance import CLIPGuidance, ClipGuidanceSettings
    from illustration.models import load_image_models
    from illustration.options import check_options, parse_size, resolve_options
    from illustration.sampler import SAMPLERS, initial_noise, karras_sigmas, sample

    if args.threads:
        torch.set_num_threads(args.threads)
    # 1. Check inputs (the same checks as drawing).
    width, height = parse_size(args.size)
    check_options(
        resolve_options(
            "fast", settings=settings, sampler=args.sampler, steps=args.steps, size=(width, height)
        )
    )
    settings = settings.replace(image_models=args.models)
    models = load_image_models(settings)
    text = "a girl in a red scarf on a lighthouse gallery at dawn, storybook illustration"
    embeds, _ = encode_prompts(models.text_encoder, models.tokenizer, ["", text], models.device)
    extra = {"cond": embeds[1:], "uncond": embeds[:1], "cond_scale": 7.0}
    denoiser = CFGDenoiser(make_denoiser(models.unet, models.alphas_cumprod, models.prediction_type))
    sigmas = karras_sigmas(denoiser, args.steps, device=models.device)
    shape = (1, models.latent_channels, height // models.vae_scale_factor, width // models.vae_scale_factor)
    seed = 1234
    fn, kind = SAMPLERS[args.sampler]
    sync = torch.cuda.synchronize if models.device.type == "cuda" else (lambda: None)

    def direct():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = initial_noise(shape, seed, models.device) * sigmas[0]
            kwargs = {}
            if kind != "ode":
                from illustration.sampler import noise_sampler_for

                kwargs["noise_sampler"] = noise_sampler_for(kind, x, sigmas, seed)
            return fn(denoiser, x, sigmas, extra_args=extra, disable=True, **kwargs)

    steps_seen = []

    def ours():
        return sample(
            denoiser,
            shape,
            sigmas,
            args.sampler,
            seed,
            extra_args=extra,
            callback=lambda info: steps_seen.append(info["step"]),
            cancel=threading.Event(),
        )

    def timed(f):
        sync()
        start = time.perf_counter()
        out = f()
        sync()
        return time.perf_counter() - start, out

    # 2. Overhead: warm both, then alternate.
    timed(direct), timed(ours)
    t_direct, t_ours = [], []
    for _ in range(args.repeats):
        a, x_direct = timed(direct)
        b, x_ours = timed(ours)
        t_direct.append(a)
        t_ours.append(b)
    identical = bool(torch.equal(x_direct, x_ours))
    overhead = statistics.median(t_ours) / statistics.median(t_direct) - 1

    # 3. CLIP guidance per step: every step guided vs none (same sampler, steps, seed).
    clip_ratio = None
    guided_s = unguided_s = None
    if models.clip is not None:
        scaling = models.scaling_factor

        def decode(latents):
            return models.vae.decode((latents / scaling).to(models.vae.dtype)).sample

        cfg = ClipGuidanceSettings(scale=100.0, cutouts=args.clip_cutouts, every=1)

        def guided():
            guidance = CLIPGuidance(models.clip, text, decode, cfg, sigmas, seed=seed)
            return sample(guidance.wrap(denoiser), shape, sigmas, args.sampler, seed, extra_args=extra)

        def unguided():
            return sample(denoiser, shape, sigmas, args.sampler, seed, extra_args=extra)

        timed(guided)
        t_g, t_u = [], []
        for _ in range(max(3, args.repeats // 3)):
            t_u.append(timed(unguided)[0])
            t_g.append(timed(guided)[0])
        guided_s = statistics.median(t_g) / args.steps
        unguided_s = statistics.median(t_u) / args.steps
        clip_ratio = guided_s / unguided_s

    # 4. Per preset at 512x512, on a GPU only.
    presets = {}
    if models.device.type == "cuda":
        from illustration.illustrator import Illustrator

        illustrator = Illustrator(settings)
        for name in ("fast", "quality"):
            options = resolve_options(name, settings=settings, seed=seed, size=(512, 512))
            illustrator.draw(text, options, out=_tmp_png())  # warm-up (kernels, cuDNN autotune)
            start = time.perf_counter()
            illustrator.draw(text, options, out=_tmp_png())
            presets[name] = {
                "seconds": round(time.perf_counter() - start, 3),
                "steps": options.steps,
                "sampler": options.sampler,
                "clip_scale": options.clip_scale,
            }
        gpu_note = f"512x512 per preset on {torch.cuda.get_device_name()}"
    else:
        gpu_note = (
            "no CUDA GPU here: the 512x512 time per preset cannot be measured on this machine "
            "(run `python -m eval.bench sample --models default` on a GPU)"
        )

    result = {
        "models": models.names,
        "device": str(models.device),
        "dtype": str(models.dtype).replace("torch.", ""),
        "sampler": args.sampler,
        "steps": args.steps,
        "size": [width, height],
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "direct_s": round(statistics.median(t_direct), 5),
        "ours_s": round(statistics.median(t_ours), 5),
        "overhead": round(overhead, 4),
        "overhead_target": 0.05,
        "same_latents": identical,
        "clip_cutouts": args.clip_cutouts,
        "clip_step_s": round(guided_s, 5) if guided_s else None,
        "unguided_step_s": round(unguided_s, 5) if unguided_s else None,
        "clip_step_ratio": round(clip_ratio, 2) if clip_ratio else None,
        "presets_512": presets,
        "gpu": gpu_note,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"models: {models.names['diffusion']} + {models.names['clip']} "
            f"on {result['device']} ({result['dtype']})"
        )
        print(
            f"{args.sampler}, {args.steps} steps, {width}x{height}, "
            f"median of {args.repeats} alternating runs:"
        )
        print(f"  k-diffusion directly : {result['direct_s'] * 1000:.1f} ms")
        print(f"  Vignette's sampler   : {result['ours_s'] * 1000:.1f} ms  (same latents: {identical})")
        verdict = "within" if overhead <= 0.05 else "over"
        print(f"  overhead             : {overhead * 100:+.1f}%  ({verdict} the 5% target)")
        if clip_ratio:
            print(
                f"CLIP guidance ({args.clip_cutouts} cutouts, every step): "
                f"{guided_s * 1000:.1f} ms a step vs "
                f"{unguided_s * 1000:.1f} ms unguided = {clip_ratio:.2f}x"
            )
        for name, p in presets.items():
            print(
                f"  {name}: {p['seconds']:.2f} s ({p['steps']} steps, {p['sampler']}, clip {p['clip_scale']})"
            )
        print(gpu_note)
    return 0


def _tmp_png():
    import tempfile

    return tempfile.NamedTemporaryFile(suffix=".png", delete=False).name


def apply_optimization(name: str, models, options_overrides: dict) -> None:
    """Change the loaded models (or the drawing options) for one --optimize entry."""
    import torch

    if name == "no_sdpa":  # the baseline attention before PyTorch 2's fused scaled-dot-product kernels
        from diffusers.models.attention_processor import AttnProcessor

        models.unet.set_attn_processor(AttnProcessor())
        models.vae.set_attn_processor(AttnProcessor())
    elif name == "sdpa":
        from diffusers.models.attention_processor import AttnProcessor2_0

        models.unet.set_attn_processor(AttnProcessor2_0())
        models.vae.set_attn_processor(AttnProcessor2_0())
    elif name == "channels_last":
        models.unet.to(memory_format=torch.channels_last)
        models.vae.to(memory_format=torch.channels_last)
    elif name == "clip_fp16":
        models.clip.model.half()
    elif name == "compile":
        models.unet = torch.compile(models.unet)
    elif name == "clip_decode_half":
        options_overrides["clip_decode_scale"] = 0.5
    elif name == "clip_every_4":
        options_overrides["clip_every"] = 4
    else:
        raise SystemExit(f"unknown optimisation {name!r}; choose from {', '.join(OPTIMIZATIONS)}")


def run_full_size(args: argparse.Namespace, settings: Settings) -> int:
    """Per preset, through Illustrator.draw: seconds a picture, per step guided and unguided, peak memory."""
    import os
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch

    from illustration.denoiser import CFGDenoiser, encode_prompts, make_denoiser
    from illustration.guidance import CLIPGuidance, ClipGuidanceSettings
    from illustration.illustrator import Illustrator
    from illustration.models import SD15_RANDOM, load_image_models
    from illustration.options import parse_size, resolve_options
    from illustration.sampler import karras_sigmas, sample

    # 1. Check inputs.
    width, height = parse_size(args.preset_size)
    names = [n.strip() for n in args.presets.split(",") if n.strip()]
    steps_to_add = [n.strip() for n in args.optimize.split(",") if n.strip()]
    for name in names:
        resolve_options(name, settings=settings, size=(width, height))
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="vignette-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = SD15_RANDOM if args.models == "tiny-random" else args.models
    settings = settings.replace(image_models=profile)
    cuda = torch.cuda.is_available() and settings.device in ("auto", "cuda") or settings.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    text = "a storybook illustration of a girl in a red scarf on a lighthouse gallery at dawn, ink and watercolour"
    seed = 1234

    # 2. Build and move the models once.
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    models = load_image_models(settings)
    sync()
    load_s = time.perf_counter() - start
    illustrator = Illustrator(settings)

    def draw(name: str, overrides: dict, path: str):
        options = resolve_options(name, settings=settings, seed=seed, size=(width, height), **overrides)
        sync()
        t0 = time.perf_counter()
        picture = illustrator.draw(text, options, out=path)
        sync()
        return time.perf_counter() - t0, picture, options

    def per_step(options, guided: bool) -> float:
        """Median seconds a step of the preset's sampler, every step guided or none."""
        embeds, _ = encode_prompts(models.text_encoder, models.tokenizer, ["", text], models.device)
        denoiser = CFGDenoiser(make_denoiser(models.unet, models.alphas_cumprod, models.prediction_type))
        sigmas = karras_sigmas(denoiser, options.steps, device=models.device)
        extra = {"cond": embeds[1:], "uncond": embeds[:1], "cond_scale": options.cfg_scale}
        shape = (1, models.latent_channels, height // models.vae_scale_factor, width // models.vae_scale_factor)
        model_fn = denoiser
        if guided:
            scaling = models.scaling_factor

            def decode(latents):
                return models.vae.decode((latents / scaling).to(models.vae.dtype)).sample

            cfg = ClipGuidanceSettings(scale=max(options.clip_scale, 100.0), cutouts=options.clip_cutouts, every=1,
                                       decode_scale=options.clip_decode_scale)
            model_fn = CLIPGuidance(models.clip, text, decode, cfg, sigmas, seed=seed).wrap(denoiser)
        times = []
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            sample(model_fn, shape, sigmas, options.sampler, seed, extra_args=extra)
            sync()
            times.append((time.perf_counter() - t0) / options.steps)
        return statistics.median(times)

    def time_presets(label: str, overrides: dict, baseline: dict | None) -> dict:
        rows = {}
        for name in names:
            path = str(out_dir / f"{label}-{name}.png")
            draw(name, overrides, path)  # warm-up (kernels, autotuning, compilation)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(args.repeats):
                seconds, picture, options = draw(name, overrides, path)
                times.append(seconds)
            row = {
                "seconds": round(statistics.median(times), 4),
                "all_seconds": [round(t, 4) for t in times],
                "steps": options.steps,
                "sampler": options.sampler,
                "clip_scale": options.clip_scale,
                "clip_every": options.clip_every,
                "clip_cutouts": options.clip_cutouts,
                "clip_decode_scale": options.clip_decode_scale,
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
                "step_unguided_s": round(per_step(options, False), 5),
                "step_guided_s": round(per_step(options, True), 5) if models.clip is not None else None,
            }
            pixels = np.asarray(picture.image, dtype=np.float32)
            np.save(out_dir / f"{label}-{name}.npy", pixels)
            if baseline is not None and name in baseline:
                ref = np.load(out_dir / f"baseline-{name}.npy")
                row["vs_baseline_mean_abs"] = round(float(np.abs(pixels - ref).mean()), 3)
                row["vs_baseline_max_abs"] = round(float(np.abs(pixels - ref).max()), 3)
            rows[name] = row
            print(f"{label:>24} {name:>8}: {row['seconds']:.3f} s a picture; a step {row['step_unguided_s']*1000:.1f} ms "
                  f"unguided, {(row['step_guided_s'] or 0)*1000:.1f} ms guided; peak {row['peak_gpu_gib']} GiB",
                  flush=True)
        return rows

    # 3. The presets as the app draws them, then with each optimisation added on top.
    report = {
        "models": models.names,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": str(models.dtype).replace("torch.", ""),
        "size": [width, height],
        "repeats": args.repeats,
        "torch": torch.__version__,
        "load_and_move_s": round(load_s, 3),
        "attention": type(next(iter(models.unet.attn_processors.values()))).__name__,
        "runs": {},
    }
    print(f"models built and moved in {load_s:.1f} s ({report['dtype']} on {report['device']}); "
          f"attention: {report['attention']}", flush=True)
    overrides: dict = {}
    report["runs"]["baseline"] = time_presets("baseline", overrides, None)
    applied = []
    (out_dir / "bench_full_size.json").write_text(json.dumps(report, indent=2) + "\n")
    for name in steps_to_add:
        t0 = time.perf_counter()
        applied.append(name)
        label = "+".join(applied)
        try:
            apply_optimization(name, models, overrides)
            rows = time_presets(label, dict(overrides), report["runs"]["baseline"])
        except Exception as err:  # noqa: BLE001 - one failing speed-up must not lose the others' figures
            print(f"{label}: failed: {err.__class__.__name__}: {err}", flush=True)
            report["runs"][label] = {"error": f"{err.__class__.__name__}: {str(err)[:300]}"}
            applied.pop()
            continue
        rows["applied_s"] = round(time.perf_counter() - t0, 2)  # includes the warm-ups (compilation)
        report["runs"][label] = rows
        (out_dir / "bench_full_size.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
    print(f"report: {out_dir / 'bench_full_size.json'}")
    del os
    return 0
