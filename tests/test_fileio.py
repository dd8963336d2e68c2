"""`fileio.load_points` on every supported extension, and its errors."""

import numpy as np
import pytest
import trimesh

from dual_denoising.fileio import DEFAULT_MESH_SAMPLES, SUPPORTED_EXTENSIONS, load_points


def cloud(n=50, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, channels)).astype(np.float32)


def on_unit_box_surface(points, half=0.5, tol=1e-5):
    """Every point of a sample of `trimesh.creation.box()` lies on one of its faces."""
    return np.all(np.abs(np.abs(points).max(axis=1) - half) < tol) and np.all(np.abs(points) <= half + tol)


# ----------------------------------------------------------------------------------------------------------------------
# arrays and text
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 6])
def test_npy(tmp_path, channels):
    points = cloud(channels=channels)
    np.save(tmp_path / "a.npy", points.astype(np.float64))
    out = load_points(tmp_path / "a.npy")
    assert out.dtype == np.float32 and out.shape == (50, channels)
    np.testing.assert_allclose(out, points)


def test_npz_points_key_or_only_array(tmp_path):
    points = cloud()
    np.savez(tmp_path / "named.npz", points=points, normals=cloud(seed=1))
    np.testing.assert_array_equal(load_points(tmp_path / "named.npz"), points)
    np.savez_compressed(tmp_path / "single.npz", xyz=points)
    np.testing.assert_array_equal(load_points(tmp_path / "single.npz"), points)
    np.savez(tmp_path / "ambiguous.npz", a=points, b=points)
    with pytest.raises(ValueError, match=r"ambiguous\.npz.*'points'.*\['a', 'b'\]"):
        load_points(tmp_path / "ambiguous.npz")


@pytest.mark.parametrize(
    "name, text",
    [
        ("spaces.xyz", "{x} {y} {z}\n"),
        ("tabs.txt", "{x}\t{y}\t{z}\n"),
        ("commas.csv", "{x},{y},{z}\n"),
        ("semicolons.pts", "{x}; {y}; {z}\n"),
    ],
)
def test_text_separators(tmp_path, name, text):
    points = cloud(20)
    (tmp_path / name).write_text("".join(text.format(x=x, y=y, z=z) for x, y, z in points))
    np.testing.assert_allclose(load_points(tmp_path / name), points, rtol=1e-6)


def test_text_headers_comments_and_six_columns(tmp_path):
    points = cloud(30, channels=6)
    body = "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in points)
    (tmp_path / "airplane_0001.txt").write_text(body)  # modelnet40_normal_resampled: x,y,z,nx,ny,nz
    np.testing.assert_allclose(load_points(tmp_path / "airplane_0001.txt"), points, atol=1e-6)
    (tmp_path / "header.csv").write_text("x,y,z,nx,ny,nz\n# exported\n" + body)
    assert load_points(tmp_path / "header.csv").shape == (30, 6)
    (tmp_path / "count.pts").write_text("30\n" + body.replace(",", " "))  # a point-count line first
    assert load_points(tmp_path / "count.pts").shape == (30, 6)


