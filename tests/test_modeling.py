"""The Dual Denoising model (docs/design.md sections 3-7)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoModel, CLIPModel

from dual_denoising import DualDenoisingConfig, DualDenoisingModel
from dual_denoising.modeling_dual_denoising import DualDenoisingFeatureScheduler

from .conftest import numpy_fps, seeded, tester, tiny_clip


# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_preset_output_shapes(preset):
    config = DualDenoisingConfig.from_pretrained(f"hub_configs/{preset}")
    torch.manual_seed(0)
    model = DualDenoisingModel(config)
    pc = config.point_config
    points = torch.rand(2, pc.num_points, 3) * 2 - 1
    out = model(points, image_embeds=torch.randn(2, config.embed_dim), output_hidden_states=True)
    assert out.loss.shape == ()
    assert out.predicted_patches.shape == out.target_patches.shape == (2, pc.num_groups, pc.group_size, 3)
    assert out.predicted_features.shape == (2, config.embed_dim)
    assert out.last_hidden_state.shape == (2, 1 + pc.num_groups, pc.hidden_size)
    assert len(out.hidden_states) == pc.num_hidden_layers
    model.eval()
    with torch.no_grad():
        feats = model.get_point_features(points, num_noise_samples=2, generator=seeded())
    assert feats.shape == (2, config.embed_dim)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(2))


@pytest.mark.parametrize("objective", ["dual_denoising", "contrastive"])
def test_overfits_a_fixed_batch(objective):
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config(objective=objective))
    inputs = tester.get_inputs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = model(**inputs, generator=seeded(1)).loss  # same noise every step: a fixed problem to fit
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.3 * losses[0], losses


def test_pointdae_groups_follow_the_design():
    """FPS on the clean cloud; noisy centres at the same indices; kNN in each cloud; targets P_0 + c_0 - c_t."""
    config = tester.get_config()
    pc = config.point_config
    model = DualDenoisingModel(config)
    inputs = tester.get_inputs()
    captured = {}
    model.patch_embedding.register_forward_hook(lambda m, args, out: captured.update(patches=args[0]))
    out = model(**inputs, generator=seeded(3))
    x0, xt = inputs["points"].numpy().astype(np.float64), out.noisy_points.detach().numpy().astype(np.float64)
    sigmas = config.point_noise_max_sigma * out.point_timesteps.numpy() / (config.point_noise_steps - 1)
    for b in range(tester.batch_size):
        eps = (xt[b] - x0[b]) / sigmas[b]  # the corruption is x_t = x_0 + sigma_t eps with eps ~ N(0, I)
        assert abs(eps.mean()) < 0.2 and abs(eps.std() - 1) < 0.15
        idx = numpy_fps(x0[b], pc.num_groups)
        np.testing.assert_array_equal(out.center_indices[b].numpy(), idx)
        c0, ct = x0[b][idx], xt[b][idx]
        for g in range(pc.num_groups):
            near_clean = np.argsort(((x0[b] - c0[g]) ** 2).sum(1))[: pc.group_size]
            near_noisy = np.argsort(((xt[b] - ct[g]) ** 2).sum(1))[: pc.group_size]
            np.testing.assert_allclose(  # targets: the clean patch relative to the noisy centre
                out.target_patches[b, g].detach().numpy(), x0[b][near_clean] - c0[g] + (c0[g] - ct[g]), atol=1e-5
            )
            np.testing.assert_allclose(  # encoder input: the noisy patch relative to the noisy centre
                captured["patches"][b, g].detach().numpy(), xt[b][near_noisy] - ct[g], atol=1e-5
            )


def _encoder_gradient(model) -> float:
    return sum(
        float(p.grad.abs().sum()) for name, p in model.named_parameters()
        if name.startswith(("encoder.", "patch_embedding.", "position_embedding.")) and p.grad is not None
    )


def test_context_gradient_scale():
    """gamma = 0 (stop-gradient) gives exactly zero encoder gradient from the feature loss; gamma scales it."""
    grads = {}
    for gamma in (0.0, 0.1, 1.0):
        torch.manual_seed(0)
        model = DualDenoisingModel(tester.get_config(denoiser_context_grad_scale=gamma))
        model(**tester.get_inputs(), generator=seeded()).feature_loss.backward()
        grads[gamma] = _encoder_gradient(model)
        assert model.denoiser.input_proj.weight.grad.abs().sum() > 0
    assert grads[0.0] == 0.0
    assert grads[0.1] > 0.0
    # the encoder's gradient is linear in gamma: the same forward pass, only the backward is scaled
    assert grads[0.1] == pytest.approx(0.1 * grads[1.0], rel=1e-4)


def test_feature_contrastive_weight_adds_infonce_on_the_x0_estimate():
    """0 is the paper's MSE only (no extra term); > 0 adds w * InfoNCE(normalize(x0_hat), normalize(z0)) exactly."""
    inputs = tester.get_inputs()
    torch.manual_seed(0)
    paper = DualDenoisingModel(tester.get_config(denoiser_context_grad_scale=1.0))
    out = paper(**inputs, generator=seeded())
    assert out.contrastive_loss is None
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.feature_loss)
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config(feature_contrastive_weight=0.5, denoiser_context_grad_scale=1.0))
    aux = model(**inputs, generator=seeded())
    torch.testing.assert_close(aux.feature_loss, out.feature_loss)  # same weights, same draws
    F = torch.nn.functional
    logits = model.logit_scale.exp() * aux.point_embeds @ F.normalize(aux.target_features, dim=-1).T
    labels = torch.arange(logits.shape[0])
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(aux.contrastive_loss, expected)
    torch.testing.assert_close(aux.loss, out.loss + 0.5 * expected)
    aux.contrastive_loss.backward()
    assert _encoder_gradient(model) > 0  # the term reaches the encoder through the denoiser (gamma = 1)
    with pytest.raises(Exception, match="feature_contrastive_weight must be >= 0"):
        tester.get_config(feature_contrastive_weight=-1.0)


