"""`pipeline("zero-shot-3d-classification")`, embeddings, retrieval and the CLI, in the manner of
transformers' pipeline tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import pipeline

import dual_denoising  # noqa: F401  (registers the task)
from dual_denoising import DualDenoisingConfig, DualDenoisingModel, resolve_model
from dual_denoising.cli import main as cli_main
from dual_denoising.inference import cosine_top_k, embed_point_clouds
from dual_denoising.pipeline_dual_denoising import TASK, ZeroShot3DClassificationPipeline
from dual_denoising.prompts import encode_class_names

from .conftest import tester, tiny_teacher

LABELS = ["chair", "table", "lamp", "night_stand"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny model with a consistent tiny teacher (text tower + BPE tokenizer), saved through the pipeline."""
    tmp = tmp_path_factory.mktemp("pipe")
    teacher, tokenizer = tiny_teacher(["chair", "table", "lamp", "night stand", "sofa", "cup"],
                                      projection_dim=tester.embed_dim)
    model = DualDenoisingModel.from_teacher(teacher, tester.get_config()).eval()
    path = tmp / "model"
    ZeroShot3DClassificationPipeline(model=model, tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def classifier(saved_model):
    return pipeline(TASK, model=str(saved_model))


@pytest.fixture
def clouds():
    g = np.random.default_rng(0)
    return [g.uniform(-1, 1, (n, 3)).astype(np.float32) * s for n, s in [(300, 1.0), (150, 3.0), (2000, 0.5)]]


def test_scores_sum_to_one_and_are_sorted(classifier, clouds):
    result = classifier(clouds[0], candidate_labels=LABELS)
    assert sorted(r["label"] for r in result) == sorted(LABELS)
    scores = [r["score"] for r in result]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1) < 1e-5
    assert len(set(scores)) > 1, "a consistent teacher gives the labels different scores"


def test_single_batched_and_array_inputs_agree(classifier, clouds):
    singles = [classifier(c, candidate_labels=LABELS) for c in clouds]
    batched = classifier(clouds, candidate_labels=LABELS, batch_size=2)
    assert len(batched) == 3
    stacked = classifier(np.stack([clouds[0], clouds[0]]), candidate_labels=LABELS)  # (B, N, 3)
    torch_in = classifier(torch.from_numpy(clouds[1]), candidate_labels=LABELS)
    for single, batch in zip(singles, batched):
        assert [r["label"] for r in single] == [r["label"] for r in batch]
        np.testing.assert_allclose([r["score"] for r in single], [r["score"] for r in batch], atol=1e-5)
    assert stacked[0] == stacked[1]
    assert [r["label"] for r in torch_in] == [r["label"] for r in singles[1]]


def test_seeded_by_default_and_seed_argument(classifier, clouds):
    a = classifier(clouds[0], candidate_labels=LABELS)
    b = classifier(clouds[0], candidate_labels=LABELS)
    assert a == b
    c = classifier(clouds[0], candidate_labels=LABELS, seed=3, num_noise_samples=1)
    assert [r["score"] for r in c] != [r["score"] for r in a]


def test_templates_and_label_cache(classifier, clouds):
    one = classifier(clouds[0], candidate_labels=LABELS, hypothesis_template="a {}.")
    many = classifier(clouds[0], candidate_labels=LABELS, hypothesis_template=["a {}.", "a 3d model of a {}."])
    assert len(one) == len(many) == 4 and [r["score"] for r in one] != [r["score"] for r in many]
    calls = []
    original = classifier.model.get_text_features
    classifier.model.get_text_features = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        classifier(clouds[0], candidate_labels=["sofa", "cup"])
        classifier(clouds[1], candidate_labels=["sofa", "cup"])
    finally:
        classifier.model.get_text_features = original
    assert len(calls) == 1


def test_precomputed_text_embeds(classifier, clouds):
    embeds = encode_class_names(classifier.model.get_text_features, classifier.tokenizer, LABELS)
    direct = classifier(clouds[0], candidate_labels=LABELS)
    given = classifier(clouds[0], candidate_labels=LABELS, text_embeds=embeds.numpy())
    assert [r["label"] for r in given] == [r["label"] for r in direct]
    np.testing.assert_allclose([r["score"] for r in given], [r["score"] for r in direct], atol=1e-5)


def test_file_path_gives_the_same_answer(classifier, clouds, tmp_path):
    np.save(tmp_path / "cloud.npy", clouds[0])
    np.savetxt(tmp_path / "cloud.xyz", clouds[0])
    from_array = classifier(clouds[0], candidate_labels=LABELS)
    for name in ("cloud.npy", "cloud.xyz"):
        from_file = classifier(str(tmp_path / name), candidate_labels=LABELS)
        assert [r["label"] for r in from_file] == [r["label"] for r in from_array]
        np.testing.assert_allclose([r["score"] for r in from_file], [r["score"] for r in from_array], atol=1e-5)


def test_bad_inputs(classifier, clouds, tmp_path):
    bad = clouds[0].copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        classifier(bad, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="has 2 points"):
        classifier(clouds[0][:2], candidate_labels=LABELS)
    with pytest.raises(ValueError, match=r"\(N, 3\) or \(N, 6\)"):
        classifier(np.zeros((100, 4), np.float32), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="candidate_labels is empty"):
        classifier(clouds[0], candidate_labels=[])
    with pytest.raises(FileNotFoundError):
        classifier(str(tmp_path / "missing.ply"), candidate_labels=LABELS)
    (tmp_path / "broken.ply").write_text("this is not a ply file")
    with pytest.raises(ValueError, match="broken.ply"):
        classifier(str(tmp_path / "broken.ply"), candidate_labels=LABELS)


def test_trust_remote_code_in_a_fresh_interpreter(saved_model, classifier, clouds, tmp_path):
    np.save(tmp_path / "cloud.npy", clouds[0])
    expected = classifier(clouds[0], candidate_labels=LABELS)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from transformers import pipeline
        pipe = pipeline({TASK!r}, model={str(saved_model)!r}, trust_remote_code=True)
        out = pipe(np.load({str(tmp_path / "cloud.npy")!r}), candidate_labels={LABELS!r})
        assert "dual_denoising" not in sys.modules, "the package was imported"
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["label"] for r in remote] == [r["label"] for r in expected]
    np.testing.assert_allclose([r["score"] for r in remote], [r["score"] for r in expected], atol=1e-6)


def test_embeddings_and_retrieval(saved_model, classifier, clouds):
    model = classifier.model
    database = embed_point_clouds(model, clouds, batch_size=2)
    assert database.shape == (3, tester.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(database, axis=1), 1, atol=1e-5)
    scores, indices = cosine_top_k(database, database, k=2)
    assert (indices[:, 0] == np.arange(3)).all() and np.allclose(scores[:, 0], 1, atol=1e-5)
    text = encode_class_names(model.get_text_features, classifier.tokenizer, LABELS)
    scores, indices = cosine_top_k(database, text, k=4)  # 3D -> text ranks labels as the pipeline does
    ranked = [LABELS[i] for i in indices[0]]
    assert ranked == [r["label"] for r in classifier(clouds[0], candidate_labels=LABELS)]


