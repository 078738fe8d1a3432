"""Right values with length-1 axes too many: ``(1, D)`` or ``(D, 1)`` for a ``(D,)`` parameter.

``kept_axis`` claims that the analytic gradient is the reference with one or more length-1 axes inserted
(a sum over the batch taken with ``keepdims=True``, a column where a vector belongs), its values right:

    |a − r| ≤ MATCH_SLACK · τ + MATCH_RTOL · |r|   per live entry, a read as r's shape.

At the small sizes a search shrinks to, a batch of one looks the same: per-sample gradients (N, D) at
N = 1 are (1, D) with the values of the sum. So the claim must also hold at the example at other sizes
(every dim changed), where a gradient given per sample has N > 1 rows and is ``missing_batch_sum``
instead; the kept axes are named from that example, where the parameter's own dims are not 1. The claim
rule of the table applies: it is confirmed on the examples at the counterexample's sizes where it holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verigrad.checks.diagnose.evidence import Case, Example, on_examples, relation_holds, shape_text
from verigrad.checks.report import Diagnosis, Kind, Status
from verigrad.checks.verdict.thresholds import MATCH_SLACK


def kept_positions(a_shape: Sequence[int], r_shape: Sequence[int]) -> tuple[int, ...] | None:
    """The axes of ``a_shape`` that are length-1 axes too many: removing them leaves ``r_shape``; None if
    there are none or no such axes explain ``a_shape``. (Taking a length-1 axis for one of ``r_shape``'s
    first, where both fit, names the same shape.)"""
    if len(a_shape) <= len(r_shape):
        return None
    extra, j = [], 0
    for i, n in enumerate(a_shape):
        if j < len(r_shape) and n == r_shape[j]:
            j += 1
        elif n == 1:
            extra.append(i)
        else:
            return None
    return tuple(extra) if j == len(r_shape) else None


def with_kept(shape: Sequence[object], positions: Sequence[int]) -> tuple[object, ...]:
    """``shape`` with a 1 inserted at each of ``positions`` (axes of the result)."""
    out, rest = [], iter(shape)
    for i in range(len(shape) + len(positions)):
        out.append(1 if i in positions else next(rest))
    return tuple(out)


def values_right(ex: Example) -> bool:
    """Whether the analytic gradient of ``ex`` is its reference with length-1 axes inserted, every live entry right."""
    if ex.a is None or kept_positions(ex.a.shape, ex.r.shape) is None or not ex.live.any():
        return False
    a = ex.a.reshape(ex.r.shape)[ex.live]
    return bool(np.all(np.isfinite(a))) and relation_holds(a, ex.r[ex.live], MATCH_SLACK * ex.tau[ex.live], 1.0)


# --- the entry of the table -----------------------------------------------------------------------------


def kept_axis(case: Case) -> Diagnosis | None:
    """The right values in a shape with length-1 axes too many, here and at other sizes."""
    first = case.first
    if not case.wrong_shape or not values_right(first):
        return None
    other = case.elsewhere.examples()
    if not other or other[0].report.status == Status.PASS or not values_right(other[0]):
        return None  # without other sizes, a batch of one is not told from a kept axis
    positions = kept_positions(other[0].a.shape, other[0].r.shape)
    if with_kept(first.r.shape, positions) != first.a.shape:
        return None  # another shape at other sizes: not one slip
    k, n = sum(values_right(ex) for ex in case.exs), len(case.given)
    param, declared = case.param, case.derivation.shapes[case.param]
    axes = ("axis " if len(positions) == 1 else "axes ") + ", ".join(map(str, positions))
    sentence = (f"∂f/∂{param}: values right; shape {shape_text(with_kept(declared, positions))} where {param} has shape "
                f"{shape_text(declared)}: sum without keepdims (or drop the length-1 {axes}: {shape_text(first.a.shape)} "
                f"for {shape_text(first.r.shape)}), {on_examples(k, n)}")
    details = {"analytic_shape": list(first.a.shape), "expected_shape": list(first.r.shape), "kept_axes": list(positions)}
    return Diagnosis(Kind.KEPT_AXIS, sentence, details, k, names_param=True)
