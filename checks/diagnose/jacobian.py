"""One term where a sum of terms belongs: a layer's gradient is ∂f/∂x_i = Σ_o G_o · ∂out_o/∂x_i, and a
backward that keeps only one term per entry is a slip of its own kind.

The terms T[o, i] = G_o · J[o, i] come from the layer's Jacobian J = ∂out/∂param, one row per output entry
(a one-hot grad_output), at the small sizes of a counterexample (MAX_JACOBIAN_OUTPUTS): by autograd, or by
central differences where the forward runs under NumPy only (its other witness).
On every example the claim is tested per entry within MATCH_SLACK · τ:

* ``jacobian_diagonal``  analytic_i = T[i, i] (output and parameter of one shape): only the Jacobian's
                         diagonal, as a softmax backward written G ⊙ p(1 − p);
* ``subsample``          analytic_i = T[o, i] for one o of the block of outputs copied from x_i, where each
                         output is a copy of one input, the same input on every example (J has one nonzero
                         per row, in the same place): the backward of an upsampling that takes one entry per
                         block where the block's sum belongs;
* ``assignment``         analytic_i = T[o, i] for one o, where outputs read several inputs (overlapping
                         windows), or pick one input of a window by its value (a max-pool: J's nonzeros move
                         from example to example): a backward loop that assigns (=) where it must accumulate (+=).

Entries with a single term are right by any of these and must be right. Layers only: a scalar objective has
no output entries to take terms over.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from verigrad.checks.diagnose.evidence import Case, Example, on_examples
from verigrad.checks.report import Diagnosis, Kind
from verigrad.checks.verdict.thresholds import MATCH_RTOL, MATCH_SLACK, MAX_JACOBIAN_OUTPUTS
from verigrad.reference import TORCH, ForwardError, autograd_gradients, finite_differences, namespaces, seeded_at


class Terms(NamedTuple):
    """The terms of one example's gradient: T[o, i] (output entries × parameter entries), flattened."""

    t: np.ndarray
    jacobian: np.ndarray


def terms(case: Case, ex: Example) -> Terms | None:
    """T[o, i] = G_o · ∂out_o/∂param_i at ``ex``'s point, or None (not a layer, too many outputs, autograd failed)."""
    g = ex.point.grad_output
    if g is None or np.size(g) > MAX_JACOBIAN_OUTPUTS:
        return None
    g = np.asarray(g, dtype=np.float64)
    rows = []
    with seeded_at(ex.point.seed):  # the global generators as the verdict at the point had them
        autograd = TORCH in namespaces(case.derivation, ex.point.params, g)
        for o in range(g.size):
            onehot = np.zeros(g.size)
            onehot[o] = 1.0
            try:  # user code: the forward, differentiated once per output entry
                rows.append(_row(case, ex, onehot.reshape(g.shape), autograd).ravel())
            except (ForwardError, ValueError, TypeError, RuntimeError):
                return None
    jac = np.array(rows)
    return Terms(g.ravel()[:, None] * jac, jac)


def _row(case: Case, ex: Example, onehot: np.ndarray, autograd: bool) -> np.ndarray:
    """∂out_o/∂param for the output entry ``onehot`` selects: autograd's, or central differences at step h alone
    (exact where the layer is linear or piecewise linear within a step; an entry that no output reads gets 0)."""
    if autograd:
        return np.asarray(autograd_gradients(case.derivation, ex.point.params, onehot)[case.param])
    at_h = lambda name, est: np.zeros(est.value.shape, dtype=bool)
    return finite_differences(case.derivation, ex.point.params, onehot, check=[case.param], refine=at_h).gradients[case.param].value


def close(ex: Example, t: np.ndarray) -> np.ndarray:
    """Per flattened entry: whether the analytic is within MATCH_SLACK · τ (and MATCH_RTOL) of ``t``."""
    a, tau = ex.a.ravel(), ex.tau.ravel()
    return np.abs(a - t) <= MATCH_SLACK * tau + MATCH_RTOL * np.abs(t)


