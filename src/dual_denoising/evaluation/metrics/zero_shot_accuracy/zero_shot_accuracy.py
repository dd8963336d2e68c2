"""Zero-shot classification accuracy from class scores: top-1, top-k, per-class accuracy and the confusion matrix.

An `evaluate` metric shipped inside `dual_denoising` and loaded by path, so it works offline:

    metric = evaluate.load("<site-packages>/dual_denoising/metrics/zero_shot_accuracy")   # or load_metric(...)
    metric.compute(predictions=logits, references=labels, num_classes=C)

Each import sits on its own line: `evaluate` scans import lines for the script's dependencies.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy of a classifier given its scores for every class (logits, probabilities or cosine similarities: only their
order matters). Top-1 is the fraction of samples whose highest score is the true class; top-k the fraction whose
true class is among the k highest (ties are broken towards the lower class index, as `numpy.argsort` with
`kind="stable"` on the negated scores). Per-class accuracy is top-1 restricted to one true class (`None` for a class
with no sample), and the confusion matrix counts `confusion_matrix[true][predicted]`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per-sample class scores, shape (num_samples, num_classes).
    references (`list` of `int`): the true class of every sample.
    top_k (`int`, default 5): the k of the top-k accuracy (with fewer classes than k every sample counts: 1.0).
    num_classes (`int`, optional): the number of classes; default: the length of the score vectors.
Returns:
    top1 (`float`), top{top_k} (`float`, e.g. `top5`), per_class_accuracy (`list` of `float` or `None`),
    confusion_matrix (`list` of `list` of `int`), num_samples (`int`).
Examples:
    >>> metric = evaluate.load("dual_denoising/metrics/zero_shot_accuracy")
    >>> metric.compute(predictions=[[0.1, 0.9], [0.8, 0.2]], references=[1, 1], top_k=2)["top1"]
    0.5
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ZeroShotAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, top_k=5, num_classes=None):
        scores = np.asarray(predictions, dtype=np.float64)
        labels = np.asarray(references, dtype=np.int64)
        if scores.ndim != 2 or len(scores) != len(labels):
            raise ValueError(f"predictions must be (num_samples, num_classes) scores; got shape {scores.shape}")
        num_classes = scores.shape[1] if num_classes is None else int(num_classes)
        if scores.shape[1] != num_classes:
            raise ValueError(f"predictions have {scores.shape[1]} scores per sample; num_classes is {num_classes}")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"references must be class indices in [0, {num_classes})")
        k = max(1, min(int(top_k), num_classes))
        ranking = np.argsort(-scores, axis=1, kind="stable")  # (num_samples, num_classes), best first
        predicted = ranking[:, 0]
        in_top_k = (ranking[:, :k] == labels[:, None]).any(axis=1)

        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(confusion, (labels, predicted), 1)
        support = confusion.sum(axis=1)
        per_class = [float(confusion[c, c] / support[c]) if support[c] else None for c in range(num_classes)]
        num_samples = len(labels)
        return {
            "top1": float((predicted == labels).mean()) if num_samples else 0.0,
            f"top{int(top_k)}": float(in_top_k.mean()) if num_samples else 0.0,
            "per_class_accuracy": per_class,
            "confusion_matrix": confusion.tolist(),
            "num_samples": num_samples,
        }
