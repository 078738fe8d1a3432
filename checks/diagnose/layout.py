"""Layouts: the reference's numbers in another arrangement (transpose), or a shape nothing explains.

``transpose`` claims analytic = c · T(reference) for a rearrangement T: an axis permutation (the full
reversal first) followed by a C- or F-order reshape into the analytic's shape, on every example and
at other sizes. Where the reference's own layout fits with some constant, the mistake is a factor
(checks/diagnose/factor.py), not a layout. ``shape_mismatch`` is a wrong shape that no rearrangement,
per-sample form or batch sum explains.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from verigrad.checks.diagnose.evidence import Case, Example, Transform, fit, on_examples, shape_text
from verigrad.checks.report import Diagnosis, Kind
from verigrad.checks.verdict.thresholds import MAX_PERMUTED_RANK


def layouts(shape_r: tuple[int, ...], shape_a: tuple[int, ...]) -> Iterator[tuple[str, Transform]]:
    """Rearrangements of a reference-shaped array into the analytic's shape: transposes first, then reshapes."""
    size = int(np.prod(shape_r))
    if size != int(np.prod(shape_a)) or len(shape_r) > MAX_PERMUTED_RANK:
        return
    index = np.arange(size).reshape(shape_r)
    seen = {index.tobytes()} if shape_a == shape_r else set()
    rank = len(shape_r)
    perms = sorted(itertools.permutations(range(rank)), key=lambda p: p != tuple(reversed(range(rank))))
    for order in "CF":
        for perm in perms:
            moved = index.transpose(perm)
            key = moved.reshape(shape_a, order=order).tobytes()
            if key in seen:
                continue
            seen.add(key)
            label = "transposed" if moved.shape == shape_a and order == "C" else "reshaped"
            yield label, (lambda x, p=perm, o=order: np.asarray(x).transpose(p).reshape(shape_a, order=o))


def find_layout(exs: list[Example]) -> tuple[str, float] | None:
    """(label, c) of the first rearrangement T with analytic = c · T(reference), c ≠ 0, on every example."""
    for label, transform in layouts(exs[0].r.shape, exs[0].a.shape):
        c = fit(exs, transform)
        if c is not None and c != 0:
            return label, c
    return None


# --- entries of the table -------------------------------------------------------------------------------


def transpose(case: Case) -> Diagnosis | None:
    """The right numbers in the wrong layout, possibly times a constant, here and at other sizes."""
    if case.factor is not None:
        return None
    exs = case.exs
    a_shape, r_shape = exs[0].a.shape, exs[0].r.shape
    found = find_layout(exs)
    if found and case.elsewhere.refutes(lambda other: find_layout(other) is not None):
        found = None
    if not found:
        return None
    label, c = found
    times = "" if c == 1 else " and multiplied by −1" if c == -1 else f" and multiplied by {c:.6g}"
    what = "the transpose of the reference" if label == "transposed" else "the reference's entries in another order"
    sentence = (f"∂f/∂{case.param} has the right numbers in the wrong layout ({label}{times}): analytic {shape_text(a_shape)} is "
                f"{what} {shape_text(r_shape)}, {on_examples(len(exs), len(exs))}")
    details = {"layout": label, "analytic_shape": list(a_shape), "expected_shape": list(r_shape)}
    if c != 1:
        details["scale_factor"] = c
    return Diagnosis(Kind.TRANSPOSE, sentence, details, len(exs), names_param=True)


def shape_mismatch(case: Case) -> Diagnosis | None:
    """A wrong shape that the entries before it (batch sum, layout) did not explain."""
    if not case.wrong_shape:
        return None
    a_shape, r_shape = case.first.a.shape, case.first.r.shape
    sentence = (f"∂f/∂{case.param} has shape {shape_text(a_shape)}, but {case.param} has shape "
                f"{shape_text(case.derivation.shapes[case.param])} = {shape_text(r_shape)}; its numbers are no rearrangement, "
                "per-sample form or batch sum of the reference")
    details = {"analytic_shape": list(a_shape), "expected_shape": list(r_shape)}
    return Diagnosis(Kind.SHAPE_MISMATCH, sentence, details, len(case.exs), names_param=True)