def test_legacy_stop_gradient_field_maps_to_gamma():
    assert tester.get_config(denoiser_stop_gradient=True).denoiser_context_grad_scale == 0.0
    assert tester.get_config(denoiser_stop_gradient=False).denoiser_context_grad_scale == 1.0
    assert "denoiser_stop_gradient" not in tester.get_config(denoiser_stop_gradient=False).to_dict()


def _reference_alphas_cumprod(num_steps: int, shift: float) -> np.ndarray:
    """Cosine schedule (Nichol & Dhariwal) shifted in log SNR, in numpy float64, written out independently."""
    f = lambda t: np.cos((t / num_steps + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    t = np.arange(num_steps, dtype=np.float64)
    abar = np.cumprod(1 - np.minimum(1 - f(t + 1) / f(t), 0.999))
    log_snr = np.log(abar) - np.log1p(-abar) + shift
    return 1 / (1 + np.exp(-log_snr))


@pytest.mark.parametrize("shift", [0.0, -3.0, -math.log(512)])
def test_shifted_schedule_matches_float64_reference(shift):
    scheduler = DualDenoisingFeatureScheduler(1000, "squaredcos_cap_v2", "sample", log_snr_shift=shift)
    abar = _reference_alphas_cumprod(1000, shift)
    np.testing.assert_allclose(scheduler.alphas_cumprod.numpy(), abar, rtol=1e-10)
    snr = abar / (1 - abar)
    base = _reference_alphas_cumprod(1000, 0.0)
    np.testing.assert_allclose(np.log(snr) - np.log(base / (1 - base)), shift, atol=1e-8)
    # forward: z_tau = sqrt(abar) z0 + sqrt(1 - abar) eps
    g = seeded(1)
    z0, eps = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    taus = torch.tensor([0, 10, 400, 800, 950, 999])
    expected = np.sqrt(abar[taus])[:, None] * z0.numpy() + np.sqrt(1 - abar[taus])[:, None] * eps.numpy()
    np.testing.assert_allclose(scheduler.add_noise(z0, eps, taus).numpy(), expected, rtol=1e-12)
    # step: DDIM eta = 0 from 999 to the previous trailing timestep, with the true x0 as the model output
    scheduler.set_timesteps(4)
    first, second = int(scheduler.timesteps[0]), int(scheduler.timesteps[1])
    sample = np.sqrt(abar[first]) * z0.numpy() + np.sqrt(1 - abar[first]) * eps.numpy()
    stepped = scheduler.step(z0, first, torch.as_tensor(sample)).numpy()
    np.testing.assert_allclose(stepped, np.sqrt(abar[second]) * z0.numpy() + np.sqrt(1 - abar[second]) * eps.numpy(),
                               rtol=1e-9, atol=1e-12)


def test_shift_reaches_get_point_features_sampling():
    """Training and DDIM sampling read the same (shifted) schedule."""
    model = DualDenoisingModel(tester.get_config(feature_log_snr_shift=-2.0))
    assert model.scheduler.log_snr_shift == -2.0
    np.testing.assert_allclose(model.scheduler.alphas_cumprod.numpy(), _reference_alphas_cumprod(1000, -2.0),
                               rtol=1e-10)


def _assert_histogram(samples: np.ndarray, edges: np.ndarray, probs: np.ndarray, sigmas: float = 5.0) -> None:
    """Every bin's count within `sigmas` binomial standard deviations of n * p (a test that fails on a wrong law)."""
    observed = np.histogram(samples, bins=edges)[0]
    n = len(samples)
    expected = n * probs
    bound = sigmas * np.sqrt(n * probs * (1 - probs)) + 1
    assert (np.abs(observed - expected) <= bound).all(), (observed, expected.round())


@pytest.mark.parametrize("stratified", [False, True])
def test_timestep_sampler_draws_the_configured_distribution(stratified):
    scheduler = DualDenoisingFeatureScheduler(1000, "squaredcos_cap_v2", "sample")
    n = 200_000
    uniform = scheduler.sample_timesteps(n, stratified=stratified, generator=seeded(0)).numpy()
    assert uniform.min() == 0 and uniform.max() == 999
    edges = np.arange(-0.5, 1000, 100.0)
    _assert_histogram(uniform, edges, np.full(10, 0.1))
    mixed = scheduler.sample_timesteps(n, "logit_normal", 0.5, 0.8, max_prob=0.3, stratified=stratified,
                                       generator=seeded(1)).numpy()
    at_max = (mixed == 999).mean()
    # a share 0.3 at T-1, plus the logit-normal's own (tiny) mass in round(999 * sigmoid(.)) = 999
    assert abs(at_max - 0.3) < 0.01
    # the rest: round(999 * sigmoid(0.5 + 0.8 n)), bin probabilities from the normal CDF of the logit of the edges
    rest = mixed[mixed != 999]
    x = np.clip(edges / 999, 1e-12, 1 - 1e-12)
    cdf = np.array([0.5 * (1 + math.erf((math.log(v / (1 - v)) - 0.5) / (0.8 * math.sqrt(2)))) for v in x])
    probs = np.diff(cdf) / np.diff(cdf).sum()
    _assert_histogram(rest, edges, probs)
    # and the law is not the uniform one (the check above can tell them apart)
    assert np.abs(np.histogram(rest, bins=edges)[0] / len(rest) - 0.1).max() > 0.05
    if stratified:  # one draw per bin: a batch of 10 covers the ten deciles exactly once
        batch = scheduler.sample_timesteps(10, stratified=True, generator=seeded(2)).numpy()
        assert sorted(batch // 100) == list(range(10))


def test_model_draws_tau_with_the_configured_sampler():
    model = DualDenoisingModel(tester.get_config(feature_timestep_max_prob=1.0))
    out = model(**tester.get_inputs(), generator=seeded())
    assert out.feature_timesteps.tolist() == [999] * tester.batch_size


def test_point_noise_clean_prob():
    model = DualDenoisingModel(tester.get_config(point_noise_clean_prob=1.0))
    out = model(**tester.get_inputs(), generator=seeded())
    assert out.point_timesteps.tolist() == [0] * tester.batch_size
    torch.testing.assert_close(out.noisy_points, tester.get_inputs()["points"])


def test_point_noise_augmentation_draws_pointdae_sigmas_and_is_off_in_eval():
    model = DualDenoisingModel(tester.get_config(objective="contrastive", point_noise_augmentation=True))
    # PointDAE's law: sigma_t = s t / (T - 1), t ~ U{0..T-1}, so sigma / s is uniform on [0, 1]
    sigmas = model.point_noise.sigmas(model._point_timesteps(50_000, torch.zeros(1, 3), seeded(0))).numpy()
    _assert_histogram(sigmas / model.config.point_noise_max_sigma, np.linspace(0, 1 + 1e-9, 11), np.full(10, 0.1))
    seen = []
    encode = model.encode
    model.encode = lambda points: (seen.append(points), encode(points))[1]
    inputs = tester.get_inputs()
    model.train()
    model(points=inputs["points"], text_embeds=inputs["text_embeds"], generator=seeded())
    residual = (seen[-1] - inputs["points"]).std(dim=(1, 2))
    assert (residual > 0).all() and (residual <= model.config.point_noise_max_sigma * 1.2).all()
    model.eval()
    model(points=inputs["points"], text_embeds=inputs["text_embeds"], generator=seeded())
    torch.testing.assert_close(seen[-1], inputs["points"])


def test_masking_path_trains():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config(mask_ratio=0.5))
    out = model(**tester.get_inputs(), generator=seeded())
    assert out.last_hidden_state.shape[1] == 1 + 8  # [CLS] + the visible half of 16 groups
    out.loss.backward()
    assert model.decoder.mask_token.grad.abs().sum() > 0


class TestGetPointFeatures:
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls):
        torch.manual_seed(0)
        return DualDenoisingModel(tester.get_config()).eval()

    def test_seeded_generator_is_reproducible(self, model):
        points = tester.get_inputs()["points"]
        a = model.get_point_features(points, num_noise_samples=4, num_inference_steps=3, generator=seeded(5))
        b = model.get_point_features(points, num_noise_samples=4, num_inference_steps=3, generator=seeded(5))
        c = model.get_point_features(points, num_noise_samples=4, num_inference_steps=3, generator=seeded(6))
        assert torch.equal(a, b) and not torch.equal(a, c)

    @pytest.mark.parametrize("num_chains", [1, 8])
    @pytest.mark.parametrize("num_steps", [1, 10])
    def test_encoder_runs_once(self, model, num_chains, num_steps):
        calls = []
        handle = model.encoder.register_forward_hook(lambda *args: calls.append(1))
        try:
            out = model.get_point_features(tester.get_inputs()["points"], num_chains, num_steps, generator=seeded())
        finally:
            handle.remove()
        assert out.shape == (tester.batch_size, tester.embed_dim)
        assert len(calls) == 1

    def test_chains_are_averaged_after_normalisation(self, model):
        """K chains in one batch equal K separate single-chain runs with the same noise."""
        points = tester.get_inputs()["points"][:1]
        many = model.get_point_features(points, num_noise_samples=3, num_inference_steps=2, generator=seeded(9))
        noise = torch.randn(3, tester.embed_dim, generator=seeded(9))
        singles = []
        for k in range(3):
            sample = noise[k : k + 1]
            context = model.denoiser.project_context(model.encode(points))
            for t in model.scheduler.set_timesteps(2).tolist():
                out = model.denoiser(sample, torch.tensor([t]), context)
                sample = model.scheduler.step(out, t, sample)
            singles.append(torch.nn.functional.normalize(sample, dim=-1))
        expected = torch.nn.functional.normalize(torch.cat(singles).mean(0, keepdim=True), dim=-1)
        torch.testing.assert_close(many, expected, atol=1e-5, rtol=1e-5)

    def test_gradient_wrt_points(self, model):
        points = tester.get_inputs()["points"].requires_grad_(True)
        feats = model.get_point_features(points, num_noise_samples=4, num_inference_steps=2, generator=seeded())
        feats[:, 0].sum().backward()
        assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0

    def test_inference_point_noise(self, model):
        points = tester.get_inputs()["points"]
        a = model.get_point_features(points, 2, inference_point_noise_level=300, generator=seeded())
        b = model.get_point_features(points, 2, generator=seeded())
        assert a.shape == b.shape and not torch.allclose(a, b)

    def test_bad_input(self, model):
        points = tester.get_inputs()["points"]
        with pytest.raises(ValueError, match="NaN"):
            model.get_point_features(torch.where(points > 0.99, float("nan"), points))
        with pytest.raises(ValueError, match="at least 16 are needed"):
            model.get_point_features(points[:, :10])
        with pytest.raises(ValueError, match="channels"):
            model.get_point_features(torch.cat([points, points], -1))
        with pytest.raises(ValueError, match="needs image"):
            model.train()(points)


class TestScheduler:
    @pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
    def test_closed_form(self, schedule):
        s = DualDenoisingFeatureScheduler(1000, schedule, "sample")
        t = np.arange(1000)
        if schedule == "linear":
            expect = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
        else:
            f = lambda u: np.cos((u / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
            expect = np.cumprod(1 - np.minimum(1 - f(t + 1) / f(t), 0.999))
        np.testing.assert_allclose(s.alphas_cumprod.numpy(), expect, rtol=1e-10)
        z0, eps, tau = torch.randn(4, 8), torch.randn(4, 8), torch.tensor([0, 10, 500, 999])
        abar = torch.tensor(expect[tau.numpy()], dtype=torch.float32)[:, None]
        torch.testing.assert_close(s.add_noise(z0, eps, tau), abar.sqrt() * z0 + (1 - abar).sqrt() * eps)

    def test_timesteps_and_exact_denoising(self):
        s = DualDenoisingFeatureScheduler(1000, "squaredcos_cap_v2", "epsilon")
        assert s.set_timesteps(1).tolist() == [999]
        assert s.set_timesteps(10).tolist() == list(range(999, 0, -100))
        # with the true noise as the model output, DDIM (eta 0) walks back to z0 exactly
        z0, eps = torch.randn(2, 8, dtype=torch.float64), torch.randn(2, 8, dtype=torch.float64)
        sample = s.add_noise(z0, eps, torch.tensor([999, 999]))
        for t in s.timesteps.tolist():
            sample = s.step(eps, t, sample)
        torch.testing.assert_close(sample, z0)


class TestSaveLoad:
    @pytest.fixture(scope="class")
    @classmethod
    def saved(cls, tmp_path_factory):
        tmp = tmp_path_factory.mktemp("saved")
        model = DualDenoisingModel.from_teacher(tiny_clip(tmp), tester.get_config())
        model.train()(**tester.get_inputs(), generator=seeded())  # move BatchNorm statistics off their init
        model.eval()
        path = tmp / "model"
        model.save_pretrained(path)
        return model, path

    def test_reload_identical(self, saved):
        model, path = saved
        loaded = DualDenoisingModel.from_pretrained(path).eval()
        buffers, loaded_buffers = dict(model.named_buffers()), dict(loaded.named_buffers())
        assert buffers.keys() == loaded_buffers.keys()
        for name, value in buffers.items():
            assert torch.equal(value, loaded_buffers[name]), name
        for name, value in model.state_dict().items():
            assert torch.equal(value, loaded.state_dict()[name]), name
        points = tester.get_inputs()["points"]
        torch.testing.assert_close(
            loaded.get_point_features(points, generator=seeded()), model.get_point_features(points, generator=seeded()),
            rtol=0, atol=0,
        )
        assert not any(p.requires_grad for p in loaded.text_model.parameters())
        assert (path / "model.safetensors").is_file()

    def test_auto_model_and_bfloat16(self, saved):
        model, path = saved
        auto = AutoModel.from_pretrained(path)
        assert isinstance(auto, DualDenoisingModel)
        half = DualDenoisingModel.from_pretrained(path, dtype=torch.bfloat16).eval()
        points = tester.get_inputs()["points"]
        with torch.no_grad():
            out = half.get_point_features(points.bfloat16(), generator=seeded())
            ref = model.get_point_features(points, generator=seeded())
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        assert torch.nn.functional.cosine_similarity(out, ref).min() > 0.98

    def test_text_tower_is_the_teachers(self, saved, tmp_path):
        model, _ = saved
        teacher = CLIPModel.from_pretrained(tiny_clip(tmp_path))
        ids = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 1]])
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        expected = teacher.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        torch.testing.assert_close(model.get_text_features(ids, mask), expected)
        torch.testing.assert_close(model.logit_scale, teacher.logit_scale)
        logits = model.zero_shot_logits(tester.get_inputs()["points"], expected, generator=seeded())
        assert logits.shape == (tester.batch_size, 2)

    def test_remote_code_in_a_fresh_interpreter(self, saved, tmp_path):
        model, path = saved
        points = tester.get_inputs()["points"]
        expected = model.get_point_features(points, generator=seeded())
        torch.save({"points": points, "expected": expected}, tmp_path / "io.pt")
        script = textwrap.dedent(f"""
            import sys, torch
            from transformers import AutoModel
            model = AutoModel.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
            io = torch.load({str(tmp_path / "io.pt")!r})
            out = model.get_point_features(io["points"], generator=torch.Generator().manual_seed(0))
            assert "dual_denoising" not in sys.modules, "the package was imported"
            print(type(model).__module__, float((out - io["expected"]).abs().max()))
        """)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        module, diff = result.stdout.split()
        assert module.startswith("transformers_modules") and float(diff) == 0.0
        assert json.loads((path / "config.json").read_text())["auto_map"]["AutoModel"].startswith("modeling_")


