"""SynthShapes (generators, points, captions, the dataset, make-synthetic) and the CPU renderer."""

import re

import numpy as np
import pytest
import trimesh
from PIL import Image

from dual_denoising import cli
from dual_denoising.data import load_triples, load_triples_metadata
from dual_denoising.synth import (
    CLASS_NAMES,
    DEFAULT_UNSEEN_CLASSES,
    GENERATORS,
    PALETTE,
    SYNONYMS,
    build_synthshapes,
    generate_mesh,
    generate_shape,
    make_captions,
    sample_points,
    save_synthshapes,
)
from dual_denoising.synth.render import contact_sheet, render_mesh, sample_view_angles

CONFUSABLE_GROUPS = [
    {"table", "desk"},
    {"chair", "stool", "bench"},
    {"cup", "vase", "bottle", "bowl"},
    {"dresser", "night_stand", "tv_stand"},
]
SHAPES, VIEWS = 8, 2


def parse(argv):
    """Parse `make-synthetic` arguments with the `dual-denoising` parser."""
    return cli.build_parser().parse_args(argv)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """The acceptance run: every class x 8 shapes x 2 views through make-synthetic, with a preview."""
    root = tmp_path_factory.mktemp("synth")
    args = parse(["make-synthetic", "--out", str(root / "ds"), "--shapes-per-class", str(SHAPES), "--views",
                  str(VIEWS), "--seed", "0", "--preview", str(root / "preview.png"), "--quiet"])
    assert cli.resolve_command(args.func)(args) == 0
    return root


def class_word_pattern(word: str) -> re.Pattern:
    return re.compile(r"\b" + re.escape(word) + r"s?\b")


# ----------------------------------------------------------------------------------------------------------------------
# The acceptance dataset
# ----------------------------------------------------------------------------------------------------------------------


def test_make_synthetic_writes_every_class(synth):
    ds = load_triples(synth / "ds")
    meta = load_triples_metadata(synth / "ds")
    assert set(ds) == {"train", "test"}
    assert len(ds["train"]) == len(CLASS_NAMES) * 6 and len(ds["test"]) == len(CLASS_NAMES) * 2
    assert meta["classes"] == CLASS_NAMES and len(CLASS_NAMES) >= 24
    assert meta["splits"] == {"train": len(ds["train"]), "test": len(ds["test"])}
    expected = {"seed": 0, "shapes_per_class": SHAPES, "views": VIEWS, "image_size": 64, "num_points": 2048}
    assert {key: meta[key] for key in expected} == expected
    assert meta["generator_version"]
    for split in ("train", "test"):
        assert ds[split].features["label"].names == CLASS_NAMES
        labels = np.asarray(ds[split]["label"])
        per_class = 6 if split == "train" else 2
        assert np.bincount(labels, minlength=len(CLASS_NAMES)).tolist() == [per_class] * len(CLASS_NAMES)
        for shape_id, label in zip(ds[split]["shape_id"], labels):
            assert shape_id.rsplit("_", 1)[0] == CLASS_NAMES[label]
    assert not set(ds["train"]["shape_id"]) & set(ds["test"]["shape_id"])


def test_points_are_finite_float32_on_the_unit_sphere(synth):
    ds = load_triples(synth / "ds", split="test").with_format("numpy")
    for points in ds["points"]:
        assert points.shape == (2048, 3) and points.dtype == np.float32
        assert np.isfinite(points).all()
        assert np.abs(points.mean(0)).max() < 1e-4
        assert np.linalg.norm(points, axis=1).max() == pytest.approx(1.0, abs=1e-5)


def test_images_have_the_requested_size(synth):
    ds = load_triples(synth / "ds", split="test")
    for images in ds["images"]:
        assert len(images) == VIEWS
        for image in images:
            assert image.size == (64, 64) and image.mode == "RGB"
            pixels = np.asarray(image)
            assert (pixels != 255).any(axis=-1).mean() > 0.03  # the object is drawn, not just the background


