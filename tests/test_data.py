"""Triples schema, point transforms, dataset preparation (map-style and streaming) and the collator."""

import math

import datasets
import numpy as np
import pytest
import torch

from dual_denoising.data import (
    Compose,
    NormalizeToUnitSphere,
    PointCloudTransform,
    RandomPointDropout,
    RandomRotationPerturbation,
    RandomScaleAndTranslate,
    RandomUpAxisRotation,
    Resample,
    TriplesCollator,
    collate_triples,
    load_triples,
    load_triples_metadata,
    normalize_points,
    prepare_dataset,
    resample_points,
    save_triples,
    triples_features,
    ulip_augmentations,
)
from dual_denoising.point_ops import farthest_point_sample

EMBED_DIM = 8


def cloud(n=64, channels=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, channels)).astype(np.float32) * 3 + 5


def tiny_triples(num_rows=6, sizes=(50, 80), views=(3, 2), embed_dim=EMBED_DIM):
    rng = np.random.default_rng(0)
    rows = {"shape_id": [], "points": [], "captions": [], "label": [], "image_embeds": [], "text_embeds": []}
    for i in range(num_rows):
        rows["shape_id"].append(f"shape_{i}")
        rows["points"].append(rng.normal(size=(sizes[i % len(sizes)], 3)).astype(np.float32))
        rows["captions"].append([f"a shape {i}"])
        rows["label"].append(i % 2)
        rows["image_embeds"].append(rng.normal(size=(views[i % len(views)], embed_dim)).astype(np.float32))
        rows["text_embeds"].append(rng.normal(size=(1, embed_dim)).astype(np.float32))
    features = triples_features(["cube", "ball"], with_images=False, embed_dim=embed_dim)
    return datasets.Dataset.from_dict(rows, features=features)


# ----------------------------------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------------------------------


def test_save_and_load_triples_round_trip(tmp_path):
    ds = datasets.DatasetDict(train=tiny_triples(4), test=tiny_triples(2))
    save_triples(ds, tmp_path / "t", metadata={"class_names": ["cube", "ball"]})
    loaded = load_triples(tmp_path / "t")
    assert set(loaded) == {"train", "test"} and len(loaded["train"]) == 4
    assert loaded["train"].features["label"].names == ["cube", "ball"]
    np.testing.assert_allclose(np.asarray(loaded["train"][1]["points"]), np.asarray(ds["train"][1]["points"]))
    assert load_triples_metadata(tmp_path / "t") == {"class_names": ["cube", "ball"], "splits": {"train": 4, "test": 2}}
    with pytest.raises(FileExistsError, match="overwrite"):
        save_triples(ds, tmp_path / "t")


