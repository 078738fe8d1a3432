"""Forwards in one array namespace: NumPy only (np.pad, in-place writes, np.add.at, int(...) on arrays) is
checked against finite differences alone, and every report says autograd was not available; torch only
(torch.nn.functional) is checked without NumPy. Determinism and in-place checks hold in either; a second
forward (torch_forward=) brings the missing witness back."""

import html
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.report import ERROR, FAIL, PASS, RunReport, render
from verigrad.checks.report.html import render_html
from verigrad.checks.report.junit import render_junit
from verigrad.checks.report.markdown import render_markdown
from verigrad.reference import NUMPY, TORCH, namespaces

DIMS = {"N": (1, 3), "D": (1, 4)}
D_ONLY = {"D": (1, 4)}
#: The one line every view says of NumPy-only derivations (checks/report/words.py::numpy_only_line).
NOTE = "no autograd for"


def run(d, examples=4):
    return check(d, examples=examples, seed=2, database=False)


def failing(r):
    return [g.param for g in r.gradients if g.status == FAIL]


# --- NumPy only: a padded moving sum written with np.pad and in-place writes (a layer) -------------------


def padded_forward(xp, x, w):
    xpad = np.pad(x, ((0, 0), (1, 1)))
    out = np.zeros((x.shape[0], x.shape[1]))
    for i in range(x.shape[1]):
        out[:, i] = xpad[:, i : i + 3] @ w
    return out


def padded_gradients(x, w, grad_output):
    xpad = np.pad(x, ((0, 0), (1, 1)))
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w)
    for i in range(x.shape[1]):
        dw += xpad[:, i : i + 3].T @ grad_output[:, i]
        dxpad[:, i : i + 3] += np.outer(grad_output[:, i], w)
    return {"x": dxpad[:, 1:-1], "w": dw}


def padded_gradients_unpadded_wrong(x, w, grad_output):
    g = padded_gradients(x, w, grad_output)
    g["x"] = g["x"] * 1.5
    return g


def padded(gradients=padded_gradients, name="padded", **kw):
    return Derivation(name=name, shapes={"x": ("N", "D"), "w": (3,)}, forward=padded_forward, gradients=gradients, dims=DIMS, **kw)


def test_a_numpy_only_forward_is_found_out_and_checked_by_two_witnesses():
    d = padded()
    x, w = np.ones((2, 3)), np.ones(3)
    assert namespaces(d, {"x": x, "w": w}, np.ones((2, 3))) == (NUMPY,)
    r = run(d)
    assert r.status == PASS, r.message
    assert r.namespace == NUMPY and r.autograd_available is False
    assert not r.warnings  # said once per run by the views, not once per report
    assert all(g.threshold["finite_differences_max"] > 0 for g in r.gradients)


def test_every_report_says_autograd_was_not_available():
    r = run(padded())
    doc = RunReport([r], seed=r.seed)
    assert NOTE in render(doc)
    assert NOTE in render_markdown(doc)
    assert NOTE in html.unescape(render_html(doc))
    assert NOTE in render_junit(doc)
    out = json.loads(json.dumps(doc.to_dict()))["derivations"][0]
    assert out["autograd_available"] is False and out["namespace"] == "numpy"
    assert {g["witness"] for g in out["gradients"]} <= {"complex step", "finite differences"}


def test_a_wrong_numpy_only_gradient_fails_naming_it_with_its_diagnosis():
    r = run(padded(padded_gradients_unpadded_wrong, "padded_wrong"))
    assert r.status == FAIL and failing(r) == ["x"]
    g = r.gradients[0]
    assert g.blame == "analytic"
    assert g.diagnosis is not None and g.diagnosis.kind == "scale"


def scatter_forward(xp, x, idx_scale):
    """A scalar objective with int(...) on an array and np.add.at: f = Σ_k (Σ_{i: i mod K = k} x_i)², K = int(2)."""
    k = int(np.asarray(2.0))
    bins = np.zeros(k)
    np.add.at(bins, np.arange(x.size) % k, x * idx_scale[0])
    return float(np.sum(bins**2))


def scatter_gradients(x, idx_scale):
    k = 2
    bins = np.zeros(k)
    np.add.at(bins, np.arange(x.size) % k, x * idx_scale[0])
    per = 2 * bins[np.arange(x.size) % k]
    return {"x": per * idx_scale[0], "idx_scale": np.array([np.sum(per * x)])}


def test_a_scalar_numpy_only_forward_with_add_at_and_int_passes_and_a_slip_fails():
    shapes = {"x": ("D",), "idx_scale": (1,)}
    assert run(Derivation(name="scatter", shapes=shapes, forward=scatter_forward, gradients=scatter_gradients, dims=D_ONLY)).status == PASS

    def wrong(x, idx_scale):
        g = scatter_gradients(x, idx_scale)
        g["idx_scale"] = g["idx_scale"] / 2
        return g

    r = run(Derivation(name="scatter_wrong", shapes=shapes, forward=scatter_forward, gradients=wrong, dims=D_ONLY))
    assert r.status == FAIL and failing(r) == ["idx_scale"]


def test_declared_numpy_only_is_believed_even_where_torch_would_run():
    def forward(xp, X):
        return xp.sum(X**3)

    d = Derivation(name="cube", shapes={"X": ("N", "D")}, forward=forward, gradients=lambda X: {"X": 3 * X**2}, namespaces=("numpy",), dims=DIMS)
    r = run(d)
    assert r.status == PASS and r.autograd_available is False


