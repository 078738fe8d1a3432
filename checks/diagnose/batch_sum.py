"""Broadcast parameters (biases): a gradient given per sample, or summed over the wrong axis.

A parameter p broadcast over a batch gets ∂f/∂p = Σ over the copies of ∂f/∂(copy). The per-copy
gradients are autograd's with p broadcast first (``autograd_gradients(expand=...)``); the claims are

* per copy:   analytic = the per-copy gradients (shape (N, M) or (1, M) for p: (M,)), their sum being the reference;
* per sample: analytic sums to the reference over one extra axis (p meets the batch in a product, v in X v);
* wrong axis: analytic = the per-copy gradients summed over the feature axes, or over every axis;

each within the gate's τ plus the rounding of summing the copies, on every example and at other sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose.evidence import Case, Example, on_examples, shape_text
from verigrad.checks.report import Diagnosis, Kind
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.thresholds import MATCH_RTOL, MATCH_SLACK, OBJECTIVE_FLOOR
from verigrad.reference import ForwardError, autograd_gradients, np_xp, objective

#: Exceptions a user forward may raise when a parameter is broadcast to a shape it was not written for.
_BROADCAST_ERRORS = (ForwardError, ValueError, TypeError, RuntimeError, IndexError)


def _budget(ex: Example, cand: np.ndarray) -> np.ndarray:
    """Allowed difference from a per-copy gradient: the gate's τ plus the rounding of summing the copies
    (the verdict's τ_ex for a sum of ``cand.size`` terms of size max|cand|, without autograd noise)."""
    summing = tol.exact_bound(0.0, tol.U64, int(cand.size), float(np.max(np.abs(cand), initial=0.0)))
    return MATCH_SLACK * (float(np.max(ex.tau, initial=0.0)) + summing) + MATCH_RTOL * np.abs(cand)


def _close(ex: Example, cand: np.ndarray) -> bool:
    return ex.a is not None and cand.shape == ex.a.shape and bool(np.all(np.abs(ex.a - cand) <= _budget(ex, cand)))


def per_copy(derivation: Derivation, ex: Example, param: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """∂f/∂(each broadcast copy of param) with param broadcast to ``shape``; None unless broadcasting it
    first leaves the objective, and the gradient summed over the copies, unchanged."""
    p = np.asarray(ex.point.params[param])
    if shape == p.shape:
        return None
    try:
        if np.broadcast_shapes(p.shape, shape) != shape:
            return None
    except ValueError:  # the shapes do not broadcast
        return None
    moved = {**ex.point.params, param: np.broadcast_to(p, shape).copy()}
    try:  # user code: a forward written for the parameter's own shape may fail on a broadcast one
        with np.errstate(all="ignore"):
            f0 = float(objective(derivation, np_xp, ex.point.params, ex.point.grad_output))
            f1 = float(objective(derivation, np_xp, moved, ex.point.grad_output))
        per = autograd_gradients(derivation, ex.point.params, ex.point.grad_output, expand={param: shape})[param]
    except _BROADCAST_ERRORS:
        return None
    lead = len(shape) - p.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(p.shape) if n == 1 and shape[lead + i] != 1)
    total = per.sum(axis=axes).reshape(p.shape)
    spread = np.abs(per).sum(axis=axes).reshape(p.shape)
    same_f = abs(f1 - f0) <= MATCH_SLACK * tol.U64 * max(abs(f0), OBJECTIVE_FLOOR) * np.sqrt(per.size)
    return per if same_f and bool(np.all(np.abs(total - ex.r) <= np.max(_budget(ex, per)) + MATCH_RTOL * spread)) else None


def _is_broadcast(derivation: Derivation, param: str, other: list[Example]) -> bool:
    """Whether the forward broadcasts ``param`` over a batch of more than one copy (at the other sizes)."""
    if not other:
        return False
    ex = other[0]
    p_shape = np.shape(ex.point.params[param])
    return any(per_copy(derivation, ex, param, (s, *p_shape)) is not None for s in sorted(set(ex.point.sizes.values())) if s > 1)


def _summed_wrong_axis(derivation: Derivation, param: str, exs: list[Example]) -> tuple[str, Any] | None:
    """("wrong axis", (copies, what was summed)) if the analytic is the per-copy gradients summed over the
    feature axes or over every axis, on every example. Those sums have rank ≤ 1: a gradient of higher
    rank is none of them."""
    a_shape, p_shape = exs[0].a.shape, exs[0].r.shape
    if not p_shape or len(a_shape) > 1:
        return None
    reductions = (("the feature axes instead of the batch axis 0", lambda p: p.sum(axis=tuple(range(1, p.ndim)))),
                  ("every axis, the batch and the features", lambda p: np.asarray(p.sum())))
    for s in sorted(set(exs[0].point.sizes.values())):
        pers = [per_copy(derivation, ex, param, (s, *p_shape)) for ex in exs]
        if any(p is None for p in pers):
            continue
        for label, reduce in reductions:
            if all(_close(ex, reduce(p)) for ex, p in zip(exs, pers, strict=True)):
                return "wrong axis", ((s, *p_shape), label)
    return None


def batch_relation(derivation: Derivation, param: str, exs: list[Example]) -> tuple[str, Any] | None:
    """("per copy", axes summed), ("per sample", [axis]) or ("wrong axis", (copies, what was summed)) if one holds on every example."""
    a_shape, p_shape = exs[0].a.shape, exs[0].r.shape
    pers = [per_copy(derivation, ex, param, a_shape) for ex in exs]
    if all(p is not None and _close(ex, p) for ex, p in zip(exs, pers, strict=True)):
        lead = len(a_shape) - len(p_shape)
        return "per copy", list(range(lead)) + [i for i in range(lead, len(a_shape)) if p_shape[i - lead] == 1 and a_shape[i] != 1]
    # A parameter that meets the batch in a product rather than by broadcasting (v in X v) has no
    # per-copy gradient to compare with; its per-sample gradients still sum to the reference.
    if len(a_shape) == len(p_shape) + 1:
        for ax in range(len(a_shape)):
            if a_shape[:ax] + a_shape[ax + 1 :] == p_shape and all(
                bool(np.all(np.abs(ex.a.sum(axis=ax) - ex.r) <= _budget(ex, ex.a.sum(axis=ax)))) for ex in exs
            ):
                return "per sample", [ax]
    return _summed_wrong_axis(derivation, param, exs)


def _confirmed(case: Case, found: tuple[str, Any]) -> Diagnosis | None:
    """The diagnosis of ``found`` if the example at other sizes bears it out."""
    exs, other = case.exs, case.elsewhere.examples()
    if found[0] == "per sample":
        # Claimed only where the summed axis has more than one sample at the other sizes too.
        ax = found[1][0]
        if not (other and other[0].a is not None and other[0].a.ndim == exs[0].a.ndim and other[0].a.shape[ax] > 1):
            return None
        return _batch_diagnosis(case, ("per copy", found[1]), kept=False)
    if found[0] == "per copy" and all(exs[0].a.shape[ax] == 1 for ax in found[1]) and not _is_broadcast(case.derivation, case.param, other):
        return None  # a length-1 axis broadcasts against anything: without a batch to broadcast over, it is a reshape
    kept = (found[0] == "per copy" and bool(other) and other[0].a is not None and other[0].a.shape != other[0].r.shape
            and all(exs[0].a.shape[ax] == 1 and other[0].a.shape[ax] == 1 for ax in found[1]))
    return _batch_diagnosis(case, found, kept)


def _batch_diagnosis(case: Case, found: tuple[str, Any], kept: bool) -> Diagnosis:
    param, exs = case.param, case.exs
    n, a_shape, p_shape = len(exs), exs[0].a.shape, exs[0].r.shape
    expected = f"{shape_text(case.derivation.shapes[param])} = {shape_text(p_shape)}"
    base = {"analytic_shape": list(a_shape), "expected_shape": list(p_shape)}
    how, what = found
    if how == "wrong axis":
        copies, label = what
        sentence = (f"∂f/∂{param} is summed over the wrong axis: analytic {shape_text(a_shape)} is the per-sample gradients "
                    f"{shape_text(copies)} summed over {label}; expected shape {expected}, {on_examples(n, n)}")
        return Diagnosis(Kind.MISSING_BATCH_SUM, sentence, {**base, "summed_over": label}, n, names_param=True)
    if kept:
        sentence = (f"∂f/∂{param} keeps the summed batch axis: shape {shape_text(a_shape)} instead of {expected}; sum without "
                    f"keepdims (drop axis {what[0]}), {on_examples(n, n)}")
    else:
        sentence = (f"∂f/∂{param} is not summed over the batch: it is one gradient per sample, shape {shape_text(a_shape)}, "
                    f"instead of their sum over axis {', '.join(map(str, what))}, shape {expected}, {on_examples(n, n)}")
    return Diagnosis(Kind.MISSING_BATCH_SUM, sentence, {**base, "sum_over_axes": what, "keepdims": kept}, n, names_param=True)


# --- the entry of the table -----------------------------------------------------------------------------


def missing_batch_sum(case: Case) -> Diagnosis | None:
    """A broadcast parameter's gradient given per copy, or summed over the wrong axis, here and at other
    sizes. Where the reference's own layout fits with some constant, the mistake is a factor instead."""
    if case.factor is not None:
        return None
    found = batch_relation(case.derivation, case.param, case.exs)
    if found is None or case.elsewhere.refutes(lambda other: batch_relation(case.derivation, case.param, other) is not None):
        return None
    return _confirmed(case, found)