# ----------------------------------------------------------------------------------------------------------------------
# point transforms
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_torch", [False, True])
def test_normalize_to_unit_sphere_keeps_type_and_extra_channels(as_torch):
    points = cloud(100, channels=6)
    x = torch.from_numpy(points) if as_torch else points
    out = NormalizeToUnitSphere()(x)
    assert type(out) is type(x) and out.shape == (100, 6)
    out = np.asarray(out)
    np.testing.assert_allclose(out[:, :3].mean(0), 0, atol=1e-5)
    assert np.linalg.norm(out[:, :3], axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(out[:, 3:], points[:, 3:])


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("method", ["fps", "random"])
def test_resample_down_to_n(as_torch, method):
    points = cloud(200)
    x = torch.from_numpy(points) if as_torch else points
    out = resample_points(x, 32, method, rng=np.random.default_rng(0))
    assert type(out) is type(x) and tuple(out.shape) == (32, 3)
    rows = {tuple(r) for r in points.tolist()}
    picked = [tuple(r) for r in np.asarray(out).tolist()]
    assert all(r in rows for r in picked) and len(set(picked)) == 32  # a subset, no repeats


def test_resample_fps_is_point_ops_fps():
    points = cloud(300)
    expected = farthest_point_sample(torch.from_numpy(points)[None], 40)[0].numpy()
    np.testing.assert_array_equal(resample_points(points, 40, "fps"), points[expected])
    batch = np.stack([cloud(300, seed=s) for s in range(3)])
    assert resample_points(batch, 40).shape == (3, 40, 3)  # (B, N, C) in one batched FPS call


def test_resample_fps_random_start_is_seeded():
    points = cloud(300)
    a = resample_points(points, 20, random_start=True, rng=np.random.default_rng(1))
    b = resample_points(points, 20, random_start=True, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


def test_resample_pads_small_clouds():
    points = cloud(10)
    padded = resample_points(points, 25, pad="random", rng=np.random.default_rng(0))
    assert padded.shape == (25, 3)
    np.testing.assert_array_equal(padded[:10], points)  # every point kept once, then draws with replacement
    assert {tuple(r) for r in padded.tolist()} == {tuple(r) for r in points.tolist()}
    tiled = resample_points(points, 25, pad="repeat")
    np.testing.assert_array_equal(tiled, points[np.arange(25) % 10])


def test_resample_refuses_bad_clouds():
    with pytest.raises(ValueError, match="at least 16"):
        resample_points(cloud(10), 32, min_points=16)
    bad = cloud(10)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        resample_points(bad, 8)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        resample_points(np.zeros((10, 2), np.float32), 8)
    with pytest.raises(ValueError, match="method"):
        Resample(8, method="grid")


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize(
    "transform",
    [
        RandomPointDropout(),
        RandomScaleAndTranslate(),
        RandomScaleAndTranslate(2 / 3, 3 / 2, 0.2, anisotropic=True),
        RandomRotationPerturbation(),
        RandomUpAxisRotation(),
        ulip_augmentations(),
        Compose([Resample(32, seed=0), NormalizeToUnitSphere(), ulip_augmentations()]),
    ],
    ids=["dropout", "scale-translate", "point-bert-scale", "perturbation", "up-rotation", "ulip", "pipeline"],
)
def test_augmentations_keep_shape_dtype_and_finiteness(transform, as_torch):
    points = normalize_points(cloud(64, channels=6))
    x = torch.from_numpy(points) if as_torch else points
    out = transform(x, rng=np.random.default_rng(0))
    assert type(out) is type(x) and out.dtype == x.dtype
    expected_n = 32 if isinstance(transform, Compose) and isinstance(transform.transforms[0], Resample) else 64
    assert tuple(out.shape) == (expected_n, 6)
    assert np.isfinite(np.asarray(out)).all()
    if expected_n == 64 and "Dropout" not in repr(transform):
        np.testing.assert_array_equal(np.asarray(out)[:, 3:], points[:, 3:])  # colours ride along


@pytest.mark.parametrize("up_axis, index", [("y", 1), ("z", 2), (0, 0)])
def test_up_axis_rotation_preserves_up_coordinate_and_norms(up_axis, index):
    points = cloud(64)
    out = RandomUpAxisRotation(up_axis, seed=3)(points)
    np.testing.assert_allclose(out[:, index], points[:, index], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(points, axis=1), rtol=1e-5)
    assert not np.allclose(out, points)


def test_rotation_perturbation_is_small_and_orthogonal():
    points = normalize_points(cloud(64))
    out = RandomRotationPerturbation(angle_sigma=0.06, angle_clip=0.18, seed=0)(points)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(points, axis=1), rtol=1e-5)
    assert np.abs(out - points).max() < 3 * math.sin(0.18) + 1e-6


def test_scale_and_translate_bounds():
    points = normalize_points(cloud(64))
    for seed in range(5):
        out = RandomScaleAndTranslate(0.8, 1.25, 0.1, seed=seed)(points)
        ratio = np.linalg.norm(out - out.mean(0), axis=1).max()  # isotropic: the radius scales by s
        assert 0.8 - 1e-5 <= ratio <= 1.25 + 1e-5
        assert np.abs(out.mean(0)).max() <= 0.1 * 1.25 + 1e-5


def test_point_dropout_collapses_points_onto_the_first():
    points = cloud(200)
    out = RandomPointDropout(0.875)(points, rng=np.random.default_rng(4))
    changed = ~(out == points).all(1)
    assert changed.any() and (out[changed] == points[0]).all()


def test_seeded_transforms_reproduce():
    points = cloud(64)
    a = ulip_augmentations(seed=7)(points)
    b = ulip_augmentations(seed=7)(points)
    c = ulip_augmentations(seed=8)(points)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_up_axis_is_validated():
    with pytest.raises(ValueError, match="up_axis"):
        RandomUpAxisRotation("w")


# ----------------------------------------------------------------------------------------------------------------------
# rows, datasets and batches
# ----------------------------------------------------------------------------------------------------------------------


def test_point_cloud_transform_on_a_row_and_a_batch():
    transform = PointCloudTransform(num_points=16, seed=0)
    row = {"shape_id": "a", "points": cloud(40).tolist(), "label": 1, "image_embeds": np.ones((2, 4)).tolist()}
    out = transform(row)
    assert out["points"].shape == (16, 3) and out["points"].dtype == torch.float32 and out["label"] == 1
    assert out["image_embeds"].shape == (2, 4) and out["image_embeds"].dtype == torch.float32
    batch = {"shape_id": ["a", "b", "c"], "points": [cloud(40), cloud(10), cloud(40, seed=2)], "label": [0, 1, 0]}
    out = transform(batch)
    assert [tuple(p.shape) for p in out["points"]] == [(16, 3)] * 3
    radii = [p.norm(dim=1).max().item() for p in out["points"]]
    assert radii == pytest.approx([1.0] * 3, abs=1e-5)


def test_point_cloud_transform_errors_name_the_shape():
    bad = cloud(20)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="'broken'.*NaN or Inf"):
        PointCloudTransform(8)({"shape_id": ["ok", "broken"], "points": [cloud(20), bad]})
    with pytest.raises(ValueError, match="at least 32"):
        PointCloudTransform(64, min_points=32)({"points": cloud(20)})