def test_text_errors_name_file_and_line(tmp_path):
    (tmp_path / "four.txt").write_text("1 2 3 4\n5 6 7 8\n")
    with pytest.raises(ValueError, match=r"four\.txt: line 1 has 4 values; expected 3"):
        load_points(tmp_path / "four.txt")
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5 6\n7 8\n")
    with pytest.raises(ValueError, match=r"ragged\.txt: line 3 has 2 values"):
        load_points(tmp_path / "ragged.txt")
    (tmp_path / "words.xyz").write_text("1 2 3\n4 five 6\n")
    with pytest.raises(ValueError, match=r"words\.xyz: line 2 is not numeric"):
        load_points(tmp_path / "words.xyz")
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(ValueError, match=r"empty\.xyz: no line holds 3 or more numbers"):
        load_points(tmp_path / "empty.xyz")
    (tmp_path / "nan.txt").write_text("1 2 3\nnan 1 1\n")
    with pytest.raises(ValueError, match=r"nan\.txt: contains NaN or Inf values \(first at point 1\)"):
        load_points(tmp_path / "nan.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ValueError, match=r"binary\.txt: not a text file"):
        load_points(tmp_path / "binary.txt")


def test_array_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(9, np.float32))
    with pytest.raises(ValueError, match=r"flat\.npy: expected points of shape \(N, 3\) or \(N, 6\).*\(9,\)"):
        load_points(tmp_path / "flat.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match=r"empty\.npy: the file holds no points"):
        load_points(tmp_path / "empty.npy")
    (tmp_path / "broken.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=r"broken\.npy: is not a numpy \.npy file \(it is text"):
        load_points(tmp_path / "broken.npy")


def test_subset_of_a_point_file_is_seeded(tmp_path):
    points = cloud(100)
    np.save(tmp_path / "a.npy", points)
    a = load_points(tmp_path / "a.npy", num_points=30, seed=1)
    assert a.shape == (30, 3)
    np.testing.assert_array_equal(a, load_points(tmp_path / "a.npy", num_points=30, seed=1))
    assert {tuple(r) for r in a.tolist()} <= {tuple(r) for r in points.tolist()}
    assert load_points(tmp_path / "a.npy", num_points=500).shape == (100, 3)  # fewer points: all of them


# ----------------------------------------------------------------------------------------------------------------------
# meshes and point-cloud meshes
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".ply", ".obj", ".off", ".stl", ".glb"])
def test_mesh_is_sampled_on_its_surface(tmp_path, ext):
    path = tmp_path / f"box{ext}"
    trimesh.creation.box().export(path)
    points = load_points(path, num_points=500, seed=3)
    assert points.shape == (500, 3) and points.dtype == np.float32
    assert on_unit_box_surface(points)
    np.testing.assert_array_equal(points, load_points(path, num_points=500, seed=3))  # reproducible
    assert not np.allclose(points, load_points(path, num_points=500, seed=4))


def test_a_scene_of_several_meshes_is_read_as_one_with_a_warning(tmp_path):
    import warnings

    scene = trimesh.Scene({"seat": trimesh.creation.box(), "lamp": trimesh.creation.icosphere().apply_translation([3, 0, 0])})
    scene.export(tmp_path / "room.glb")
    with pytest.warns(UserWarning, match=r"room.glb: the scene holds 2 meshes \((seat, lamp|lamp, seat)\), read as one"):
        points = load_points(tmp_path / "room.glb", num_points=400, seed=0)
    assert points.shape == (400, 3) and points[:, 0].max() > 2.5 and points[:, 0].min() < -0.4  # both, merged
    trimesh.creation.box().export(tmp_path / "box.glb")  # one mesh: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_points(tmp_path / "box.glb", num_points=100)


def test_mesh_default_sample_count_and_area_weighting(tmp_path):
    # a 4 x 1 x 1 box: the four long faces hold 16/18 of the area
    path = tmp_path / "long.off"
    trimesh.creation.box(extents=(4.0, 1.0, 1.0)).export(path)
    points = load_points(path)
    assert points.shape == (DEFAULT_MESH_SAMPLES, 3)
    on_ends = np.isclose(np.abs(points[:, 0]), 2.0, atol=1e-5).mean()
    assert on_ends == pytest.approx(2 / 18, abs=0.02)


def test_modelnet_off_header_quirk(tmp_path):
    # some ModelNet .off files glue the counts to the keyword: "OFF8 12 0"
    path = tmp_path / "quirk.off"
    trimesh.creation.box().export(path)
    lines = path.read_text().split("\n")
    path.write_text("\n".join([lines[0] + lines[1]] + lines[2:]))
    assert on_unit_box_surface(load_points(path, num_points=64))


def test_vertex_only_files_are_point_clouds(tmp_path):
    points = cloud(40)
    trimesh.PointCloud(points).export(tmp_path / "cloud.ply")
    np.testing.assert_allclose(load_points(tmp_path / "cloud.ply"), points, rtol=1e-6)
    (tmp_path / "cloud.obj").write_text("".join(f"v {x} {y} {z}\n" for x, y, z in points))
    np.testing.assert_allclose(load_points(tmp_path / "cloud.obj"), points, rtol=1e-6)
    colors = np.random.default_rng(0).integers(0, 256, size=(40, 4), dtype=np.uint8)
    trimesh.PointCloud(points, colors=colors).export(tmp_path / "colored.ply")
    out = load_points(tmp_path / "colored.ply")
    assert out.shape == (40, 6)
    np.testing.assert_allclose(out[:, 3:], colors[:, :3] / 255.0, atol=1e-6)


def test_mesh_errors(tmp_path):
    (tmp_path / "bad.ply").write_text("this is not a ply file\n")
    with pytest.raises(ValueError, match=r"bad\.ply: cannot be read as a \.ply file"):
        load_points(tmp_path / "bad.ply")
    (tmp_path / "nothing.obj").write_text("# only a comment\n")
    with pytest.raises(ValueError, match=r"nothing\.obj: the file holds no (geometry|vertices)"):
        load_points(tmp_path / "nothing.obj")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gone\.ply"):
        load_points(tmp_path / "gone.ply")
    (tmp_path / "scan.las").write_bytes(b"LASF")
    with pytest.raises(ValueError, match=r"scan\.las: unsupported file extension '.las'; supported: .npy, .npz"):
        load_points(tmp_path / "scan.las")
    assert {".npy", ".npz", ".xyz", ".txt", ".pts", ".ply", ".obj", ".off", ".stl", ".glb"} <= set(SUPPORTED_EXTENSIONS)


def test_array_files_are_bounded_and_their_errors_say_what_they_are(tmp_path):
    import gzip

    from dual_denoising import fileio

    big = tmp_path / "big.npz"
    np.savez_compressed(big, points=np.zeros((fileio.MAX_POINTS + 1, 3), np.float32))  # a few KB on disk
    with pytest.raises(ValueError, match=r"holds 5,000,001 points; at most 5,000,000"):
        fileio.load_points(big)
    cases = {"text.npy": b"1 2 3\n4 5 6\n", "gzip.npy": gzip.compress(b"1 2 3"), "empty.npy": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match=r"not a numpy \.npy file \(it is text: name it \.xyz"):
        fileio.load_points(tmp_path / "text.npy")
    with pytest.raises(ValueError, match="gzip-compressed: decompress it first"):
        fileio.load_points(tmp_path / "gzip.npy")
    with pytest.raises(ValueError, match="it is empty"):
        fileio.load_points(tmp_path / "empty.npy")
    np.savez(tmp_path / "archive.npz", points=np.ones((10, 3)))
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    with pytest.raises(ValueError, match=r"numpy \.npz archive: name it \.npz"):
        fileio.load_points(tmp_path / "archive.npy")
