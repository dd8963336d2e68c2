"""The noise schedules of Dual Denoising, as diffusers writes schedulers: plain objects with no learned state.

- `DualDenoisingPointNoiseSchedule`: PointDAE's point corruption, `x_t = x_0 + sigma_t * eps`;
- `DualDenoisingFeatureScheduler`: the feature denoiser's VP schedule (cosine, optionally log-SNR shifted), its
  training-timestep sampler, `add_noise` and the DDIM `step`, with numbered comments citing the formulas.

Imports only torch, so `trust_remote_code=True` users get this file as it is.
"""

from __future__ import annotations

import math

import torch


# ----------------------------------------------------------------------------------------------------------------------
# Random draws on the generator's device (diffusers' `randn_tensor`): a seed gives the same draw on CPU and GPU
# ----------------------------------------------------------------------------------------------------------------------
def randn_tensor(shape, like: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """Gaussian noise of `shape`, drawn on the generator's device, returned on `like`'s device and dtype. With a list
    of generators (one per cloud, as diffusers pipelines take them), each draws its cloud's contiguous rows."""
    if isinstance(generator, (list, tuple)):
        rows = shape[0] // len(generator)
        return torch.cat([randn_tensor((rows, *shape[1:]), like, g) for g in generator])
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float32).to(like.device, like.dtype)


