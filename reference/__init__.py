"""The two reference witnesses: torch autograd (float64) and finite differences with an error model.

Both run the derivation's own forward; neither looks at its hand-derived gradients. ``Stack`` computes
both for several points of the same sizes in a few batched calls; ``DirectionalFD`` measures directional
derivatives for projection mode. The numeric constants, with their reasons, are in ``constants``. torch is
imported when a check first needs it, not with the package (``_torch.py``).
"""

from . import constants
from ._autograd import autograd_gradients, custom_functions, line_autograd, rounding_noise
from ._batched import BatchedObjective, forward_value, forward_value_torch
from ._complex_step import ComplexStep, complex_step
from ._fd import FDEstimate, FDResult, differences, finite_differences, forward_noise, noise_from_line, refine_entries, steps_for
from ._global_rng import GENERATORS, NUMPY_GLOBAL, RANDOM, TORCH_GLOBAL, keeps_generators, seeded_at, user_call
from ._heap import Heap
from ._intermediates import Intermediates, Quantity, intermediates
from ._namespace import NUMPY, TORCH, TorchObjective, forward_value_in, namespaces, runs_in, torch_forward_unit, torch_output_shape
from ._objective import ForwardError, check_scalar, forward_unit, np_xp, objective, read_as_scalar, seen_shape
from ._projection import DirectionalFD, Localization, Measurement, Support, random_direction
from ._quantities import is_user_file
from ._second_order import along, autograd_hvp, direction, forward_ad_jvp, forward_output
from ._stacked import Stack, Unstackable
from ._switches import value_and_signs
from ._torch import torch_namespace
from .constants import H0, U64

__all__ = [
    "GENERATORS",
    "H0",
    "NUMPY",
    "NUMPY_GLOBAL",
    "RANDOM",
    "TORCH",
    "TORCH_GLOBAL",
    "U64",
    "BatchedObjective",
    "ComplexStep",
    "DirectionalFD",
    "FDEstimate",
    "FDResult",
    "ForwardError",
    "Heap",
    "Intermediates",
    "Localization",
    "Measurement",
    "Quantity",
    "Stack",
    "Support",
    "TorchObjective",
    "Unstackable",
    "along",
    "autograd_gradients",
    "autograd_hvp",
    "check_scalar",
    "complex_step",
    "constants",
    "custom_functions",
    "differences",
    "direction",
    "finite_differences",
    "forward_ad_jvp",
    "forward_noise",
    "forward_output",
    "forward_unit",
    "forward_value",
    "forward_value_in",
    "forward_value_torch",
    "intermediates",
    "is_user_file",
    "keeps_generators",
    "line_autograd",
    "namespaces",
    "noise_from_line",
    "np_xp",
    "objective",
    "random_direction",
    "read_as_scalar",
    "refine_entries",
    "rounding_noise",
    "runs_in",
    "seeded_at",
    "seen_shape",
    "steps_for",
    "torch_forward_unit",
    "torch_namespace",
    "torch_output_shape",
    "user_call",
    "value_and_signs",
]
