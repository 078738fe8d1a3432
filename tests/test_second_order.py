"""Second order: a hand-derived Hessian-vector product (``hvp=``) judged per parameter, and its planted slips diagnosed.

The objectives and the slips are in tests/second_order_objectives.py: the seed's logistic-style loss, the two-layer
sigmoid network and a quadratic form with a square matrix.
"""

from functools import partial

import numpy as np
import pytest

from verigrad import Derivation, check, integers
from verigrad.checks.report import FAIL, PASS, Kind, Quantity, Witness
from verigrad.checks.verdict.thresholds import AUTOGRAD_JITTERS

from .second_order_objectives import logistic, logistic_forward, logistic_gradients, logistic_hvp, quad_hvp, quadratic, two_layer


def _products(report):
    return {g.param: g for g in report.gradients if g.quantity == Quantity.HVP}


@pytest.mark.parametrize("make", [logistic, two_layer, quadratic], ids=["logistic", "two_layer_sigmoid", "quadratic"])
def test_a_right_hessian_vector_product_passes_every_parameter(make):
    d = make()
    report = check(d, examples=4, seed=3, database=False)
    assert report.status == PASS, report.message
    hv = _products(report)
    assert set(hv) == set(d.check)
    for g in hv.values():
        assert g.status == PASS and g.witness == Witness.AUTOGRAD
        assert g.max_abs_err <= g.threshold["analytic_vs_autograd"]


@pytest.mark.parametrize(
    ("d", "wrong", "kind"),
    [
        (two_layer("no_activation_curvature", activation_curvature=False), {"W1", "b1"}, Kind.MISSING_TERM),
        (logistic("no_cross_terms", partial(logistic_hvp, cross=False)), {"w", "X"}, Kind.MISSING_TERM),
        (logistic("factor_two", partial(logistic_hvp, factor=2.0)), {"w"}, Kind.SCALE),
        (quadratic("transposed_term", transposed=True), {"x"}, Kind.ASYMMETRIC),
    ],
    ids=["missing_sigma_second_derivative", "missing_gradient_terms", "factor_2", "transposed_term"],
)
def test_a_planted_slip_is_caught_in_its_parameters_and_diagnosed(d, wrong, kind):
    report = check(d, examples=3, seed=5, database=False)
    assert report.status == FAIL
    hv = _products(report)
    assert {p for p, g in hv.items() if g.status == FAIL} == wrong
    for p in wrong:
        g = hv[p]
        assert g.blame == "analytic" and g.diagnosis is not None and g.diagnosis.kind == kind, g.diagnosis
        assert g.counterexample and "--replay" in g.counterexample["replay"]
    if kind == Kind.SCALE:
        assert hv["w"].diagnosis.details["scale_factor"] == 2.0
    if kind == Kind.ASYMMETRIC:
        assert "symmetry broken" in hv["x"].diagnosis.sentence and "∂²f/∂x∂A" in hv["x"].diagnosis.sentence


def test_a_block_applied_to_the_transposed_direction_is_a_transpose():
    slip = lambda v, A, x: {**quad_hvp(v, A, x), "A": quad_hvp(v, A, x)["A"] - v["A"] + v["A"].T}
    d = Derivation(
        name="quad_vT",
        shapes={"A": ("D", "D"), "x": ("D",)},
        forward=quadratic().forward,
        gradients=quadratic().gradients,
        hvp=slip,
        dims={"D": (2, 5)},
    )
    g = _products(check(d, examples=2, seed=1, database=False))["A"]
    # ∂²f/∂A∂A is the identity here: applied to v_Aᵀ and transposed after are the same slip
    assert g.status == FAIL and g.diagnosis.kind == Kind.TRANSPOSE and "∂²f/∂A∂A" in g.diagnosis.sentence


def _numpy_only(name, hvp):
    def forward(xp, X, w, y):
        out = np.zeros(1)  # a buffer written in place: NumPy only, no autograd
        out[0] = np.sum(np.log1p(np.exp(-y * (X @ w))))
        return out[0]

    return logistic(name, hvp, forward=forward, namespaces=("numpy",))


def test_a_numpy_only_forward_is_judged_by_the_differences_of_its_gradients():
    right = check(_numpy_only("np_right", logistic_hvp), examples=3, seed=2, database=False)
    assert right.status == PASS
    assert all(g.witness == Witness.FINITE_DIFFERENCES for g in _products(right).values())
    wrong = check(_numpy_only("np_wrong", partial(logistic_hvp, factor=2.0)), examples=3, seed=2, database=False)
    g = _products(wrong)["w"]
    assert g.status == FAIL and g.witness == Witness.FINITE_DIFFERENCES and g.diagnosis.kind == Kind.SCALE