def randint_tensor(high: int, shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randint(high, shape, generator=generator, device=device).to(like.device)


def rand_tensor(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


class DualDenoisingPointNoiseSchedule:
    """PointDAE corruption (paper, Fig. 1): `x_t = x_0 + sigma_t * eps`, sigma_t linear from 0 to s over T steps."""

    def __init__(self, max_sigma: float, num_steps: int):
        self.max_sigma = max_sigma
        self.num_steps = num_steps

    def sigmas(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.max_sigma * timesteps.float() / max(self.num_steps - 1, 1)

    def add_noise(self, points: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Noise the xyz channels of `points (B, N, C)` at levels `timesteps (B,)`; other channels are untouched."""
        sigma = self.sigmas(timesteps).to(points.dtype)[:, None, None]
        return torch.cat([points[..., :3] + sigma * noise, points[..., 3:]], dim=-1)


class DualDenoisingFeatureScheduler:
    """The feature DDPM, with diffusers' names and verbs: `add_noise` for training, `set_timesteps` + `step` for
    deterministic DDIM sampling (eta = 0, "trailing" spacing so that the first step starts from pure noise).

    Args:
        num_train_timesteps: T_f.
        beta_schedule: `"squaredcos_cap_v2"` (cosine, Nichol & Dhariwal) or `"linear"` (1e-4 to 0.02, DDPM).
        prediction_type: `"sample"` (the network predicts z_0) or `"epsilon"` (it predicts the noise).
    """

    def __init__(self, num_train_timesteps: int, beta_schedule: str, prediction_type: str, log_snr_shift: float = 0.0):
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.prediction_type = prediction_type
        self.log_snr_shift = log_snr_shift
        # explicit CPU float64: the schedule is exact bookkeeping, and from_pretrained builds modules on `meta`
        cpu = dict(dtype=torch.float64, device="cpu")
        steps = torch.arange(num_train_timesteps, **cpu)
        if beta_schedule == "linear":
            betas = torch.linspace(1e-4, 0.02, num_train_timesteps, **cpu)
        elif beta_schedule == "squaredcos_cap_v2":

            def alpha_bar(t):
                return torch.cos((t / num_train_timesteps + 0.008) / 1.008 * math.pi / 2) ** 2

            betas = (1 - alpha_bar(steps + 1) / alpha_bar(steps)).clamp(max=0.999)
        else:
            raise ValueError(f"beta_schedule must be 'linear' or 'squaredcos_cap_v2'; got {beta_schedule!r}")
        # (1) abar_tau = prod_{s <= tau} (1 - beta_s)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        if log_snr_shift:
            # (2) log SNR'(tau) = log SNR(tau) + shift, SNR = abar / (1 - abar)  =>  abar' = sigmoid(logit(abar) + shift)
            alphas_cumprod = torch.sigmoid(torch.logit(alphas_cumprod) + log_snr_shift)
            # (3) the betas of the shifted schedule: beta_tau = 1 - abar_tau / abar_{tau-1}
            betas = 1 - alphas_cumprod / torch.cat([torch.ones(1, **cpu), alphas_cumprod[:-1]])
        self.betas = betas
        self.alphas_cumprod = alphas_cumprod  # float64, (T_f,)
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, device="cpu")

    def sample_timesteps(
        self,
        batch_size: int,
        sampling: str = "uniform",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        max_prob: float = 0.0,
        stratified: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Training timesteps `(batch_size,)`: uniform on {0..T_f-1} or logit-normal (SD3), a share `max_prob` at
        T_f - 1, optionally stratified across the batch (the config's `feature_timestep_*` fields)."""
        draw_device = generator.device if generator is not None else device

        def unit(n: int) -> torch.Tensor:  # U[0, 1), stratified: one draw per bin [i/n, (i+1)/n), bins shuffled
            u = torch.rand(n, generator=generator, device=draw_device, dtype=torch.float64)
            if not stratified:
                return u
            order = torch.randperm(n, generator=generator, device=draw_device)
            return (order.to(u.dtype) + u) / n

        last = self.num_train_timesteps - 1
        u = unit(batch_size)
        if sampling == "uniform":
            # (4) tau = floor(T_f u), u ~ U[0, 1): uniform on {0..T_f-1}
            timesteps = (u * self.num_train_timesteps).long().clamp(max=last)
        elif sampling == "logit_normal":
            # (5) tau = round((T_f - 1) sigmoid(m + s n)), n = Phi^-1(u) ~ N(0, 1)
            normal = math.sqrt(2) * torch.erfinv((2 * u - 1).clamp(-1 + 1e-12, 1 - 1e-12))
            timesteps = (last * torch.sigmoid(logit_mean + logit_std * normal)).round().long()
        else:
            raise ValueError(f"timestep sampling must be 'uniform' or 'logit_normal'; got {sampling!r}")
        if max_prob > 0:  # (6) the mixture: with probability p, tau = T_f - 1
            timesteps = torch.where(unit(batch_size) < max_prob, torch.full_like(timesteps, last), timesteps)
        return timesteps.to(device)

    def _abar(self, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha-bar at `timesteps`, shaped to broadcast over `like (B, ...)`; timestep -1 means the clean end (1)."""
        abar = torch.cat([self.alphas_cumprod, torch.ones(1, dtype=torch.float64, device="cpu")])[timesteps.cpu()]
        return abar.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """(7) z_tau = sqrt(abar_tau) z_0 + sqrt(1 - abar_tau) eps."""
        abar = self._abar(timesteps, original)
        return abar.sqrt() * original + (1 - abar).sqrt() * noise

    def set_timesteps(self, num_inference_steps: int, start_timestep: int | None = None) -> torch.Tensor:
        """The S sampling timesteps, "trailing": for S = 1 this is [T_f - 1], a single prediction from pure noise.
        `start_timestep` t* starts lower (SDEdit, Meng et al. 2108.01073): S steps spread over [t*, 0], the first
        at t*, for a sample noised to t* with `add_noise`."""
        first = self.num_train_timesteps - 1 if start_timestep is None else start_timestep
        if not 0 <= first < self.num_train_timesteps:
            raise ValueError(f"start_timestep must be in [0, {self.num_train_timesteps}); got {start_timestep}")
        if not 1 <= num_inference_steps <= first + 1:
            raise ValueError(f"num_inference_steps must be in [1, {first + 1}]; got {num_inference_steps}")
        ratio = (first + 1) / num_inference_steps
        self.timesteps = (torch.arange(first + 1, 0, -ratio, device="cpu").round() - 1).long()
        return self.timesteps

    def previous_timestep(self, timestep: int) -> int:
        later = self.timesteps[self.timesteps < timestep]
        return int(later[0]) if len(later) else -1

    def predict_original(self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor):
        if self.prediction_type == "sample":
            return model_output
        # (8) epsilon prediction: z_0 = (z_tau - sqrt(1 - abar_tau) eps) / sqrt(abar_tau)
        abar = self._abar(timestep, sample)
        return (sample - (1 - abar).sqrt() * model_output) / abar.sqrt()

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """One deterministic DDIM step from `timestep` to the previous timestep of `set_timesteps` (eta = 0)."""
        t = torch.full((sample.shape[0],), timestep, dtype=torch.long, device="cpu")
        prev = torch.full_like(t, self.previous_timestep(timestep))
        x0 = self.predict_original(model_output, t, sample)
        abar_t, abar_prev = self._abar(t, sample), self._abar(prev, sample)
        # (9) DDIM, eta = 0 (Song et al. 2021, eq. 12): the noise implied by x0 ...
        eps = (sample - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()
        # (10) ... carried to the previous timestep: z_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps
        return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps
