"""Zero-shot evaluation, metrics and the `evaluate` command (docs/design.md section 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset, DatasetDict

from dual_denoising import DualDenoisingModel, cli, evaluation
from dual_denoising.data import save_triples, triples_features
from dual_denoising.evaluation.attacks import PGDLinf, ZeroShotClassifier
from dual_denoising.point_ops import farthest_point_sample, normalize_to_unit_sphere

from .conftest import CLASSES, make_shapes, seeded, tester, train_baseline

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*argv: str) -> int:
    """Run `dual-denoising evaluate ...` (its parser, then the function it names)."""
    args = cli.build_parser().parse_args(["evaluate", *argv])
    return cli.resolve_command(args.func)(args)


def shapes_dataset(seed: int = 1) -> Dataset:
    """15 labelled clouds of two sizes (160 and 100 points: FPS down and repeat up to the model's 128)."""
    big, big_labels = make_shapes(4, seed, num_points=160)
    small, small_labels = make_shapes(1, seed + 1, num_points=100)
    clouds = [c.numpy() for c in big] + [c.numpy() for c in small]
    labels = big_labels.tolist() + small_labels.tolist()
    features = triples_features(list(CLASSES), with_images=False, with_captions=False)
    return Dataset.from_dict(
        {"shape_id": [f"s{i}" for i in range(len(clouds))], "points": clouds, "label": labels}, features=features
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The contrastive baseline of test_attacks, saved, with its class embeddings and a saved test split."""
    tmp = tmp_path_factory.mktemp("evaluation")
    class_embeds = F.normalize(torch.randn(len(CLASSES), tester.embed_dim, generator=seeded(0)), dim=-1)
    model = train_baseline(class_embeds)
    model.save_pretrained(tmp / "model")
    torch.save(class_embeds, tmp / "class_embeds.pt")
    save_triples(DatasetDict({"test": shapes_dataset()}), tmp / "data")
    return model, class_embeds, tmp


# ----------------------------------------------------------------------------------------------------------------------
# Metrics and preprocessing
# ----------------------------------------------------------------------------------------------------------------------
def test_metrics_load_by_path_and_compute():
    accuracy = evaluation.load_metric("zero_shot_accuracy")
    scores = [[0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.3, 0.35, 0.35]]  # a tie goes to class 1
    result = accuracy.compute(predictions=scores, references=[0, 2, 1, 0], top_k=2)
    assert result["top1"] == 0.5 and result["top2"] == 0.75 and result["num_samples"] == 4
    assert result["per_class_accuracy"] == [0.5, 1.0, 0.0]
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    success = evaluation.load_metric("attack_success_rate")
    result = success.compute(predictions=[0, 0, 2, 1], references=[0, 1, 2, 2], clean_predictions=[0, 1, 2, 0])
    assert result["robust_accuracy"] == 0.5 and result["clean_accuracy"] == 0.75
    assert result["attack_success_rate"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no metric"):
        evaluation.load_metric("accuracy")


def test_prepare_points_is_fps_then_unit_sphere():
    rng = np.random.default_rng(0)
    big, small = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    out = evaluation.prepare_points([big, small, big], num_points=16)
    assert out.shape == (3, 16, 3) and out.dtype == torch.float32
    big_t = torch.from_numpy(big)[None]
    expected = normalize_to_unit_sphere(big_t[:, farthest_point_sample(big_t, 16)[0]])[0]
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(out[2], expected)
    # the pipeline's own preparation, for larger and smaller clouds alike (one rule everywhere)
    from dual_denoising.pipeline_dual_denoising import prepare_point_cloud

    torch.testing.assert_close(out[1], prepare_point_cloud(small, 16, 1))
    torch.testing.assert_close(out[0], prepare_point_cloud(big, 16, 1))
    torch.testing.assert_close(out.norm(dim=-1).amax(dim=1), torch.ones(3))


# ----------------------------------------------------------------------------------------------------------------------
# evaluate_zero_shot
# ----------------------------------------------------------------------------------------------------------------------
def test_evaluate_zero_shot_matches_a_direct_computation(trained):
    model, class_embeds, _ = trained
    dataset = shapes_dataset()
    attack = PGDLinf(eps=0.05, steps=3)
    results = evaluation.evaluate_zero_shot(
        model, dataset, class_embeds=class_embeds, attacks={"pgd_linf": attack}, linf_eps_sweep=[0, 0.05],
        batch_size=4, show_progress=False,
    )
    points = evaluation.prepare_points(dataset["points"], 128)
    labels = torch.tensor(dataset["label"])
    classifier = ZeroShotClassifier(model, class_embeds)
    with torch.no_grad():
        predictions = classifier(points).argmax(1)
    assert results["num_samples"] == 15 and results["class_names"] == list(CLASSES)
    assert results["clean"]["top1"] == pytest.approx((predictions == labels).float().mean().item())
    assert results["clean"]["top5"] == 1.0  # 3 classes
    confusion = np.zeros((3, 3), dtype=int)
    np.add.at(confusion, (labels.numpy(), predictions.numpy()), 1)
    assert results["clean"]["confusion_matrix"] == confusion.tolist()
    robust = results["attacks"]["pgd_linf"]
    assert robust["params"]["eps"] == 0.05 and robust["params"]["steps"] == 3
    assert robust["robust_accuracy"] == robust["top1"] < results["clean"]["top1"]
    assert [row["eps"] for row in results["pgd_linf_eps_sweep"]] == [0.0, 0.05]
    assert results["pgd_linf_eps_sweep"][0]["accuracy"] == results["clean"]["top1"]
    assert results["pgd_linf_eps_sweep"][1]["accuracy"] == robust["robust_accuracy"]
    json.dumps(results)  # JSON-ready


def test_evaluate_zero_shot_reads_a_z_up_dataset_with_up_axis_z(trained):
    model, class_embeds, _ = trained
    dataset = shapes_dataset()
    z_up = dataset.map(lambda row: {"points": np.asarray(row["points"])[:, [0, 2, 1]] * [1.0, -1.0, 1.0]})
    kwargs = dict(class_embeds=class_embeds, batch_size=4, show_progress=False)
    reference = evaluation.evaluate_zero_shot(model, dataset, **kwargs)
    turned = evaluation.evaluate_zero_shot(model, z_up, up_axis="z", **kwargs)
    assert turned["clean"]["confusion_matrix"] == reference["clean"]["confusion_matrix"] and turned["up_axis"] == "z"
    with pytest.raises(ValueError, match="dataset's up axis"):
        evaluation.evaluate_zero_shot(model, dataset, up_axis="auto", **kwargs)


def test_randomized_smoothing_makes_the_baseline_stochastic_in_evaluate(trained):
    """Smoothing is an evaluate option; with it the contrastive baseline is attacked with EOT."""
    model, class_embeds, _ = trained  # the contrastive baseline
    kwargs = dict(class_embeds=class_embeds, batch_size=4, show_progress=False)
    assert evaluation.evaluate_zero_shot(model, shapes_dataset(), **kwargs)["stochastic"] is False
    smoothed = evaluation.evaluate_zero_shot(model, shapes_dataset(), **kwargs, inference=evaluation.InferenceOptions(
        inference_point_noise_level=100, num_noise_samples=2))
    assert smoothed["stochastic"] is True
    with pytest.raises(ValueError, match="purification_rounds needs the PointDAE decoder"):
        evaluation.evaluate_zero_shot(model, shapes_dataset(), inference=evaluation.InferenceOptions(
            purification_rounds=1), **kwargs)


def test_evaluate_zero_shot_needs_class_embeddings(trained):
    model, _, _ = trained
    with pytest.raises(ValueError, match="class_embeds"):
        evaluation.evaluate_zero_shot(model, shapes_dataset(), show_progress=False)


def test_stochastic_model_uses_fresh_noise_for_robust_accuracy():
    """With a Dual Denoising model the clean pass, the attack and the robust pass draw different noise."""
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config())
    seen = []
    original = model.get_point_features

    def spy(points, **kwargs):
        seen.append(kwargs["generator"].initial_seed())
        assert kwargs["num_noise_samples"] == 2 and kwargs["num_inference_steps"] == 1
        return original(points, **kwargs)

    model.get_point_features = spy
    results = evaluation.evaluate_zero_shot(
        model, shapes_dataset().select(range(3)), class_embeds=torch.randn(3, tester.embed_dim),
        attacks={"pgd_linf": PGDLinf(steps=1, eot_samples=2)},
        inference=evaluation.InferenceOptions(num_noise_samples=2, num_inference_steps=1),
        show_progress=False,
    )
    assert results["stochastic"] and results["feature_kwargs"] == {"num_noise_samples": 2, "num_inference_steps": 1}
    # clean pass, 2 EOT draws of the attack, robust pass: the attack's stream is not the evaluation's
    assert len(seen) == 4 and seen[0] == seen[3] and seen[1] == seen[2] and seen[0] != seen[1]


# ----------------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------------
def test_cli_writes_reports_and_plots(trained):
    _, _, tmp = trained
    out = tmp / "report"
    code = run_cli(
        "--model", str(tmp / "model"), "--dataset", str(tmp / "data"), "--split", "test",
        "--class-embeds", str(tmp / "class_embeds.pt"), "--attacks", "pgd_linf,pgd_l2,drop,add", "--eot", "2",
        "--batch-size", "8", "--seed", "0", "--out", str(out), "--no-progress",
    )
    assert code == 0
    for name in evaluation.REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["num_samples"] == 15 and report["split"] == "test"
    assert set(report["attacks"]) == {"pgd_linf", "pgd_l2", "drop", "add"}
    assert report["attacks"]["drop"]["params"]["num_points"] == 25  # 200 of 1024, scaled to 128 points
    assert [row["eps"] for row in report["pgd_linf_eps_sweep"]] == [0.0, 0.01, 0.02, 0.05]
    assert report["attacks"]["pgd_linf"]["robust_accuracy"] <= report["clean"]["top1"] / 2  # it breaks the baseline
    markdown = (out / "report.md").read_text()
    for heading in ("## Clean accuracy", "## Robustness", "## PGD-Linf accuracy against epsilon", "## Per-class"):
        assert heading in markdown
    assert "| sphere |" in markdown

    # an existing report is not replaced silently
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_cli("--model", str(tmp / "model"), "--dataset", str(tmp / "data"), "--class-embeds",
                str(tmp / "class_embeds.pt"), "--out", str(out))


def tiny_teacher_with_tokenizer(path: Path) -> tuple[Path, object]:
    """A tiny random CLIP whose text tower matches a tiny BPE tokenizer trained on a few captions."""
    from transformers import CLIPConfig, CLIPModel

    from dual_denoising.teacher import train_caption_tokenizer

    captions = [f"a {kind} shape, a 3d model of a {kind}" for kind in CLASSES] * 4
    tokenizer = train_caption_tokenizer(captions, vocab_size=560, model_max_length=32)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=8),
        projection_dim=tester.embed_dim,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    return path, tokenizer


def test_cli_embeds_class_names_with_the_saved_tokenizer(trained, tmp_path):
    _, _, data_tmp = trained
    teacher_dir, tokenizer = tiny_teacher_with_tokenizer(tmp_path / "teacher")
    model = DualDenoisingModel.from_teacher(str(teacher_dir), tester.get_config())
    model.save_pretrained(tmp_path / "model")
    args = ["--model", str(tmp_path / "model"), "--dataset", str(data_tmp / "data"), "--attacks", "none",
            "--max-samples", "6", "--out", str(tmp_path / "out"), "--no-progress"]
    with pytest.raises(ValueError, match="no tokenizer"):
        run_cli(*args)
    tokenizer.save_pretrained(tmp_path / "model")
    assert run_cli(*args) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["num_samples"] == 6 and report["attacks"] == {} and report["pgd_linf_eps_sweep"] == []
    assert not (tmp_path / "out" / "accuracy_vs_eps.png").exists()
    assert run_cli(*args, "--overwrite") == 0


def test_cli_readout_options_and_a_split_of_the_users_own(trained, tmp_path):
    """--readout / --fusion-weight / --start-timestep set the model's inference fields; --unseen-classes adds the
    open-set figures for classes the dataset's metadata does not name; a readout the model cannot give is refused."""
    _, class_embeds, data_tmp = trained
    torch.manual_seed(0)
    DualDenoisingModel(tester.get_config(contrastive_head_weight=1.0)).save_pretrained(tmp_path / "with-head")
    DualDenoisingModel(tester.get_config()).save_pretrained(tmp_path / "without-head")
    common = ["--dataset", str(data_tmp / "data"), "--class-embeds", str(data_tmp / "class_embeds.pt"),
              "--attacks", "none", "--no-progress", "--unseen-classes", CLASSES[-1]]
    reports = {}
    for name, options in {"fusion": ["--readout", "fusion", "--fusion-weight", "1"], "head": ["--readout", "head"],
                          "start": ["--start-timestep", "200"], "denoiser": []}.items():
        assert run_cli("--model", str(tmp_path / "with-head"), *common, *options, "--out", str(tmp_path / name)) == 0
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
    assert reports["fusion"]["clean"] == reports["head"]["clean"]  # a fusion weight of 1 is the head
    assert reports["head"]["open_set"]["unseen_classes"] == [CLASSES[-1]]
    assert not reports["head"]["stochastic"] and reports["denoiser"]["stochastic"]  # the head alone draws no noise
    with pytest.raises(ValueError, match="contrastive_head_weight > 0"):
        run_cli("--model", str(tmp_path / "without-head"), *common, "--readout", "head", "--out", str(tmp_path / "x"))


# ----------------------------------------------------------------------------------------------------------------------
# Several processes
# ----------------------------------------------------------------------------------------------------------------------
def test_two_processes_give_the_single_process_result(trained, tmp_path):
    """torchrun with 2 CPU (gloo) ranks: 15 rows in batches of 2 leave an uneven tail that accelerate pads;
    gather_for_metrics must drop the padding so that the result equals the single-process one."""
    model, class_embeds, tmp = trained
    kwargs = dict(batch_size=2, linf_eps_sweep=[0.02], show_progress=False)
    attack = PGDLinf(eps=0.05, steps=2, random_start=False)  # deterministic: sharding cannot change it
    single = evaluation.evaluate_zero_shot(
        model, shapes_dataset(), class_embeds=class_embeds, attacks={"pgd_linf": attack}, **kwargs
    )
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import json, torch
        from accelerate import Accelerator
        from dual_denoising import DualDenoisingModel
        from dual_denoising.evaluation.attacks import PGDLinf
        from dual_denoising.data import load_triples
        from dual_denoising.evaluation import evaluate_zero_shot
        accelerator = Accelerator(cpu=True)
        assert accelerator.num_processes == 2
        model = DualDenoisingModel.from_pretrained({str(tmp / "model")!r})
        results = evaluate_zero_shot(
            model, load_triples({str(tmp / "data")!r}, split="test"),
            class_embeds=torch.load({str(tmp / "class_embeds.pt")!r}),
            attacks={{"pgd_linf": PGDLinf(eps=0.05, steps=2, random_start=False)}}, accelerator=accelerator,
            **{kwargs!r})
        if accelerator.is_main_process:
            open({str(tmp_path / "result.json")!r}, "w").write(json.dumps(results))
    """))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    multi = json.loads((tmp_path / "result.json").read_text())
    assert multi["num_samples"] == single["num_samples"] == 15
    for key in ("clean", "attacks", "pgd_linf_eps_sweep"):
        single_part, multi_part = json.loads(json.dumps(single[key])), multi[key]
        if key == "attacks":
            for entry in (*single_part.values(), *multi_part.values()):
                entry.pop("seconds")
        assert multi_part == single_part, key


def test_open_set_metrics_on_a_toy_with_a_known_answer():
    names = ["a", "b", "c", "d"]  # c and d unseen
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    predicted = [0, 1, 1, 1, 2, 0, 3, 1]  # seen 3/4; unseen 1/4 with every name a candidate
    logits = torch.full((8, 4), -1.0)
    logits[torch.arange(8), torch.tensor(predicted)] = 5.0
    logits[5, 2], logits[6, 2], logits[7, 3] = 1.0, 2.0, 0.0  # among c and d only: row 5 c, row 6 d, row 7 d
    figures = evaluation.open_set_metrics(logits, labels, names, ["c", "d"])
    assert figures["seen"]["accuracy"] == 0.75 and figures["seen"]["num_samples"] == 4
    assert figures["unseen"]["accuracy"] == 0.25 and figures["unseen"]["num_samples"] == 4
    assert figures["unseen_only"]["accuracy"] == 0.75  # rows 4, 5, 7 right; row 6 (c) picks d
    assert figures["harmonic_mean"]["accuracy"] == pytest.approx(2 * 0.75 * 0.25 / 1.0)
    low, high = evaluation.wilson_interval(3, 4)
    assert figures["seen"]["interval"] == [low, high]
    h_low, h_high = figures["harmonic_mean"]["interval"]
    assert h_low <= figures["harmonic_mean"]["accuracy"] <= h_high
    with pytest.raises(ValueError, match="not among the class names"):
        evaluation.open_set_metrics(logits, labels, names, ["e"])
