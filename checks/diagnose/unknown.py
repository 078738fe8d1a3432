"""The last entry of the table: no kind is claimed; the sentence says how much is wrong, what was ruled out,
and which kind held on too few examples to be claimed (the claim rule: ``evidence.needed``)."""

from __future__ import annotations

import numpy as np

from verigrad.checks.diagnose.evidence import Case, needed, wrong_entries
from verigrad.checks.report import Diagnosis, Kind, Status
from verigrad.checks.verdict.thresholds import MATCH_SLACK

#: The kinds of the table, in the words of the sentence that rules them out.
RULED_OUT = ("sign flip, constant factor, layout, kept axis, batch or axis sum, Jacobian diagonal, one-term (subsample or "
             "assignment), truncation or partial (mask) error")

#: Each kind as the sentence names it when it held on too few examples.
KIND_WORDS = {
    Kind.RAISED: "a raise",
    Kind.KEPT_AXIS: "a kept axis",
    Kind.MISSING_BATCH_SUM: "a missing batch sum",
    Kind.TRANSPOSE: "a layout",
    Kind.SHAPE_MISMATCH: "a shape mismatch",
    Kind.SIGN_FLIP: "a sign flip",
    Kind.SCALE: "a constant factor",
    Kind.MISSING_SUM: "a missing sum",
    Kind.JACOBIAN_DIAGONAL: "a Jacobian's diagonal",
    Kind.SUBSAMPLE: "a subsample",
    Kind.ASSIGNMENT: "an assignment",
    Kind.TRUNCATION: "a truncation",
    Kind.PARTIAL: "a partial error",
}


def unconfirmed_text(case: Case) -> str:
    """'; a partial error held on only 2 of 5 examples (4 needed to claim it)' for each kind set aside, or ''."""
    tried = len(case.given)
    said = [f"{KIND_WORDS.get(d.kind, str(d.kind))} held on {f'only {d.confirmed_on}' if d.confirmed_on else 'none'} of {tried} "
            f"examples ({needed(tried)} needed to claim it)" for d in case.unconfirmed]
    return "".join(f"; {s}" for s in said)


def unconfirmed_details(case: Case) -> dict[str, object]:
    """The kinds set aside, with the examples each held on: {"unconfirmed": {kind: confirmed_on}} or {}."""
    return {"unconfirmed": {str(d.kind): d.confirmed_on for d in case.unconfirmed}} if case.unconfirmed else {}


def unknown(case: Case) -> Diagnosis:
    """How many entries disagree, on how many examples, and the range of analytic/reference where the reference is not ~0."""
    param, tail, extra = case.param, unconfirmed_text(case), unconfirmed_details(case)
    if case.first.a is None:  # a raise held on too few examples: nothing at the counterexample to compare
        fails = sum(ex.report.status == Status.FAIL for ex in case.given)
        return Diagnosis(Kind.UNKNOWN, f"∂f/∂{param}: no kind is claimed{tail}", extra, fails, names_param=True)
    exs = case.exs
    wrong = [wrong_entries(ex) for ex in exs]
    k, n = int(wrong[0].sum()), int(exs[0].live.sum())
    fails = sum(bool(w.any()) for w in wrong)
    ratios = np.concatenate([ex.a[w & (np.abs(ex.r) > MATCH_SLACK * ex.tau)] / ex.r[w & (np.abs(ex.r) > MATCH_SLACK * ex.tau)]
                             for ex, w in zip(exs, wrong, strict=True)])
    ratios = ratios[np.isfinite(ratios)]
    lo, hi = (float(ratios.min()) + 0.0, float(ratios.max()) + 0.0) if ratios.size else (0.0, 0.0)  # + 0.0: no "−0"
    spread = ("" if not ratios.size else f"; analytic/reference is {lo:.3g} on every wrong entry" if lo == hi
              else f"; analytic/reference ranges from {lo:.3g} to {hi:.3g}")
    sentence = f"∂f/∂{param} disagrees on {k} of {n} entries and fails {fails} of {len(exs)} examples{spread}: not a {RULED_OUT}{tail}"
    return Diagnosis(Kind.UNKNOWN, sentence, {"fraction_wrong": k / n if n else 0.0, **extra}, fails, names_param=True)