def test_point_cloud_transform_folds_in_colours():
    row = {"points": cloud(30), "colors": np.full((30, 3), 0.5, np.float32)}
    out = PointCloudTransform(num_points=12, with_colors=True)(row)
    assert out["points"].shape == (12, 6) and "colors" not in out
    assert torch.all(out["points"][:, 3:] == 0.5)


def test_prepare_dataset_train_and_eval_splits():
    ds = datasets.DatasetDict(train=tiny_triples(4), test=tiny_triples(4))
    prepared = prepare_dataset(ds, num_points=32, seed=0)
    train_a, train_b = prepared["train"][0], prepared["train"][0]
    assert train_a["points"].shape == (32, 3) and set(train_a) == {
        "shape_id", "points", "label", "image_embeds", "text_embeds"
    }
    assert not torch.equal(train_a["points"], train_b["points"])  # augmentations are redrawn at every access
    test_a, test_b = prepared["test"][0], prepared["test"][0]
    torch.testing.assert_close(test_a["points"], test_b["points"])  # evaluation is deterministic
    assert test_a["points"].norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-5)
    loader = torch.utils.data.DataLoader(prepared["train"], batch_size=4, collate_fn=TriplesCollator())
    batch = next(iter(loader))
    assert batch["points"].shape == (4, 32, 3) and batch["points"].dtype == torch.float32
    assert batch["labels"].tolist() == [0, 1, 0, 1]
    assert batch["image_embeds"].shape == (4, EMBED_DIM) and batch["text_embeds"].shape == (4, EMBED_DIM)


