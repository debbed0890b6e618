"""The sampler over tiny random latent-diffusion components: seeding, every sampler, progress, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from illustration.denoiser import CFGDenoiser, encode_prompts, make_denoiser
from illustration.illustrator import Illustrator
from illustration.models import load_image_models
from illustration.sampler import SAMPLERS, Cancelled, initial_noise, karras_sigmas, sample
from vignette.settings import Settings

LISTED = ["dpmpp_2m", "dpmpp_2m_sde", "euler_ancestral", "euler", "heun"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory):
    return Settings.from_env(env={}, data_dir=tmp_path_factory.mktemp("data"), image_models="tiny-random")


@pytest.fixture(scope="module")
def tiny(tiny_settings):
    models = load_image_models(tiny_settings)
    embeds, _ = encode_prompts(
        models.text_encoder, models.tokenizer, ["", "a lighthouse at night"], models.device
    )
    denoiser = CFGDenoiser(make_denoiser(models.unet, models.alphas_cumprod, models.prediction_type))
    extra = {"cond": embeds[1:], "uncond": embeds[:1], "cond_scale": 7.0}
    return models, denoiser, extra


def _shape(models, w=32, h=32):
    return (1, models.latent_channels, h // models.vae_scale_factor, w // models.vae_scale_factor)


def test_karras_sigmas_run_from_the_models_largest_noise_to_zero(tiny):
    models, denoiser, _ = tiny
    sigmas = karras_sigmas(denoiser, 6)
    assert len(sigmas) == 7 and float(sigmas[-1]) == 0.0
    assert torch.all(sigmas[:-1] > sigmas[1:])
    assert float(sigmas[0]) == pytest.approx(float(denoiser.sigma_max), rel=1e-4)
    assert float(sigmas[-2]) == pytest.approx(float(denoiser.sigma_min), rel=1e-4)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_and_reports_each_step(tiny, name):
    models, denoiser, extra = tiny
    steps = 3
    sigmas = karras_sigmas(denoiser, steps)
    seen = []
    out = sample(denoiser, _shape(models), sigmas, name, seed=5, extra_args=extra, callback=seen.append)
    assert out.shape == _shape(models)
    assert torch.isfinite(out).all()
    assert [info["step"] for info in seen] == list(range(1, steps + 1))
    assert all(info["steps"] == steps for info in seen)
    start = initial_noise(_shape(models), 5, models.device) * sigmas[0]
    assert not torch.allclose(out, start)  # it moved away from the seeded initial noise


def test_listed_samplers_are_registered():
    assert set(LISTED) <= set(SAMPLERS)


@pytest.mark.parametrize("name", ["dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde"])
def test_same_seed_same_latents_other_seed_different(tiny, name):
    models, denoiser, extra = tiny
    sigmas = karras_sigmas(denoiser, 3)
    a = sample(denoiser, _shape(models), sigmas, name, seed=11, extra_args=extra)
    torch.manual_seed(999)  # the caller's random state must not matter
    b = sample(denoiser, _shape(models), sigmas, name, seed=11, extra_args=extra)
    c = sample(denoiser, _shape(models), sigmas, name, seed=12, extra_args=extra)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_sampling_leaves_the_callers_random_state_alone(tiny):
    models, denoiser, extra = tiny
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    sample(denoiser, _shape(models), karras_sigmas(denoiser, 2), "euler_ancestral", seed=1, extra_args=extra)
    assert torch.equal(torch.rand(4), expected)


def test_same_seed_gives_the_identical_picture_and_another_seed_a_different_one(tiny_settings, tmp_path):
    illustrator = Illustrator(tiny_settings)
    options = illustrator.options("fast", steps=3, size="32x32", seed=42)
    first = illustrator.draw("Wren on the lighthouse gallery at dawn", options, out=tmp_path / "a.png")
    again = illustrator.draw("Wren on the lighthouse gallery at dawn", options, out=tmp_path / "b.png")
    other = illustrator.draw(
        "Wren on the lighthouse gallery at dawn",
        illustrator.options("fast", steps=3, size="32x32", seed=43),
        out=tmp_path / "c.png",
    )
    from PIL import Image

    pixels = [np.asarray(Image.open(p)) for p in (first.path, again.path, other.path)]
    assert np.array_equal(pixels[0], pixels[1])
    assert not np.array_equal(pixels[0], pixels[2])
    assert first.seed == 42 and other.seed == 43


def test_cancel_stops_within_one_step(tiny):
    models, denoiser, extra = tiny
    sigmas = karras_sigmas(denoiser, 8)
    cancel = threading.Event()
    calls = {"model": 0, "after_cancel_model": 0}
    steps_after_cancel = []

    def counting_model(x, sigma, **kw):
        calls["model"] += 1
        if cancel.is_set():
            calls["after_cancel_model"] += 1
        return denoiser(x, sigma, **kw)

    def on_step(info):
        if cancel.is_set():
            steps_after_cancel.append(info["step"])
        if info["step"] == 3:
            cancel.set()

    with pytest.raises(Cancelled) as caught:
        sample(
            counting_model,
            _shape(models),
            sigmas,
            "heun",
            seed=0,
            extra_args=extra,
            callback=on_step,
            cancel=cancel,
        )
    assert steps_after_cancel == []  # no step was reported after the event was set
    assert calls["after_cancel_model"] == 0  # and the model was not called again
    assert caught.value.step == 3 and caught.value.steps == 8


def test_cancel_set_before_the_start_costs_no_model_call(tiny):
    models, denoiser, extra = tiny
    cancel = threading.Event()
    cancel.set()
    calls = []

    def model(x, sigma, **kw):
        calls.append(1)
        return denoiser(x, sigma, **kw)

    with pytest.raises(Cancelled):
        sample(
            model,
            _shape(models),
            karras_sigmas(denoiser, 4),
            "dpmpp_2m",
            seed=0,
            extra_args=extra,
            cancel=cancel,
        )
    assert calls == []


def test_cancel_from_another_thread_stops_the_drawing(tiny_settings, tmp_path):
    illustrator = Illustrator(tiny_settings)
    cancel = threading.Event()
    reported = []

    def on_step(info):
        reported.append(info["step"])
        if info["step"] == 2:
            threading.Thread(target=cancel.set).start()
            threading.Event().wait(0.2)  # the other thread has set it by the time this step ends

    with pytest.raises(Cancelled):
        illustrator.draw(
            "a storm over the sea",
            illustrator.options("fast", steps=10, size="32x32", seed=1),
            callback=on_step,
            cancel=cancel,
            out=tmp_path / "x.png",
        )
    assert max(reported) <= 3
    assert not (tmp_path / "x.png").exists()


def test_previews_come_every_n_steps_at_the_picture_size(tiny_settings, tmp_path):
    illustrator = Illustrator(tiny_settings)
    infos = []
    illustrator.draw(
        "a lighthouse",
        illustrator.options("fast", steps=5, size="64x48", seed=1, preview_every=2),
        callback=infos.append,
        out=tmp_path / "p.png",
    )
    with_preview = [i["step"] for i in infos if "preview" in i]
    assert with_preview == [1, 3, 5]  # every 2nd step, and the last
    assert all(i["preview"].size == (64, 48) for i in infos if "preview" in i)


def test_v_prediction_models_sample_too(tmp_path):
    from k_diffusion.external import DiscreteVDDPMDenoiser

    settings = Settings.from_env(env={}, data_dir=tmp_path, image_models="tiny-random-v")
    models = load_image_models(settings)
    assert models.prediction_type == "v_prediction"
    assert isinstance(
        make_denoiser(models.unet, models.alphas_cumprod, models.prediction_type), DiscreteVDDPMDenoiser
    )
    illustrator = Illustrator(settings)
    picture = illustrator.draw("a bell tower", illustrator.options("fast", steps=2, size="32x32", seed=3))
    assert picture.image.size == (32, 32)
    assert picture.models["profile"] == "tiny-random-v"
