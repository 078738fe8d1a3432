"""The last entry of the table: no kind fits; the sentence says how much is wrong and what was ruled out."""

from __future__ import annotations

import numpy as np

from verigrad.checks.diagnose.evidence import Case, wrong_entries
from verigrad.checks.report import Diagnosis, Kind
from verigrad.checks.verdict.thresholds import MATCH_SLACK


def unknown(case: Case) -> Diagnosis:
    """How many entries disagree, on how many examples, and the range of analytic/reference where the reference is not ~0."""
    exs, param = case.exs, case.param
    wrong = [wrong_entries(ex) for ex in exs]
    k, n = int(wrong[0].sum()), int(exs[0].live.sum())
    fails = sum(bool(w.any()) for w in wrong)
    ratios = np.concatenate([ex.a[w & (np.abs(ex.r) > MATCH_SLACK * ex.tau)] / ex.r[w & (np.abs(ex.r) > MATCH_SLACK * ex.tau)]
                             for ex, w in zip(exs, wrong, strict=True)])
    ratios = ratios[np.isfinite(ratios)]
    spread = f"; analytic/reference ranges from {ratios.min():.3g} to {ratios.max():.3g}" if ratios.size else ""
    sentence = (f"∂f/∂{param} disagrees on {k} of {n} entries and fails {fails} of {len(exs)} examples{spread}: not a sign flip, "
                f"constant factor, layout, batch-sum or partial (mask) error")
    return Diagnosis(Kind.UNKNOWN, sentence, {"fraction_wrong": k / n if n else 0.0}, fails, names_param=True)
