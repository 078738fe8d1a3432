"""check(): every built-in passes; planted errors fail, are named, shrunk, and replay exactly."""

import numpy as np
import pytest

from tests.helpers import altered, plant
from verigrad import analytic
from verigrad.checks import check

BUILTINS = analytic.builtins()


@pytest.mark.parametrize("d", BUILTINS, ids=lambda d: d.name)
def test_every_builtin_passes_the_property_search(d):
    report = check(d, examples=20, seed=7, database=False)
    assert report.passed, report.message
    assert report.examples == 20
    assert {g.param for g in report.gradients} == set(d.params)
    assert all(g.status == "pass" for g in report.gradients)


@pytest.mark.parametrize("d", BUILTINS, ids=lambda d: d.name)
def test_a_planted_single_entry_error_fails_and_names_the_parameter(d):
    param = d.check[min(1, len(d.check) - 1)]
    wrong = altered(d, d.name + "_planted", plant(param, (0,) * len(d.shapes[param]), 1e-3))
    report = check(wrong, examples=20, seed=7, database=False)
    assert report.status == "fail"
    failed = [g.param for g in report.failures]
    assert failed == [param]
    g = report.failures[0]
    assert g.blame == "analytic"
    assert g.worst_index == (0,) * len(d.shapes[param])
    assert g.mismatches == 1


def test_failure_is_shrunk_to_the_smallest_sizes_and_replays_exactly():
    d = analytic.builtin("relu_regression")
    wrong = altered(d, "relu_sign", lambda g, p: {**g, "W": -g["W"]})
    report = check(wrong, examples=30, seed=1, database=False)
    assert report.status == "fail"
    assert set(report.shapes.values()) == {1}  # a sign flip shows at N = D = M = 1
    assert report.counterexample == {"shapes": report.shapes, "seed": report.point_seed}
    again = check(wrong, replay=(report.shapes, report.point_seed))
    g0, g1 = report.failures[0], again.failures[0]
    assert (g1.param, g1.worst_index, g1.analytic_value, g1.reference_value) == (
        g0.param,
        g0.worst_index,
        g0.analytic_value,
        g0.reference_value,
    )
    assert "--replay" in report.replay and f"seed={report.point_seed}" in report.replay


def test_a_transposed_gradient_is_reported_at_a_small_non_square_shape():
    d = analytic.builtin("relu_regression")

    def transposed(g, p):
        h = p["X"] @ p["W"]
        dh = 2 * (np.maximum(h, 0) - p["Y"]) * (h > 0)
        return {**g, "W": dh.T @ p["X"]}  # (M, D): the right numbers, transposed

    wrong = altered(d, "relu_transposed", transposed)
    report = check(wrong, examples=40, seed=2, database=False)
    assert report.status == "fail"
    assert report.shapes["D"] != report.shapes["M"]
    assert max(report.shapes.values()) <= 2


def test_check_at_a_given_point():
    d = analytic.builtin("two_layer_sigmoid")
    rng = np.random.default_rng(0)
    at = {k: rng.standard_normal(d.shape_of(k, {"N": 3, "D_in": 4, "H": 5, "D_out": 2})) for k in d.params}
    report = check(d, at=at)
    assert report.passed
    assert report.shapes == {"N": 3, "D_in": 4, "H": 5, "D_out": 2}
    assert report.replay is None  # a caller's point has no seed to replay


@pytest.mark.parametrize(
    ("at", "needle"),
    [
        pytest.param({"X": np.ones((2, 3)), "W": np.ones((4, 2)), "Y": np.ones((2, 2))}, "dim D is 3 in X but 4 in W", id="clash"),
        pytest.param({"X": np.ones((2, 3)), "W": np.ones((3, 2))}, "no value for parameter 'Y'", id="missing"),
        pytest.param({"X": np.ones(2), "W": np.ones((3, 2)), "Y": np.ones((2, 2))}, "X has shape (2,)", id="rank"),
        pytest.param({"X": np.ones((2, 3)), "W": np.ones((3, 2)), "Y": np.ones((2, 2)), "Z": 1}, "unknown parameter", id="extra"),
    ],
)
def test_check_at_reports_bad_points_in_one_line(at, needle):
    report = check(analytic.builtin("relu_regression"), at=at)
    assert report.status == "error"
    assert needle in report.message
    assert "\n" not in report.message


@pytest.mark.parametrize(
    ("dtype", "needle"),
    [(np.int64, "dtype int64"), (np.complex128, "is complex")],
    ids=["int", "complex"],
)
def test_integer_and_complex_inputs_get_a_clear_message(dtype, needle):
    at = {"X": np.ones((2, 3), dtype), "W": np.ones((3, 2)), "Y": np.ones((2, 2))}
    report = check(analytic.builtin("relu_regression"), at=at)
    assert report.status == "error"
    assert needle in report.message


def test_report_to_dict_has_the_documented_shape():
    d = analytic.builtin("relu_regression")
    entry = check(d, examples=3, seed=0, database=False).to_dict()
    assert {"name", "status", "gradients", "counterexample", "replay", "evaluations"} <= set(entry)
    assert entry["status"] == "pass"
    for g in entry["gradients"]:
        assert {"param", "status", "max_abs_err", "max_rel_err", "worst_index", "threshold", "blame"} <= set(g)
    assert entry["evaluations"] > 0
