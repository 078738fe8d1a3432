"""One point, three witnesses, one verdict per gradient (thresholds: checks/verdict/thresholds.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import ERROR, FAIL, PASS, Blame, GradientReport, Point, Problem, Report
from verigrad.checks.verdict import thresholds as tol
from verigrad.reference import (
    U64,
    FDEstimate,
    ForwardError,
    autograd_gradients,
    finite_differences,
    forward_value,
    forward_value_torch,
    rounding_noise,
)

#: Entry verdicts: OK, or the witness at odds (the blames of the result model).
OK = "ok"
ANALYTIC, FORWARD, AUTOGRAD, UNDETERMINED = Blame.ANALYTIC, Blame.FORWARD, Blame.AUTOGRAD, Blame.UNDETERMINED


def copies(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    return bool((a == b).all()) or np.array_equal(a, b, equal_nan=True)  # the slow test only if some entry differs


def changed_in_place(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> list[str]:
    """Names whose array changed (NaN equals NaN)."""
    return [k for k in before if not _same(before[k], after[k])]


def _error(rep: Report, message: str, started: float) -> Report:
    rep.status = ERROR
    rep.message = message
    rep.duration_s = time.perf_counter() - started
    return rep


def check_inputs(derivation: Derivation, point: Point) -> str | None:
    arrays = dict(point.params)
    if point.grad_output is not None:
        arrays["grad_output"] = point.grad_output
    for name, value in arrays.items():
        arr = np.asarray(value)
        if np.iscomplexobj(arr):
            return f"parameter {name} is complex ({arr.dtype}); verigrad checks real-valued parameters"
        if not np.issubdtype(arr.dtype, np.floating):
            return f"parameter {name} has dtype {arr.dtype}; pass floating-point values (they are checked in float64)"
        if not np.all(np.isfinite(arr)):
            return f"parameter {name} contains non-finite values"
    return None


def call_gradients(derivation: Derivation, point: Point) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The hand-derived gradients at the point: (gradients, exception text, names modified in place)."""
    args = copies(point.params)
    before = dict(point.params)  # never handed to user code: what the arguments must still be
    if derivation.is_layer:
        args["grad_output"] = np.array(point.grad_output, dtype=np.float64, copy=True)
        before["grad_output"] = point.grad_output
    try:
        with np.errstate(all="ignore"):
            out = derivation.gradients(**args)
    except Exception as e:  # user code
        return None, f"{type(e).__name__}: {e}", []
    modified = changed_in_place(before, args)
    if not isinstance(out, Mapping):
        return None, f"gradients returned {type(out).__name__}, expected a dict {{param: array}}", modified
    return dict(out), None, modified


def autograd_noise(
    derivation: Derivation, point: Point, rng: np.random.Generator, device: str = "cpu", probes: list | None = None
) -> dict[str, np.ndarray]:
    """σ_t per parameter and entry: the rounding noise of the float64 autograd gradient (reference.rounding_noise).

    Kept per entry so that ``_judge`` can take the maximum over differentiable entries only: a switch
    within the jitter of 0 flips, and the gradient jump it causes at the kink entries is not rounding
    noise. A layer's grad_output is an input of its objective and is jittered too: a gradient that is
    a cancelling sum of G's entries (a bias gradient 1ᵀG) moves by ~u·Σ|G|, the scale its rounding has.
    """
    return rounding_noise(
        derivation,
        point.params,
        point.grad_output,
        rng,
        jitters=tol.AUTOGRAD_JITTERS,
        relative=tol.NOISE_JITTER,
        device=device,
        probes=probes,
    )


def analytic_noise(derivation: Derivation, analytic: Mapping[str, Any], probes, scale: Mapping[str, float]) -> dict[str, np.ndarray]:
    """σ_a per checked parameter and entry: |a(x') − a(x) − H·(x' − x)| at autograd's jittered points
    x' (``probes``: (x', grad_output', H·(x' − x)) each): the rounding of the hand-derived gradient
    itself, measured as σ_t measures autograd's (docs/tolerances.md §4).

    A correct formula can round far worse than u·max|g|: s ⊙ (1 − s) at a saturated sigmoid loses
    the digits 1 − s cancels, where autograd's chain through 1/(1 + e^−h) does not. A wrong formula
    gains nothing here: its error changes by about its own gradient times the jitter (2⁻²⁸ relative),
    not by its size. Entries where the gradient cannot be evaluated at x' get 0, and so do changes
    above ANALYTIC_NOISE_CAP·``scale[name]`` (max|t|): jumps, not rounding (checks/verdict/thresholds.py).
    """
    out: dict[str, np.ndarray] = {}
    for moved, g_moved, linear in probes:
        args = copies(moved)
        if derivation.is_layer:
            args["grad_output"] = np.array(g_moved, dtype=np.float64, copy=True)
        try:
            with np.errstate(all="ignore"):
                there = derivation.gradients(**args)
        except Exception:  # user code; the verdict at the point itself reports it
            continue
        if not isinstance(there, Mapping):
            continue
        for name in derivation.check:
            a0, a1 = analytic.get(name), there.get(name)
            if a0 is None or a1 is None:
                continue
            a0, a1 = np.asarray(a0), np.asarray(a1)
            if a0.shape != a1.shape or a0.shape != np.shape(linear[name]) or not all(_real(a) for a in (a0, a1)):
                continue
            with np.errstate(all="ignore"):
                gap = np.abs(a1.astype(np.float64) - a0.astype(np.float64) - linear[name])
            gap = np.where(np.isfinite(gap) & (gap <= tol.ANALYTIC_NOISE_CAP * scale[name]), gap, 0.0)
            out[name] = np.maximum(out[name], gap) if name in out else gap
    return out


def _real(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)


def combined_noise(sigma_t: np.ndarray, sigma_a: np.ndarray | None, analytic: Any) -> np.ndarray:
    """σ per entry such that τ_ex's C_NOISE·(u_a/u)·σ is C_NOISE·((u_a/u)·σ_t + σ_a) (σ_a is measured at
    the analytic gradient's own precision u_a)."""
    if sigma_a is None:
        return sigma_t
    a = np.asarray(analytic)
    u_a = tol.unit_roundoff(a.dtype) if np.issubdtype(a.dtype, np.floating) else U64
    return sigma_t + sigma_a * (U64 / u_a)


def _indices(mask: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in ix) for ix in np.argwhere(mask)]


def _judge(
    param: str,
    analytic: Any,
    auto: np.ndarray,
    fd: FDEstimate,
    sigma: float | np.ndarray,
    total_dims: int,
) -> GradientReport:
    g = GradientReport(param=param, status=PASS, entries=int(auto.size))
    g.reference = np.where(np.isfinite(auto), auto, fd.value)
    g.nondiff_mask = fd.nondifferentiable
    if analytic is None:
        g.status, g.blame = FAIL, ANALYTIC
        g.message, g.problem = f"gradients returned no entry for {param}", Problem.MISSING
        return g
    a_raw = np.asarray(analytic)
    g.analytic = a_raw
    g.dtype = str(a_raw.dtype)
    if np.iscomplexobj(a_raw) or not (np.issubdtype(a_raw.dtype, np.floating) or np.issubdtype(a_raw.dtype, np.integer)):
        g.status, g.blame = FAIL, ANALYTIC
        g.message, g.problem = f"gradient of {param} has dtype {a_raw.dtype}; expected a real floating-point array", Problem.DTYPE
        return g
    if a_raw.shape != auto.shape:
        g.status, g.blame = FAIL, ANALYTIC
        g.message, g.problem = f"gradient of {param} has shape {a_raw.shape}, but {param} has shape {auto.shape}", Problem.SHAPE
        return g
    if np.issubdtype(a_raw.dtype, np.integer):
        g.warnings.append(f"gradient of {param} has integer dtype {a_raw.dtype}; judged as float64")
    u_a = tol.unit_roundoff(a_raw.dtype) if np.issubdtype(a_raw.dtype, np.floating) else U64
    if u_a > U64:
        g.warnings.append(
            f"gradient of {param} returned in {a_raw.dtype}: judged with that precision's rounding (u = {u_a:.1e})"
        )
    a = a_raw.astype(np.float64)

    finite_t = np.isfinite(auto)
    nd = fd.nondifferentiable
    ref = g.reference
    max_ref = float(np.max(np.abs(ref[np.isfinite(ref)]), initial=0.0))
    # σ_t over the differentiable entries only (see autograd_noise).
    sig = np.asarray(sigma, dtype=np.float64)
    sigma_live = float(np.max(np.where(nd, 0.0, sig) if sig.shape == auto.shape else sig, initial=0.0))
    tau = tol.exact_bound(sigma_live, u_a, total_dims, max_ref)
    thr_fd = tol.K_FD * fd.error + tau
    with np.errstate(invalid="ignore"):
        at = finite_t & (np.abs(a - auto) <= tau)
        td = finite_t & (np.abs(auto - fd.value) <= thr_fd)
        ad = np.abs(a - fd.value) <= thr_fd
    verdict = np.full(auto.shape, OK, dtype=object)
    verdict[finite_t & at & ~td] = FORWARD
    verdict[finite_t & ~at & td] = ANALYTIC
    verdict[finite_t & ~at & ~td & ad] = AUTOGRAD
    verdict[finite_t & ~at & ~td & ~ad] = UNDETERMINED
    verdict[~finite_t & ~ad] = ANALYTIC
    verdict[nd] = OK

    live = ~nd
    with np.errstate(invalid="ignore"):
        err = np.where(live, np.abs(a - ref), 0.0)
    err = np.where(np.isnan(err), np.inf, err)
    bad = (verdict == ANALYTIC) | (verdict == UNDETERMINED)
    g.mismatches = int(bad.sum())
    g.nondifferentiable = _indices(nd)
    g.decided_by_fd = _indices(~finite_t & live)
    g.threshold = {
        "analytic_vs_autograd": tau,
        "finite_differences_max": float(np.max(thr_fd[live], initial=0.0)),
        "finite_differences_median": float(np.median(thr_fd[live])) if live.any() else 0.0,
    }
    if live.any():
        pool = np.where(bad, err, -1.0) if bad.any() else np.where(live, err, -1.0)
        worst = np.unravel_index(int(np.argmax(pool)), auto.shape)
        g.worst_index = tuple(int(i) for i in worst)
        g.analytic_value, g.reference_value = float(a[worst]), float(ref[worst])
        g.max_abs_err = float(np.max(err[live]))
        g.max_rel_err = g.max_abs_err / max_ref if max_ref > 0 else (0.0 if g.max_abs_err == 0 else float("inf"))

    counts = {k: int((verdict == k).sum()) for k in (ANALYTIC, UNDETERMINED, FORWARD, AUTOGRAD)}
    if counts[ANALYTIC]:
        g.status, g.blame = FAIL, ANALYTIC
    elif counts[UNDETERMINED]:
        g.status, g.blame = FAIL, UNDETERMINED
    elif counts[FORWARD]:
        g.blame = FORWARD
        g.warnings.append(
            f"finite differences disagree with both analytic and autograd at {counts[FORWARD]} entr"
            f"{'y' if counts[FORWARD] == 1 else 'ies'}: the forward is the suspect (a kink, nondeterminism or numerical instability)"
        )
    elif counts[AUTOGRAD]:
        g.blame = AUTOGRAD
        g.warnings.append(
            f"autograd disagrees with analytic and finite differences at {counts[AUTOGRAD]} entries: the torch forward's graph is the suspect"
        )
    if g.decided_by_fd:
        g.warnings.append(
            f"autograd returned non-finite values at {len(g.decided_by_fd)} entries although the forward is finite; decided by finite differences"
        )
    if nd.any():
        with np.errstate(invalid="ignore"):
            off = nd & finite_t & ~(np.abs(a - auto) <= tau)
        if off.any():
            g.warnings.append(
                f"at {int(off.sum())} kink entries the analytic subgradient differs from autograd's convention (see the glossary)"
            )
    return g


def _explain_non_finite(g: GradientReport) -> None:
    """A gradient with NaN/inf where the forward is finite says so in its message."""
    a = g.analytic
    if g.status != FAIL or g.message or a is None or a.dtype == object or not np.issubdtype(a.dtype, np.number):
        return
    bad = ~np.isfinite(a)
    if bad.any():
        g.message = f"gradient of {g.param} contains non-finite values (NaN/inf) at {int(bad.sum())} of {a.size} entries"
        g.problem = Problem.NON_FINITE


def inner_length(derivation: Derivation, sizes: Mapping[str, int]) -> int:
    """L of τ_ex: the sum of all dims, symbolic and fixed (a bound on the forward's inner-product lengths)."""
    return sum(sizes.values()) + sum(d for s in derivation.shapes.values() for d in s if isinstance(d, int))


@dataclass
class Prepared:
    """What every mode needs before differencing: the point checked, the analytic and autograd gradients."""

    rep: Report
    started: float
    params: dict[str, np.ndarray]
    grad_output: np.ndarray | None
    analytic: dict[str, Any] | None
    raised: str | None
    auto: dict[str, np.ndarray]
    sigma: dict[str, Any]
    total_dims: int


def prepare(derivation: Derivation, point: Point, *, mode: str, seed: int = 0, device: str = "cpu") -> Prepared | Report:
    """The checks every mode shares: inputs, a finite deterministic forward that leaves its inputs
    alone, the analytic gradients, and autograd with its rounding noise. A Report if one fails."""
    started = time.perf_counter()
    rep = Report(name=derivation.name, status=PASS, shapes=dict(point.sizes), point_seed=point.seed, examples=1, points=1, mode=mode)
    rep.warnings.extend(point.notes)
    bad_input = check_inputs(derivation, point)
    if bad_input:
        return _error(rep, bad_input, started)
    params = copies(point.params)
    g_out = None if point.grad_output is None else np.array(point.grad_output, dtype=np.float64)
    try:
        args = copies(params)
        f1 = forward_value(derivation, args, g_out)
        if changed_in_place(params, args):
            return _error(rep, f"forward modified its argument(s) {', '.join(changed_in_place(params, args))} in place", started)
        again = [forward_value(derivation, copies(params), g_out) for _ in range(tol.DETERMINISM_REPEATS)]
        f_torch = forward_value_torch(derivation, params, g_out)
    except ForwardError as e:
        return _error(rep, str(e), started)
    if not np.isfinite(f1):
        return _error(rep, f"forward is not finite at the point (f = {f1})", started)
    differs = [f for f in again if f != f1]
    if differs:
        return _error(rep, f"forward is not deterministic: evaluations at the same point gave {f1!r} and {differs[0]!r}", started)
    if not abs(f_torch - f1) <= tol.BACKEND_RTOL * max(abs(f1), abs(f_torch)):
        return _error(
            rep,
            f"forward gives {f1!r} under NumPy but {f_torch!r} under torch at the same point: it is not deterministic,"
            " or it depends on the array library",
            started,
        )

    analytic, raised, modified = call_gradients(derivation, point)
    if modified:
        return _error(rep, f"gradients modified its argument(s) {', '.join(modified)} in place", started)
    try:
        unused: list[str] = []
        auto = autograd_gradients(derivation, params, g_out, unused=unused, device=device)
        probes: list = []
        sigma = autograd_noise(derivation, point, np.random.default_rng(seed), device, probes)
    except ForwardError as e:
        return _error(rep, str(e), started)
    if analytic is not None and raised is None:
        scale = {n: float(np.max(np.abs(t[np.isfinite(t)]), initial=0.0)) for n, t in auto.items()}
        sigma_a = analytic_noise(derivation, analytic, probes, scale)
        sigma = {n: combined_noise(v, sigma_a.get(n), analytic.get(n)) for n, v in sigma.items()}
    for name in unused:
        if name in derivation.check:
            rep.warnings.append(f"the forward does not depend on parameter {name}: its gradient is identically 0")
    if analytic is not None:
        extra = sorted(set(analytic) - set(derivation.params))
        if extra:
            rep.warnings.append(f"gradients returned unknown key(s) {', '.join(map(repr, extra))}, ignored")
    total_dims = inner_length(derivation, point.sizes)
    return Prepared(rep, started, params, g_out, analytic, raised, auto, sigma, total_dims)


