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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

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