def one_term(ex: Example, tm: Terms, diagonal: bool) -> bool:
    """Whether every live entry is one of its terms (the diagonal one if ``diagonal``), and not every entry is
    right: some entry has more than one term and is wrong."""
    live, many = ex.live.ravel(), (tm.jacobian != 0).sum(axis=0) > 1
    if diagonal:
        if np.shape(ex.point.grad_output) != ex.r.shape:  # output entry i pairs with parameter entry i only in one shape
            return False
        kept = close(ex, np.diagonal(tm.t))
    else:
        kept = np.any([close(ex, row) for row in tm.t], axis=0) | ~np.any(tm.jacobian != 0, axis=0) & close(ex, 0 * ex.r.ravel())
    right = close(ex, ex.r.ravel())
    return bool(np.all(kept | ~live) and np.all(right | many | ~live))


def supported(case: Case, diagonal: bool) -> tuple[int, list[Terms]] | None:
    """(examples the one-term relation holds on, their terms), or None where the terms cannot be had or the
    counterexample does not fit."""
    exs = case.exs
    if case.wrong_shape or not case.derivation.is_layer:
        return None
    if "terms" not in case.memo:  # the diagonal and the one-term entries share them
        case.memo["terms"] = [terms(case, ex) for ex in exs]
    tms = case.memo["terms"]
    if tms[0] is None or not one_term(exs[0], tms[0], diagonal):
        return None
    return sum(tm is not None and one_term(ex, tm, diagonal) for ex, tm in zip(exs, tms, strict=True)), [tm for tm in tms if tm is not None]


# --- entries of the table -------------------------------------------------------------------------------


def jacobian_diagonal(case: Case) -> Diagnosis | None:
    """analytic_i = G_i · ∂out_i/∂x_i: only the Jacobian's diagonal, its off-diagonal terms dropped."""
    found = supported(case, diagonal=True)
    if found is None:
        return None
    support, m = found[0], len(case.exs)
    sentence = (f"∂f/∂{case.param} keeps only the diagonal of the Jacobian: analytic_i = G_i · ∂out_i/∂{case.param}_i, the "
                f"terms G_o · ∂out_o/∂{case.param}_i of the other outputs o dropped (as softmax's p(1 − p) for diag(p) − p pᵀ), "
                f"{on_examples(support, m)}")
    return Diagnosis(Kind.JACOBIAN_DIAGONAL, sentence, {}, support, names_param=True)


def _one_of_many(case: Case) -> tuple[int, int, bool] | None:
    """(examples it holds on, most terms of an entry, whether each output copies one input, the same on every
    example) where analytic_i is one term G_o · ∂out_o/∂x_i of several; None where it is not."""
    if "one_of_many" not in case.memo:
        found = supported(case, diagonal=False)
        if found is None:
            case.memo["one_of_many"] = None
        else:
            jacs = [tm.jacobian != 0 for tm in found[1]]
            copies = all(np.array_equal(j, jacs[0]) for j in jacs) and bool(np.all(jacs[0].sum(axis=1) <= 1))
            case.memo["one_of_many"] = (found[0], int(jacs[0].sum(axis=0).max()), copies)
    return case.memo["one_of_many"]


def subsample(case: Case) -> Diagnosis | None:
    """One term per entry where each output copies one input: one entry of each block where its sum belongs."""
    found = _one_of_many(case)
    if found is None or not found[2]:
        return None
    support, k, _ = found
    sentence = (f"∂f/∂{case.param} takes one entry per block where the block's sum belongs: each entry feeds a block of up to "
                f"{k} outputs and the analytic keeps the gradient of one of them, {on_examples(support, len(case.exs))}")
    return Diagnosis(Kind.SUBSAMPLE, sentence, {"block": k}, support, names_param=True)


def assignment(case: Case) -> Diagnosis | None:
    """One term per entry where outputs read several inputs: assigned (=) where overlapping windows accumulate (+=)."""
    found = _one_of_many(case)
    if found is None or found[2]:
        return None
    support, k, _ = found
    sentence = (f"∂f/∂{case.param} is assigned where it must be accumulated: each entry is read by up to {k} overlapping "
                f"windows and the analytic keeps one window's gradient instead of their sum (= where += belongs), "
                f"{on_examples(support, len(case.exs))}")
    return Diagnosis(Kind.ASSIGNMENT, sentence, {"windows": k}, support, names_param=True)
