"""The two reference witnesses: torch autograd (float64) and finite differences with an error model.

Both run the derivation's own forward; neither looks at its hand-derived gradients.
"""

from ._autograd import autograd_gradients, rounding_noise
from ._batched import BatchedObjective, forward_value, forward_value_torch
from ._fd import H0, U64, FDEstimate, FDResult, finite_differences, steps_for
from ._objective import ForwardError, check_scalar, np_xp, objective, torch_xp

__all__ = [
    "H0",
    "U64",
    "BatchedObjective",
    "FDEstimate",
    "FDResult",
    "ForwardError",
    "autograd_gradients",
    "check_scalar",
    "finite_differences",
    "forward_value",
    "forward_value_torch",
    "np_xp",
    "objective",
    "rounding_noise",
    "steps_for",
    "torch_xp",
]
