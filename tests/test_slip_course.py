"""The slip of a forward that runs under NumPy only (course code: ``forward(...) -> (out, cache)``,
``backward(dout, cache)``): each course backward with one wrong line gets that line named, inside the
backward, against the forward's intermediates taken by finite differences (reference/_numpy_intermediates.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from verigrad import Derivation, check, integers
from verigrad.checks.loader import load_file
from verigrad.checks.report import Mark
from verigrad.checks.verdict.thresholds import MAX_SLIP_FD_ENTRIES
from verigrad.reference import intermediates

from .slips import course
from .slips.course import CASES, fb

#: Sizes (and configurations) each case is replayed at: every dim distinct where the layer allows.
AT = {
    "affine_sign": {"N": 3, "D": 4, "M": 2},
    "relu_mask": {"N": 3, "D": 4},
    "batchnorm_sign": {"N": 4, "D": 3, "bn_param": {"mode": "train"}},
    "batchnorm_divides_gamma": {"N": 4, "D": 3, "bn_param": {"mode": "train"}},
    "lstm_output_gate": {"N": 2, "D": 3, "H": 2},
    "lstm_forget_gate": {"N": 2, "D": 3, "H": 2},
    "conv_db": {"N": 2, "C": 2, "H": 4, "W": 3, "F": 3, "K": 3, "conv_param": {"stride": 1, "pad": 1}},
    "max_pool_assigns": {"N": 1, "C": 2, "H": 4, "W": 3, "pool_param": {"pool_height": 2, "pool_width": 2, "stride": 1}},
}
#: The cases replayed at a point given whole (a loss with integer labels: the values as data).
AT_POINT = {"softmax_no_mean": {"x": np.random.default_rng(7).standard_normal((3, 4)), "y": np.array([2, 0, 3])}}


def _named(report, param: str, text: str):
    g = next(g for g in report.failures if g.param == param)
    assert g.slip is not None, g.slip_reason
    assert text in g.slip.source, g.slip.sentence
    assert g.slip.finding.removeprefix("is ") != f"∂f/∂{param}"
    assert any(t.line == g.slip.line for t in g.trace if t.mark == Mark.WRONG)
    return g


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_wrong_line_of_a_course_backward_is_named(name):
    d, param, text = CASES[name]
    report = check(d, at=AT_POINT[name]) if name in AT_POINT else check(d, replay=(AT[name], 7))
    _named(report, param, text)


@pytest.mark.parametrize("name", ["batchnorm_sign", "lstm_output_gate"])
def test_the_search_names_the_wrong_line_of_a_course_backward(name):
    d, param, text = CASES[name]
    report = check(d, examples=8, seed=3, database=False)
    _named(report, param, text)


def test_a_numpy_only_forward_has_its_intermediates_by_finite_differences():
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(3)
    g = rng.standard_normal((4, 3))
    found = intermediates(course.bn_train, {"x": x, "gamma": gamma, "beta": beta}, g, fd_entries=MAX_SLIP_FD_ENTRIES)
    assert found.problem is None
    named = {q.name: q for q in found.quantities}
    assert {"x", "gamma", "beta", "mu", "xc", "var", "std", "x_hat", "out"} <= set(named)
    # ∂f/∂x_hat = G ⊙ γ and ∂f/∂out = G (f = Σ G ⊙ out), within the error bound each carries
    for q, exact in ((named["x_hat"], g * gamma), (named["out"], g), (named["beta"], g.sum(axis=0))):
        assert np.all(np.abs(q.grad - exact) <= q.error), q.name
        assert np.all(q.error < 1e-6 * np.max(np.abs(exact)))
    np.testing.assert_allclose(named["x_hat"].value, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-12)


COURSE = Path(__file__).resolve().parents[1] / "examples" / "course"
#: examples/course's planted mistakes, each replayed where it shows: (file, derivation, point, its wrong line).
EXAMPLES = {
    "pool_overlap": ("wrong_pool_overlap.py", "max_pool_assigned",
                     {"N": 1, "C": 1, "H": 3, "W": 3, "pool_param": {"pool_height": 2, "pool_width": 2, "stride": 1}},
                     "dx[n, c, hs : hs + ph, ws : ws + pw] = mask * dout[n, c, i, j]"),
    "conv_pad": ("wrong_conv_pad.py", "conv_pad_slice", {"N": 1, "C": 1, "H": 3, "W": 3, "F": 1, "K": 1, "conv_param": {"stride": 1, "pad": 0}},
                 "dx = dx_pad[:, :, pad:-pad, pad:-pad]"),
}


@pytest.mark.parametrize("case", sorted(EXAMPLES))
def test_the_wrong_line_of_each_course_example_is_named(case, monkeypatch):
    filename, name, at, text = EXAMPLES[case]
    for module in ("layers", "check_layers"):  # the course's module names are its own meanwhile
        monkeypatch.delitem(sys.modules, module, raising=False)
    try:
        d = {d.name: d for d in load_file(str(COURSE / filename))}[name]
        report = check(d, replay=(at, 1))
    finally:
        for module in ("layers", "check_layers"):
            sys.modules.pop(module, None)
    _named(report, "x", text)


# One line of examples/course/layers.py changed in a copy, as a student would get it wrong: (the right line, the
# wrong one, the derivation of the copy, where it is replayed, the failing gradients that must name that line).
def _bn(m):
    return fb("bn_planted", m.batchnorm_forward, m.batchnorm_backward, **course.BN)


def _lstm(m):
    return fb("lstm_planted", m.lstm_step_forward, m.lstm_step_backward, **course.LSTM)


def _softmax(m):
    return Derivation.from_loss("softmax_planted", m.softmax_loss, shapes={"x": ("N", "C")}, data={"y": integers(0, "C", shape=("N",))})


def _pool(m):
    return fb("pool_planted", m.max_pool_forward_naive, m.max_pool_backward_naive, **course.POOL)


PLANTED = {
    # hands dout on as ∂f/∂x_hat (the · gamma dropped): a name given to a right value, not the line that reads it
    "batchnorm_dx_hat_is_dout": ("    dx_hat = dout * gamma\n", "    dx_hat = dout\n", _bn, (AT["batchnorm_sign"], 7), ["x"]),
    # an in-place division that leaves its array as it was: not the line before it, whose value it hands on
    "softmax_divides_by_1": ("    dx /= N\n", "    dx /= 1\n", _softmax, AT_POINT["softmax_no_mean"], ["x"]),
    # each window's minimum where its maximum belongs: a boolean mask, whose entries' shares land where ∂f/∂x is 0
    "max_pool_mask_of_the_minimum": ("mask = window == np.max(window)\n", "mask = window == np.min(window)\n", _pool,
                                     (AT["max_pool_assigns"], 7), ["x"]),
    # a gradient handed on under the name of another: the name's line, not the line that made the value
    "batchnorm_dbeta_is_dout": ("    dbeta = dout.sum(axis=0)\n", "    dbeta = dout\n", _bn, (AT["batchnorm_sign"], 7), ["beta"]),
    "lstm_dprev_c_is_dc": ("    dprev_c = dc * f\n", "    dprev_c = dc\n", _lstm, (AT["lstm_output_gate"], 7), ["prev_c"]),
    # ∂f/∂next_c without the o factor: di, df and dg all wrong from it, da right once all three are
    "lstm_dc_without_o": ("    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)\n", "    dc = dnext_c + dnext_h * (1 - tanh_c**2)\n", _lstm,
                          (AT["lstm_output_gate"], 7), ["x", "prev_h", "prev_c", "Wx", "Wh", "b"]),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_line_planted_in_the_course_layers_is_named(case, tmp_path):
    right, wrong, make, at, params = PLANTED[case]
    text = (COURSE / "layers.py").read_text()
    assert text.count(right) == 1
    path = tmp_path / f"layers_{case}.py"
    path.write_text(text.replace(right, wrong))
    (line,) = [k for k, s in enumerate(path.read_text().splitlines(), 1) if s.strip() == wrong.strip()]
    spec = importlib.util.spec_from_file_location(f"layers_{case}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    d = make(module)
    report = check(d, at=at) if isinstance(at, dict) else check(d, replay=at)
    failing = {g.param: g for g in report.failures}
    assert set(params) <= set(failing), report.message
    for param in params:
        g = _named(report, param, wrong.strip())
        assert (Path(g.slip.file).resolve(), g.slip.line) == (path.resolve(), line), g.slip.sentence
        assert not g.slip.elsewhere and " of " not in g.slip.sentence.split("`")[0]
