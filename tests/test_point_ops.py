"""Point ops against brute-force numpy references (docs/design.md sections 2-3)."""

import numpy as np
import pytest
import torch

from dual_denoising.point_ops import (
    chamfer_distance,
    farthest_point_sample,
    gather_points,
    group_points,
    knn,
    normalize_to_unit_sphere,
)

from .conftest import numpy_fps


def numpy_knn_dist(query: np.ndarray, cloud: np.ndarray, k: int) -> np.ndarray:
    d = ((query[:, None, :].astype(np.float64) - cloud[None].astype(np.float64)) ** 2).sum(-1)
    return np.sort(d, axis=1)[:, :k]


def numpy_chamfer(x: np.ndarray, y: np.ndarray, norm: str) -> float:
    d = ((x[:, None, :].astype(np.float64) - y[None]) ** 2).sum(-1)
    if norm == "l2":
        return d.min(1).mean() + d.min(0).mean()
    return (np.sqrt(d.min(1)).mean() + np.sqrt(d.min(0)).mean()) / 2


@pytest.fixture
def clouds():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 257, 3, generator=g) * 2 - 1


def with_duplicates(clouds):
    dup = clouds.clone()
    dup[:, 100:140] = dup[:, 0:40]  # exact duplicate points
    return dup


class TestNormalize:
    def test_unit_sphere(self, clouds):
        out = normalize_to_unit_sphere(clouds * 5 + 3)
        assert torch.allclose(out.mean(1), torch.zeros(3, 3), atol=1e-5)
        assert torch.allclose(out.norm(dim=-1).amax(1), torch.ones(3), atol=1e-5)

    def test_extra_channels_untouched_and_unbatched(self, clouds):
        rgb = torch.rand(257, 3)
        out = normalize_to_unit_sphere(torch.cat([clouds[0], rgb], -1))
        assert out.shape == (257, 6) and torch.equal(out[:, 3:], rgb)


class TestFPS:
    @pytest.mark.parametrize("dup", [False, True])
    def test_matches_numpy(self, clouds, dup):
        pts = with_duplicates(clouds) if dup else clouds
        idx = farthest_point_sample(pts, 64)
        assert idx.shape == (3, 64) and idx.dtype == torch.long
        for b in range(3):
            np.testing.assert_array_equal(idx[b].numpy(), numpy_fps(pts[b].numpy(), 64))

    def test_all_points_is_a_permutation(self, clouds):
        idx = farthest_point_sample(clouds, 257)
        for b in range(3):
            assert sorted(idx[b].tolist()) == list(range(257))
            np.testing.assert_array_equal(idx[b].numpy(), numpy_fps(clouds[b].numpy(), 257))

    def test_start_index_and_generator(self, clouds):
        assert (farthest_point_sample(clouds, 8, start_index=5)[:, 0] == 5).all()
        a = farthest_point_sample(clouds, 8, generator=torch.Generator().manual_seed(1))
        b = farthest_point_sample(clouds, 8, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b)
        for row, cloud in zip(a, clouds):
            np.testing.assert_array_equal(row.numpy(), numpy_fps(cloud.numpy(), 8, start=int(row[0])))

    def test_bfloat16_input(self, clouds):
        idx = farthest_point_sample(clouds.bfloat16(), 16)
        np.testing.assert_array_equal(idx[0].numpy(), numpy_fps(clouds[0].bfloat16().float().numpy(), 16))

    def test_errors(self, clouds):
        with pytest.raises(ValueError, match="between 1 and the number of points"):
            farthest_point_sample(clouds, 300)
        with pytest.raises(ValueError, match=r"points\[None\]"):
            farthest_point_sample(clouds[0], 4)


class TestKNN:
    @pytest.mark.parametrize("dup", [False, True])
    def test_matches_numpy(self, clouds, dup):
        pts = with_duplicates(clouds) if dup else clouds
        query = pts[:, :50]
        dist, idx = knn(query, pts, 16, chunk_size=7)  # several chunks
        assert dist.shape == idx.shape == (3, 50, 16)
        for b in range(3):
            ref = numpy_knn_dist(query[b].numpy(), pts[b].numpy(), 16)
            np.testing.assert_allclose(dist[b].numpy(), ref, atol=1e-6)
            # the returned indices really are at the returned distances
            recomputed = ((pts[b][idx[b]] - query[b][:, None]) ** 2).sum(-1)
            torch.testing.assert_close(recomputed, dist[b])
            assert all(len(set(row)) == 16 for row in idx[b].tolist())

    def test_k_equals_n(self, clouds):
        dist, idx = knn(clouds[:, :5], clouds, 257)
        for b in range(3):
            assert sorted(idx[b, 0].tolist()) == list(range(257))
        assert (dist[..., 0] < 1e-10).all()  # each query point is in the cloud

    def test_chunking_does_not_change_result(self, clouds):
        a = knn(clouds, clouds, 8)
        b = knn(clouds, clouds, 8, chunk_size=3)
        assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])

    def test_errors(self, clouds):
        with pytest.raises(ValueError, match="k must be between 1 and the number of points"):
            knn(clouds, clouds, 258)
        bad = clouds.clone()
        bad[1, 7, 2] = float("nan")
        with pytest.raises(ValueError, match="NaN or Inf.*cloud 1, point 7"):
            knn(clouds, bad, 4)
        bad[1, 7, 2] = float("inf")
        with pytest.raises(ValueError, match="NaN or Inf"):
            farthest_point_sample(bad, 4)
        with pytest.raises(ValueError, match="shape"):
            knn(clouds[..., :2], clouds[..., :2], 4)


class TestGrouping:
    def test_group_points_by_hand(self, clouds):
        rgb = torch.rand(3, 257, 3)
        pts = torch.cat([clouds, rgb], -1)
        centre_idx = farthest_point_sample(clouds, 10)
        centres = gather_points(clouds, centre_idx)
        patches, idx = group_points(pts, centres, 8)
        assert patches.shape == (3, 10, 8, 6)
        for b in range(3):
            for g in range(10):
                d = ((clouds[b] - centres[b, g]) ** 2).sum(-1).numpy()
                expect = np.argsort(d, kind="stable")[:8]
                assert set(idx[b, g].tolist()) == set(expect.tolist())
                torch.testing.assert_close(patches[b, g, :, :3], clouds[b, idx[b, g]] - centres[b, g])
                torch.testing.assert_close(patches[b, g, :, 3:], rgb[b, idx[b, g]])
        assert torch.allclose(patches[:, :, 0, :3], torch.zeros(3, 10, 3))  # the centre is its own nearest point


class TestChamfer:
    @pytest.mark.parametrize("norm", ["l2", "l1"])
    def test_matches_numpy(self, norm):
        g = torch.Generator().manual_seed(2)
        x, y = torch.randn(4, 16, 3, generator=g), torch.randn(4, 21, 3, generator=g)
        per_set = chamfer_distance(x, y, norm=norm, reduction=None)
        ref = [numpy_chamfer(x[b].numpy(), y[b].numpy(), norm) for b in range(4)]
        np.testing.assert_allclose(per_set.numpy(), ref, rtol=1e-5)
        torch.testing.assert_close(chamfer_distance(x, y, norm=norm), per_set.mean())

    def test_zero_on_identical_sets_and_duplicates(self):
        x = torch.randn(2, 10, 3)
        dup = torch.cat([x, x[:, :4]], 1)
        assert chamfer_distance(x, dup[:, torch.randperm(14)]).abs() < 1e-10

    def test_chunked_equals_unchunked(self, monkeypatch):
        import dual_denoising.point_ops as ops

        x, y = torch.randn(2, 50, 3), torch.randn(2, 40, 3)
        full = chamfer_distance(x, y, reduction=None)
        monkeypatch.setattr(ops, "_MAX_BLOCK_ELEMENTS", 3 * 2 * 40 * 7)  # 7 rows per block
        torch.testing.assert_close(chamfer_distance(x, y, reduction=None), full)

    @pytest.mark.parametrize("norm", ["l2", "l1"])
    def test_gradcheck(self, norm):
        g = torch.Generator().manual_seed(3)
        x = torch.randn(2, 6, 3, dtype=torch.float64, generator=g, requires_grad=True)
        y = torch.randn(2, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, norm=norm, reduction=None), (x, y))

    def test_errors(self):
        with pytest.raises(ValueError, match="norm"):
            chamfer_distance(torch.randn(1, 3, 3), torch.randn(1, 3, 3), norm="l3")
        with pytest.raises(ValueError, match="batch size"):
            chamfer_distance(torch.randn(1, 3, 3), torch.randn(2, 3, 3))
