"""Say what kind of mistake a failing gradient shows, as a claim about the derivation.

``diagnose`` receives the counterexample and further examples at the same sizes. A kind is claimed only
when its relation holds on every usable example, including those where the gradient happens to agree;
``confirmed_on`` counts the examples that support it. The entries of ``TABLE`` are tried in this order,
first match wins:

* ``raised``            the gradient function raised;
* ``missing_batch_sum`` a broadcast parameter's gradient given per copy (``(N, M)`` or ``(1, M)`` for
                        ``(M,)``), or summed over the wrong axis; recognised by differentiating the forward
                        with the parameter broadcast first (``autograd_gradients(expand=...)``);
* ``transpose``         the reference's numbers in another layout (transposed or reshaped), possibly
                        times a constant;
* ``shape_mismatch``    a wrong shape that nothing above explains;
* ``sign_flip``         analytic = −1 × reference;
* ``scale``             analytic = c × reference for one constant c ≠ ±1, named as a simple form of the
                        sizes (2, 1/2, 1/N, N·D, ...) when one fits, confirmed at a second set of sizes;
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
from verigrad.checks.diagnose import batch_sum, factor, layout, partial, raised, unknown
from verigrad.checks.diagnose.evidence import Case, examples
from verigrad.checks.report import Diagnosis, Kind, Point, Report


class Entry(NamedTuple):
    """One row of the table: the kind it claims, and the claim (a Diagnosis of that kind, or None)."""

    kind: Kind
    claim: Callable[[Case], Diagnosis | None]


#: The kinds in the order they are tried; the last entry always answers.
TABLE: tuple[Entry, ...] = (
    Entry(Kind.RAISED, raised.raised),
    Entry(Kind.UNKNOWN, raised.not_comparable),
    Entry(Kind.MISSING_BATCH_SUM, batch_sum.missing_batch_sum),
    Entry(Kind.TRANSPOSE, layout.transpose),
    Entry(Kind.SHAPE_MISMATCH, layout.shape_mismatch),
    Entry(Kind.SIGN_FLIP, factor.sign_flip),
    Entry(Kind.UNKNOWN, factor.zero),
    Entry(Kind.UNKNOWN, factor.precision),
    Entry(Kind.SCALE, factor.scale),
    Entry(Kind.PARTIAL, partial.partial),
    Entry(Kind.UNKNOWN, unknown.unknown),
)


def diagnose(derivation: Derivation, param: str, evidence: Sequence[tuple[Point, Report]]) -> Diagnosis:
    """What kind of mistake ∂f/∂``param`` shows on ``evidence`` = [(counterexample point, report), more at its sizes]."""
    given = examples(derivation, param, evidence)
    if not given:
        return Diagnosis(Kind.UNKNOWN, f"∂f/∂{param}: no example to diagnose from", {}, 0)
    case = Case(derivation, param, given)
    return next(found for entry in TABLE if (found := entry.claim(case)) is not None)
