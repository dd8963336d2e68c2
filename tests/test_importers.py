"""Importers: tiny files written in each real layout, converted to triples folders; malformed inputs; the CLI."""

import io
import json

import h5py
import numpy as np
import pytest
import trimesh
from PIL import Image

from dual_denoising import cli
from dual_denoising.data import importers, load_triples, load_triples_metadata
from dual_denoising.data.importers import (
    MODELNET40_CLASSES,
    SCANOBJECTNN_CLASSES,
    import_folder,
    import_modelnet40_h5,
    import_modelnet40_normal,
    import_scanobjectnn,
    import_shapenet55_ulip,
)

POINTS = 32  # per cloud in the tiny files (2048 / 10000 / 8192 in the real ones)


def write_h5(path, data, label, **extra):
    with h5py.File(path, "w") as f:
        if data is not None:
            f.create_dataset("data", data=data)
        if label is not None:
            f.create_dataset("label", data=label)
        for key, value in extra.items():
            f.create_dataset(key, data=value)


def clouds(n, seed=0, points=POINTS):
    return np.random.default_rng(seed).normal(size=(n, points, 3)).astype(np.float32)


def points_of(ds):
    return [np.asarray(p, dtype=np.float32) for p in ds["points"]]


# ----------------------------------------------------------------------------------------------------------------------
# ModelNet40 h5
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def modelnet_h5(tmp_path):
    src = tmp_path / "modelnet40_ply_hdf5_2048"
    src.mkdir()
    (src / "shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    sizes = {"train": [3, 2], "test": [2]}
    for split, counts in sizes.items():
        for i, n in enumerate(counts):
            labels = np.array([[(7 * i + j) % 40] for j in range(n)], dtype=np.uint8)  # (n, 1) uint8 as released
            write_h5(src / f"ply_data_{split}{i}.h5", clouds(n, seed=10 * i + n), labels, normal=clouds(n))
        listing = "".join(f"data/modelnet40_ply_hdf5_2048/ply_data_{split}{i}.h5\n" for i in range(len(counts)))
        (src / f"{split}_files.txt").write_text(listing)
    ids = [f"{MODELNET40_CLASSES[j]}/{MODELNET40_CLASSES[j]}_{j:04d}.ply" for j in range(3)]
    (src / "ply_data_train_0_id2file.json").write_text(json.dumps(ids))
    return src


def test_modelnet40_h5(modelnet_h5, tmp_path):
    out = import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)
    ds = load_triples(out)
    assert len(ds["train"]) == 5 and len(ds["test"]) == 2
    assert ds["train"].features["label"].names == list(MODELNET40_CLASSES)
    assert ds["train"]["label"] == [0, 1, 2, 7, 8]
    assert ds["train"]["shape_id"][:4] == ["airplane_0000", "bathtub_0001", "bed_0002", "ply_data_train1_0000"]
    with h5py.File(modelnet_h5 / "ply_data_train1.h5") as f:
        np.testing.assert_array_equal(points_of(ds["train"])[3], f["data"][0])
    meta = load_triples_metadata(out)
    assert meta["source_format"] == "modelnet40_ply_hdf5_2048"
    assert meta["class_names"] == list(MODELNET40_CLASSES) and meta["prompt_names"][15] == "flower pot"
    assert meta["files"]["train"] == ["ply_data_train0.h5", "ply_data_train1.h5"]
    assert meta["splits"] == {"train": 5, "test": 2} and meta["num_points"] is None


def test_modelnet40_h5_resamples_and_refuses_existing_output(modelnet_h5, tmp_path):
    out = import_modelnet40_h5(modelnet_h5, tmp_path / "out", num_points=8, progress=False)
    assert {np.asarray(p).shape for p in load_triples(out)["test"]["points"]} == {(8, 3)}
    assert load_triples_metadata(out)["sample_method"] == "fps"
    with pytest.raises(FileExistsError, match="overwrite"):
        import_modelnet40_h5(modelnet_h5, out, progress=False)
    import_modelnet40_h5(modelnet_h5, out, num_points=4, sample_method="random", overwrite=True, progress=False)
    assert np.asarray(load_triples(out)["train"][0]["points"]).shape == (4, 3)


def test_modelnet40_h5_truncated_file(modelnet_h5, tmp_path):
    path = modelnet_h5 / "ply_data_train1.h5"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"ply_data_train1\.h5: cannot be read as HDF5.*truncated"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing left behind


