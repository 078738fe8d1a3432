"""Say what kind of mistake a failing gradient shows, as a claim about the derivation.

``diagnose`` receives the counterexample and further examples at the same sizes. A kind is claimed only
when its relation holds on every usable example, including those where the gradient happens to agree;
``confirmed_on`` counts the examples that support it. Kinds are tried in this order, first match wins:

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
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose.batch_sum import _batch_sum
from verigrad.checks.diagnose.core import _IDENTITY, MATCH_SLACK, _Elsewhere, _Ex, _examples, _fit, _layout, _on, _scale_form, _sym
from verigrad.checks.diagnose.partial import _partial, _wrong
from verigrad.checks.report import Diagnosis, Point, Problem, Report


def _unknown(param: str, exs: list[_Ex]) -> Diagnosis:
    wrong = [_wrong(ex) for ex in exs]
    k, n = int(wrong[0].sum()), int(exs[0].live.sum())
    fails = sum(bool(w.any()) for w in wrong)
    ratios = np.concatenate([ex.a[w & (np.abs(ex.r) > MATCH_SLACK * ex.tau)] / ex.r[w & (np.abs(ex.r) > MATCH_SLACK * ex.tau)]
                             for ex, w in zip(exs, wrong, strict=True)])
    ratios = ratios[np.isfinite(ratios)]
    spread = f"; analytic/reference ranges from {ratios.min():.3g} to {ratios.max():.3g}" if ratios.size else ""
    sentence = (f"∂f/∂{param} disagrees on {k} of {n} entries and fails {fails} of {len(exs)} examples{spread}: not a sign flip, "
                f"constant factor, layout, batch-sum or partial (mask) error")
    return Diagnosis("unknown", sentence, {"fraction_wrong": k / n if n else 0.0}, fails)


# --- the entry point --------------------------------------------------------------------------------


def diagnose(derivation: Derivation, param: str, evidence: Sequence[tuple[Point, Report]]) -> Diagnosis:
    """What kind of mistake ∂f/∂``param`` shows on ``evidence`` = [(counterexample point, report), more at its sizes]."""
    exs = _examples(derivation, param, evidence)
    if not exs:
        return Diagnosis("unknown", f"∂f/∂{param}: no example to diagnose from", {}, 0)
    ex0, m = exs[0], len(exs)
    message = ex0.g.message or ""
    if ex0.g.problem == Problem.RAISED:
        exc = (ex0.g.raised or "").strip()
        k = sum(ex.g.problem == Problem.RAISED for ex in exs)
        return Diagnosis("raised", f"the gradient function raised {exc} ({_on(k, m)})", {"exception": exc}, k)
    if ex0.a is None:
        return Diagnosis("unknown", f"∂f/∂{param}: {message}", {"reason": message}, m)
    exs = [ex for ex in exs if ex.a is not None and ex.a.shape == ex0.a.shape]
    m = len(exs)
    elsewhere = _Elsewhere(derivation, param, ex0)
    if ex0.a.shape != ex0.r.shape:
        found = _batch_sum(derivation, param, exs, elsewhere) or _layout(param, exs, elsewhere)
        if found:
            return found
        sentence = (f"∂f/∂{param} has shape {_sym(ex0.a.shape)}, but {param} has shape {_sym(derivation.shapes[param])} = "
                    f"{_sym(ex0.r.shape)}; its numbers are no rearrangement, per-sample form or batch sum of the reference")
        return Diagnosis("shape_mismatch", sentence, {"analytic_shape": list(ex0.a.shape), "expected_shape": list(ex0.r.shape)}, m)
    c = _fit(exs, _IDENTITY)
    if c == -1:
        return Diagnosis("sign_flip", f"∂f/∂{param} has the sign flipped: analytic = −1 × reference {_on(m, m)}", {"scale_factor": -1.0}, m)
    if c == 0:
        return Diagnosis("unknown", f"∂f/∂{param} is 0 everywhere while the reference is not, {_on(m, m)}", {"reason": "zero"}, m)
    if c == 1:
        return Diagnosis("unknown", f"∂f/∂{param} matches the reference to within {MATCH_SLACK:g} × the threshold but not within it: "
                         "a loss of precision, not a wrong formula", {"reason": "precision"}, m)
    if c is not None:
        form = _scale_form(derivation, exs, c, elsewhere)
        named = f", factor {form['scale_form_text']}" if form.get("scale_form_text") else ""
        sentence = f"∂f/∂{param} is off by a constant factor: analytic = {c:.6g} × reference{named}, {_on(m, m)}"
        return Diagnosis("scale", sentence, {"scale_factor": c, **form}, m)
    return (_layout(param, exs, elsewhere) or _batch_sum(derivation, param, exs, elsewhere) or _partial(derivation, param, exs, elsewhere)
            or _unknown(param, exs))