def judge_param(prep: Prepared, name: str, fd: FDEstimate) -> GradientReport:
    """The verdict on one parameter given its finite-difference estimate (all entries, or some)."""
    auto = prep.auto[name]
    if prep.raised is not None:
        g = GradientReport(param=name, status=FAIL, blame=ANALYTIC, entries=int(auto.size))
        g.message, g.problem, g.raised = f"gradients raised {prep.raised}", Problem.RAISED, prep.raised
        g.reference = auto
        g.nondiff_mask = fd.nondifferentiable
        return g
    g = _judge(name, prep.analytic.get(name), auto, fd, prep.sigma[name], prep.total_dims)
    _explain_non_finite(g)
    return g


def conclude(rep: Report, started: float) -> Report:
    """The derivation's status and one-line message from its gradients' verdicts."""
    failures = rep.failures
    if failures:
        rep.status = FAIL
        first = failures[0]
        rep.message = first.message or (
            f"∂f/∂{first.param}: {first.mismatches} of {first.entries} entries disagree (max abs err {first.max_abs_err:.3g})"
        )
    rep.duration_s = time.perf_counter() - started
    return rep


def evaluate(derivation: Derivation, point: Point, *, fd_seed: int = 0, device: str = "cpu", progress=None) -> Report:
    """Check ``derivation`` at one point with all three witnesses, every entry by finite differences."""
    prep = prepare(derivation, point, mode="exhaustive", seed=fd_seed, device=device)
    if isinstance(prep, Report):
        return prep
    auto = prep.auto

    def refine(name: str, est: FDEstimate) -> np.ndarray:
        t = auto[name]
        with np.errstate(invalid="ignore"):
            return ~np.isfinite(t) | ~(np.abs(est.value - t) <= tol.K_FD * est.error)

    try:
        report_batch = None
        if progress is not None:
            label = f"{derivation.name}: finite differences"
            report_batch = lambda done, planned: progress(label, done, planned, "forward evaluations")
        fd = finite_differences(derivation, prep.params, prep.grad_output, refine=refine, seed=fd_seed, progress=report_batch)
    except ForwardError as e:
        return _error(prep.rep, str(e), prep.started)
    prep.rep.evaluations = fd.evaluations
    prep.rep.gradients.extend(judge_param(prep, name, fd.gradients[name]) for name in derivation.check)
    return conclude(prep.rep, prep.started)
