"""A truncation: right while a length is below some value, wrong beyond it (backprop through time cut after K
steps, a window of K terms where the sum runs over the whole sequence).

The search's counterexample is the smallest failing size in every dim. For a dim at v ≥ TRUNCATION_MIN_LENGTH + 1
the claim is "right for every size of that dim up to v − 1, wrong from v", tested by evaluating the gradient at
every smaller size of the dim (the other dims as at the counterexample, TRUNCATION_SEEDS draws each): all must
pass; and at v + 1 (where the dim's range allows) it must fail. ``confirmed_on`` counts the examples at v that
fail. Below TRUNCATION_MIN_LENGTH + 1 a passing smaller size says nothing: at a batch of one a missing sum over
the batch is invisible, so most slips are "right below 2".

Only at a counterexample small enough to be checked entry by entry (``choose_mode`` says exhaustive): every
smaller size is a full check, and at a large point (projection mode) those would cost minutes for a claim
about lengths that the search's own small sizes make.
"""

from __future__ import annotations

from verigrad.checks.diagnose.evidence import Case, on_examples
from verigrad.checks.report import Diagnosis, Kind, Mode, Status
from verigrad.checks.search.points import draw_point
from verigrad.checks.verdict import choose_mode, evaluate
from verigrad.checks.verdict.thresholds import MORE_SEED_OFFSET, TRUNCATION_MIN_LENGTH, TRUNCATION_SEEDS


def status_at(case: Case, sizes: dict[str, int], seed: int) -> Status | None:
    """The verdict on ∂f/∂param at a drawn point of ``sizes`` (None: the gradient is not in the report)."""
    report = evaluate(case.derivation, draw_point(case.derivation, sizes, seed))
    g = next((g for g in report.gradients if g.param == case.param), None)
    return None if g is None else g.status


def truncated_dim(case: Case) -> tuple[str, int] | None:
    """(dim, v): the first dim right at every size below v and wrong at v + 1, v its size at the counterexample."""
    if choose_mode(case.derivation, case.first.point) != Mode.EXHAUSTIVE:
        return None
    sizes = dict(case.first.point.sizes)
    base = (case.first.point.seed or 0) + MORE_SEED_OFFSET
    for d, v in sizes.items():
        lo, hi = case.derivation.dim_range(d)
        if v < TRUNCATION_MIN_LENGTH + 1 or v - 1 < lo:
            continue
        below = [{**sizes, d: n} for n in range(lo, v)]
        if not all(status_at(case, s, (base + k) % 2**32) == Status.PASS for s in below for k in range(TRUNCATION_SEEDS)):
            continue
        if v + 1 <= hi and status_at(case, {**sizes, d: v + 1}, base % 2**32) != Status.FAIL:
            continue
        return d, v
    return None


# --- the entry of the table -----------------------------------------------------------------------------


def truncation(case: Case) -> Diagnosis | None:
    """Right at every size of one dim below the counterexample's, wrong there and beyond."""
    found = truncated_dim(case)
    if found is None:
        return None
    d, v = found
    support = sum(ex.report.status == Status.FAIL for ex in case.given)
    sentence = (f"∂f/∂{case.param} is truncated at {d} = {v - 1}: right for every {d} ≤ {v - 1} and wrong from {d} = {v} on "
                f"(a sum or backpropagation cut after {v - 1} steps); wrong at {d} = {v} {on_examples(support, len(case.given))}")
    return Diagnosis(Kind.TRUNCATION, sentence, {"dim": d, "right_up_to": v - 1}, support, names_param=True)