def test_prepare_dataset_streaming(tmp_path):
    save_triples(datasets.DatasetDict(train=tiny_triples(5)), tmp_path / "t")
    stream = load_triples(tmp_path / "t", split="train", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    prepared = prepare_dataset(stream, num_points=24, train=True, seed=0, map_batch_size=2)
    loader = torch.utils.data.DataLoader(prepared, batch_size=5, collate_fn=TriplesCollator(view_selection="first"))
    batch = next(iter(loader))
    assert batch["points"].shape == (5, 24, 3) and batch["labels"].shape == (5,)
    assert batch["image_embeds"].shape == (5, EMBED_DIM)


def test_prepare_dataset_rejects_a_dataset_without_points():
    ds = datasets.Dataset.from_dict({"xyz": [[1.0]]})
    with pytest.raises(ValueError, match="no 'points' column"):
        prepare_dataset(ds)


def rows_for_collation(views=(3, 3)):
    rng = np.random.default_rng(0)
    return [
        {
            "shape_id": f"s{i}",
            "points": torch.from_numpy(cloud(16, seed=i)),
            "label": i,
            "image_embeds": torch.from_numpy(rng.normal(size=(v, EMBED_DIM)).astype(np.float32)),
            "text_embeds": torch.from_numpy(rng.normal(size=(2, EMBED_DIM)).astype(np.float32)),
        }
        for i, v in enumerate(views)
    ]


def test_collator_shapes_and_view_picking():
    rows = rows_for_collation()
    batch = TriplesCollator(generator=torch.Generator().manual_seed(0))(rows)
    assert batch["points"].shape == (2, 16, 3) and batch["labels"].tolist() == [0, 1]
    assert batch["image_embeds"].shape == (2, EMBED_DIM) and batch["text_embeds"].shape == (2, EMBED_DIM)
    for i, row in enumerate(rows):  # each picked embedding is one of that row's views
        assert any(torch.equal(batch["image_embeds"][i], v) for v in row["image_embeds"])
    again = TriplesCollator(generator=torch.Generator().manual_seed(0))(rows)
    torch.testing.assert_close(again["image_embeds"], batch["image_embeds"])
    picks = {
        tuple(collate_triples(rows, generator=np.random.default_rng(s))["image_embeds"][0].tolist()) for s in range(20)
    }
    assert len(picks) == 3  # every view gets drawn
    first = collate_triples(rows, view_selection="first", caption_selection="first", return_shape_ids=True)
    torch.testing.assert_close(first["image_embeds"][1], rows[1]["image_embeds"][0])
    assert first["shape_ids"] == ["s0", "s1"]
    everything = collate_triples(rows, view_selection="all", caption_selection="all")
    assert everything["image_embeds"].shape == (2, 3, EMBED_DIM)
    assert everything["text_embeds"].shape == (2, 2, EMBED_DIM)


def test_collator_pads_ragged_views_with_a_mask():
    batch = collate_triples(rows_for_collation(views=(3, 1)), view_selection="all")
    assert batch["image_embeds"].shape == (2, 3, EMBED_DIM)
    assert batch["image_embeds_mask"].tolist() == [[True, True, True], [True, False, False]]


def test_collator_errors():
    rows = rows_for_collation()
    rows[1]["points"] = rows[1]["points"][:10]
    with pytest.raises(ValueError, match="num_points"):
        collate_triples(rows)
    with pytest.raises(ValueError, match="view_selection"):
        TriplesCollator(view_selection="best")
    rows = rows_for_collation()
    rows[0]["image_embeds"] = torch.zeros(0, EMBED_DIM)
    with pytest.raises(ValueError, match="'s0'"):
        collate_triples(rows)


def test_collator_without_optional_columns():
    batch = collate_triples([{"points": np.zeros((4, 3), np.float32)}, {"points": np.ones((4, 3), np.float32)}])
    assert set(batch) == {"points"} and batch["points"].dtype == torch.float32


class _SameCloud(torch.utils.data.Dataset):
    """Four copies of one cloud, augmented on access."""

    def __init__(self, transform):
        self.transform, self.points = transform, normalize_points(cloud(32))

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.from_numpy(self.transform(self.points))


def test_seeded_augmentations_differ_across_workers_and_epochs_yet_reproduce():
    loader = torch.utils.data.DataLoader(_SameCloud(ulip_augmentations(seed=0)), batch_size=1, num_workers=2)

    def epoch():
        return torch.cat(list(loader))

    torch.manual_seed(0)
    first, second = epoch(), epoch()
    assert len({tuple(c.flatten().tolist()) for c in first}) == 4  # no two workers or items repeat
    assert not torch.equal(first, second)  # nor does an epoch repeat the previous one
    torch.manual_seed(0)
    torch.testing.assert_close(epoch(), first)  # yet a seeded run reproduces
