"""The reader that ships in models/reader: its files match its card, it answers offline by default, a damaged
copy is refused and the sentence reader says why, and the storage formats (fp16 shards, LoRA) load exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retrieval.reader import SHIPPED_READER, ExtractiveReader, SentenceReader, _load_qa_model, load_reader
from retrieval.reader_weights import READER_CONFIG
from vignette.hub import sha256_of

MB = 10**6


def test_card_lists_every_file_with_its_hash_and_sizes_fit_a_space():
    config = json.loads((SHIPPED_READER / READER_CONFIG).read_text())
    listed = config["files"]
    stored = {p.name for p in SHIPPED_READER.iterdir() if p.name not in (READER_CONFIG, "README.md")}
    assert set(listed) == stored  # nothing unlisted, nothing listed that is not there
    for name, digest in listed.items():
        assert sha256_of(SHIPPED_READER / name) == digest, name
        assert (SHIPPED_READER / name).stat().st_size < 10 * MB, name
    assert sum((SHIPPED_READER / n).stat().st_size for n in listed) < 50 * MB
    card = (SHIPPED_READER / "README.md").read_text()
    assert "CC BY-SA 4.0" in card and "python -m retrieval.train_reader" in card
    assert config["base"] == "all-MiniLM-L6-v2" and config["abstain_threshold"] == pytest.approx(-0.734)


def test_the_default_reader_is_the_shipped_one(settings):
    reader = load_reader(settings)
    assert isinstance(reader, ExtractiveReader)
    assert Path(reader.model_name_or_path) == SHIPPED_READER
    assert reader.abstain_threshold == pytest.approx(-0.734)


@pytest.mark.system
def test_shipped_reader_answers_the_sample_with_its_words_and_chapter(cli_env):
    import subprocess
    import sys

    from tests.sample_library import copy_sample_to

    copy_sample_to(cli_env["VIGNETTE_DATA_DIR"])
    cli_env.pop("VIGNETTE_READER", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--book", "sample", "--json", "Who found the letter in the lantern room?"],
        cwd=Path(__file__).resolve().parents[1], env=cli_env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["reader"].startswith("extractive:") and not data["abstained"]
    assert "wren" in data["answer"].lower() and len(data["answer"].split()) <= 4  # a span, not a sentence
    assert data["evidence"][0]["chapter"] == 3


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_a_damaged_copy_is_refused_and_the_sentence_reader_says_why(tmp_path, settings, damage):
    copy = tmp_path / "reader"
    shutil.copytree(SHIPPED_READER, copy)
    shard = copy / "weights-03.safetensors"
    if damage == "missing":
        shard.unlink()
    else:
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    reader = load_reader(settings.replace(reader=str(copy)))
    assert isinstance(reader, SentenceReader)
    assert "weights-03.safetensors" in reader.reason  # why, named once (status line, About panel)
    assert ("is missing" if damage == "missing" else "sha256") in reader.reason
    assert reader.notice.startswith("The best-matching sentence answered")  # what each answer says


def _tiny_qa(minilm_path, folder: Path):
    """A tiny random BERT reader saved as a plain transformers folder (with the packaged tokenizer)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    model = BertForQuestionAnswering(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def _logits(model, tokenizer):
    import torch

    x = tokenizer(["Who kept the lighthouse?"], ["Old Amos kept the light on Gullstone Rock."], return_tensors="pt")
    with torch.no_grad():
        out = model(**x)
    return out.start_logits, out.end_logits


def test_fp16_shards_load_back_the_same_model(tmp_path, minilm_path):
    import torch

    from retrieval.reader_weights import export_shards

    model, tokenizer = _tiny_qa(minilm_path, tmp_path / "base")
    # a tiny shard limit, so the embeddings are cut by rows across files
    config = export_shards(model, tmp_path / "shipped", {"base": str(tmp_path / "base")}, max_file_mb=0.1)
    assert len([f for f in config["files"] if f.endswith(".safetensors")]) > 3
    index = json.loads((tmp_path / "shipped" / "weights.json").read_text())
    assert len(index["tensors"]["bert.embeddings.word_embeddings.weight"]["parts"]) > 1
    _, loaded, _ = _load_qa_model(str(tmp_path / "shipped"))
    for a, b in zip(_logits(model.half().float(), tokenizer), _logits(loaded, tokenizer)):
        assert torch.allclose(a, b, atol=1e-5)


def test_lora_adapter_merges_as_peft_does(tmp_path, minilm_path):
    peft = pytest.importorskip("peft")
    import torch

    from retrieval.train_reader import add_lora

    base, tokenizer = _tiny_qa(minilm_path, tmp_path / "base")
    model = add_lora(base, 4)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): give it something to merge
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.05)
    model.eval()
    expected = _logits(model, tokenizer)
    model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / READER_CONFIG).write_text(json.dumps({"base": str(tmp_path / "base")}))
    _, merged, _ = _load_qa_model(str(tmp_path / "adapter"))
    for a, b in zip(expected, _logits(merged, tokenizer)):
        assert torch.allclose(a, b, atol=1e-5)
    del peft


def test_squad_articles_split_into_fixed_disjoint_parts():
    from retrieval.train_reader import HOLDOUT_EVERY, parse_data_spec, split_articles

    data = [{"title": f"a{i}"} for i in range(35)]
    train, held = split_articles(data, "train"), split_articles(data, "eval")
    assert [a["title"] for a in held] == [f"a{i}" for i in range(0, 35, HOLDOUT_EVERY)]
    assert len(train) + len(held) == 35 and not {a["title"] for a in train} & {a["title"] for a in held}
    assert parse_data_spec("x/dev.json@eval") == (Path("x/dev.json"), "eval")
    assert parse_data_spec("x/dev.json") == (Path("x/dev.json"), None)
