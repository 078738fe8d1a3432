"""The evidence a diagnosis is made from, and the relation every kind is a case of.

An ``Example`` is one evaluated point at the counterexample's sizes, reduced to the analytic gradient
``a``, the reference ``r`` (autograd, or finite differences where autograd is not finite), the entries
that can be compared (``live``: differentiable, finite reference) and the gate's threshold τ per entry.
``Elsewhere`` is one further example at other sizes (every dim changed), which claims about shapes and
factors must survive. A ``Case`` bundles one gradient's evidence for the entries of the table.

Most kinds are a relation "analytic = c · T(reference)" for a constant c and a rearrangement T,
holding on every example where

    |a − c · T(r)| ≤ MATCH_SLACK · T(τ) · max(1, |c|) + MATCH_RTOL · |c · T(r)|   per live entry.

τ is the verdict's own (``GradientReport.threshold``); where the verdict rejected the gradient on its
shape before measuring τ, it is measured here by the verdict's ``exact_tolerance``, the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import Diagnosis, GradientReport, Point, Problem, Report, Status
from verigrad.checks.search.points import draw_point
from verigrad.checks.verdict import autograd_noise, evaluate, exact_tolerance, inner_length
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.thresholds import CLAIM_MAJORITY, MATCH_RTOL, MATCH_SLACK, PROBE_SIZES, SNAP_RTOL

#: Plain constants a factor is named by: a dropped or doubled 2, a mean over 3 or 4 fixed entries.
CONSTANTS = (2.0, 0.5, 3.0, 1 / 3, 4.0, 0.25)

#: A rearrangement T of a reference-shaped array (np.asarray: none).
Transform = Callable[[np.ndarray], np.ndarray]
IDENTITY: Transform = np.asarray


@dataclass
class Example:
    """One example at the counterexample's sizes, reduced to what the diagnosis needs."""

    point: Point
    report: GradientReport  # the verdict on this gradient at ``point``
    a: np.ndarray | None  # the analytic gradient in float64 (None: raised, missing or not numeric)
    r: np.ndarray  # the reference
    live: np.ndarray  # entries that can be compared: differentiable, finite reference
    tau: np.ndarray  # the gate's threshold per reference entry (NaN where ``a`` is None: never compared)


