"""Evaluation: zero-shot accuracy, adversarial robustness (PGD-Linf/L2 with EOT, point drop/add, SRS/SOR defences),
reports and plots (`dual-denoising evaluate`).

- `zero_shot`: class embeddings, `evaluate_zero_shot`, `evaluate` (the command), Wilson intervals, reports;
- `attacks`: the attacks and defences, independent of the model (they see a differentiable classifier).
"""

from .attacks import *  # noqa: F403
from .attacks import __all__ as _attacks_all
from .zero_shot import *  # noqa: F403
from .zero_shot import __all__ as _zero_shot_all

__all__ = [*_zero_shot_all, *_attacks_all]
