"""The small CLIP teacher: tokenizer, save/load through the public CLIP path, zero-shot, precomputed features, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset, DatasetDict
from PIL import Image, ImageDraw

from dual_denoising import cli
from dual_denoising import teacher as T
from dual_denoising.data import load_triples, load_triples_metadata, save_triples, triples_features
from dual_denoising.teacher import train as teacher_train

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Four trivially separable classes: each has its own shape and colour.
FAKE_CLASSES = ["circle", "square", "triangle", "cross"]
FAKE_COLOURS = {"circle": "red", "square": "blue", "triangle": "green", "cross": "orange"}
VIEWS, SIZE = 2, 32


def _draw(name: str, rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(8, 13))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, size=2))
    box = (cx - r, cy - r, cx + r, cy + r)
    colour = FAKE_COLOURS[name]
    if name == "circle":
        draw.ellipse(box, fill=colour)
    elif name == "square":
        draw.rectangle(box, fill=colour)
    elif name == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        draw.rectangle((cx - r, cy - 3, cx + r, cy + 3), fill=colour)
        draw.rectangle((cx - 3, cy - r, cx + 3, cy + r), fill=colour)
    return image


def _split(per_class: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("shape_id", "points", "images", "captions", "label")}
    for label, name in enumerate(FAKE_CLASSES):
        for i in range(per_class):
            rows["shape_id"].append(f"{name}-{seed}-{i}")
            rows["points"].append(rng.normal(size=(64, 3)).astype(np.float32))
            rows["images"].append([_draw(name, rng) for _ in range(VIEWS)])
            colour = FAKE_COLOURS[name]
            rows["captions"].append([f"a {colour} {name}.", f"a rendering of a {name}, painted {colour}."])
            rows["label"].append(label)
    return Dataset.from_dict(rows, features=triples_features(FAKE_CLASSES))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Models this small run faster on one thread, above all on a busy machine (no OpenMP spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fake_triples(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake_triples")
    dataset = DatasetDict(train=_split(24, seed=0), test=_split(6, seed=1))
    return save_triples(dataset, root, metadata={"classes": FAKE_CLASSES})


TINY = dict(
    image_size=SIZE,
    patch_size=8,
    vision_hidden_size=32,
    vision_num_layers=2,
    vision_num_heads=2,
    text_hidden_size=32,
    text_num_layers=2,
    text_num_heads=2,
    max_length=24,
    projection_dim=16,
    tokenizer_vocab_size=400,
    batch_size=32,
    learning_rate=3e-3,
    weight_decay=0.0,
    mixed_precision="no",  # the same numbers on every CPU
)
TEMPLATES = ["a {}.", "a rendering of a {}."]


@pytest.fixture(scope="module")
def trained_teacher(fake_triples, tmp_path_factory):
    from accelerate.state import AcceleratorState

    out = tmp_path_factory.mktemp("teacher")
    AcceleratorState._reset_state(reset_partial_state=True)  # train_teacher builds its own Accelerator
    try:
        metrics = T.train_teacher(
            fake_triples, out, T.TeacherConfig(epochs=12, **TINY), templates=TEMPLATES, show_progress=False
        )
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    return out, metrics


def test_tokenizer_round_trips_captions_and_reloads(tmp_path):
    from transformers import AutoTokenizer, CLIPTokenizer

    captions = ["A red chair with four legs.", "a wooden table", "an airplane's swept wings", "a lamp"] * 5
    tokenizer = T.train_caption_tokenizer(captions, vocab_size=600, model_max_length=32)
    tokenizer.save_pretrained(tmp_path)
    for loaded in (AutoTokenizer.from_pretrained(tmp_path), CLIPTokenizer.from_pretrained(tmp_path)):
        assert isinstance(loaded, CLIPTokenizer)
        for caption in captions[:4] + ["an unseen word: zebra 42!"]:
            ids = loaded(caption)["input_ids"]
            assert ids[0] == loaded.bos_token_id and ids[-1] == loaded.eos_token_id
            assert loaded.unk_token_id not in ids[1:-1]  # byte-level: nothing is unknown
            assert loaded.decode(ids, skip_special_tokens=True) == tokenizer.decode(ids, skip_special_tokens=True)
        assert loaded.decode(loaded("a red chair")["input_ids"], skip_special_tokens=True) == "a red chair"
        # frequent words become single tokens, as in CLIP's vocabulary
        assert loaded.convert_ids_to_tokens(loaded("chair")["input_ids"])[1:-1] == ["chair</w>"]
        assert loaded.model_max_length == 32


def test_augment_views_keeps_shape_and_range():
    config = T.TeacherConfig(**TINY)
    images = torch.rand(5, 3, SIZE, SIZE)
    out = T.augment_views(images, config, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    again = T.augment_views(images, config, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    off = dict(crop_scale_min=1.0, crop_aspect_max=1.0, flip_prob=0.0, brightness=0.0, contrast=0.0, saturation=0.0)
    none = T.TeacherConfig(**{**TINY, **off})
    torch.testing.assert_close(T.augment_views(images, none, torch.Generator()), images, atol=1e-5, rtol=0)


def test_contrastive_loss_plain_and_label_aware():
    logits = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(6)
    plain = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
    torch.testing.assert_close(T.clip_contrastive_loss(logits), plain)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(T.clip_contrastive_loss(logits, labels, 0.0), plain)
    # with w = 1 the target is uniform over same-class pairs, so swapping captions within a class changes nothing
    swapped = logits[:, [1, 0, 3, 2, 5, 4]]
    torch.testing.assert_close(
        T.clip_contrastive_loss(logits, labels, 1.0), T.clip_contrastive_loss(swapped, labels, 1.0)
    )


def test_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        T.TeacherConfig(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="divisible"):
        T.TeacherConfig(vision_hidden_size=30, vision_num_heads=4)


def test_teacher_saves_as_clip_and_reloads(trained_teacher, fake_triples):
    from transformers import AutoProcessor, AutoTokenizer, CLIPModel, CLIPProcessor, CLIPTokenizer

    out, metrics = trained_teacher
    model = CLIPModel.from_pretrained(out).eval()
    assert model.config.projection_dim == TINY["projection_dim"]
    assert model.config.vision_config.image_size == SIZE
    for processor in (AutoProcessor.from_pretrained(out), CLIPProcessor.from_pretrained(out)):
        assert isinstance(processor, CLIPProcessor)
        assert isinstance(processor.tokenizer, CLIPTokenizer)
        assert processor.image_processor.crop_size == {"height": SIZE, "width": SIZE}
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.text_config.eos_token_id == tokenizer.eos_token_id
    assert model.config.text_config.vocab_size == len(tokenizer)

    # the processor's normalisation is the training path's (uint8 bank / 255, then the saved mean/std)
    test = load_triples(fake_triples, split="test")
    views = test[0]["images"]
    pixel_values = processor(images=views, return_tensors="pt")["pixel_values"]
    bank = teacher_train._views_to_uint8(views, processor.image_processor).float() / 255
    mean = torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1)
    torch.testing.assert_close(pixel_values, (bank - mean) / std, atol=1e-4, rtol=0)

    # the full CLIP forward works on the saved processor's output
    texts = ["a red circle", "a blue square"]
    inputs = processor(text=texts, images=views, return_tensors="pt", padding=True, truncation=True)
    logits = model(**inputs).logits_per_image
    assert logits.shape == (VIEWS, 2)

    saved = json.loads((out / T.TEACHER_METRICS_FILE).read_text())
    assert saved["zero_shot_top1"] == metrics["zero_shot_top1"]
    assert set(saved["zero_shot_per_class"]) == set(FAKE_CLASSES)
    assert saved["train_seconds"] > 0 and saved["num_test_views"] == 6 * len(FAKE_CLASSES) * VIEWS


def test_zero_shot_learns_separable_classes(trained_teacher, fake_triples):
    from transformers import CLIPModel, CLIPProcessor

    out, metrics = trained_teacher
    assert metrics["zero_shot_top1"] >= 0.75, metrics  # chance is 0.25
    model, processor = CLIPModel.from_pretrained(out).eval(), CLIPProcessor.from_pretrained(out)
    test = load_triples(fake_triples, split="test")
    result = T.evaluate_teacher(model, processor, test, templates=TEMPLATES, show_progress=False)
    assert result["top1"] == pytest.approx(metrics["zero_shot_top1"])
    assert 0 <= result["shape_top1"] <= 1 and result["num_shapes"] == len(test)

    class_embeds = T.encode_class_prompts(model, processor.tokenizer, FAKE_CLASSES, TEMPLATES)
    assert class_embeds.shape == (len(FAKE_CLASSES), TINY["projection_dim"])
    torch.testing.assert_close(class_embeds.norm(dim=-1), torch.ones(len(FAKE_CLASSES)))
    # the text tower alone gives the same class embeddings
    from transformers import CLIPTextModelWithProjection

    text_model = CLIPTextModelWithProjection.from_pretrained(out).eval()
    torch.testing.assert_close(
        T.encode_class_prompts(text_model, processor.tokenizer, FAKE_CLASSES, TEMPLATES), class_embeds
    )
    with pytest.raises(ValueError, match="must contain"):
        T.encode_class_prompts(model, processor.tokenizer, FAKE_CLASSES, ["no slot"])


def test_precompute_features_adds_columns_and_reuses(trained_teacher, fake_triples, tmp_path, monkeypatch):
    from transformers import CLIPModel, CLIPProcessor

    out, _ = trained_teacher
    data_dir = save_triples(load_triples(fake_triples), tmp_path / "copy", metadata=load_triples_metadata(fake_triples))
    record = T.precompute_features(data_dir, out, batch_size=10, show_progress=False)
    assert record["reused"] is False and record["embed_dim"] == TINY["projection_dim"]

    splits = load_triples(data_dir)
    row = splits["test"].with_format("numpy")[3]
    assert row["image_embeds"].shape == (VIEWS, TINY["projection_dim"])
    assert row["text_embeds"].shape == (2, TINY["projection_dim"])
    meta = load_triples_metadata(data_dir)
    assert meta["classes"] == FAKE_CLASSES  # earlier metadata is kept
    assert meta["teacher_features"]["fingerprint"] == T.teacher_fingerprint(out)
    assert meta["teacher_features"]["normalized"] is False

    # raw projections, equal to what the public CLIP calls give
    model, processor = CLIPModel.from_pretrained(out).eval(), CLIPProcessor.from_pretrained(out)
    raw = splits["test"][3]
    with torch.no_grad():
        expected_img = model.get_image_features(**processor(images=raw["images"], return_tensors="pt")).pooler_output
        text_inputs = processor(text=raw["captions"], return_tensors="pt", padding=True, truncation=True)
        expected_txt = model.get_text_features(**text_inputs).pooler_output
    torch.testing.assert_close(torch.from_numpy(row["image_embeds"]), expected_img, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(row["text_embeds"]), expected_txt, atol=1e-4, rtol=1e-4)

    # a second call with the same teacher reuses the stored result: the model is never loaded again
    def no_load(*args, **kwargs):
        raise AssertionError("precompute_features reloaded the teacher instead of reusing its features")

    monkeypatch.setattr(CLIPModel, "from_pretrained", no_load)
    assert T.precompute_features(data_dir, out, show_progress=False)["reused"] is True
    with pytest.raises(AssertionError, match="reloaded"):
        T.precompute_features(data_dir, out, overwrite=True, show_progress=False)


def test_precompute_cli(trained_teacher, fake_triples, tmp_path, capsys):
    out, _ = trained_teacher
    data_dir = save_triples(load_triples(fake_triples), tmp_path / "copy")
    parser = cli.build_parser()
    argv = ["precompute-features", "--teacher", str(out), "--dataset", str(data_dir), "--batch-size", "8"]
    args = parser.parse_args(argv)
    run = cli.resolve_command(args.func)
    assert run(args) == 0
    assert "wrote image_embeds" in capsys.readouterr().out
    assert "image_embeds" in load_triples(data_dir, split="train").column_names
    assert run(args) == 0
    assert "already there" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="not a triples folder"):
        T.precompute_features(tmp_path / "nothing", out)


def test_example_script_trains_and_reports(fake_triples, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "train_teacher.py"
    flags = {k.replace("_", "-"): v for k, v in TINY.items()}
    argv = [sys.executable, str(script), "--dataset", str(fake_triples), "--output", str(tmp_path / "t")]
    argv += ["--epochs", "2"]
    argv += [f"--{k}={v}" for k, v in flags.items()] + ["--templates", *TEMPLATES, "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "zero-shot top-1 on 48 test views of 4 classes" in done.stdout
    metrics = json.loads((tmp_path / "t" / T.TEACHER_METRICS_FILE).read_text())
    assert metrics["config"]["max_train_seconds"] == 780.0 and metrics["epochs_completed"] == 2


def test_the_teacher_never_writes_over_a_folder_it_did_not_write(fake_triples, trained_teacher, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out, _ = trained_teacher
    # a folder of the user's: refused before any work, with or without --overwrite, and left byte-identical
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    (mine / "README.md").write_text("my notes")
    script = Path(__file__).resolve().parents[1] / "examples" / "train_teacher.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for extra in ([], ["--overwrite"]):
        done = subprocess.run([sys.executable, str(script), "--dataset", str(fake_triples), "--output", str(mine),
                               *extra], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert done.stderr.strip().count("\n") == 0 and "did not write (README.md, config.json)" in done.stderr
    assert (mine / "config.json").read_text() == '{"mine": true}' and (mine / "README.md").read_text() == "my notes"
    assert sorted(p.name for p in mine.iterdir()) == ["README.md", "config.json"]
    # a teacher written here: replaced only with overwrite; the dataset is never an output
    assert T.TEACHER_METRICS_FILE in json.loads((out / ".dual_denoising_teacher.json").read_text())["written"]
    assert str(fake_triples.parent) not in (out / T.TEACHER_METRICS_FILE).read_text()  # no path of this machine
    with pytest.raises(FileExistsError, match="already holds a teacher; pass --overwrite"):
        T.check_teacher_folder(out, fake_triples)
    assert T.check_teacher_folder(out, fake_triples, overwrite=True) == out.resolve()
    with pytest.raises(ValueError, match="is \\(or holds, or is inside\\) the dataset"):
        T.check_teacher_folder(fake_triples / "teacher", fake_triples)
