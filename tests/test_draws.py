"""Parameters drawn through a transform (Derivation(draws=...)): forward and gradients see a point of the
constrained set, the witnesses differentiate with respect to the unconstrained draw z, and the user's
∂f/∂T(z) is carried to z by the transform's VJP, so right gradients pass and wrong ones fail without the
user writing the chain rule through the transform."""

import numpy as np
import pytest
import torch

from verigrad import Derivation, DerivationError, check, orthogonal, positive, simplex, spd
from verigrad.analytic import Draw
from verigrad.checks.report import FAIL, PASS

SQUARE = {"S": ("n", "n"), "G": ("n", "n")}


def chol_forward(xp, S, G):
    return xp.sum(G * xp.linalg.cholesky(S))


def chol_gradients(S, G, halve_diagonal=True):
    """S̄ = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹, symmetrised, with L̄ = G and Φ the lower triangle with its diagonal halved."""
    L = np.linalg.cholesky(S)
    phi = np.tril(L.T @ G)
    if halve_diagonal:
        phi[np.diag_indices_from(phi)] *= 0.5
    s_bar = np.linalg.solve(L.T, np.linalg.solve(L.T, phi.T).T)
    return {"S": 0.5 * (s_bar + s_bar.T), "G": L}


def cholesky(name, **kw):
    grads = lambda S, G: chol_gradients(S, G, **kw)
    return Derivation(name=name, shapes=SQUARE, draws={"S": spd()}, forward=chol_forward, gradients=grads, dims={"n": (1, 5)})


def test_a_right_cholesky_backward_passes_on_spd_draws():
    assert check(cholesky("chol"), examples=20, seed=0, database=False).status == PASS


def test_a_cholesky_backward_without_the_halved_diagonal_fails_on_that_gradient():
    r = check(cholesky("chol_full_diagonal", halve_diagonal=False), examples=20, seed=0, database=False)
    assert r.status == FAIL
    assert {g.param: g.status for g in r.gradients} == {"S": FAIL, "G": PASS}


def _seen(draw, shape):
    """The values the forward is handed for a parameter drawn through ``draw``."""
    seen = []

    def forward(xp, P):
        seen.append(np.asarray(P, dtype=np.float64).copy())
        return xp.sum(P * P)

    d = Derivation(name=f"seen_{draw.kind}", shapes={"P": shape}, draws={"P": draw}, forward=forward, gradients=lambda P: {"P": 2 * P})
    rng = np.random.default_rng(0)
    sizes = {"n": 4, "m": 3}
    z = rng.standard_normal(tuple(sizes[s] for s in shape))
    check(d, at={"P": z})
    return z, [v for v in seen if v.shape == z.shape and v.ndim == z.ndim and not np.array_equal(v, z)]


@pytest.mark.parametrize(
    "draw, shape, inside",
    [
        (positive(), ("n", "m"), lambda P: np.all(P > 0)),
        (simplex(), ("n", "m"), lambda P: np.all(P > 0) and np.allclose(P.sum(axis=-1), 1)),
        (spd(), ("n", "n"), lambda P: np.allclose(P, P.T) and np.all(np.linalg.eigvalsh(P) > 0)),
        (orthogonal(), ("n", "n"), lambda P: np.allclose(P.T @ P, np.eye(len(P)))),
    ],
    ids=lambda v: getattr(v, "kind", None),
)
def test_the_forward_sees_points_of_the_constrained_set(draw, shape, inside):
    _, seen = _seen(draw, shape)
    assert seen and all(inside(P) for P in seen)


@pytest.mark.parametrize("draw", [positive(), simplex(), spd(0.5), orthogonal()], ids=lambda d: d.kind)
def test_a_right_gradient_of_the_transformed_value_passes_and_a_wrong_one_fails(draw):
    def forward(xp, P, A):
        return xp.sum(A * P) + xp.sum(P * P * P)

    right = lambda P, A: {"P": A + 3 * P * P, "A": P}
    wrong = lambda P, A: {"P": A + 2 * P * P, "A": P}  # the factor of the cube's derivative
    shapes = {"P": ("n", "n"), "A": ("n", "n")}
    ok = Derivation(name=f"t_{draw.kind}", shapes=shapes, draws={"P": draw}, forward=forward, gradients=right, dims={"n": (1, 4)})
    bad = Derivation(name=f"w_{draw.kind}", shapes=shapes, draws={"P": draw}, forward=forward, gradients=wrong, dims={"n": (1, 4)})
    assert check(ok, examples=15, seed=1, database=False).status == PASS
    r = check(bad, examples=15, seed=1, database=False)
    assert {g.param: g.status for g in r.gradients}["P"] == FAIL


@pytest.mark.parametrize("draw", [positive(), simplex(), spd(), orthogonal()], ids=lambda d: d.kind)
def test_the_carried_gradient_is_the_chain_rule_through_the_transform(draw):
    """⟨G, T(z + t·v)⟩ differentiated at t = 0 by central differences equals ⟨VJP(G), v⟩."""
    from verigrad.analytic._draws import carried_gradient  # the harness's own transform, checked here

    rng = np.random.default_rng(3)
    z, g, v = (rng.standard_normal((4, 4)) for _ in range(3))
    zt = torch.tensor(z)
    f = lambda t: float(torch.sum(torch.tensor(g) * draw.apply(_torch_xp(), zt + t * torch.tensor(v))))
    h = 1e-5
    assert np.isclose((f(h) - f(-h)) / (2 * h), float(np.sum(carried_gradient(draw, z, g) * v)), rtol=1e-6, atol=1e-8)


def _torch_xp():
    import array_api_compat.torch as torch_xp

    return torch_xp


def test_the_report_says_the_parameter_is_drawn_through_its_transform():
    assert "S = z·zᵀ + 1·I" in cholesky("chol_doc").doc


@pytest.mark.parametrize(
    "draws, words",
    [
        ({"S": spd()}, "needs a square matrix"),
        ({"T": positive()}, "not a parameter"),
        ({"X": "positive"}, r"use positive\(\), spd\(\), simplex\(\) or orthogonal\(\)"),
    ],
)
def test_a_bad_declaration_is_one_line_naming_the_derivation(draws, words):
    with pytest.raises(DerivationError, match=words) as e:
        shapes = {"S": ("n", "m"), "X": ("n",)}
        Derivation(name="bad_draws", shapes=shapes, draws=draws, forward=lambda xp, S, X: xp.sum(S), gradients=lambda S, X: {})
    assert "bad_draws" in str(e.value) and "\n" not in str(e.value)


def test_a_parameter_in_both_draws_and_ranges_is_refused():
    with pytest.raises(DerivationError, match="both draws= and ranges="):
        forward, gradients = lambda xp, w: xp.sum(w), lambda w: {"w": 1 + 0 * w}
        Derivation(name="both", shapes={"w": ("n",)}, draws={"w": positive()}, ranges={"w": (0.1, 1)}, forward=forward, gradients=gradients)


def test_spd_refuses_a_shift_that_is_not_positive():
    with pytest.raises(ValueError, match="eps must be > 0"):
        spd(0.0)
    assert isinstance(spd(), Draw)
