"""Precision is not a formula error: a deviation of a few ulps of a gradient's scale passes, with a note of its
size; above the floor (PRECISION_FLOOR_ULPS · u · max|reference|) the error model stays as strict as before."""

import numpy as np
import pytest

from verigrad import Derivation, check
from verigrad.checks.verdict.thresholds import PRECISION_FLOOR_ULPS, U64


def _linear(ulps: float) -> Derivation:
    """f = ⟨w, x⟩ (no rounding noise at all): ∂f/∂x returned off by ``ulps`` u of max|w| relative."""
    return Derivation(name="linear", shapes={"x": ("D",), "w": ("D",)}, forward=lambda xp, x, w: xp.sum(w * x),
                      gradients=lambda x, w: {"x": w * (1 + ulps * U64), "w": x})


AT = {"x": np.array([3.0, -1.0, 0.5]), "w": np.array([1.0, 2.0, -4.0])}  # L = 3: the error model's τ_ex is 6.9 u of max|t|


@pytest.mark.parametrize("ulps", [10, 14])
def test_a_few_ulps_of_the_scale_pass_with_a_note_of_their_size(ulps):
    g = check(_linear(ulps), at=AT).gradients[0]
    assert g.status == "pass", g.message
    assert g.max_abs_err > 6.9 * U64 * 4.0  # above the error model alone
    assert any("within the precision floor" in w and f"{ulps:.1f} u of max|reference|" in w for w in g.warnings), g.warnings


def test_above_the_floor_the_error_model_decides():
    g = check(_linear(2.5 * PRECISION_FLOOR_ULPS), at=AT).gradients[0]
    assert (g.status, g.blame) == ("fail", "analytic")
    assert g.threshold["analytic_vs_autograd"] == pytest.approx(PRECISION_FLOOR_ULPS * U64 * 4.0, rel=1e-12)


def test_an_exact_gradient_carries_no_note():
    g = check(_linear(0), at=AT).gradients[0]
    assert g.status == "pass" and not g.warnings
