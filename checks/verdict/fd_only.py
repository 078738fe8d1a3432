"""A forward that runs in one array namespace only, checked there (reference/_namespace.py finds which).

* **NumPy only** (the original code as written: ``np.pad``, in-place writes, ``np.add.at``, ``int(...)`` on
  arrays): autograd is not available, so two witnesses remain — the hand-derived gradient and central
  finite differences in NumPy float64 with the error model of reference/_fd.py. Each entry must agree
  within K_FD·e + τ (e the difference's own error estimate; τ the size term of τ_ex, the analytic's own
  rounding), the judgement of an entry where autograd is not finite (checks/verdict/judge.py), applied to
  every entry. Entries whose difference at step h does not already confirm the analytic value within
  K_FD·e get steps h/2 and h/4 (Richardson, truncation estimate, kink test) before they are judged. The
  report says that autograd was not available (``Report.autograd_available``, and a warning in every view).
* **torch only** (``torch.nn.functional``): the three witnesses, without NumPy — autograd, and finite
  differences evaluated in torch float64 (``reference.TorchObjective``).

In either, the forward must give the same finite value every time (DETERMINISM_REPEATS more evaluations in its
own namespace), as in the three-way check; one that writes into its inputs is judged on copies, with a warning.
"""

from __future__ import annotations

import time

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import FAIL, Blame, GradientReport, Point, Report, Witness
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.before import (
    Checked,
    Prepared,
    blank_report,
    checked_with,
    conclude,
    error_report,
    forward_problem_in,
    judge_param,
    name_graph_cause,
)
from verigrad.checks.verdict.complex_witness import Sharp, complex_witness, pair_noise
from verigrad.checks.verdict.judge import admit, exact_tolerance, judge_point, refine_where_autograd_disagrees
from verigrad.checks.verdict.noise import autograd_noise, with_analytic_noise
from verigrad.reference import (
    NUMPY,
    TORCH,
    BatchedObjective,
    FDEstimate,
    ForwardError,
    TorchObjective,
    autograd_gradients,
    finite_differences,
    forward_unit,
    namespaces,
    torch_forward_unit,
)

__all__ = ["one_namespace"]



def coarse_forward(unit: float) -> str:
    """The warning of a forward that computes in a precision coarser than float64."""
    return (
        f"the forward computes in a precision coarser than float64 (u = {unit:.1e}, read off the dtype it returns):"
        " its finite differences are sized and judged for that precision"
    )


def one_namespace(derivation: Derivation, point: Point, *, mode: str = "exhaustive", seed: int = 0, device: str = "cpu") -> Report | None:
    """The report at ``point`` of a forward that runs in one namespace only; None when it runs in both (the
    three-way check applies). The point's inputs were checked by the caller (calls.check_inputs)."""
    g_out = None if point.grad_output is None else np.asarray(point.grad_output, dtype=np.float64)
    found = namespaces(derivation, point.params, g_out)
    if len(found) > 1:
        return None
    if found == (NUMPY,):
        return numpy_only(derivation, point, seed=seed)
    return torch_only(derivation, point, seed=seed, device=device)


def _checked(derivation: Derivation, point: Point, namespace: str, rep: Report) -> Checked | Report:
    """The checks before the references, in ``namespace``: a finite deterministic forward that leaves its
    inputs alone, and the analytic gradients (a warning if they wrote into their arguments; an error if they
    are not a function of the point)."""
    in_namespace = lambda d, params, g_out, written: forward_problem_in(d, namespace, params, g_out, written)
    return checked_with(derivation, point, rep, time.perf_counter(), in_namespace)