def test_wrong_gradients_leave_hv_to_autograds_gradient_and_say_so():
    d = Derivation(
        name="lg_bad_grad",
        shapes={"X": ("N", "D"), "w": ("D",), "y": ("N",)},
        forward=logistic_forward,
        gradients=lambda X, w, y: {**logistic_gradients(X, w, y), "w": 2 * logistic_gradients(X, w, y)["w"]},
        check=["w", "X"],
        hvp=logistic_hvp,
    )
    report = check(d, examples=2, seed=0, database=False)
    assert report.status == FAIL
    hv = _products(report)
    assert all(g.status == PASS for g in hv.values())
    assert any("differences of autograd's gradient" in w for g in hv.values() for w in g.warnings)


def test_a_point_a_replay_and_the_json_carry_the_products():
    d = logistic("factor_two_at", partial(logistic_hvp, factor=2.0))
    rng = np.random.default_rng(0)
    at = {"X": rng.standard_normal((3, 2)), "w": rng.standard_normal(2), "y": rng.standard_normal(3)}
    report = check(d, at=at)
    g = _products(report)["w"]
    assert g.status == FAIL and g.to_dict()["quantity"] == "hvp" and g.title == "(H·v)_w"
    searched = _products(check(d, examples=2, seed=9, database=False))["w"]
    sizes, seed = searched.counterexample["shapes"], searched.counterexample["seed"]
    again = _products(check(d, replay=(sizes, seed)))["w"]
    assert again.status == FAIL and again.max_abs_err == searched.max_abs_err


def test_an_hvp_that_raises_fails_with_the_exception():
    d = Derivation(
        name="lg_raises",
        shapes={"X": ("N", "D"), "w": ("D",), "y": ("N",)},
        forward=logistic_forward,
        gradients=logistic_gradients,
        check=["w"],
        hvp=lambda v, X, w, y: {"w": v["nope"]},
    )
    g = _products(check(d, examples=1, seed=0, database=False))["w"]
    assert g.status == FAIL and g.raised.startswith("KeyError")


def test_malformed_hvp_and_jvp_are_refused_where_the_derivation_is_built():
    base = {"name": "q", "shapes": {"x": ("N",)}, "forward": lambda xp, x: xp.sum(x**3)}
    with pytest.raises(ValueError, match=r"derivation 'q': hvp cannot take the argument\(s\) x; write hvp\(v, x\)"):
        Derivation(**base, gradients=lambda x: {"x": 3 * x**2}, hvp=lambda v, y: {})
    with pytest.raises(ValueError, match="jvp must be callable"):
        Derivation(**base, gradients=lambda x: {"x": 3 * x**2}, jvp=3)
    with pytest.raises(ValueError, match=r"hvp= is checked for derivations of plain array parameters; this one has seed=True"):
        Derivation(
            **{**base, "forward": lambda xp, x, seed: xp.sum(x**3)}, gradients=lambda x, seed: {"x": 3 * x**2}, seed=True, hvp=lambda v, x, seed: {}
        )
    with pytest.raises(ValueError, match=r"hvp cannot take the argument\(s\) k; write hvp\(v, x, k\)"):
        cubic = {**base, "forward": lambda xp, x, k: xp.sum(x**3)}
        Derivation(**cubic, gradients=lambda x, k: {"x": 3 * x**2}, hyper={"k": [1]}, hvp=lambda v, x: {})


def _labelled_logistic(name, hvp=None, jvp=None):
    """Logistic regression with labels as data and an L2 penalty as a hyperparameter, over w (X held fixed)::

    s = 2y − 1,  m = s ⊙ (X w),  f = Σ log(1 + e^−m) + λ/2 ‖w‖²     X:(N, D), w:(D,), y ∈ {0, 1}^N
    ∂f/∂w = Xᵀ (s ⊙ ℓ'(m)) + λ w,   (H·v)_w = Xᵀ (ℓ''(m) ⊙ X v) + λ v   (s² = 1),   J·v = ⟨∂f/∂w, v⟩
    """

    def forward(xp, X, w, y, lam):
        return xp.sum(xp.log(1.0 + xp.exp(-(2.0 * y - 1.0) * (X @ w)))) + 0.5 * lam * xp.sum(w * w)

    def gradients(X, w, y, lam):
        s = 2.0 * y - 1.0
        return {"w": X.T @ (s * -(1.0 / (1.0 + np.exp(s * (X @ w))))) + lam * w}

    return Derivation(
        name=name,
        shapes={"X": ("N", "D"), "w": ("D",)},
        data={"y": integers(0, 2, shape=("N",))},
        hyper={"lam": [0.5, 2.0]},
        forward=forward,
        gradients=gradients,
        check=["w"],
        hvp=hvp,
        jvp=jvp,
        dims={"N": (2, 6), "D": (1, 4)},
    )


