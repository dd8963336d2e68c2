"""Robust accuracy and attack success rate of an adversarial attack on a classifier.

An `evaluate` metric shipped inside `dual_denoising` and loaded by path, so it works offline:

    metric = evaluate.load("<site-packages>/dual_denoising/metrics/attack_success_rate")
    metric.compute(predictions=adversarial_predictions, references=labels, clean_predictions=clean_predictions)

Each import sits on its own line: `evaluate` scans import lines for the script's dependencies.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Robust accuracy is the accuracy on the adversarial inputs. The attack success rate is the fraction of the samples
the classifier got right on the clean input that it gets wrong on the adversarial one (samples already wrong are
not counted: an attack cannot take credit for them).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted classes on the adversarial inputs.
    references (`list` of `int`): the true classes.
    clean_predictions (`list` of `int`): predicted classes on the clean inputs.
Returns:
    robust_accuracy (`float`), clean_accuracy (`float`), attack_success_rate (`float`, 0 when nothing was correct),
    num_clean_correct (`int`), num_samples (`int`).
Examples:
    >>> metric = evaluate.load("dual_denoising/metrics/attack_success_rate")
    >>> metric.compute(predictions=[0, 1, 0], references=[1, 1, 0], clean_predictions=[1, 1, 1])["attack_success_rate"]
    0.5
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AttackSuccessRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "clean_predictions": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, clean_predictions):
        adversarial = np.asarray(predictions, dtype=np.int64)
        labels = np.asarray(references, dtype=np.int64)
        clean = np.asarray(clean_predictions, dtype=np.int64)
        clean_correct = clean == labels
        num_clean_correct = int(clean_correct.sum())
        broken = int((clean_correct & (adversarial != labels)).sum())
        num_samples = len(labels)
        return {
            "robust_accuracy": float((adversarial == labels).mean()) if num_samples else 0.0,
            "clean_accuracy": float(clean_correct.mean()) if num_samples else 0.0,
            "attack_success_rate": broken / num_clean_correct if num_clean_correct else 0.0,
            "num_clean_correct": num_clean_correct,
            "num_samples": num_samples,
        }