def refine_where_analytic_disagrees(analytic) -> object:
    """Without autograd the analytic value stands in for it: the entries whose difference at step h does not
    confirm it within K_FD·e (all of a gradient that cannot be compared) get steps h/2 and h/4."""

    def refine(name: str, est: FDEstimate) -> np.ndarray:
        a = None if analytic is None else analytic.get(name)
        if not isinstance(a, np.ndarray) or a.shape != est.value.shape or a.dtype.kind not in "fiu":
            return np.ones(est.value.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            return ~(np.abs(est.value - a.astype(np.float64)) <= tol.K_FD * est.error)

    return refine


def two_witnesses(name: str, analytic, fd: FDEstimate, total_dims: int) -> GradientReport:
    """The verdict on ``name`` by the analytic gradient and finite differences alone: the judgement of an
    entry where autograd is not finite, at every entry; the threshold reported is the differences' own."""
    nowhere = np.full(fd.value.shape, np.nan)
    g = judge_point(name, analytic, nowhere, fd, np.zeros(fd.value.shape), total_dims)
    refused, warnings = admit(name, analytic, fd.value.shape)
    g.warnings = warnings  # the judgement's note on non-finite autograd does not apply: there is none
    if refused is not None or not g.threshold:
        tau = exact_tolerance(np.zeros((1, *fd.value.shape)), tol.U64, total_dims, fd.value[None])[0]
        thr = tol.K_FD * fd.error + tau
        g.threshold = {
            "finite_differences_max": float(np.max(thr, initial=0.0)),
            "finite_differences_median": float(np.median(thr)) if thr.size else 0.0,
        }
    # What the analytic values were judged against at every entry: the finite differences' threshold.
    g.threshold["analytic_vs_autograd"] = g.threshold["finite_differences_max"]
    g.decided_by_fd = [tuple(int(i) for i in ix) for ix in np.argwhere(~np.asarray(fd.nondifferentiable, bool))]
    return g


def numpy_only(derivation: Derivation, point: Point, *, seed: int = 0) -> Report:
    """The hand-derived gradients against the complex step, verified by finite differences, where the forward
    allows it (checks/verdict/complex_witness.py); against finite differences in NumPy float64 alone for the
    gradients where it does not."""
    rep = blank_report(derivation, point, "exhaustive")
    rep.autograd_available, rep.namespace = False, NUMPY
    c = _checked(derivation, point, NUMPY, rep)
    if isinstance(c, Report):
        return c
    unit = forward_unit(derivation, c.params, c.grad_output)
    if unit > tol.U64:
        rep.warnings.append(coarse_forward(unit))
    try:
        ev = BatchedObjective(derivation, c.params, c.grad_output, f0=c.f0)
        exact = c.raised is None and unit == tol.U64  # a complex step in float32 would be judged as float64: none
        sharp = complex_witness(derivation, ev, c.total_dims, seed) if exact else Sharp()
        judged = {name: _by_complex_step(derivation, c, ev, sharp, name, seed) for name in sharp.values}
        rest = [n for n in derivation.check if judged.get(n) is None]
        if rest:
            refine = refine_where_analytic_disagrees(None if c.raised else c.analytic)
            fd = finite_differences(derivation, c.params, c.grad_output, check=rest, refine=refine, seed=seed, evaluator=ev, unit=unit, wide=True)
    except ForwardError as e:
        return error_report(rep, str(e), c.started)
    rep.evaluations = ev.evaluations + sharp.evaluations
    for name in derivation.check:
        g = judged.get(name) or _by_differences(c, name, fd.gradients[name])
        g.witness_refused = sharp.refused.get(name)
        rep.gradients.append(g)
    return conclude(rep, c.started)


def _by_differences(c: Checked, name: str, est: FDEstimate) -> GradientReport:
    """The verdict on ``name`` by finite differences alone (the reference shown is the finite difference)."""
    if c.raised is not None:
        g = judge_param(Prepared(**vars(c), auto={name: est.value}, sigma={}), name, est)
    else:
        g = two_witnesses(name, c.analytic.get(name), est, c.total_dims)
    g.witness = Witness.FINITE_DIFFERENCES
    return g


def _by_complex_step(derivation: Derivation, c: Checked, ev: BatchedObjective, sharp: Sharp, name: str, seed: int) -> GradientReport | None:
    """The verdict on ``name`` against the verified complex step t (None where the analytic gradient cannot be
    compared entry by entry: judged by finite differences): the analytic gradient within τ_ex of t at every entry
    passes. Otherwise σ is measured (``pair_noise``, then at the differences' smallest step too, where t may be
    refused) and, if it still fails, finite differences at every entry join
    as the third witness (refined where they miss t) and decide the blame, as autograd's are decided; where they
    side with the analytic gradient against t (a kink within the step, code the complex step does not follow),
    None: judged by finite differences alone."""
    t, a = sharp.values[name], c.analytic.get(name)
    if admit(name, a, t.shape)[0] is not None:
        return None  # not comparable entry by entry: the differences' verdict says why, with their thresholds
    confirmed = FDEstimate(t, np.zeros(t.shape), np.zeros(t.shape), np.zeros(t.shape, dtype=bool), np.zeros(t.shape, dtype=bool))
    g = judge_point(name, a, t, confirmed, sharp.sigma[name], c.total_dims)
    if g.status == FAIL and pair_noise(derivation, ev, a, name, sharp, seed):
        g = judge_point(name, a, t, confirmed, sharp.sigma[name], c.total_dims)
    if g.status == FAIL:
        if pair_noise(derivation, ev, a, name, sharp, seed, coarse=True):
            g = judge_point(name, a, t, confirmed, sharp.sigma[name], c.total_dims)
        elif name in sharp.refused:
            return None  # not exact to rounding at this point: finite differences judge alone
    sigma = sharp.sigma[name]
    if g.status == FAIL:
        refine = refine_where_autograd_disagrees({name: t})
        fd = finite_differences(derivation, c.params, c.grad_output, check=[name], refine=refine, seed=seed, evaluator=ev)
        g = judge_point(name, c.analytic.get(name), t, fd.gradients[name], sigma, c.total_dims)
        if g.blame is not None and g.blame != Blame.ANALYTIC:
            sharp.refused[name] = "finite differences side with the analytic gradient against it at some entry"
            return None
    g.witness = Witness.COMPLEX_STEP
    return g


def torch_only(derivation: Derivation, point: Point, *, seed: int = 0, device: str = "cpu") -> Report:
    """Three witnesses without NumPy: autograd, and finite differences evaluated in torch float64."""
    rep = blank_report(derivation, point, "exhaustive")
    rep.namespace = TORCH
    c = _checked(derivation, point, TORCH, rep)
    if isinstance(c, Report):
        return c
    try:
        auto = autograd_gradients(derivation, c.params, c.grad_output, device=device)
        probes: list = []
        sigma = autograd_noise(derivation, point, np.random.default_rng(seed), device, probes, at_base=auto)
        if c.analytic is not None and c.raised is None:
            sigma = with_analytic_noise(derivation, sigma, c.analytic, probes, auto)
        unit = torch_forward_unit(derivation, c.params, c.grad_output)
        if unit > tol.U64:
            rep.warnings.append(coarse_forward(unit))
        ev = TorchObjective(derivation, c.params, c.grad_output, f0=c.f0)
        fd = finite_differences(derivation, c.params, c.grad_output, refine=refine_where_autograd_disagrees(auto), seed=seed, evaluator=ev,
                                unit=unit, wide=unit > tol.U64)
    except ForwardError as e:
        return error_report(rep, str(e), c.started)
    rep.evaluations = fd.evaluations
    prep = Prepared(**vars(c), auto=auto, sigma=sigma)
    rep.gradients.extend(judge_param(prep, name, fd.gradients[name]) for name in derivation.check)
    name_graph_cause(derivation, c.params, c.grad_output, rep)
    return conclude(rep, c.started)