def _labelled_hvp(v, X, w, y, lam, *, penalty=True):
    m = (2.0 * y - 1.0) * (X @ w)
    lpp = 1.0 / ((1.0 + np.exp(m)) * (1.0 + np.exp(-m)))
    return {"w": X.T @ (lpp * (X @ v["w"])) + (lam * v["w"] if penalty else 0.0)}


def _labelled_jvp(v, X, w, y, lam, *, k=1.0):
    return k * float(np.sum(_labelled_logistic("g").gradients(X=X, w=w, y=y, lam=lam)["w"] * v["w"]))


def test_hvp_and_jvp_take_data_and_hyperparameters_by_name_as_the_gradients_do():
    report = check(_labelled_logistic("labelled_logistic", _labelled_hvp, _labelled_jvp), examples=4, seed=2, database=False)
    assert report.status == PASS, report.message
    products = [g for g in report.gradients if g.quantity in (Quantity.HVP, Quantity.JVP)]
    assert {g.quantity for g in products} == {Quantity.HVP, Quantity.JVP} and all(g.status == PASS for g in products)


def test_an_hvp_that_forgets_the_hyperparameters_term_is_caught():
    report = check(_labelled_logistic("labelled_no_penalty", partial(_labelled_hvp, penalty=False)), examples=4, seed=2, database=False)
    g = _products(report)["w"]
    assert report.status == FAIL and g.status == FAIL and g.blame == "analytic"
    lam = g.counterexample["hyper"]["lam"]
    assert lam in (0.5, 2.0) and f"lam={lam}" in g.counterexample["replay"] and "y=[" in g.counterexample["replay"]


def test_an_hvp_of_the_wrong_shape_is_refused_as_a_gradient_would_be():
    wrong = lambda v, X, w, y: {**logistic_hvp(v, X, w, y), "w": logistic_hvp(v, X, w, y)["w"][:, None]}
    g = _products(check(logistic("lg_shape", wrong), examples=1, seed=0, database=False))["w"]
    assert g.status == FAIL and g.problem == "shape" and "has shape" in g.message


def test_a_diagnosis_that_cannot_call_the_hvp_again_keeps_the_verdict():
    calls = []

    def flaky(v, X, w, y):  # right at the first direction only, then raises
        calls.append(1)
        if len(calls) > 1 + AUTOGRAD_JITTERS:  # the verdict's own calls: the product and σ's jitters
            raise RuntimeError("only once")
        return logistic_hvp(v, X, w, y, factor=2.0)

    rng = np.random.default_rng(1)
    at = {"X": rng.standard_normal((3, 2)), "w": rng.standard_normal(2), "y": rng.standard_normal(3)}
    g = _products(check(logistic("lg_flaky", flaky), at=at))["w"]
    assert g.status == FAIL and g.diagnosis.kind == Kind.UNKNOWN and "could not be made (RuntimeError: only once)" in g.diagnosis.sentence


def test_a_layers_hvp_takes_the_upstream_gradient():
    """f = ⟨G, tanh(X W)⟩ over W: (H·v)_W = Xᵀ (G ⊙ tanh''(h) ⊙ X v_W), tanh'' = −2 t (1 − t²)."""

    def gradients(X, W, grad_output):
        t = np.tanh(X @ W)
        return {"X": (grad_output * (1 - t * t)) @ W.T, "W": X.T @ (grad_output * (1 - t * t))}

    def hvp(v, X, W, grad_output, k=-2.0):
        t = np.tanh(X @ W)
        return {"W": X.T @ (grad_output * k * t * (1 - t * t) * (X @ v["W"]))}

    make = lambda name, h: Derivation(
        name=name,
        shapes={"X": ("N", "D"), "W": ("D", "M")},
        output=("N", "M"),
        forward=lambda xp, X, W: xp.tanh(X @ W),
        gradients=gradients,
        check=["W"],
        hvp=h,
    )
    assert _products(check(make("tanh_layer_hvp", hvp), examples=3, seed=0, database=False))["W"].status == PASS
    g = _products(check(make("tanh_layer_hvp_slip", partial(hvp, k=2.0)), examples=3, seed=0, database=False))["W"]
    assert g.status == FAIL and g.diagnosis.kind == Kind.SIGN_FLIP


def test_products_with_data_and_hyperparameters_are_judged_at_a_given_point():
    rng = np.random.default_rng(0)
    at = {"X": rng.standard_normal((4, 3)), "w": rng.standard_normal(3), "y": np.array([0, 1, 1, 0]), "lam": 2.0}
    right = check(_labelled_logistic("labelled_at", _labelled_hvp, _labelled_jvp), at=at)
    assert right.status == PASS, right.message
    slips = check(_labelled_logistic("labelled_at_slips", partial(_labelled_hvp, penalty=False), partial(_labelled_jvp, k=2.0)), at=at)
    assert {g.quantity for g in slips.gradients if g.status == FAIL} == {Quantity.HVP, Quantity.JVP}