def test_a_numpy_only_forward_that_writes_into_its_input_is_judged_on_copies():
    def forward(xp, x):
        x *= 2.0
        return np.sum(np.pad(x, 1) ** 2)

    r = run(Derivation(name="writes", shapes={"x": ("D",)}, forward=forward, gradients=lambda x: {"x": 8 * x}, dims=D_ONLY), examples=2)
    assert r.status == PASS and r.forward_modified_in_place == ["x"] and not r.autograd_available, r.message
    r = run(Derivation(name="writes_wrong", shapes={"x": ("D",)}, forward=forward, gradients=lambda x: {"x": 2 * x}, dims=D_ONLY), examples=2)
    assert r.status == FAIL and r.forward_modified_in_place == ["x"]


def test_a_random_numpy_only_forward_is_not_deterministic():
    def forward(xp, x):
        return float(np.sum(np.pad(x, 1) * np.random.default_rng().standard_normal(x.size + 2)))

    r = run(Derivation(name="random", shapes={"x": ("D",)}, forward=forward, gradients=lambda x: {"x": x}, dims=D_ONLY), examples=1)
    assert r.status == ERROR and "not deterministic" in r.message


def test_a_torch_forward_for_the_missing_witness_brings_autograd_back():
    def torch_forward(xp, x, w):
        xpad = torch.nn.functional.pad(x, (1, 1))
        return torch.stack([xpad[:, i : i + 3] @ w for i in range(x.shape[1])], dim=1)

    r = run(padded(name="padded_both", torch_forward=torch_forward))
    assert r.status == PASS, r.message
    assert r.autograd_available and r.namespace is None and {g.witness for g in r.gradients} == {"autograd"}
    r = run(padded(padded_gradients_unpadded_wrong, "padded_both_wrong", torch_forward=torch_forward))
    assert r.status == FAIL and failing(r) == ["x"] and r.gradients[0].blame == "analytic"


def test_a_second_forward_that_disagrees_with_the_first_is_an_error():
    r = run(padded(name="disagree", torch_forward=lambda xp, x, w: 2 * x), examples=1)
    assert r.status == ERROR and "under NumPy but" in r.message


# --- torch only: torch.nn.functional ---------------------------------------------------------------------


def conv_forward(xp, x, w):
    return F.conv1d(x, w, padding=1)


def conv_gradients(x, w, grad_output):
    K = w.shape[2]
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w)
    for i in range(grad_output.shape[2]):
        dw += np.einsum("nf,nck->fck", grad_output[:, :, i], xpad[:, :, i : i + K])
        dxpad[:, :, i : i + K] += np.einsum("nf,fck->nck", grad_output[:, :, i], w)
    return {"x": dxpad[:, :, 1:-1], "w": dw}


def conv_gradients_flipped_kernel(x, w, grad_output):
    return conv_gradients(x, w[:, :, ::-1], grad_output)


CONV = {"x": ("N", "C", "L"), "w": ("F", "C", 3)}
CONV_DIMS = {"N": (1, 2), "C": (1, 2), "L": (1, 4), "F": (1, 2)}


def test_a_torch_only_forward_gets_three_witnesses_without_numpy():
    d = Derivation(name="conv1d", shapes=CONV, output=("N", "F", "L"), forward=conv_forward, gradients=conv_gradients, dims=CONV_DIMS)
    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 3))
    assert namespaces(d, {"x": x, "w": w}, np.ones((1, 1, 3))) == (TORCH,)
    r = run(d, examples=2)  # a torch conv call costs milliseconds even this small: few examples
    assert r.status == PASS, r.message
    assert r.namespace == TORCH and r.autograd_available and {g.witness for g in r.gradients} == {"autograd"}
    wrong = Derivation(name="conv1d_flip", shapes=CONV, output=("N", "F", "L"), forward=conv_forward, gradients=conv_gradients_flipped_kernel,
                       dims=CONV_DIMS)
    r = run(wrong, examples=2)
    assert r.status == FAIL and "x" in failing(r)


def test_a_torch_only_forward_that_writes_into_its_input_is_judged_on_copies():
    def forward(xp, x):
        x.mul_(2.0)
        return F.softplus(x).sum()

    right = lambda x: {"x": 2.0 * torch.sigmoid(torch.from_numpy(2.0 * x)).numpy()}
    d = Derivation(name="torch_writes", shapes={"x": ("D",)}, forward=forward, gradients=right, namespaces=("torch",), dims=D_ONLY)
    r = run(d, examples=2)
    assert r.status == PASS and r.forward_modified_in_place == ["x"] and r.autograd_available, r.message
    d = Derivation(name="torch_writes_wrong", shapes={"x": ("D",)}, forward=forward, gradients=lambda x: {"x": x}, namespaces=("torch",), dims=D_ONLY)
    r = run(d, examples=1)
    assert r.status == FAIL and r.forward_modified_in_place == ["x"]


@pytest.mark.parametrize("given", [("jax",), (), "cupy", 3])
def test_unknown_namespaces_are_refused_when_built(given):
    with pytest.raises(ValueError, match="namespaces= must name some of 'numpy', 'torch'"):
        padded(name="bad", namespaces=given)


def test_torch_forward_must_be_callable():
    with pytest.raises(ValueError, match="torch_forward must be callable"):
        padded(name="bad", torch_forward=3)


def test_a_torch_only_layer_without_output_has_its_output_shape_read_under_torch():
    d = Derivation(name="conv1d_inferred", shapes=CONV, forward=conv_forward, gradients=conv_gradients, dims=CONV_DIMS)
    r = run(d, examples=2)
    assert r.status == PASS, r.message
    assert r.namespace == TORCH