def test_modelnet40_h5_missing_key(modelnet_h5, tmp_path):
    write_h5(modelnet_h5 / "ply_data_test0.h5", clouds(2), None)
    with pytest.raises(ValueError, match=r"ply_data_test0\.h5: no dataset 'label'; the file holds \['data'\]"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)


def test_modelnet40_h5_wrong_shapes(modelnet_h5, tmp_path):
    write_h5(modelnet_h5 / "ply_data_test0.h5", clouds(2)[..., :2], np.zeros((2, 1), np.uint8))
    with pytest.raises(ValueError, match=r"ply_data_test0\.h5: dataset 'data' has shape \(2, 32, 2\); expected"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)
    write_h5(modelnet_h5 / "ply_data_test0.h5", clouds(2), np.zeros((3, 1), np.uint8))
    with pytest.raises(ValueError, match=r"dataset 'label' has shape \(3, 1\); expected \(2,\) or \(2, 1\)"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)


def test_modelnet40_h5_label_out_of_range(modelnet_h5, tmp_path):
    write_h5(modelnet_h5 / "ply_data_test0.h5", clouds(2), np.array([[3], [45]], np.uint8))
    with pytest.raises(ValueError, match=r"ply_data_test0\.h5: label 45 at row 1 is out of range.*40 classes"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)


def test_modelnet40_h5_nan_points(modelnet_h5, tmp_path):
    data = clouds(2)
    data[1, 5, 0] = np.nan
    write_h5(modelnet_h5 / "ply_data_test0.h5", data, np.zeros((2, 1), np.uint8))
    with pytest.raises(ValueError, match=r"ply_data_test0\.h5 \(cloud 1\): contains NaN"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)


