"""The front door of illustration: evidence -> scene prompt -> picture.

It answers no question itself: the bot finds the answer or the passage (bot/scenes.py) and hands the
evidence here.

    illustrator = Illustrator(settings, store)
    prompt = illustrator.scene_prompt(answer, book)          # or .described_scene(text, evidence, book)
    print(prompt.text)                                       # shown; the user may edit it:
    prompt = prompt.edited("...")                            # optional
    picture = illustrator.draw(prompt, illustrator.options("fast", seed=7), callback=print, cancel=event)

``draw`` follows diffusers' pipeline ``__call__`` layout: 1. check inputs (size, steps, sampler, preset,
models: all before any work), 2. load the models (once), 3. encode the prompt, 4. build the denoiser
(k-diffusion wrapper, classifier-free guidance, CLIP guidance), 5. sample, 6. decode, 7. save the PNG
with its metadata and the sidecar JSON.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from illustration.options import DrawOptions, check_options, resolve_options
from illustration.scene import ScenePrompt, make_scene_writer, write_scene_prompt
from vignette.errors import VignetteError

MAX_PROMPT_CHARS = 2000
class Illustrator:
    """Scene prompts and pictures for a book. Cheap to construct; models load on the first ``draw``."""

    def __init__(self, settings, store=None, *, writer=None):
        self.settings = settings
        self._store = store
        self.writer = make_scene_writer(writer, settings)

    # --- parts -------------------------------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            from retrieval.store import BookStore

            self._store = BookStore(self.settings)
        return self._store

    def models_status(self, models: str | None = None) -> tuple[bool, str]:
        """(available, message) for the image models, without loading them."""
        from illustration.models import image_models_status

        return image_models_status(self.settings, models)

    def options(self, preset: str | None = None, **overrides) -> DrawOptions:
        """A preset's drawing options with overrides, checked (VignetteError on bad input)."""
        return resolve_options(preset, settings=self.settings, **overrides)

    # --- character sheets ---------------------------------------------------------------------------------
    def character_sheets(self, book_id: str, rebuild: bool = False):
        from illustration.characters import load_character_sheets

        return load_character_sheets(self.store, book_id, rebuild=rebuild)

    def edit_character(self, book_id: str, name: str, description: str):
        from illustration.characters import edit_character

        return edit_character(self.store, book_id, name, description)

    # --- scene prompts -------------------------------------------------------------------------------------
    def scene_prompt(self, answer, book, style: str | None = None) -> ScenePrompt:
        """The scene prompt for an :class:`~vignette.documents.Answer` (its first evidence passage) in
        ``book``
        (a Book or a book id)."""
        if isinstance(book, str):
            book = self.store.get_book(book)
        if answer.abstained or not answer.evidence:
            raise VignetteError(
                "The book doesn't say, so there is no scene to draw for that question.",
                hint='Describe the scene instead (e.g. "Wren in the lantern room at night").',
            )
        sheets = self._sheets_or_none(book)
        return write_scene_prompt(
            answer.answer,
            answer.evidence[0],
            book,
            question=answer.question,
            writer=self.writer,
            style=style,
            sheets=sheets,
        )

    def described_scene(self, text: str, evidence, book, style: str | None = None) -> ScenePrompt:
        """The scene prompt for a scene the reader described, with ``evidence`` (an
        :class:`~vignette.documents.Evidence`: the passage the bot found for it) as its source in ``book``."""
        if isinstance(book, str):
            book = self.store.get_book(book)
        return write_scene_prompt(text, evidence, book, question=None, writer=self.writer, style=style,
                                  sheets=self._sheets_or_none(book))

    def _sheets_or_none(self, book):
        try:
            return self.character_sheets(book.book_id)
        except VignetteError:  # a Book that is not in the store (tests, a one-off text): read it directly
            from illustration.characters import build_character_sheets

            return build_character_sheets(book)

    # --- drawing -------------------------------------------------------------------------------------------
    def draw(
        self,
        prompt: ScenePrompt | str,
        options: DrawOptions | None = None,
        callback: Callable[[dict], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        out: str | Path | None = None,
        models: str | None = None,
        book_id: str | None = None,
        negative_prompt: str | None = None,
    ):
        """Draw ``prompt`` (a ScenePrompt, possibly edited, or plain text), save it, return an Illustration.

        ``callback(dict)`` gets ``step``, ``steps``, ``sigma`` (and ``preview``, a PIL image, every
        ``options.preview_every`` steps); setting ``cancel`` stops within one step with
        :class:`~illustration.sampler.Cancelled`. ``models`` overrides the profile (default
        ``settings.image_models``); ``out`` the PNG path (default ``images_dir/<book>/<time>-<seed>.png``).
        """
        import torch

        from illustration.denoiser import CFGDenoiser, encode_prompts, make_denoiser
        from illustration.guidance import CLIPGuidance, ClipGuidanceSettings
        from illustration.metadata import Illustration, save_png
        from illustration.models import load_image_models, require_image_models
        from illustration.sampler import karras_sigmas, sample

        # 1. Check inputs: all of them, before any model is loaded or any step taken.
        options = check_options(options or self.options())
        text, negative, writer = self._prompt_text(prompt, negative_prompt)
        require_image_models(self.settings, models)
        seed = int(options.seed) if options.seed is not None else secrets.randbelow(2**31)
        notices = [getattr(prompt, "notice", None)]
        started = time.perf_counter()

        # 2. Load the models (cached per profile, device and dtype).
        m = load_image_models(self.settings, models)
        notices.insert(0, m.notice)
        if m.device.type == "cpu" and options.steps > 12 and not m.profile.is_tiny:
            notices.append(f"{options.steps} steps on a CPU take minutes; the fast preset is meant for CPUs")

        # 3. Encode the prompt (and the negative prompt, for classifier-free guidance).
        use_cfg = options.cfg_scale != 1.0
        texts = [negative, text] if use_cfg else [text]
        embeds, longest = encode_prompts(m.text_encoder, m.tokenizer, texts, m.device)
        window = int(getattr(m.text_encoder.config, "max_position_embeddings", 77))
        if longest > window:
            notices.append("the scene prompt was too long for the picture model; its end was cut")
        uncond, cond = (embeds[:1], embeds[1:]) if use_cfg else (None, embeds)

        # 4. The denoiser: k-diffusion wrapper over the UNet, classifier-free guidance, CLIP guidance.
        denoiser = CFGDenoiser(make_denoiser(m.unet, m.alphas_cumprod, m.prediction_type))
        sigmas = karras_sigmas(denoiser, options.steps, device=m.device)
        model_fn = denoiser
        clip_settings = None
        if options.clip_scale > 0:
            if m.clip is None:
                notices.append(
                    "no CLIP model is configured (VIGNETTE_CLIP_MODEL=none): drawn without CLIP guidance"
                )
            else:
                clip_settings = ClipGuidanceSettings(
                    scale=float(options.clip_scale),
                    cutouts=int(options.clip_cutouts),
                    every=int(options.clip_every),
                    decode_scale=float(options.clip_decode_scale),
                )
                scaling = m.scaling_factor

                def decode(latents):
                    return m.vae.decode((latents / scaling).to(m.vae.dtype)).sample

                guidance = CLIPGuidance(m.clip, text, decode, clip_settings, sigmas, seed=seed)
                model_fn = guidance.wrap(denoiser)

        # 5. Sample.
        w, h = options.width, options.height
        shape = (1, m.latent_channels, h // m.vae_scale_factor, w // m.vae_scale_factor)
        from illustration.sampler import latent_preview

        preview = (lambda denoised: latent_preview(denoised, (w, h))) if options.preview_every else None
        latents = sample(
            model_fn,
            shape,
            sigmas,
            options.sampler,
            seed,
            extra_args={"cond": cond, "uncond": uncond, "cond_scale": float(options.cfg_scale)},
            callback=callback,
            cancel=cancel,
            preview_every=options.preview_every,
            preview=preview,
        )

        # 6. Decode.
        with torch.no_grad():
            pixels = m.vae.decode((latents / m.scaling_factor).to(m.vae.dtype)).sample
        image = to_pil(pixels)

        # 7. Save with metadata.
        evidence = getattr(prompt, "evidence", None)
        book = book_id or getattr(prompt, "book_id", None)
        path = Path(out) if out else self._default_path(book, seed)
        illustration = Illustration(
            path=str(path),
            prompt=text,
            negative_prompt=negative,
            seed=seed,
            sampler=options.sampler,
            steps=options.steps,
            size=(w, h),
            cfg_scale=float(options.cfg_scale),
            clip_guidance=clip_settings.to_dict() if clip_settings else None,
            preset=options.preset,
            style=getattr(prompt, "style", None) or options.style,
            models={
                "profile": m.profile.name,
                **m.names,
                "device": str(m.device),
                "dtype": str(m.dtype).replace("torch.", ""),
            },
            book_id=book,
            evidence=_evidence_record(evidence),
            writer=writer,
            notice=" ".join(_sentence(n) for n in notices if n) or None,
            elapsed_s=round(time.perf_counter() - started, 3),
            image=image,
        )
        save_png(image, illustration, path)
        return illustration

    def _prompt_text(self, prompt, negative_prompt):
        if isinstance(prompt, ScenePrompt):
            text, negative, writer = prompt.text, prompt.negative, prompt.writer
        elif isinstance(prompt, str):
            from illustration.options import load_style_file

            text, negative, writer = prompt, load_style_file().get("default_negative", ""), "user"
        else:
            raise TypeError(f"prompt must be a ScenePrompt or a string, not {type(prompt).__name__}")
        if negative_prompt is not None:
            negative = negative_prompt
        text = " ".join((text or "").split())
        if not text:
            raise VignetteError("The prompt is empty: say what the picture should show.")
        if len(text) > MAX_PROMPT_CHARS:
            raise VignetteError(
                f"The prompt is {len(text)} characters long; keep it under {MAX_PROMPT_CHARS} "
                "(the image model reads only the first ~60 words anyway)."
            )
        return text, " ".join((negative or "").split()), writer

    def _default_path(self, book_id: str | None, seed: int) -> Path:
        folder = Path(self.settings.images_dir) / (book_id or "unsorted")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"{stamp}-{seed}.png"
        n = 1
        while path.exists():
            path = folder / f"{stamp}-{seed}-{n}.png"
            n += 1
        return path


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def to_pil(pixels):
    """[1, 3, H, W] in [-1, 1] -> a PIL RGB image."""
    from PIL import Image

    array = ((pixels[0].float().clamp(-1, 1) + 1) * 127.5).round().to("cpu").byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array)


def _evidence_record(evidence) -> dict | None:
    if not evidence:
        return None
    data = evidence.to_dict() if hasattr(evidence, "to_dict") else dict(evidence)
    keep = ("passage_id", "chapter", "chapter_title", "quote", "start", "end")
    return {k: data.get(k) for k in keep if k in data}
