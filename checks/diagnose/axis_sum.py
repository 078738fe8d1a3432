"""A sum over some axes missing: the analytic gradient has extra axes, and summed over them it is the reference.

A conv bias b:(C,) added at every pixel of X:(N, C, H, W) has ∂f/∂b = Σ over n, h, w of G; written as
``G.sum(axis=0)`` it keeps the spatial axes, shape (C, H, W). ``missing_sum`` claims

    Σ over the extra axes A of analytic = reference   (the kept axes, in order, having the reference's shape)

within the gate's τ plus the rounding of the sum, on the counterexample and at other sizes (where the dims
differ, so that one set of axes is told from another); ``confirmed_on`` counts the examples it holds on.
Summing over the leading axis alone is a gradient per sample, ``missing_batch_sum``'s claim
(checks/diagnose/batch_sum.py), which comes first in the table; the extra axes are named by the dims whose
size they have where that size is one dim's only.
"""

from __future__ import annotations

import itertools

import numpy as np

from verigrad.checks.diagnose.evidence import Case, Example, on_examples, shape_text
from verigrad.checks.report import Diagnosis, Kind, Status
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.thresholds import MATCH_RTOL, MATCH_SLACK


def sums_to_reference(ex: Example, axes: tuple[int, ...]) -> bool:
    """Whether the analytic gradient summed over ``axes`` is the reference, within τ plus the sum's rounding."""
    if ex.a is None or not np.all(np.isfinite(ex.a)):
        return False
    total, spread = ex.a.sum(axis=axes), np.abs(ex.a).sum(axis=axes)
    if total.shape != ex.r.shape:
        return False
    rounding = tol.exact_bound(0.0, tol.U64, int(ex.a.size), float(np.max(spread, initial=0.0)))
    budget = MATCH_SLACK * (ex.tau + rounding) + MATCH_RTOL * np.abs(ex.r)
    return bool(np.all((np.abs(total - ex.r) <= budget) | ~ex.live))


def candidate_axes(a_shape: tuple[int, ...], r_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Sets of axes of ``a_shape`` whose removal leaves ``r_shape`` (the kept axes in order)."""
    out = []
    for keep in itertools.combinations(range(len(a_shape)), len(r_shape)):
        if tuple(a_shape[k] for k in keep) == r_shape:
            out.append(tuple(k for k in range(len(a_shape)) if k not in keep))
    return [axes for axes in out if axes]


def best_axes(case: Case) -> tuple[tuple[int, ...], int] | None:
    """(axes, examples it holds on) of the candidate that holds on the counterexample, at the other sizes (where
    the dims differ, so only one candidate can hold there) and on the most examples; None if none does."""
    exs = case.exs
    cands = [axes for axes in candidate_axes(exs[0].a.shape, exs[0].r.shape) if sums_to_reference(exs[0], axes)]
    other = [o for o in case.elsewhere.examples() if o.a is not None]
    if other and other[0].report.status != Status.PASS:
        cands = [axes for axes in cands if sums_to_reference(other[0], axes)]
    scored = [(axes, sum(sums_to_reference(ex, axes) for ex in exs)) for axes in cands]
    return max(scored, key=lambda found: found[1], default=None)


def axis_names(case: Case, axes: tuple[int, ...]) -> list[str]:
    """The dim each summed axis has the size of, where that size is one dim's only (else "axis k"); read at the
    other sizes where the analytic has the same rank there (the counterexample's dims are often all 1)."""
    ex = next((o for o in case.elsewhere.examples() if o.a is not None and o.a.ndim == case.first.a.ndim), case.first)
    names = []
    for k in axes:
        dims = [d for d, v in ex.point.sizes.items() if v == ex.a.shape[k]]
        names.append(dims[0] if len(dims) == 1 else f"axis {k}")
    return names


# --- the entry of the table -----------------------------------------------------------------------------


def missing_sum(case: Case) -> Diagnosis | None:
    """The analytic gradient, summed over some extra axes (not the leading axis alone), is the reference."""
    if case.factor is not None or not case.wrong_shape:
        return None
    exs = case.exs
    found = best_axes(case)
    if found is None or found[0] == (0,):
        return None
    axes, support = found
    a_shape, r_shape = exs[0].a.shape, exs[0].r.shape
    names = axis_names(case, axes)
    which, them = (f"axes {', '.join(map(str, axes))}", "them") if len(axes) > 1 else (f"axis {axes[0]}", "it")
    expected = f"{shape_text(case.derivation.shapes[case.param])} = {shape_text(r_shape)}"
    sentence = (f"∂f/∂{case.param} is missing a sum over {which} ({', '.join(names)}): analytic {shape_text(a_shape)} "
                f"summed over {them} is the reference {expected}, {on_examples(support, len(exs))}")
    details = {"analytic_shape": list(a_shape), "expected_shape": list(r_shape), "sum_over_axes": list(axes), "sum_over": names}
    return Diagnosis(Kind.MISSING_SUM, sentence, details, support, names_param=True)