def test_captions_name_the_class_and_no_other(synth):
    ds = load_triples(synth / "ds", split="train")
    for captions, label in zip(ds["captions"], ds["label"]):
        name = CLASS_NAMES[label]
        assert len(captions) == 4
        for caption in captions:
            assert any(class_word_pattern(w).search(caption) for w in SYNONYMS[name]), caption
            for other in CLASS_NAMES:
                if other != name:
                    leaked = [w for w in SYNONYMS[other] if class_word_pattern(w).search(caption)]
                    assert not leaked, f"{name} caption {caption!r} uses {other}'s word {leaked}"


def test_preview_has_one_row_per_class(synth):
    with Image.open(synth / "preview.png") as sheet:
        assert sheet.width > 2 * 6 * 96 and sheet.height >= len(CLASS_NAMES) / 2 * 96  # two panels of rows


def test_metadata_records_seen_and_unseen_classes(synth):
    meta = load_triples_metadata(synth / "ds")
    assert meta["unseen_classes"] == DEFAULT_UNSEEN_CLASSES
    assert sorted(meta["seen_classes"] + meta["unseen_classes"]) == sorted(CLASS_NAMES)
    assert 0.2 <= len(meta["unseen_classes"]) / len(CLASS_NAMES) <= 0.3
    unseen = set(meta["unseen_classes"])
    assert any(group & unseen and group - unseen for group in CONFUSABLE_GROUPS)  # a confusable partner stays seen
    assert unseen - set().union(*CONFUSABLE_GROUPS)  # and some distinctive classes are unseen


