"""Say what kind of mistake a failing gradient shows, as a claim about the derivation.

``diagnose`` receives the counterexample and further examples at the same sizes. A kind is claimed only
when it holds on a clear majority of the examples it was tried on, including those where the gradient
happens to agree: at least CLAIM_MAJORITY (4 of 5, checks/verdict/thresholds.py; ``evidence.needed``), applied
here only. ``confirmed_on`` counts the examples that support the claim and ``tried_on``
those it was tried on; a kind below the rule is not claimed and the table goes on, so that ``unknown``
can say what held on too few. The entries of ``TABLE`` are tried in this order, first match wins:

* ``raised``            the gradient function raised;
* ``kept_axis``         the values right, in a shape with length-1 axes too many (``(1, D)`` or ``(D, 1)`` for
                        ``(D,)``: a sum with keepdims), here and at other sizes (where a batch of one is not 1);
* ``missing_batch_sum`` a broadcast parameter's gradient given per copy (``(N, M)`` or ``(1, M)`` for
                        ``(M,)``), or summed over the wrong axis; recognised by differentiating the forward
                        with the parameter broadcast first (``autograd_gradients(expand=...)``);
* ``missing_sum``       a sum over other axes missing too: the analytic, summed over its extra axes, is the
                        reference (a conv bias's gradient kept per pixel, (C, H, W) for (C,));
* ``transpose``         the reference's numbers in another layout (transposed or reshaped), possibly
                        times a constant;
* ``shape_mismatch``    a wrong shape that nothing above explains;
* ``sign_flip``         analytic = −1 × reference;
* ``scale``             analytic = c × reference for one constant c ≠ ±1, named as a simple form of the
                        sizes (2, 1/2, 1/N, N·D, ...) when one fits, confirmed at a second set of sizes;
* ``jacobian_diagonal`` a layer's gradient with only the Jacobian's diagonal terms G_i · ∂out_i/∂x_i
                        (softmax backward as G ⊙ p(1 − p));
* ``subsample``         one term of a block sum per entry, each output a copy of one input (upsampling backward);
* ``assignment``        one term per entry where overlapping windows must accumulate (= where += belongs);
* ``truncation``        right for every size of one dim below the counterexample's, wrong there and beyond
                        (backprop through time cut after K steps): the length is named;
* ``partial``           right on some entries, wrong on others; the pattern names a declared kink switch
                        (``derivation.kinks``: wrong exactly where it is ≤ 0, say), fixed rows, columns or
                        entries, or whole rows/columns;
* ``unknown``           none of these; the sentence says what was ruled out.

Three findings on the way are ``unknown`` with a reason: no numbers to compare (the verdict's message),
analytic = 0 × reference (reason "zero") and analytic = 1 × reference within MATCH_SLACK × τ but not
within τ (reason "precision"). Where the reference's own layout fits with a constant, that constant
decides (a factor, or one of those two findings), so ``missing_batch_sum`` and ``transpose`` decline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from verigrad.analytic import Derivation
from verigrad.checks.diagnose import axis_sum, batch_sum, factor, jacobian, kept_axis, layout, partial, raised, truncation, unknown
from verigrad.checks.diagnose.evidence import Case, examples, needed
from verigrad.checks.report import Diagnosis, Kind, Point, Report


class Entry(NamedTuple):
    """One row of the table: the kind it claims, and the claim (a Diagnosis of that kind, or None)."""

    kind: Kind
    claim: Callable[[Case], Diagnosis | None]


#: The kinds in the order they are tried; the last entry always answers.
TABLE: tuple[Entry, ...] = (
    Entry(Kind.RAISED, raised.raised),
    Entry(Kind.UNKNOWN, raised.not_comparable),
    Entry(Kind.KEPT_AXIS, kept_axis.kept_axis),
    Entry(Kind.MISSING_BATCH_SUM, batch_sum.missing_batch_sum),
    Entry(Kind.MISSING_SUM, axis_sum.missing_sum),
    Entry(Kind.TRANSPOSE, layout.transpose),
    Entry(Kind.SHAPE_MISMATCH, layout.shape_mismatch),
    Entry(Kind.SIGN_FLIP, factor.sign_flip),
    Entry(Kind.UNKNOWN, factor.zero),
    Entry(Kind.UNKNOWN, factor.precision),
    Entry(Kind.SCALE, factor.scale),
    Entry(Kind.JACOBIAN_DIAGONAL, jacobian.jacobian_diagonal),
    Entry(Kind.SUBSAMPLE, jacobian.subsample),
    Entry(Kind.ASSIGNMENT, jacobian.assignment),
    Entry(Kind.TRUNCATION, truncation.truncation),
    Entry(Kind.PARTIAL, partial.partial),
    Entry(Kind.UNKNOWN, unknown.unknown),
)


def diagnose(derivation: Derivation, param: str, evidence: Sequence[tuple[Point, Report]]) -> Diagnosis:
    """What kind of mistake ∂f/∂``param`` shows on ``evidence`` = [(counterexample point, report), more at its sizes].
    A kind that holds on fewer examples than the claim rule needs is not claimed; it is set aside in
    ``case.unconfirmed`` and the table goes on (the last entry, ``unknown``, names it)."""
    given = examples(derivation, param, evidence)
    if not given:
        return Diagnosis(Kind.UNKNOWN, f"∂f/∂{param}: no example to diagnose from", {}, 0)
    case = Case(derivation, param, given)
    for entry in TABLE:
        found = entry.claim(case)
        if found is None:
            continue
        if found.kind == Kind.UNKNOWN:
            return found
        if found.confirmed_on >= needed(len(given)):
            found.details["tried_on"] = len(given)
            return found
        case.unconfirmed.append(found)
    raise AssertionError("the table's last entry always answers")