def test_modelnet40_h5_missing_files(modelnet_h5, tmp_path):
    (modelnet_h5 / "ply_data_train1.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"train_files\.txt lists .*ply_data_train1\.h5"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)
    (modelnet_h5 / "shape_names.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"shape_names\.txt: missing"):
        import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)


def test_modelnet40_h5_without_file_lists(modelnet_h5, tmp_path):
    (modelnet_h5 / "train_files.txt").unlink()
    out = import_modelnet40_h5(modelnet_h5, tmp_path / "out", progress=False)
    assert load_triples_metadata(out)["splits"]["train"] == 5


# ----------------------------------------------------------------------------------------------------------------------
# ModelNet40 normal_resampled
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def modelnet_normal(tmp_path):
    src = tmp_path / "modelnet40_normal_resampled"
    src.mkdir()
    (src / "modelnet40_shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    split_ids = {"train": ["airplane_0001", "night_stand_0001", "airplane_0002"], "test": ["night_stand_0002"]}
    rng = np.random.default_rng(0)
    for split, ids in split_ids.items():
        (src / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        for shape_id in ids:
            folder = src / shape_id.rsplit("_", 1)[0]
            folder.mkdir(exist_ok=True)
            values = rng.normal(size=(40, 6))
            (folder / f"{shape_id}.txt").write_text("".join(",".join(f"{v:.6f}" for v in r) + "\n" for r in values))
    return src


def test_modelnet40_normal(modelnet_normal, tmp_path):
    out = import_modelnet40_normal(modelnet_normal, tmp_path / "out", num_points=16, progress=False)
    ds = load_triples(out)
    assert ds["train"]["shape_id"] == ["airplane_0001", "night_stand_0001", "airplane_0002"]
    assert ds["train"]["label"] == [0, 23, 0] and ds["test"]["label"] == [23]
    assert {np.asarray(p).shape for p in ds["train"]["points"]} == {(16, 3)}  # xyz of x,y,z,nx,ny,nz
    meta = load_triples_metadata(out)
    assert meta["source_format"] == "modelnet40_normal_resampled" and meta["num_points"] == 16
    whole = import_modelnet40_normal(modelnet_normal, tmp_path / "all", progress=False)
    source = np.loadtxt(modelnet_normal / "airplane" / "airplane_0002.txt", delimiter=",")[:, :3]
    np.testing.assert_allclose(points_of(load_triples(whole)["train"])[2], source, atol=1e-6)


def test_modelnet40_normal_errors(modelnet_normal, tmp_path):
    (modelnet_normal / "night_stand" / "night_stand_0002.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"night_stand_0002\.txt: missing; modelnet40_test\.txt line 1"):
        import_modelnet40_normal(modelnet_normal, tmp_path / "out", progress=False)
    (modelnet_normal / "modelnet40_test.txt").write_text("spaceship_0001\n")
    with pytest.raises(ValueError, match=r"modelnet40_test\.txt: line 1 .*'spaceship'"):
        import_modelnet40_normal(modelnet_normal, tmp_path / "out", progress=False)


# ----------------------------------------------------------------------------------------------------------------------
# ScanObjectNN
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def scanobjectnn(tmp_path):
    root = tmp_path / "h5_files"
    for offset, (variant, (folder, train, test)) in enumerate(importers.SCANOBJECTNN_VARIANTS.items()):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, n in ((train, 4), (test, 3)):
            data = np.full((n, POINTS, 3), float(offset), np.float32) + clouds(n) * 0.01  # tell variants apart
            write_h5(root / folder / name, data, np.arange(n, dtype=np.int64) + 11, mask=np.zeros((n, POINTS)))
    return tmp_path


@pytest.mark.parametrize("variant, offset", [("OBJ_BG", 0.0), ("OBJ_ONLY", 1.0), ("PB_T50_RS", 2.0)])
def test_scanobjectnn_variants(scanobjectnn, tmp_path, variant, offset):
    out = import_scanobjectnn(scanobjectnn, tmp_path / "out", variant=variant, progress=False)
    ds = load_triples(out)
    assert len(ds["train"]) == 4 and len(ds["test"]) == 3
    assert ds["train"]["label"] == [11, 12, 13, 14]
    assert ds["train"].features["label"].names == list(SCANOBJECTNN_CLASSES)
    assert np.mean(points_of(ds["test"])[0]) == pytest.approx(offset, abs=0.05)
    meta = load_triples_metadata(out)
    assert meta["variant"] == variant and meta["source_format"] == "scanobjectnn_h5"


def test_scanobjectnn_from_h5_files_folder_and_errors(scanobjectnn, tmp_path):
    out = import_scanobjectnn(scanobjectnn / "h5_files", tmp_path / "out", variant="OBJ_ONLY", progress=False)
    assert load_triples_metadata(out)["files"]["train"] == "main_split_nobg/training_objectdataset.h5"
    bad = scanobjectnn / "h5_files" / "main_split" / "test_objectdataset.h5"
    write_h5(bad, clouds(2), np.array([3, 15]))
    with pytest.raises(ValueError, match=r"test_objectdataset\.h5: label 15 at row 1 is out of range.*15 classes"):
        import_scanobjectnn(scanobjectnn, tmp_path / "o2", variant="OBJ_BG", progress=False)
    with pytest.raises(ValueError, match="variant must be one of"):
        import_scanobjectnn(scanobjectnn, tmp_path / "o3", variant="PB_T25", progress=False)
    with pytest.raises(FileNotFoundError, match="training_objectdataset.h5"):
        import_scanobjectnn(tmp_path / "out", tmp_path / "o4", variant="OBJ_BG", progress=False)


# ----------------------------------------------------------------------------------------------------------------------
# ULIP ShapeNet-55
# ----------------------------------------------------------------------------------------------------------------------


def png_bytes(value):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def shapenet(tmp_path):
    src = tmp_path / "shapenet-55"
    (src / "shapenet_pc").mkdir(parents=True)
    taxonomy = [
        {"synsetId": "03001627", "name": "chair", "children": [], "numInstances": 2},
        {"synsetId": "02691156", "name": "airplane,aeroplane,plane", "children": [], "numInstances": 2},
        {"synsetId": "04379243", "name": "table", "children": [], "numInstances": 0},
    ]
    (src / "taxonomy.json").write_text(json.dumps(taxonomy))
    splits = {
        "train": ["03001627-aaa111.npy", "02691156-bbb222.npy", "03001627-ccc333.npy"],
        "test": ["02691156-ddd444.npy"],
    }
    for split, names in splits.items():
        (src / f"{split}.txt").write_text("\n".join(names) + "\n")
        for i, name in enumerate(names):
            np.save(src / "shapenet_pc" / name, clouds(1, seed=i, points=40)[0])
            shape_id = name[: -len(".npy")]
            views = src / "rendered_images" / shape_id
            views.mkdir(parents=True)
            for angle in (0, 12, 24):
                (views / f"{shape_id}_r_{angle:03d}.png").write_bytes(png_bytes(angle))
                (views / f"{shape_id}_r_{angle:03d}_depth0001.png").write_bytes(png_bytes(255 - angle))
    return src


def test_shapenet55_ulip(shapenet, tmp_path):
    out = import_shapenet55_ulip(shapenet, tmp_path / "out", progress=False)
    ds = load_triples(out)
    assert ds["train"]["shape_id"] == ["03001627-aaa111", "02691156-bbb222", "03001627-ccc333"]
    assert ds["train"].features["label"].names == ["airplane", "chair"]  # synsets in the lists, sorted by id
    assert ds["train"]["label"] == [1, 0, 1]
    assert ds["train"][1]["captions"] == ["airplane", "aeroplane", "plane"]
    row = ds["train"][0]
    assert len(row["images"]) == 3 and row["images"][1].size == (4, 4)  # ULIP's angles found: 0, 12, 24
    assert row["images"][1].getpixel((0, 0)) == (12, 12, 12)
    assert np.asarray(row["points"]).shape == (40, 3)
    meta = load_triples_metadata(out)
    assert meta["source_format"] == "ulip_shapenet55" and meta["synset_ids"] == ["02691156", "03001627"]
    assert meta["images"]["view_angles"] == list(importers.ULIP_VIEW_ANGLES)


def test_shapenet55_ulip_options(shapenet, tmp_path):
    out = import_shapenet55_ulip(
        shapenet, tmp_path / "out", view_angles=(0, 24), include_depth=True, whole=True, num_points=16, progress=False
    )
    ds = load_triples(out)
    assert list(ds) == ["train"] and ds["train"]["shape_id"][0] == "02691156-ddd444"  # ULIP: test lines first
    assert len(ds["train"][0]["images"]) == 4 and np.asarray(ds["train"][0]["points"]).shape == (16, 3)
    out = import_shapenet55_ulip(shapenet, tmp_path / "noimg", with_images=False, progress=False)
    assert "images" not in load_triples(out)["train"].column_names


def test_shapenet55_ulip_missing_inputs(shapenet, tmp_path):
    for view in (shapenet / "rendered_images" / "03001627-ccc333").iterdir():
        view.unlink()
    with pytest.raises(FileNotFoundError, match="no rendered view of 03001627-ccc333"):
        import_shapenet55_ulip(shapenet, tmp_path / "out", progress=False)
    (shapenet / "shapenet_pc" / "02691156-bbb222.npy").unlink()
    out = import_shapenet55_ulip(shapenet, tmp_path / "out", on_missing="skip", progress=False)
    assert load_triples(out)["train"]["shape_id"] == ["03001627-aaa111"]
    assert load_triples_metadata(out)["skipped"] == {"missing_points": 1, "missing_images": 1}
    (shapenet / "taxonomy.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"taxonomy\.json: missing"):
        import_shapenet55_ulip(shapenet, tmp_path / "o2", progress=False)


def test_shapenet55_ulip_unknown_synset(shapenet, tmp_path):
    (shapenet / "test.txt").write_text("09999999-zzz.npy\n")
    with pytest.raises(ValueError, match=r"test\.txt: line 1: synset 09999999 is not in .*taxonomy\.json"):
        import_shapenet55_ulip(shapenet, tmp_path / "out", progress=False)


# ----------------------------------------------------------------------------------------------------------------------
# a folder of files
# ----------------------------------------------------------------------------------------------------------------------


def test_folder_of_points_and_meshes(tmp_path):
    src = tmp_path / "shapes"
    (src / "cube").mkdir(parents=True)
    (src / "blob").mkdir()
    trimesh.creation.box().export(src / "cube" / "a.off")
    trimesh.creation.box(extents=(1, 2, 1)).export(src / "cube" / "b.stl")
    np.save(src / "blob" / "c.npy", clouds(1, points=50)[0])
    (src / "blob" / "d.xyz").write_text("".join(f"{x} {y} {z}\n" for x, y, z in clouds(1, seed=2, points=20)[0]))
    (src / "blob" / "notes.md").write_text("ignored")
    out = import_folder(src, tmp_path / "out", num_points=24, progress=False)
    ds = load_triples(out)["train"]
    assert ds.features["label"].names == ["blob", "cube"]
    assert ds["shape_id"] == ["blob/c", "blob/d", "cube/a", "cube/b"] and ds["label"] == [0, 0, 1, 1]
    assert {np.asarray(p).shape for p in ds["points"]} == {(24, 3)}  # 20 points padded, 50 reduced, meshes sampled
    meta = load_triples_metadata(out)
    assert meta["source_format"] == "folder" and meta["variant"] == "class"
    again = load_triples(import_folder(src, tmp_path / "again", num_points=24, progress=False))["train"]
    np.testing.assert_array_equal(points_of(again)[2], points_of(ds)[2])  # seeded mesh sampling


@pytest.mark.parametrize("layout", ["split/class", "class/split"])
def test_folder_with_splits(tmp_path, layout):
    src = tmp_path / "shapes"
    for split in ("train", "test"):
        for class_name in ("bowl", "cup"):
            folder = src / split / class_name if layout == "split/class" else src / class_name / split
            folder.mkdir(parents=True)
            np.save(folder / f"{class_name}_{split}.npy", clouds(1, points=10)[0])
    out = import_folder(src, tmp_path / "out", progress=False)
    ds = load_triples(out)
    assert set(ds) == {"train", "test"} and ds["test"]["shape_id"] == ["bowl/bowl_test", "cup/cup_test"]
    assert load_triples_metadata(out)["variant"] == layout


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="found no point or mesh files"):
        import_folder(tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        import_folder(tmp_path / "nowhere", tmp_path / "out", progress=False)
    (tmp_path / "bad" / "cls").mkdir(parents=True)
    (tmp_path / "bad" / "cls" / "x.ply").write_text("garbage")
    with pytest.raises(ValueError, match=r"x\.ply: cannot be read"):
        import_folder(tmp_path / "bad", tmp_path / "out", progress=False)


# ----------------------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------------------


def parser():
    return cli.build_parser()


def run(argv):
    args = parser().parse_args(argv)
    return cli.resolve_command(args.func)(args)


def test_cli_imports(modelnet_h5, scanobjectnn, shapenet, tmp_path, capsys):
    assert run(["import", "modelnet40-h5", str(modelnet_h5), "--out", str(tmp_path / "a"), "--no-progress",
                "--num-points", "8"]) == 0
    assert "wrote 7 shapes (train: 5, test: 2) of 40 classes" in capsys.readouterr().out
    assert run(["import", "scanobjectnn", str(scanobjectnn), "--variant", "PB_T50_RS", "--out", str(tmp_path / "b"),
                "--no-progress"]) == 0
    assert load_triples_metadata(tmp_path / "b")["variant"] == "PB_T50_RS"
    assert run(["import", "shapenet55-ulip", str(shapenet), "--out", str(tmp_path / "c"), "--view-angles", "0,12",
                "--whole", "--no-progress"]) == 0
    assert load_triples_metadata(tmp_path / "c")["images"]["view_angles"] == [0, 12]
    with pytest.raises(FileExistsError):
        run(["import", "modelnet40-h5", str(modelnet_h5), "--out", str(tmp_path / "a"), "--no-progress"])


def test_cli_folder_and_modelnet_normal(modelnet_normal, tmp_path):
    src = tmp_path / "shapes" / "cube"
    src.mkdir(parents=True)
    trimesh.creation.box().export(src / "a.glb")
    assert run(["import", "folder", str(tmp_path / "shapes"), "--out", str(tmp_path / "f"), "--mesh-samples", "64",
                "--no-progress"]) == 0
    assert np.asarray(load_triples(tmp_path / "f")["train"][0]["points"]).shape == (64, 3)
    assert run(["import", "modelnet40-normal", str(modelnet_normal), "--out", str(tmp_path / "n"),
                "--no-progress"]) == 0


def test_cli_requires_a_format_and_a_variant(tmp_path):
    with pytest.raises(SystemExit):
        parser().parse_args(["import"])
    with pytest.raises(SystemExit):
        parser().parse_args(["import", "scanobjectnn", str(tmp_path), "--out", str(tmp_path / "o")])


def test_cli_main_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    code = cli.main(["import", "modelnet40-h5", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert code == 1
    assert capsys.readouterr().err.strip().startswith("dual-denoising import: error:")