def test_gradient_checkpointing_matches():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config())
    inputs = tester.get_inputs()

    def loss_and_grads():
        model.zero_grad()
        loss = model(**inputs, generator=seeded(2)).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.train()
    ref_loss, ref_grads = loss_and_grads()
    model.activation_checkpointing_enable()
    assert model.encoder.layers[0].gradient_checkpointing
    loss, grads = loss_and_grads()
    torch.testing.assert_close(loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=1e-6, rtol=1e-5)


def test_config_validation_messages():
    with pytest.raises(Exception, match="divisible by denoiser_config.num_feature_tokens"):
        tester.get_config(embed_dim=63)
    with pytest.raises(Exception, match="objective must be one of"):
        tester.get_config(objective="mae")
    with pytest.raises(Exception, match="group_size"):
        DualDenoisingConfig(point_config=dict(num_points=8, group_size=16, num_groups=4))


def test_generator_list_makes_clouds_independent_of_their_batch():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config()).eval()
    points = tester.get_inputs()["points"]
    batched = model.get_point_features(points, 4, 2, generator=[seeded(7) for _ in range(len(points))])
    for b in range(len(points)):
        alone = model.get_point_features(points[b : b + 1], 4, 2, generator=[seeded(7)])
        torch.testing.assert_close(batched[b : b + 1], alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one per cloud"):
        model.get_point_features(points, generator=[seeded(7)])


def test_attention_in_bfloat16_and_under_autocast_matches_float32():
    """On CPU, bf16 attention runs its softmax(QK^T)V in float32 (the bf16 flash kernel is slow there): the result
    keeps the caller's dtype, matches float32, and gradients reach the bf16 weights."""
    from dual_denoising.modeling_dual_denoising import DualDenoisingAttention

    torch.manual_seed(0)
    attention = DualDenoisingAttention(32, 4, 0.0, context_width=16)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 7, 16)
    reference = attention(x, attention.project_key_value(context))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = attention(x, attention.project_key_value(context))
    half = DualDenoisingAttention(32, 4, 0.0, context_width=16).bfloat16()
    half.load_state_dict(attention.state_dict())
    out = half(x.bfloat16(), half.project_key_value(context.bfloat16()))
    assert mixed.dtype == out.dtype == torch.bfloat16
    torch.testing.assert_close(mixed.float(), reference, atol=0.03, rtol=0.03)
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)
    out.float().sum().backward()
    assert half.q_proj.weight.grad is not None and half.q_proj.weight.grad.dtype == torch.bfloat16