def test_existing_folder_needs_overwrite(synth, monkeypatch, capsys):
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_synthshapes(synth / "ds", shapes_per_class=2, views=1, seed=0, classes=["cup"], progress=False)
    # Through `dual-denoising`: a one-line error, exit status 1.
    assert cli.main(["make-synthetic", "--out", str(synth / "ds"), "--shapes-per-class", "2", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "already holds a dataset" in err and len(err.splitlines()) == 1


def test_an_existing_preview_is_never_replaced_unasked(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"the user's picture")
    assert cli.main(["make-synthetic", "--out", str(tmp_path / "ds"), "--shapes-per-class", "2", "--classes", "cup",
                     "--preview", str(sheet), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "sheet.png already exists" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert sheet.read_bytes() == b"the user's picture" and not (tmp_path / "ds").exists()
    # --quiet means no bar at all: neither the generator's nor the parquet writer's
    assert cli.main(["make-synthetic", "--out", str(tmp_path / "ds"), "--shapes-per-class", "2", "--classes", "cup",
                     "--views", "1", "--quiet"]) == 0
    assert "%|" not in capsys.readouterr().err  # a tqdm bar draws "NN%|"


def test_dataset_folders_keep_what_the_user_put_there(tmp_path, capsys):
    """A dataset's folder may hold the user's own files: they are never replaced, not even with --overwrite (a file
    of a name the dataset uses is refused before any work), and a rewrite removes only the earlier dataset's files."""
    out = tmp_path / "ds"
    (out / "data").mkdir(parents=True)
    mine = out / "dual_denoising.json"
    mine.write_text("the user's own notes")
    argv = ["make-synthetic", "--out", str(out), "--shapes-per-class", "2", "--classes", "cup", "--views", "1",
            "--quiet", "--overwrite"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "dual_denoising.json was not written by dual-denoising" in err and len(err.splitlines()) == 1
    assert mine.read_text() == "the user's own notes" and not any((out / "data").iterdir())
    mine.unlink()
    (out / "README.md").write_text("my dataset")
    extra = out / "data" / "extra-00000-of-00001.parquet"
    assert cli.main(argv) == 0
    written = sorted(p.name for p in (out / "data").iterdir())
    assert written == ["test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    # a second run replaces its own files, keeps the README, and never touches a parquet file of the user's
    extra.write_bytes(b"not ours")
    assert cli.main(argv) == 1 and "extra-00000-of-00001.parquet was not written" in capsys.readouterr().err
    extra.unlink()
    assert cli.main(argv) == 0
    assert (out / "README.md").read_text() == "my dataset"
    assert load_triples(out, split="train").num_rows + load_triples(out, split="test").num_rows == 2


# ----------------------------------------------------------------------------------------------------------------------
# Reproducibility
# ----------------------------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_data_and_another_seed_does_not():
    classes = ["chair", "cup", "lamp"]
    first, meta = build_synthshapes(3, 2, seed=5, num_points=256, classes=classes, progress=False)
    again, _ = build_synthshapes(3, 2, seed=5, num_points=256, classes=classes, progress=False)
    other, _ = build_synthshapes(3, 2, seed=6, num_points=256, classes=classes, progress=False)
    for split in first:
        a, b = first[split].with_format("numpy"), again[split].with_format("numpy")
        assert all(np.array_equal(x, y) for x, y in zip(a["points"], b["points"]))
        assert first[split]["captions"] == again[split]["captions"]
        for views_a, views_b in zip(first[split]["images"], again[split]["images"]):
            assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(views_a, views_b))
        c = other[split].with_format("numpy")
        assert not any(np.array_equal(x, y) for x, y in zip(a["points"], c["points"]))
    assert meta["seed"] == 5 and meta["train_shapes_per_class"] == 2 and meta["test_shapes_per_class"] == 1


def test_a_shape_does_not_depend_on_the_other_classes_or_sizes():
    alone, _ = build_synthshapes(2, 1, seed=1, num_points=128, classes=["sofa"], test_fraction=0.0, progress=False)
    row = generate_shape("sofa", 1, seed=1, num_points=128, views=1)
    assert np.array_equal(np.asarray(alone["train"].with_format("numpy")["points"][1]), row["points"])
    assert np.array_equal(np.asarray(alone["train"][1]["images"][0]), np.asarray(row["images"][0]))
    assert alone["train"][1]["captions"] == row["captions"]
    # More views or points change neither the points' draw nor the mesh.
    more = generate_shape("sofa", 1, seed=1, num_points=128, views=3)
    assert np.array_equal(more["points"], row["points"]) and len(more["images"]) == 3
    dense = generate_shape("sofa", 1, seed=1, num_points=512, views=1)
    assert np.array_equal(np.asarray(dense["images"][0]), np.asarray(row["images"][0]))


# ----------------------------------------------------------------------------------------------------------------------
# Generators, points, captions
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_generator_gives_a_normalised_upright_mesh_with_variety(name):
    meshes = []
    for index in range(4):
        mesh, attrs = generate_mesh(name, index, seed=0)
        assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) > 10
        assert np.isfinite(mesh.vertices).all() and mesh.faces.max() < len(mesh.vertices)
        lo, hi = mesh.bounds
        assert np.allclose((lo + hi) / 2, 0, atol=1e-9) and (hi - lo).max() == pytest.approx(1.0)
        assert mesh.visual.face_colors.shape == (len(mesh.faces), 4)
        assert attrs["color"] in PALETTE
        assert all(isinstance(v, (str, int, bool)) or v is None for v in attrs.values())
        meshes.append(mesh)
    extents = np.array([m.extents for m in meshes])
    assert np.ptp(extents, axis=0).max() > 0.02  # proportions vary from shape to shape


def test_synonyms_are_not_shared_between_classes():
    assert set(SYNONYMS) == set(GENERATORS) == set(CLASS_NAMES)
    for name in CLASS_NAMES:
        assert SYNONYMS[name][0] == name.replace("_", " ")
    words = [w for name in CLASS_NAMES for w in SYNONYMS[name]]
    assert len(words) == len(set(words))


def test_captions_vary_and_describe_attributes():
    rng = np.random.default_rng(0)
    attrs = {"color": "red", "legs": 3, "style": "tall", "footrest": True}
    captions = make_captions("stool", attrs, rng, count=40)
    assert len(set(captions)) > 20
    assert any("three legs" in c or "three-legged" in c for c in captions)
    assert not any("three-legged" in c and "three legs" in c for c in captions)
    assert any("red" in c for c in captions) and all(c.endswith(".") for c in captions)
    assert all("a stairs" not in c for c in make_captions("stairs", {"color": "red", "steps": 5}, rng, count=20))


def test_sample_points_lie_on_the_surface_with_area_weights():
    box = trimesh.creation.box(extents=(4.0, 1.0, 1.0))
    points = sample_points(box, 4000, np.random.default_rng(0), normalize=False)
    assert points.shape == (4000, 3) and points.dtype == np.float32
    on_face = np.isclose(np.abs(points), [2.0, 0.5, 0.5], atol=1e-5)
    assert on_face.any(axis=1).all()
    # The two 1x1 end faces hold 2 of the box's 18 units of area.
    assert on_face[:, 0].mean() == pytest.approx(2 / 18, abs=0.02)
    again = sample_points(box, 4000, np.random.default_rng(0), normalize=False)
    assert np.array_equal(points, again)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shapes_per_class": 0}, "shapes_per_class"),
        ({"views": 0}, "views"),
        ({"image_size": 4}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"classes": ["chair", "spaceship"]}, "unknown SynthShapes class"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"shapes_per_class": 1}, "no training shape"),
        ({"unseen_classes": ["desk"]}, "subset of classes"),
    ],
)
def test_bad_arguments_are_clear_value_errors(kwargs, match):
    args = {"shapes_per_class": 2, "views": 1, "seed": 0, "classes": ["chair"], "progress": False} | kwargs
    with pytest.raises(ValueError, match=match):
        build_synthshapes(**args)


