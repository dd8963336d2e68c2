"""Evaluation: zero-shot accuracy, adversarial robustness (PGD-Linf/L2 with EOT, point drop/add, SRS/SOR defenses),
reports and plots (`dual-denoising evaluate`).

- `zero_shot`: class embeddings, `evaluate_zero_shot`, each cloud read in the 24 orientations, `evaluate` (the command), Wilson intervals, reports;
- `attacks`: the attacks and defenses, independent of the model (they see a differentiable classifier).
"""

from .._lazy import lazy_exports

# submodule -> the names it gives; each is imported on first use (`dual_denoising._lazy`)
_EXPORTS = {
    "zero_shot": [
        "REPORT_FILES", "InferenceOptions", "wilson_interval", "open_set_metrics", "evaluate_zero_shot", "load_metric", "prepare_points", "class_embeddings",
        "per_orientation_logits",
        "write_markdown_report", "save_plots",
    ],
    "attacks": [
        "ZeroShotClassifier", "attack_loss", "eot_gradient", "PointCloudAttack", "PGDLinf", "PGDL2", "SaliencyDrop",
        "PointAdd", "ATTACKS", "default_attacks", "SRSDefense", "SORDefense", "DEFENSES",
    ],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [*_EXPORTS["zero_shot"], *_EXPORTS["attacks"]]