def test_purification_is_differentiable_and_reproducible():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config()).eval()
    points = tester.get_inputs()["points"].requires_grad_(True)
    purified = model.purify_points(points, noise_level=300, rounds=2, generator=seeded(3))
    pc = model.config.point_config
    assert purified.shape == (tester.batch_size, pc.num_groups * pc.group_size, 3)
    torch.testing.assert_close(purified, model.purify_points(points, 300, 2, generator=seeded(3)))
    assert not torch.allclose(purified, model.purify_points(points, 300, 2, generator=seeded(4)))
    features = model.get_point_features(points, 2, 2, generator=seeded(1), purification_rounds=1)
    (grad,) = torch.autograd.grad(features.sum(), points)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(features, model.get_point_features(points, 2, 2, generator=seeded(1),
                                                                  purification_rounds=1))
    with pytest.raises(Exception, match="PointDAE decoder"):  # the strict dataclass wraps the ValueError
        tester.get_config(objective="contrastive", purification_rounds=1)


def test_purification_keep_input_averages_the_given_and_the_purified_cloud():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config()).eval()
    points = tester.get_inputs()["points"].requires_grad_(True)
    kept = model.get_point_features(points, 2, 1, generator=seeded(1), purification_rounds=1,
                                    purification_keep_input=True)
    generator = seeded(1)  # the same stream, drawn in the same order: purify, then the two embeddings
    purified = model.purify_points(points, model.config.purification_noise_level, 1, generator)
    given = model.get_point_features(points, 2, 1, generator=generator)
    rebuilt = model.get_point_features(purified, 2, 1, generator=generator)
    torch.testing.assert_close(kept, torch.nn.functional.normalize(given + rebuilt, dim=-1))
    (grad,) = torch.autograd.grad(kept.sum(), points)
    assert grad.abs().sum() > 0
    without = model.get_point_features(points, 2, 1, generator=seeded(1), purification_rounds=1)
    assert not torch.allclose(kept, without)
    # without purification rounds there is nothing to keep the input beside: the option changes nothing
    torch.testing.assert_close(model.get_point_features(points, 2, 1, generator=seeded(1), purification_keep_input=True),
                               model.get_point_features(points, 2, 1, generator=seeded(1)))