# ----------------------------------------------------------------------------------------------------------------------
# Renderer
# ----------------------------------------------------------------------------------------------------------------------


def test_render_mesh_draws_a_shaded_object_on_a_plain_background():
    mesh, _ = generate_mesh("chair", 0, seed=0)
    for size in (32, 64):
        image = render_mesh(mesh, azimuth=30, elevation=25, image_size=size)
        assert image.size == (size, size) and image.mode == "RGB"
    pixels = np.asarray(render_mesh(mesh, image_size=64, background=(10, 20, 30)))
    assert (pixels[0, 0] == [10, 20, 30]).all() and (pixels[-1, -1] == [10, 20, 30]).all()
    drawn = (pixels != [10, 20, 30]).any(-1)
    assert 0.05 < drawn.mean() < 0.9
    ys, xs = np.nonzero(drawn)
    assert abs(xs.mean() - 32) < 12 and abs(ys.mean() - 32) < 12  # framed in the middle
    # A box seen from the front, lit from the upper left: its top face is brighter than its front.
    box = trimesh.creation.box(extents=(1, 1, 1))
    cube = np.asarray(render_mesh(box, azimuth=0, elevation=30, image_size=64, supersample=1)).astype(int)
    assert cube[20, 32].sum() > cube[45, 32].sum()


def test_render_rejects_bad_input():
    with pytest.raises(ValueError, match="vertices"):
        render_mesh((np.zeros((0, 3)), np.zeros((0, 3), dtype=int)))
    with pytest.raises(ValueError, match="image_size"):
        render_mesh(trimesh.creation.box(), image_size=2)


def test_view_angles_are_stratified_around_the_front():
    angles = sample_view_angles(np.random.default_rng(0), 4)
    azimuths = [a for a, _ in angles]
    assert azimuths == sorted(azimuths) and -70 <= azimuths[0] and azimuths[-1] <= 70
    assert all(15 <= e <= 35 for _, e in angles)


def test_contact_sheet_lays_out_rows():
    tile = Image.new("RGB", (20, 20), (200, 0, 0))
    sheet = contact_sheet([("a", [tile, tile]), ("b", [tile])], label_width=50, padding=2)
    assert sheet.size == (50 + 2 * 22 + 2, 2 * 22 + 2)
    assert contact_sheet([("a", [tile, tile]), ("b", [tile])], label_width=50, panels=2).size == (2 * 96, 22 + 2)


# ----------------------------------------------------------------------------------------------------------------------
# SynthShapes-Scan
# ----------------------------------------------------------------------------------------------------------------------
def test_depth_scan_back_projects_onto_the_surface(monkeypatch):
    """A unit cube seen head-on: with the sensor noise off every return lies on the face towards the camera."""
    from dual_denoising.synth import scan

    monkeypatch.setattr(scan, "DEPTH_NOISE", 0.0)
    monkeypatch.setattr(scan, "DROPOUT", 0.0)
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    points, face_id = scan.depth_scan(box.vertices, box.faces, 0.0, 0.0, np.random.default_rng(0), image_size=64)
    assert len(points) > 500 and len(points) == len(face_id)
    np.testing.assert_allclose(points[:, 2], 0.5, atol=1e-5)  # the +z face, exactly
    assert np.abs(points[:, :2]).max() <= 0.5 + 1e-5
    # at 40 degrees azimuth two faces are seen; none from behind
    points, _ = scan.depth_scan(box.vertices, box.faces, 40.0, 0.0, np.random.default_rng(0), image_size=64)
    on_face = (np.abs(points[:, 2] - 0.5) < 1e-5) | (np.abs(points[:, 0] - 0.5) < 1e-5)
    assert on_face.all() and (points[:, 2] > -0.5 + 1e-3).all()


@pytest.mark.parametrize("variant", ["object", "background", "perturbed"])
def test_scan_variants_are_partial_seeded_clouds(variant):
    from dual_denoising.synth.scan import scan_shape

    points, is_object = scan_shape("chair", 3, 0, variant, list(CLASS_NAMES))
    again, _ = scan_shape("chair", 3, 0, variant, list(CLASS_NAMES))
    assert points.shape == (2048, 3) and points.dtype == np.float32 and np.array_equal(points, again)
    if variant == "object":
        assert is_object.all()
    else:  # floor and clutter come in, the object stays the larger part
        assert 0.2 < is_object.mean() < 1.0
    complete = generate_shape("chair", 3, 0)["points"]
    assert not np.allclose(points.mean(0), complete.mean(0), atol=1e-3)  # one side seen: not the complete cloud


def test_make_synthetic_scan_writes_the_same_split_with_a_preview(tmp_path, capsys):
    out, preview = tmp_path / "scan", tmp_path / "scan.png"
    code = cli.main(["make-synthetic", "--scan", "background", "--out", str(out), "--shapes-per-class", "5",
                     "--classes", "cup,lamp", "--num-points", "256", "--preview", str(preview), "--quiet"])
    assert code == 0 and "SynthShapes-Scan (background" in capsys.readouterr().out
    meta = load_triples_metadata(out)
    assert meta["variant"] == "background" and meta["scanobjectnn_analogue"] == "OBJ_BG"
    assert meta["splits"] == {"train": 8, "test": 2}
    test = load_triples(out, split="test")
    assert test["shape_id"] == ["cup_0004", "lamp_0004"]  # the same shapes as SynthShapes' test split
    assert np.asarray(test[0]["points"]).shape == (256, 3)
    with Image.open(preview) as sheet:
        assert sheet.size[0] > 300 and sheet.size[1] > 150
    assert cli.main(["make-synthetic", "--scan", "object", "--out", str(out), "--quiet"]) == 1  # no --overwrite
    with pytest.raises(ValueError, match="unknown scan variant"):
        from dual_denoising.synth.scan import build_synthshapes_scan

        build_synthshapes_scan("walls")
