"""Check a feature-noise schedule before training: at which timesteps can z_tau be classified without the points?

    python research/check_feature_schedule.py --config hub_configs/tiny                  # the shipped text tower
    python research/check_feature_schedule.py --config hub_configs/tiny --overrides '{"feature_log_snr_shift": -6.24}'
    python research/check_feature_schedule.py --config my_model_dir --teacher outputs/world/teacher --dataset DATA

The denoiser learns from the point tokens only at timesteps where its noisy input z_tau does not already give the
answer away. For every tau, this script noises each class's target z_0 = sqrt(D) * normalize(text embedding of the
class prompts) on the config's schedule (its `feature_log_snr_shift` included) and classifies z_tau alone by the
nearest class embedding. It prints that accuracy at a few timesteps, and the share of *training* timesteps (drawn
with the config's `feature_timestep_*` distribution) at which z_tau alone is less than 50% classifiable: the share
of the feature loss that needs the points at all. The class embeddings come from the teacher CLIP folder
(--teacher; class names from --dataset metadata) or, by default, from the shipped default's frozen text tower and
classes.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from dual_denoising import DualDenoisingConfig, DualDenoisingModel  # noqa: E402
from dual_denoising.data import load_triples_metadata  # noqa: E402
from dual_denoising.evaluation import class_embeddings  # noqa: E402
from dual_denoising.shipped import (
    DEFAULT_MODEL_DIR,  # noqa: E402
    shipped_model_classes,  # noqa: E402
)


def readable_accuracy(scheduler, class_embeds: torch.Tensor, draws: int, generator: torch.Generator) -> torch.Tensor:
    """`(T_f,)`: top-1 of classifying z_tau alone by the nearest class embedding, for every timestep tau."""
    num_classes, dim = class_embeds.shape
    directions = torch.nn.functional.normalize(class_embeds.double(), dim=-1)
    z0 = dim ** 0.5 * directions.repeat_interleave(draws, dim=0)  # (C * draws, D)
    labels = torch.arange(num_classes).repeat_interleave(draws)
    accuracy = torch.empty(scheduler.num_train_timesteps, dtype=torch.float64)
    for tau in range(scheduler.num_train_timesteps):
        timesteps = torch.full((len(z0),), tau, dtype=torch.long)
        noise = torch.randn(z0.shape, generator=generator, dtype=torch.float64)
        z_tau = scheduler.add_noise(z0, noise, timesteps)
        accuracy[tau] = ((z_tau @ directions.T).argmax(1) == labels).double().mean()
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a config or model folder (e.g. hub_configs/tiny)")
    parser.add_argument("--overrides", type=json.loads, default={}, help="JSON of config fields to set")
    parser.add_argument("--teacher", help="a CLIP teacher folder (default: the shipped default's text tower)")
    parser.add_argument("--dataset", help="a triples folder whose metadata names the classes (with --teacher)")
    parser.add_argument("--draws", type=int, default=16, help="noise draws per class and timestep")
    parser.add_argument("--samples", type=int, default=100_000, help="training timesteps drawn for the share")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = DualDenoisingConfig.from_pretrained(args.config)
    for key, value in args.overrides.items():
        if not hasattr(config, key):
            raise SystemExit(f"--overrides: {key!r} is not a DualDenoisingConfig field")
        setattr(config, key, value)
    if args.teacher:
        if not args.dataset:
            raise SystemExit("--teacher needs --dataset (a triples folder whose metadata names the classes)")
        text_source, classes = DualDenoisingModel.from_teacher(args.teacher), load_triples_metadata(args.dataset)["classes"]
        tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    else:
        text_source, classes = DualDenoisingModel.from_pretrained(DEFAULT_MODEL_DIR), shipped_model_classes()
        tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    with torch.no_grad():
        class_embeds = class_embeddings(text_source, classes, tokenizer)
    if class_embeds.shape[-1] != config.embed_dim:
        raise SystemExit(f"the teacher's embeddings are {class_embeds.shape[-1]}-d but the config's embed_dim is "
                         f"{config.embed_dim}")

    # the model's own scheduler and timestep sampler, built from the config as training builds them
    model = DualDenoisingModel(config)
    generator = torch.Generator().manual_seed(args.seed)
    accuracy = readable_accuracy(model.scheduler, class_embeds, args.draws, generator)
    taus = model.sample_feature_timesteps(args.samples, generator)  # the law training draws from
    share = (accuracy[taus] < 0.5).double().mean().item()
    last = config.feature_num_train_timesteps - 1
    marks = sorted({0, last // 4, last // 2, 3 * last // 4, int(0.85 * last), int(0.9 * last), int(0.95 * last), last})
    print(f"{len(classes)} classes, D = {config.embed_dim}, shift {config.feature_log_snr_shift}, tau ~ "
          f"{config.feature_timestep_sampling} (p at T-1 = {config.feature_timestep_max_prob})")
    print("| tau | " + " | ".join(str(t) for t in marks) + " |")
    print("|---|" + "---:|" * len(marks))
    print("| top-1 of z_tau alone | " + " | ".join(f"{100 * accuracy[t]:.0f}" for t in marks) + " |")
    print(f"share of training timesteps where z_tau alone is < 50% classifiable: {100 * share:.1f}%")


if __name__ == "__main__":
    main()