def test_contrastive_smoothing_averages_noisy_copies():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config(objective="contrastive")).eval()
    points = tester.get_inputs()["points"]
    plain = model.get_point_features(points)
    smooth = model.get_point_features(points, num_noise_samples=4, inference_point_noise_level=500, generator=seeded(0))
    assert smooth.shape == plain.shape and not torch.allclose(smooth, plain)
    torch.testing.assert_close(smooth.norm(dim=-1), torch.ones(tester.batch_size))
    torch.testing.assert_close(smooth, model.get_point_features(points, num_noise_samples=4,
                                                                inference_point_noise_level=500, generator=seeded(0)))


def test_contrastive_head_adds_its_infonce_against_the_feature_targets():
    inputs = tester.get_inputs()
    torch.manual_seed(0)
    plain = DualDenoisingModel(tester.get_config())
    assert not hasattr(plain, "projection") and plain(**inputs, generator=seeded()).head_loss is None
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config(contrastive_head_weight=0.5))
    out = model(**inputs, generator=seeded())
    F = torch.nn.functional
    head = F.normalize(model._pool_and_project(out.last_hidden_state).float(), dim=-1)
    logits = model.logit_scale.exp() * head @ F.normalize(out.target_features, dim=-1).T
    labels = torch.arange(logits.shape[0])
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(out.head_loss, expected)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.feature_loss + 0.5 * expected)
    out.head_loss.backward()
    assert model.projection.weight.grad.abs().sum() > 0 and _encoder_gradient(model) > 0


def test_readouts_head_fusion_and_the_sdedit_start():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config(contrastive_head_weight=1.0)).eval()
    points = tester.get_inputs()["points"].requires_grad_(True)
    F = torch.nn.functional
    head = model.get_point_features(points, readout="head")
    torch.testing.assert_close(head, F.normalize(model._pool_and_project(model.encode(points)[-1]), dim=-1))
    denoised = model.get_point_features(points, 2, 1, generator=seeded(1))
    fused = model.get_point_features(points, 2, 1, generator=seeded(1), readout="fusion", fusion_weight=0.3)
    torch.testing.assert_close(fused, F.normalize(0.3 * head + 0.7 * denoised, dim=-1))
    # the weight's ends are the two readouts
    torch.testing.assert_close(model.get_point_features(points, 2, 1, generator=seeded(1), readout="fusion",
                                                        fusion_weight=1.0), head)
    # SDEdit: the chains start from the head's embedding noised to t*, then t* -> 0 in S steps
    assert model.scheduler.set_timesteps(1, start_timestep=200).tolist() == [200]
    assert model.scheduler.set_timesteps(2, start_timestep=199).tolist() == [199, 99]
    start = model.get_point_features(points, 2, 1, generator=seeded(1), start_timestep=200)
    assert not torch.allclose(start, denoised)
    torch.testing.assert_close(start, model.get_point_features(points, 2, 1, generator=seeded(1), start_timestep=200))
    assert not torch.allclose(start, model.get_point_features(points, 2, 1, generator=seeded(2), start_timestep=200))
    generator = seeded(1)  # by hand: one DDIM step (x0 prediction) from sqrt(abar) sqrt(D) head + sqrt(1 - abar) eps
    hidden = model.encode(points)
    origin = (tester.embed_dim ** 0.5) * F.normalize(model._pool_and_project(hidden[-1]), dim=-1).repeat_interleave(2, 0)
    sample = model.scheduler.add_noise(origin, torch.randn(origin.shape, generator=generator), torch.full((6,), 200))
    x0 = model.denoiser(sample, torch.full((6,), 200), model.denoiser.project_context(hidden))
    expected = F.normalize(F.normalize(x0, dim=-1).reshape(3, 2, -1).mean(1), dim=-1)
    torch.testing.assert_close(start, expected)
    for features in (fused, start):  # differentiable with respect to the input
        (grad,) = torch.autograd.grad(features.sum(), points, retain_graph=True)
        assert grad.abs().sum() > 0
    # -1 is pure noise: the paper's sampling
    torch.testing.assert_close(model.get_point_features(points, 2, 1, generator=seeded(1), start_timestep=-1), denoised)


def test_readout_fields_round_trip_and_need_the_head(tmp_path):
    config = tester.get_config(contrastive_head_weight=0.25, zero_shot_readout="fusion", readout_fusion_weight=0.7,
                               denoiser_start_timestep=300)
    torch.manual_seed(0)
    model = DualDenoisingModel(config).eval()
    model.save_pretrained(tmp_path)
    loaded = DualDenoisingModel.from_pretrained(tmp_path).eval()
    for name in ("contrastive_head_weight", "zero_shot_readout", "readout_fusion_weight", "denoiser_start_timestep"):
        assert getattr(loaded.config, name) == getattr(config, name)
    points = tester.get_inputs()["points"]
    torch.testing.assert_close(loaded.get_point_features(points, generator=seeded(0)),
                               model.get_point_features(points, generator=seeded(0)))
    with pytest.raises(Exception, match="contrastive_head_weight > 0"):
        tester.get_config(zero_shot_readout="head")
    with pytest.raises(Exception, match="denoiser_start_timestep must be None or in"):
        tester.get_config(contrastive_head_weight=1.0, denoiser_start_timestep=1000)
    with pytest.raises(ValueError, match="read the contrastive head"):
        DualDenoisingModel(tester.get_config()).get_point_features(points, readout="fusion")
    with pytest.raises(ValueError, match="readout must be one of"):
        model.get_point_features(points, readout="x0")
