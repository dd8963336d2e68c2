"""The orientation head that `up_axis="auto"` reads: fitting, saving and the pipeline's use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dual_denoising import DualDenoisingModel
from dual_denoising.evaluation import per_orientation_logits
from dual_denoising.orientations import NUM_ORIENTATIONS, ORIENTATIONS, every_orientation
from dual_denoising.point_ops import normalize_to_unit_sphere
from dual_denoising.training import fit_orientation_head, turn_to

from .conftest import load_repo_file, tester


def lopsided_clouds(count: int, seed: int = 0) -> torch.Tensor:
    """Upright clouds with no rotational symmetry: a box with a mast on top and a fin on +x (every turn is visible)."""
    rng = np.random.default_rng(seed)
    clouds = []
    for _ in range(count):
        box = rng.uniform([-1, -0.3, -0.5], [1, 0.3, 0.5], (80, 3))
        mast = np.c_[rng.normal(0.4, 0.05, 32), rng.uniform(0.3, 1.4, 32), rng.normal(0, 0.05, 32)]
        fin = np.c_[rng.uniform(1.0, 1.6, 16), rng.normal(-0.2, 0.05, 16), rng.uniform(-0.1, 0.4, 16)]
        clouds.append(np.concatenate([box, mast, fin]) * rng.uniform(0.9, 1.1, 3))
    return normalize_to_unit_sphere(torch.as_tensor(np.stack(clouds), dtype=torch.float32))


def test_turn_to_is_undone_by_the_named_rotation():
    clouds = lopsided_clouds(3)
    for o in (0, 5, 13, 23):
        shown = turn_to(clouds, torch.full((3,), o))
        back = torch.einsum("ij,mnj->mni", torch.as_tensor(ORIENTATIONS[o], dtype=torch.float32), shown)
        torch.testing.assert_close(back, clouds)
    assert len(ORIENTATIONS) == NUM_ORIENTATIONS


def test_every_orientation_is_the_rotations_applied_and_carries_extra_channels(one_thread):
    clouds = torch.cat([lopsided_clouds(2), torch.rand(2, 128, 1)], dim=-1)  # xyz + one feature channel
    turned = every_orientation(clouds)
    assert turned.shape == (2, NUM_ORIENTATIONS, 128, 4)
    for o in (0, 7, 19):
        expected = torch.einsum("ij,mnj->mni", torch.as_tensor(ORIENTATIONS[o], dtype=torch.float32), clouds[..., :3])
        torch.testing.assert_close(turned[:, o, :, :3], expected)
        torch.testing.assert_close(turned[:, o, :, 3:], clouds[..., 3:])
    # orientation o's reading is the model's reading of the cloud turned by o, each seeded as the pipeline seeds it
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config()).eval()
    class_embeds = torch.nn.functional.normalize(torch.randn(3, model.config.embed_dim), dim=-1)
    logits = per_orientation_logits(model, class_embeds, clouds[..., :3], batch_size=1, num_noise_samples=1)
    assert logits.shape == (2, NUM_ORIENTATIONS, 3)
    with torch.no_grad():
        direct = model.zero_shot_logits(turned[:, 7, :, :3], class_embeds, num_noise_samples=1,
                                        generator=[torch.Generator().manual_seed(0) for _ in range(2)])
    torch.testing.assert_close(logits[:, 7], direct.float())


def test_fitting_learns_the_turns_and_leaves_the_encoder_alone(tmp_path, one_thread):
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config(objective="contrastive")).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clouds = lopsided_clouds(12)
    with pytest.raises(ValueError, match="no orientation head"):
        model.get_orientation_logits(clouds)
    history = fit_orientation_head(model, clouds, views_per_cloud=24, epochs=60, learning_rate=3e-3, batch_size=64)
    assert model.config.orientation_head and history["views"] == 12 * 24
    assert history["train_turn_accuracy"] > 0.6  # chance is 1/24
    for key, value in model.state_dict().items():  # everything but the new head is bit-identical
        if not key.startswith("orientation_head."):
            assert torch.equal(value, before[key]), key
    # held-out clouds of the same kind, in orientations drawn at random
    held_out = lopsided_clouds(8, seed=1)
    shown = torch.randint(0, NUM_ORIENTATIONS, (8,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        predicted = model.get_orientation_logits(turn_to(held_out, shown)).argmax(-1)
    assert (predicted == shown).float().mean() >= 0.5  # 5 of 8 with this seed; chance 1/24
    # the head is part of the saved model
    model.save_pretrained(tmp_path / "m")
    loaded = DualDenoisingModel.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.get_orientation_logits(held_out), model.get_orientation_logits(held_out))


def test_views_per_cloud_is_checked():
    model = DualDenoisingModel(tester.get_config(objective="contrastive")).eval()
    with pytest.raises(ValueError, match="views_per_cloud must be in"):
        fit_orientation_head(model, lopsided_clouds(2), views_per_cloud=25)


def test_compose_is_the_product_of_two_orientations():
    from dual_denoising.orientations import COMPOSE

    assert np.allclose(ORIENTATIONS[COMPOSE], ORIENTATIONS[:, None] @ ORIENTATIONS[None, :])
    assert (COMPOSE[0] == np.arange(NUM_ORIENTATIONS)).all()  # the identity first leaves every turn as it is


def test_the_rule_kept_turns_the_fewest_upright_clouds_among_equally_good_settings():
    """Toy readings with a known answer: a head right but for one cloud, a classifier right in every orientation,
    surer as given, but far surer of cloud 0 turned by orientation 5. Every setting is then right everywhere; the one
    kept must leave every upright cloud as given (a large enough identity prior), where the smallest prior (b 0), the
    old tie-break, turns cloud 0."""
    from dual_denoising.orientations import COMPOSE

    script = load_repo_file("scripts/fit_orientation_head.py")
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.zeros(4, NUM_ORIENTATIONS, 4)
    logits[torch.arange(4), :, labels] = 2.0  # right, not sure, in every orientation ...
    logits[torch.arange(4), 0, labels] = 5.0  # ... surer as given
    logits[0, 0, 0], logits[0, 5, 0] = 2.0, 9.0  # but cloud 0 is far surer turned by orientation 5
    turn_logits = torch.zeros(4, NUM_ORIENTATIONS, NUM_ORIENTATIONS)
    for shown in range(NUM_ORIENTATIONS):  # the head names the turn that undoes the one shown
        turn_logits[:, shown, int(np.flatnonzero(COMPOSE[:, shown] == 0)[0])] = 3.0
    turn_logits[0, 0, 5] = 4.0  # except that it leans to orientation 5 for cloud 0 as given
    readings = {"logits": logits, "turn_logits": turn_logits}
    turned = script.rule_scores(readings, labels, 32.0, 0.0, 1.0)
    assert turned == {"upright": 1.0, "any up axis": 1.0, "upright turned away": 0.25}
    assert script.rule_scores(readings, labels, 0.0, 0.0, 1.0)["upright turned away"] == 0.25
    # the head alone: every view's turn named right but cloud 0's as given (orientation 5 turns -y up)
    assert script.head_scores(readings) == {"turn_accuracy": 1 - 1 / 96, "up_accuracy": 1 - 1 / 96, "views": 96}
    chosen = script.choose_rule(readings, labels)
    row = chosen["validation_top1"][f"w={chosen['weight']:g}, b={chosen['identity_prior']:g}, "
                                    f"tau={chosen['keep_threshold']:g}"]
    assert row == {"upright": 1.0, "any up axis": 1.0, "upright turned away": 0.0}
