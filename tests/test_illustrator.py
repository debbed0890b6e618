"""The Illustrator front door with tiny random models: sizes, metadata, bad input, models, scene prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bot.scenes import is_question
from illustration.illustrator import Illustrator
from illustration.metadata import read_metadata, read_sidecar
from illustration.models import NOISE_NOTICE, image_models_status
from illustration.options import MAX_SIDE, MAX_STEPS
from vignette.documents import Answer, Evidence
from vignette.errors import VignetteError
from vignette.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny(tmp_path):
    return Settings.from_env(env={}, data_dir=tmp_path / "data", image_models="tiny-random")


@pytest.fixture(scope="module")
def book():
    from retrieval.loading import load_book

    return load_book(ROOT / "data" / "sample-novel.txt", book_id="sample")


def sample_answer(book) -> Answer:
    quote = "Nell Pritchard was there in her blue headscarf and a flannel nightgown, holding a rolling pin."
    start = book.text.find(quote)
    chapter = next(c for c in book.chapters if c.start <= start < c.end)
    evidence = Evidence(
        quote=quote,
        chapter=chapter.number,
        chapter_title=chapter.title,
        start=start,
        end=start + len(quote),
        passage_id="sample-p-7",
        score=0.9,
    )
    return Answer(
        question="What was Nell Pritchard holding?",
        answer="a rolling pin",
        abstained=False,
        evidence=[evidence],
        reader="test",
    )


def test_sizes_are_honoured_and_saved_with_a_sidecar(tiny, tmp_path):
    illustrator = Illustrator(tiny)
    picture = illustrator.draw(
        "a lighthouse", illustrator.options("fast", steps=2, size="64x48", seed=1), out=tmp_path / "wide.png"
    )
    from PIL import Image

    with Image.open(picture.path) as image:
        assert image.size == (64, 48)
    assert picture.size == (64, 48)
    sidecar = json.loads(Path(picture.path).with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["size"] == [64, 48] and sidecar["path"] == picture.path
    tall = illustrator.draw(
        "a lighthouse", illustrator.options("fast", steps=2, size="40x72", seed=1), out=tmp_path / "tall.png"
    )
    assert tall.image.size == (40, 72)


def test_metadata_round_trips(tiny, book, tmp_path):
    illustrator = Illustrator(tiny)
    prompt = illustrator.scene_prompt(sample_answer(book), book)
    picture = illustrator.draw(
        prompt,
        illustrator.options(
            "quality",
            steps=3,
            size="32x32",
            seed=77,
            sampler="euler_ancestral",
            clip_scale=50.0,
            clip_cutouts=2,
        ),
    )
    meta = read_metadata(picture.path)
    assert meta["prompt"] == prompt.text and meta["negative_prompt"] == prompt.negative
    assert meta["seed"] == 77 and meta["sampler"] == "euler_ancestral" and meta["steps"] == 3
    assert meta["size"] == [32, 32] and meta["cfg_scale"] == 7.0
    assert meta["clip_guidance"] == {
        "scale": 50.0,
        "cutouts": 2,
        "every": 3,
        "cut_pow": 1.0,
        "sigma_data": 1.0,
        "decode_scale": 1.0,
    }
    assert meta["models"]["profile"] == "tiny-random" and "random" in meta["models"]["diffusion"]
    assert meta["book_id"] == "sample" and meta["writer"] == "rule-based"
    assert meta["evidence"]["passage_id"] == "sample-p-7"
    assert meta["evidence"]["quote"].startswith("Nell Pritchard was there")
    assert meta["evidence"]["chapter"] == prompt.evidence["chapter"]
    assert meta["notice"] == picture.notice and "noise" in meta["notice"]
    again = read_sidecar(picture.path)
    assert again.to_dict() == picture.to_dict()
    # saved under the data dir, with the book
    assert Path(picture.path).parent == tiny.images_dir / "sample"


def test_tiny_random_says_its_pictures_are_noise(tiny, tmp_path):
    illustrator = Illustrator(tiny)
    picture = illustrator.draw(
        "a bell", illustrator.options("fast", steps=1, size="32x32", seed=0), out=tmp_path / "n.png"
    )
    assert NOISE_NOTICE in picture.notice
    ok, message = image_models_status(tiny)
    assert ok and "noise" in message


BAD = [
    ({"size": "65x64"}, "multiple of 8"),
    ({"size": "64x2048"}, f"{MAX_SIDE}"),
    ({"size": "big"}, "WIDTHxHEIGHT"),
    ({"steps": 0}, f"between 1 and {MAX_STEPS}"),
    ({"steps": 5000}, f"between 1 and {MAX_STEPS}"),
    ({"sampler": "ddim_magic"}, "dpmpp_2m, dpmpp_2m_sde"),
    ({"preset": "slow"}, "fast, quality"),
    ({"style": "comic"}, "storybook"),
    ({"cfg_scale": 0.5}, "guidance scale"),
    ({"clip_scale": -1.0}, "negative"),
    ({"seed": -3}, "seed"),
]


@pytest.mark.parametrize(
    "bad,message", BAD, ids=[next(iter(b)) + "=" + str(next(iter(b.values()))) for b, _ in BAD]
)
def test_bad_input_is_refused_before_any_work(tiny, monkeypatch, bad, message):
    import illustration.models
    import illustration.sampler

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(illustration.models, "load_image_models", no_work)
    monkeypatch.setattr(illustration.sampler, "sample", no_work)
    illustrator = Illustrator(tiny)
    bad = dict(bad)
    preset = bad.pop("preset", "fast")
    with pytest.raises(VignetteError, match=message):
        illustrator.draw("a bell", illustrator.options(preset, **bad))


def test_a_missing_model_is_refused_before_any_work_and_says_what_to_do(tmp_path, monkeypatch):
    import illustration.sampler

    monkeypatch.setattr(illustration.sampler, "sample", lambda *a, **k: pytest.fail("sampling started"))
    for spec in (
        str(tmp_path / "no-such-model"),
        "vignette-tests/not-a-cached-model",
        str(tmp_path / "x.safetensors"),
    ):
        settings = Settings.from_env(env={}, data_dir=tmp_path, image_models=spec)
        ok, message = image_models_status(settings)
        assert not ok
        for advice in ("VIGNETTE_ALLOW_DOWNLOADS=1", "VIGNETTE_IMAGE_MODELS", "tiny-random"):
            assert advice in message
        illustrator = Illustrator(settings)
        with pytest.raises(VignetteError, match="Can't draw"):
            illustrator.draw("a bell", illustrator.options("fast", steps=2, size="32x32"))


def test_a_missing_clip_model_is_reported_too(tmp_path):
    folder = tmp_path / "sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    settings = Settings.from_env(
        env={}, data_dir=tmp_path, image_models=str(folder), clip_model=f"ViT-B-32:{tmp_path / 'missing.bin'}"
    )
    ok, message = image_models_status(settings)
    assert not ok and "missing.bin" in message
    ok, _ = image_models_status(settings.replace(clip_model="NoSuchNet:abc"))
    assert not ok


def test_a_scene_prompt_from_an_answer_names_its_characters_and_can_be_edited(tiny, book, tmp_path):
    illustrator = Illustrator(tiny)
    prompt = illustrator.scene_prompt(sample_answer(book), book)
    assert "Nell Pritchard" in prompt.text and "blue headscarf" in prompt.text
    edited = prompt.edited("Nell Pritchard with a rolling pin in the moonlit square")
    picture = illustrator.draw(
        edited, illustrator.options("fast", steps=1, size="32x32", seed=5), out=tmp_path / "e.png"
    )
    assert picture.prompt == "Nell Pritchard with a rolling pin in the moonlit square"
    assert picture.writer == "user (edited rule-based)"
    assert picture.evidence["passage_id"] == "sample-p-7"


def test_an_abstained_answer_has_no_scene(tiny, book):
    illustrator = Illustrator(tiny)
    answer = Answer(
        question="What was Wren's father's name?", answer="", abstained=True, evidence=[], reader="test"
    )
    with pytest.raises(VignetteError, match="doesn't say"):
        illustrator.scene_prompt(answer, book)


def test_a_long_prompt_is_drawn_and_the_cut_is_reported(tiny, tmp_path):
    illustrator = Illustrator(tiny)
    long_prompt = ", ".join(["a tall lighthouse on a black rock in a storm"] * 12)
    picture = illustrator.draw(
        long_prompt, illustrator.options("fast", steps=1, size="32x32", seed=1), out=tmp_path / "l.png"
    )
    assert "its end was cut" in picture.notice


def test_questions_and_scene_descriptions_are_told_apart():
    assert is_question("Where did Wren hide the letter?")
    assert is_question("who rang the bells")
    assert not is_question("Wren rowing the Little Auk at dawn")
    assert not is_question("The storm over Gullstone Rock")


def test_a_local_diffusers_folder_and_an_open_clip_weights_file_load_offline(tmp_path):
    """The real loading path (not the tiny builder): components saved the way diffusers lays out a model."""
    from diffusers import DDPMScheduler

    from illustration.models import build_tiny_random, load_image_models

    parts = build_tiny_random(v_prediction=True)
    folder = tmp_path / "my-model"
    parts.unet.save_pretrained(folder / "unet")
    parts.vae.save_pretrained(folder / "vae")
    parts.text_encoder.save_pretrained(folder / "text_encoder")
    parts.tokenizer.save_pretrained(folder / "tokenizer")
    DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction"
    ).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    torch.save(parts.clip.model.state_dict(), tmp_path / "clip.pt")
    settings = Settings.from_env(
        env={},
        data_dir=tmp_path / "data",
        image_models=str(folder),
        clip_model=f"vignette-tiny-clip:{tmp_path / 'clip.pt'}",
    )
    ok, message = image_models_status(settings)
    assert ok and "diffusers folder" in message
    models = load_image_models(settings)
    assert models.prediction_type == "v_prediction" and models.notice is None
    assert torch.equal(models.unet.conv_in.weight, parts.unet.conv_in.weight)
    illustrator = Illustrator(settings)
    picture = illustrator.draw(
        "a bell", illustrator.options("quality", steps=2, size="32x32", seed=1, clip_scale=10.0)
    )
    assert picture.models["diffusion"] == str(folder) and picture.models["clip"].endswith("clip.pt")
    assert picture.clip_guidance is not None