class TestCLI:
    def test_classify_table_and_json(self, saved_model, clouds, tmp_path, capsys):
        np.save(tmp_path / "a.npy", clouds[0])
        assert cli_main(["classify", str(tmp_path / "a.npy"), "--labels", *LABELS, "--model", str(saved_model),
                         "--top-k", "2"]) == 0
        out = capsys.readouterr().out
        assert "a.npy" in out and len(out.strip().splitlines()) == 3
        assert cli_main(["classify", str(tmp_path / "a.npy"), "--labels", *LABELS, "--model", str(saved_model),
                         "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert len(result[str(tmp_path / "a.npy")]) == 4

    def test_embed_npy_and_parquet(self, saved_model, clouds, tmp_path):
        files = []
        for i, cloud in enumerate(clouds):
            np.save(tmp_path / f"{i}.npy", cloud)
            files.append(str(tmp_path / f"{i}.npy"))
        assert cli_main(["embed", *files, "--out", str(tmp_path / "e.npy"), "--model", str(saved_model)]) == 0
        assert np.load(tmp_path / "e.npy").shape == (3, tester.embed_dim)
        assert (tmp_path / "e.rows.txt").read_text().split() == files
        assert cli_main(["embed", *files, "--out", str(tmp_path / "e.parquet"), "--model", str(saved_model)]) == 0
        assert cli_main(["embed", *files, "--out", str(tmp_path / "e.npy"), "--model", str(saved_model)]) == 1

    @pytest.mark.parametrize(
        "args, message",
        [
            (["classify", "MISSING.ply", "--labels", "a"], "no such file"),
            (["classify", "{bad}", "--labels", "a"], "cannot be read"),
            (["classify", "{good}", "--labels", " "], "--labels is empty"),
            (["embed", "{good}", "--out", "x.csv"], "must end in .npy or .parquet"),
        ],
    )
    def test_errors_are_one_line(self, saved_model, clouds, tmp_path, capsys, args, message):
        np.save(tmp_path / "good.npy", clouds[0])
        (tmp_path / "bad.ply").write_text("not a mesh")
        args = [a.format(bad=tmp_path / "bad.ply", good=tmp_path / "good.npy") for a in args]
        assert cli_main([*args, "--model", str(saved_model)]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_up_axis_turns_z_up_and_x_up_clouds_y_up():
    from transformers import pipeline as make_pipeline

    from dual_denoising.pipeline_dual_denoising import prepare_point_cloud
    from dual_denoising.shipped import shipped_model_classes
    from dual_denoising.synth import generate_shape

    y_up = np.asarray(generate_shape("airplane", index=0, seed=4242, num_points=2048, views=1)["points"], np.float64)
    z_up = y_up[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # the export a Z-up tool makes: (x, y, z) -> (x, -z, y)
    x_up = y_up[:, [1, 0, 2]] * np.array([1.0, -1.0, 1.0])  # (x, y, z) -> (y, -x, z): up along +x
    reference = prepare_point_cloud(y_up, 1024, 32)
    torch.testing.assert_close(prepare_point_cloud(z_up, 1024, 32, up_axis="z"), reference, atol=1e-6, rtol=0)
    torch.testing.assert_close(prepare_point_cloud(x_up, 1024, 32, up_axis="x"), reference, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="up_axis"):
        prepare_point_cloud(y_up, 1024, 32, up_axis="w")
    classifier = make_pipeline("zero-shot-3d-classification")
    classes = shipped_model_classes()
    expected = classifier(y_up, candidate_labels=classes, up_axis="y")[0]["label"]
    assert classifier(z_up, candidate_labels=classes, up_axis="z")[0]["label"] == expected


def test_the_default_reads_z_up_exports_right_without_being_told():
    """A Z-up export of a SynthShapes shape gets its Y-up original's top-1 with the defaults (the shipped
    default carries an orientation head, so no up_axis means "auto"); the cone and the table were "tent" and
    "monitor" when the models silently assumed Y-up."""
    from transformers import pipeline as make_pipeline

    from dual_denoising.shipped import shipped_model_classes
    from dual_denoising.synth import generate_shape

    classifier = make_pipeline("zero-shot-3d-classification")
    classes = shipped_model_classes()
    y_up = [np.asarray(generate_shape(c, index=0, seed=4242, num_points=2048, views=1)["points"], np.float64)
            for c in ("cone", "table", "chair", "airplane")]
    z_up = [cloud[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0]) for cloud in y_up]  # (x, y, z) -> (x, -z, y)
    expected = [r[0]["label"] for r in classifier(y_up, candidate_labels=classes, up_axis="y")]
    assert expected == ["cone", "table", "chair", "airplane"]
    assert [r[0]["label"] for r in classifier(z_up, candidate_labels=classes)] == expected


def test_orientations_are_the_24_axis_aligned_rotations():
    from dual_denoising.orientations import ORIENTATIONS, choose_orientation

    assert ORIENTATIONS.shape == (24, 3, 3) and np.allclose(ORIENTATIONS[0], np.eye(3))
    np.testing.assert_allclose(ORIENTATIONS @ ORIENTATIONS.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (24, 3, 3)))
    assert np.allclose(np.linalg.det(ORIENTATIONS), 1.0)
    assert len({tuple(np.round(o).astype(int).ravel()) for o in ORIENTATIONS}) == 24
    # every up direction comes first in its group of four: +y, -y, +z, -z, +x, -x turned onto +y
    ups = [tuple(np.round(o.T @ [0, 1, 0]).astype(int)) for o in ORIENTATIONS[::4]]
    assert ups == [(0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1), (1, 0, 0), (-1, 0, 0)]
    logits = torch.tensor([[[0.0, 1.0], [5.0, 0.0], [0.0, 2.0]]])  # (B=1, R=3, C=2): orientation 1 is the surest
    assert choose_orientation(logits).tolist() == [1]


def test_identity_prior_keeps_the_cloud_as_given_unless_another_orientation_is_clearly_better():
    from dual_denoising.orientations import choose_orientation

    logits = torch.tensor([[[3.0, 0.0], [4.0, 0.0], [0.0, 0.0]]])  # orientation 1 a little surer than the given 0
    turn = torch.tensor([[2.0, 2.5, -5.0]])  # and the head leans to it as well
    assert choose_orientation(logits, turn, 1.0).tolist() == [1]
    assert choose_orientation(logits, turn, 1.0, identity_prior=1.0).tolist() == [0]  # not by more than b: kept
    assert choose_orientation(logits, None, 0.0, identity_prior=1.0).tolist() == [0]  # the rule without a head too
    far = torch.tensor([[[0.0, 0.0], [9.0, 0.0], [0.0, 0.0]]])  # a clear winner still turns the cloud
    assert choose_orientation(far, turn, 1.0, identity_prior=1.0).tolist() == [1]
    # the keep threshold: a head sure enough that the cloud is upright keeps it, whatever the classifier says
    sure = torch.tensor([[5.0, 0.0, -5.0]])  # p_head(0) ~ 0.99
    assert choose_orientation(far, sure, 10.0).tolist() == [1]  # the classifier outweighs the head at w 10
    assert choose_orientation(far, sure, 10.0, keep_threshold=0.9).tolist() == [0]
    assert choose_orientation(far, turn, 10.0, keep_threshold=0.9).tolist() == [1]  # p_head(0) ~ 0.38: not sure


def test_auto_keeps_a_cloud_the_head_and_the_classifier_both_read_as_upright():
    from dual_denoising.orientations import NUM_ORIENTATIONS, choose_orientation

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, NUM_ORIENTATIONS, 5, generator=generator)
    logits[:, 0, 2] = 8.0  # the classifier is surest of the cloud as given
    turn = torch.randn(3, NUM_ORIENTATIONS, generator=generator)
    turn[:, 0] = 4.0  # and the head calls it upright
    for weight in (0.0, 1.0, 8.0, 32.0):
        for prior, threshold in ((0.0, 1.0), (2.0, 1.0), (2.0, 0.2)):
            assert choose_orientation(logits, turn, weight, prior, threshold).tolist() == [0, 0, 0]


def test_auto_turns_the_cloud_the_way_the_head_says(saved_model, tmp_path, clouds):
    """A head that always answers turn k: "auto" must give exactly what the cloud turned by ORIENTATIONS[k] gives."""
    from dual_denoising.orientations import ORIENTATIONS

    model = DualDenoisingModel.from_pretrained(saved_model)
    model.config.orientation_head = True
    model.orientation_head = type(model)(model.config).orientation_head
    k = 9
    with torch.no_grad():
        last = model.orientation_head.mlp[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[k] = 100.0  # far beyond what the classifier's confidence can outweigh
    model.save_pretrained(tmp_path / "with-head")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "with-head" / name).write_bytes((saved_model / name).read_bytes())
    classifier = pipeline(TASK, model=str(tmp_path / "with-head"))
    cloud = clouds[0].astype(np.float64)
    labels = ["chair", "table", "lamp"]
    auto = classifier(cloud, candidate_labels=labels, up_axis="auto")
    turned = classifier(cloud @ ORIENTATIONS[k].T, candidate_labels=labels, up_axis="y")
    assert [r["label"] for r in auto] == [r["label"] for r in turned]
    np.testing.assert_allclose([r["score"] for r in auto], [r["score"] for r in turned], rtol=1e-5)
    # a model with a head finds the up axis by default; one without reads the cloud as Y-up
    assert classifier(cloud, candidate_labels=labels) == auto
    # the identity prior, a config field that round-trips: larger than the head's lean, the cloud stays as given;
    # "pca" does not apply it
    model.config.orientation_identity_prior = 1000.0
    model.save_pretrained(tmp_path / "with-head")
    assert DualDenoisingModel.from_pretrained(tmp_path / "with-head").config.orientation_identity_prior == 1000.0
    classifier = pipeline(TASK, model=str(tmp_path / "with-head"))
    kept, as_given = (classifier(cloud, candidate_labels=labels, up_axis=axis) for axis in ("auto", "y"))
    assert [r["label"] for r in kept] == [r["label"] for r in as_given]
    np.testing.assert_allclose([r["score"] for r in kept], [r["score"] for r in as_given], rtol=1e-5)
    with pytest.raises(Exception, match="orientation_identity_prior must be >= 0"):
        DualDenoisingConfig(orientation_identity_prior=-1.0)
    with pytest.raises(Exception, match="orientation_keep_threshold is a probability"):
        DualDenoisingConfig(orientation_keep_threshold=0.0)
    plain = pipeline(TASK, model=str(saved_model))
    assert plain(cloud, candidate_labels=labels) == plain(cloud, candidate_labels=labels, up_axis="y")


def test_up_axis_auto_undoes_axis_aligned_turns():
    from transformers import pipeline as make_pipeline

    from dual_denoising.orientations import ORIENTATIONS
    from dual_denoising.shipped import shipped_model_classes
    from dual_denoising.synth import generate_shape

    y_up = np.asarray(generate_shape("airplane", index=0, seed=4242, num_points=2048, views=1)["points"], np.float64)
    classifier = make_pipeline("zero-shot-3d-classification")
    classes = shipped_model_classes()
    expected = classifier(y_up, candidate_labels=classes)[0]
    turned = [y_up @ ORIENTATIONS[i].T for i in (2, 9, 13, 22)]  # z up, upside down, ...
    results = classifier(turned, candidate_labels=classes, up_axis="auto", batch_size=2)
    assert [r[0]["label"] for r in results] == [expected["label"]] * 4
    with pytest.raises(ValueError, match="up_axis must be one of"):
        classifier(y_up, candidate_labels=classes, up_axis="north")


def test_up_axis_pca_is_blind_to_the_pose(classifier, clouds):
    """'pca' turns the principal axes onto x, y, z, then searches the 24 turns: a cloud in any pose gets the answer
    of the same cloud upright (a model without a head: the most confident of a set the pose does not change)."""
    from dual_denoising.orientations import principal_axes

    cloud = clouds[2].astype(np.float64) * [1.0, 2.0, 0.5]  # three distinct extents: the principal axes are stable
    q, r = np.linalg.qr(np.random.default_rng(3).standard_normal((3, 3)))
    pose = q * np.sign(np.diag(r))
    pose[:, 0] *= np.linalg.det(pose)  # a proper rotation
    axes = principal_axes(cloud @ pose.T)
    assert np.allclose(axes @ axes.T, np.eye(3)) and np.isclose(np.linalg.det(axes), 1.0)
    upright = classifier(cloud, candidate_labels=LABELS, up_axis="pca")
    posed = classifier(cloud @ pose.T, candidate_labels=LABELS, up_axis="pca")
    assert [r["label"] for r in posed] == [r["label"] for r in upright]
    np.testing.assert_allclose([r["score"] for r in posed], [r["score"] for r in upright], rtol=1e-4)
    # the pose does change what a named axis reads
    assert not np.allclose([r["score"] for r in classifier(cloud @ pose.T, candidate_labels=LABELS, up_axis="y")],
                           [r["score"] for r in classifier(cloud, candidate_labels=LABELS, up_axis="y")], rtol=1e-4)


def test_defenses_are_pipeline_options(classifier, clouds):
    """Purification and randomized smoothing reach the pipeline; the baseline refuses what it lacks."""
    from transformers import pipeline as make_pipeline

    labels = LABELS
    plain = classifier(clouds[0], candidate_labels=labels)
    purified = classifier(clouds[0], candidate_labels=labels, purification_rounds=1)
    assert purified == classifier(clouds[0], candidate_labels=labels, purification_rounds=1)  # seeded
    assert purified != plain
    kept = classifier(clouds[0], candidate_labels=labels, purification_rounds=1, purification_keep_input=True)
    assert kept == classifier(clouds[0], candidate_labels=labels, purification_rounds=1, purification_keep_input=True)
    assert kept != purified
    with pytest.raises(ValueError, match="purification_keep_input must be True or False"):
        classifier(clouds[0], candidate_labels=labels, purification_rounds=1, purification_keep_input="yes")
    smoothed = classifier(clouds[0], candidate_labels=labels, inference_point_noise_level=100, num_noise_samples=2)
    assert smoothed != plain
    with pytest.raises(ValueError, match="inference_point_noise_level must be below"):
        classifier(clouds[0], candidate_labels=labels, inference_point_noise_level=10_000)
    with pytest.raises(ValueError, match="purification_rounds must be an integer >= 0"):
        classifier(clouds[0], candidate_labels=labels, purification_rounds=-1)
    baseline = make_pipeline(TASK, model=resolve_model("ulip-noise-tiny"))  # the shipped contrastive control
    with pytest.raises(ValueError, match="purification_rounds apply to Dual Denoising models"):
        baseline(clouds[0], candidate_labels=labels, purification_rounds=1, up_axis="y")
    with pytest.raises(ValueError, match="purification_keep_input apply to Dual Denoising models"):
        baseline(clouds[0], candidate_labels=labels, purification_keep_input=True, up_axis="y")
    with pytest.raises(ValueError, match="num_noise_samples apply to Dual Denoising models"):
        baseline(clouds[0], candidate_labels=labels, num_noise_samples=4, up_axis="y")
    smooth = dict(candidate_labels=labels, inference_point_noise_level=100, num_noise_samples=4, up_axis="y")
    assert baseline(clouds[0], **smooth) == baseline(clouds[0], **smooth)  # smoothing is seeded too
    assert baseline(clouds[0], **smooth) != baseline(clouds[0], candidate_labels=labels, up_axis="y")


def test_readout_options_reach_the_model(classifier, tmp_path, clouds):
    """`readout`, `fusion_weight` and `start_timestep` are call options: each gives the model's own reading of the
    same name; a model without a head, and the baseline, refuse what they lack; bad values get one-line errors."""
    teacher, tokenizer = tiny_teacher(["chair", "table", "lamp", "night stand"], projection_dim=tester.embed_dim)
    model = DualDenoisingModel.from_teacher(teacher, tester.get_config(contrastive_head_weight=1.0)).eval()
    ZeroShot3DClassificationPipeline(model=model, tokenizer=tokenizer).save_pretrained(tmp_path / "head")
    with_head = pipeline(TASK, model=str(tmp_path / "head"))
    model, labels = with_head.model, dict(candidate_labels=LABELS, up_axis="y")
    class_embeds = encode_class_names(model.get_text_features, with_head.tokenizer, LABELS)
    points = with_head.preprocess(clouds[0], **labels)["points"]
    for options in ({"readout": "head"}, {"readout": "fusion", "fusion_weight": 0.3},
                    {"readout": "denoiser", "start_timestep": 100}, {"readout": "denoiser"}):
        scores = {r["label"]: r["score"] for r in with_head(clouds[0], **labels, **options)}
        logits = model.zero_shot_logits(points, class_embeds, generator=[torch.Generator().manual_seed(0)], **options)
        assert [scores[label] for label in LABELS] == pytest.approx(logits.softmax(dim=-1)[0].tolist(), abs=1e-5)
    assert with_head(clouds[0], **labels, readout="head") != with_head(clouds[0], **labels, readout="denoiser")
    for bad, message in (({"readout": "mean"}, "readout must be one of"), ({"fusion_weight": 1.5}, "fusion_weight"),
                         ({"start_timestep": 10_000}, "start_timestep must be an integer in")):
        with pytest.raises(ValueError, match=message):
            with_head(clouds[0], **labels, **bad)
    with pytest.raises(ValueError, match="read the contrastive head, which this model has not"):
        classifier(clouds[0], **labels, readout="head")
    with pytest.raises(ValueError, match="readout apply to Dual Denoising models"):
        pipeline(TASK, model=resolve_model("ulip-noise-tiny"))(clouds[0], **labels, readout="head")