def needed(tried: int) -> int:
    """The claim rule: the fewest of ``tried`` examples a kind must hold on to be claimed (CLAIM_MAJORITY, rounded up)."""
    k, n = CLAIM_MAJORITY
    return -(-k * tried // n)


def shape_text(shape: Sequence[object]) -> str:
    """A shape as Python writes a tuple: (3,), (2, 4)."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def on_examples(k: int, n: int) -> str:
    """'on all n examples' or 'on k of n examples'."""
    return f"on all {n} examples" if k == n else f"on {k} of {n} examples"


def shape_rejected_tau(derivation: Derivation, point: Point, g: GradientReport, r: np.ndarray) -> float:
    """τ_ex for a gradient the verdict rejected on its shape before measuring it, by the verdict's own
    ``exact_tolerance``: σ_t (autograd's rounding noise, seed 0 as the verdict's) over the differentiable
    entries, float64's u (the analytic's own precision is not known for a shape it cannot be compared in)."""
    sigma = np.asarray(autograd_noise(derivation, point, np.random.default_rng(0))[g.param], dtype=np.float64)
    differentiable = None if g.nondiff_mask is None else ~np.asarray(g.nondiff_mask, bool)
    tau = exact_tolerance(sigma[None], tol.U64, inner_length(derivation, point.sizes), r[None],
                          None if differentiable is None else differentiable[None])
    return float(tau[0])


def entry_threshold(derivation: Derivation, point: Point, g: GradientReport, r: np.ndarray) -> np.ndarray:
    """The gate's threshold per entry of the reference: τ_ex, or the finite differences' own threshold
    where the reference is a finite difference (autograd not finite there)."""
    t = g.threshold.get("analytic_vs_autograd")
    if t is None:
        t = shape_rejected_tau(derivation, point, g, r)
    tau = np.full(r.shape, float(t))
    fd_t = float(g.threshold.get("finite_differences_max", 0.0))
    for ix in g.decided_by_fd:
        tau[ix] = max(float(t), fd_t)
    return tau


def examples(derivation: Derivation, param: str, evidence: Sequence[tuple[Point, Report]]) -> list[Example]:
    """The examples of ∂f/∂``param`` in ``evidence`` = [(point, its report), ...] that have a reference."""
    out = []
    for point, report in evidence:
        g = next((g for g in report.gradients if g.param == param), None)
        if g is None or g.reference is None:
            continue
        r = np.asarray(g.reference, dtype=np.float64)
        nd = np.zeros(r.shape, bool) if g.nondiff_mask is None else np.asarray(g.nondiff_mask, bool)
        a = None
        if g.analytic is not None and g.problem != Problem.RAISED:
            try:
                a = np.asarray(g.analytic, dtype=np.float64)
            except (TypeError, ValueError):  # not numbers
                a = None
        # Without analytic numbers nothing is compared, and a raised gradient has no τ to read: none is measured.
        tau = entry_threshold(derivation, point, g, r) if a is not None else np.full(r.shape, np.nan)
        out.append(Example(point, g, a, r, np.isfinite(r) & ~nd, tau))
    return out


def wrong_entries(ex: Example) -> np.ndarray:
    """Live entries where the analytic gradient disagrees with the reference by more than τ (and MATCH_RTOL)."""
    with np.errstate(invalid="ignore"):
        return ex.live & ~(np.abs(ex.a - ex.r) <= ex.tau + MATCH_RTOL * np.abs(ex.r))


# --- the relation "analytic = c · T(reference)" -------------------------------------------------------


def snap(c: float) -> float:
    """``c`` replaced by the simple constant (±1, 0, ±CONSTANTS) within SNAP_RTOL of it, if any."""
    for v in (-1.0, 1.0, 0.0, *CONSTANTS, *(-k for k in CONSTANTS)):
        if abs(c - v) <= SNAP_RTOL * max(1.0, abs(v)):
            return v
    return c


def relation_holds(a: np.ndarray, t: np.ndarray, tau: np.ndarray, c: float) -> bool:
    """Whether a = c · t on every entry within the budget of the module docstring (``tau``: MATCH_SLACK · τ)."""
    return bool(np.all(np.abs(a - c * t) <= tau * max(1.0, abs(c)) + MATCH_RTOL * np.abs(c * t)))


def fit(exs: Sequence[Example], transform: Transform) -> float | None:
    """The one factor c with analytic = c · T(reference) on every example, or None."""
    rows = []
    for ex in exs:
        t = transform(ex.r) if ex.a is not None else None
        if t is None or t.shape != ex.a.shape:
            return None
        live = transform(ex.live).astype(bool)
        a = ex.a[live]
        if not np.all(np.isfinite(a)):
            return None
        rows.append((a, t[live], transform(ex.tau)[live]))
    if not rows:
        return None
    pooled = tuple(np.concatenate(z) for z in zip(*rows, strict=True))
    c = None
    for a, t, tau in (rows[0], pooled):  # fit on the counterexample unless its T(reference) is ~0
        if float(t @ t) > MATCH_SLACK**2 * float(tau @ tau):
            c = snap(float(a @ t) / float(t @ t))
            break
    if c is None:
        return None
    return c if all(relation_holds(a, t, MATCH_SLACK * tau, c) for a, t, tau in rows) else None


# --- the example at other sizes -------------------------------------------------------------------------


class Elsewhere:
    """One example at other sizes (every dim changed), evaluated on first use. Claims about shapes and
    factors are tested there too: at the small sizes a search shrinks to, a dim of size 1 can make a
    wrong gradient look like a reshape, a per-sample gradient or a plain constant factor."""

    def __init__(self, derivation: Derivation, param: str, ex0: Example) -> None:
        self.derivation, self.param, self.ex0 = derivation, param, ex0
        self.sizes = other_sizes(derivation, ex0.point.sizes)
        self._exs: list[Example] | None = None

    def examples(self) -> list[Example]:
        """The example at the other sizes ([] if it could not be evaluated or the gradient has no value there)."""
        if self._exs is None:
            point = draw_point(self.derivation, self.sizes, self.ex0.point.seed or 0)
            exs = examples(self.derivation, self.param, [(point, evaluate(self.derivation, point))])
            self._exs = [ex for ex in exs if ex.a is not None or ex.report.problem == Problem.RAISED]
        return self._exs

    def refutes(self, holds: Callable[[list[Example]], bool]) -> bool:
        """Whether the example at other sizes fails in a way the claim ``holds`` does not explain."""
        exs = self.examples()
        if not exs or exs[0].report.status == Status.PASS:
            return False
        return exs[0].a is None or not holds(exs)


def other_sizes(derivation: Derivation, sizes: dict[str, int]) -> dict[str, int]:
    """Sizes that differ from ``sizes`` in every dim, and from each other where the ranges allow."""
    used: set[int] = set()
    out = {}
    for d in derivation.symbols:
        lo, hi = derivation.dim_range(d)
        options = [v for v in (*PROBE_SIZES, *range(lo, hi + 1)) if lo <= v <= hi and v != sizes.get(d)]
        pick = next((v for v in options if v not in used), options[0] if options else sizes.get(d, lo))
        used.add(pick)
        out[d] = pick
    return derivation.space.near(out)  # an expression dim (H-K) may rule the picks out together


# --- one gradient's case --------------------------------------------------------------------------------


@dataclass
class Case:
    """∂f/∂``param`` and its evidence, as the entries of the table see it. An entry may take for granted
    that the entries before it declined: past ``raised`` and ``not_comparable``, the counterexample's
    analytic gradient has numbers."""

    derivation: Derivation
    param: str
    given: list[Example]  # every example with a reference, the counterexample first
    unconfirmed: list[Diagnosis] = field(default_factory=list)  # kinds that held on too few examples (``needed``)
    memo: dict[str, object] = field(default_factory=dict)  # what an entry computed, for the entries after it

    @property
    def first(self) -> Example:
        """The counterexample."""
        return self.given[0]

    @cached_property
    def exs(self) -> list[Example]:
        """The examples whose analytic gradient has numbers, in the counterexample's shape."""
        shape = self.first.a.shape
        return [ex for ex in self.given if ex.a is not None and ex.a.shape == shape]

    @property
    def wrong_shape(self) -> bool:
        """Whether the analytic gradient's shape is not the parameter's."""
        return self.first.a.shape != self.first.r.shape

    @cached_property
    def elsewhere(self) -> Elsewhere:
        return Elsewhere(self.derivation, self.param, self.first)

    @cached_property
    def factor(self) -> float | None:
        """c with analytic = c × reference on every example, or None (always None for a wrong shape)."""
        return fit(self.exs, IDENTITY)
