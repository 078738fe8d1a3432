"""A range as wide as float64 allows: the harness's own draw and steps stay finite, and nothing of the harness's
arithmetic is reported as the user's (ranges=(-1e308, 1e308) once overflowed in the draw)."""

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import Status
from verigrad.checks.search import check
from verigrad.checks.search.points import uniform
from verigrad.reference import steps_for

WIDE = (-1e308, 1e308)


def _half_sum(xp, x):
    return xp.sum(x * 0.5)


def _half(x):
    return {"x": np.full_like(x, 0.5)}


def test_a_range_whose_width_overflows_is_drawn_inside_it():
    values = uniform(np.random.default_rng(0), *WIDE, (1000,))
    assert np.isfinite(values).all() and (values >= WIDE[0]).all() and (values <= WIDE[1]).all()
    assert (values < 0).any() and (values > 0).any() and np.abs(values).max() > 1e307


def test_an_ordinary_range_is_drawn_bit_for_bit_as_before():
    a = uniform(np.random.default_rng(3), -2.0, 5.0, (4, 3))
    b = np.random.default_rng(3).uniform(-2.0, 5.0, (4, 3))
    assert np.array_equal(a, b)


def test_steps_stay_finite_where_x_squared_overflows():
    x = np.array([1e308, -1e308, 3.0])
    assert np.isfinite(steps_for(x)).all() and np.isfinite(steps_for(x[None], stacked=True)).all()
    small = np.random.default_rng(1).standard_normal((2, 5))
    h0 = steps_for(np.array([1.0]))[0]
    for row in small:
        assert np.array_equal(steps_for(row), h0 * np.maximum(np.abs(row), np.sqrt(np.mean(row * row))))


def test_a_widest_range_is_checked_and_passes_without_blaming_the_forward():
    d = Derivation(name="wide", shapes={"x": ("N",)}, forward=_half_sum, gradients=_half, ranges={"x": WIDE}, dims={"N": (1, 3)})
    report = check(d, examples=2, seed=0, database=False)
    assert report.status == Status.PASS, report.message
    assert not report.warnings and not report.gradients[0].warnings
