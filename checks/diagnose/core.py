"""Shared pieces of the diagnosis: examples, thresholds, the relation "analytic = c · T(reference)", layouts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import Diagnosis, GradientReport, Point, Problem, Report
from verigrad.checks.search.points import draw_point
from verigrad.checks.verdict import autograd_noise, evaluate, inner_length
from verigrad.checks.verdict import thresholds as tol
from verigrad.reference import ForwardError

#: A relation "analytic = c · T(reference)" holds where |analytic − c · T(reference)| ≤ MATCH_SLACK · τ · max(1, |c|),
#: τ being the gate's per-entry threshold: the analytic's own, differently ordered arithmetic and the
#: transform add rounding of the order of τ, while real slips differ at O(1) relative.
MATCH_SLACK = 16.0
#: ... and never tighter than MATCH_RTOL · |c · T(reference)| per entry: τ scales with max|reference|, so it
#: misses the rounding of a formula with cancellation (1 − tanh² near saturation is exact only to about
#: u / (1 − tanh²) relative), whereas the slips told apart here differ at O(1) relative.
MATCH_RTOL = 1e-9
#: A fitted factor is named by a simple form (−1, 2, 1/N, ...) when within this relative distance of it;
#: the named value must then pass the MATCH_SLACK test itself, so naming never hides a mismatch.
SNAP_RTOL = 1e-6
#: Sizes tried, in order, for a second point that tells dims apart: distinct primes first, so that N,
#: D, N·D and their ratios take distinct values.
PROBE_SIZES = (3, 2, 5, 7, 11, 13, 4, 6, 8, 9, 10, 12)
#: Layout search covers every axis permutation up to this rank (4! = 24 candidates).
MAX_PERMUTED_RANK = 4
#: Wrong entries or slices listed in a partial diagnosis at most.
MAX_LISTED = 8
#: A kink pattern ("wrong exactly where the switch is ≤ 0") is tested on at least this many entries; when the
#: counterexample is tiny (one entry, say), more examples are drawn at its sizes, so that a pattern that a few
#: examples fit by chance is not claimed. They only refute: ``confirmed_on`` counts the evidence given.
MIN_PATTERN_ENTRIES = 16
#: Seeds of those further examples start this far from the counterexample's, clear of the evidence's own.
MORE_SEED_OFFSET = 1_000_003
#: Plain constants a factor is named by: a dropped or doubled 2, a mean over 3 or 4 fixed entries.
CONSTANTS = (2.0, 0.5, 3.0, 1 / 3, 4.0, 0.25)
#: Forms of a size-dependent factor: (numerator constant, denominator constant); each combined with up
#: to two dims split between numerator and denominator (N, 1/N, N·D, 1/(N·D), D/N, 2/N, ...).
FORM_CONSTANTS = ((1, 1), (2, 1), (1, 2))
#: Exceptions a user forward may raise when a parameter is broadcast to a shape it was not written for.
_BROADCAST_ERRORS = (ForwardError, ValueError, TypeError, RuntimeError, IndexError)

Transform = Callable[[np.ndarray], np.ndarray]
_IDENTITY: Transform = np.asarray


@dataclass
class _Ex:
    """One example at the counterexample's sizes, reduced to what the diagnosis needs."""

    point: Point
    g: GradientReport
    a: np.ndarray | None  # analytic, float64 (None: raised, missing or not numeric)
    r: np.ndarray  # reference
    live: np.ndarray  # differentiable, finite entries of the reference
    tau: np.ndarray  # the gate's threshold per reference entry


def _sym(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _on(k: int, n: int) -> str:
    return f"on all {n} examples" if k == n else f"on {k} of {n} examples"


def _tau(derivation: Derivation, point: Point, g: GradientReport, r: np.ndarray) -> np.ndarray:
    t = g.threshold.get("analytic_vs_autograd")
    if t is None:  # rejected on shape before the gate measured its threshold: measure it the same way
        sig = np.asarray(autograd_noise(derivation, point, np.random.default_rng(0))[g.param], dtype=np.float64)
        nd = np.asarray(g.nondiff_mask, bool) if g.nondiff_mask is not None else np.zeros(r.shape, bool)
        sigma = float(np.max(np.where(nd, 0.0, sig) if sig.shape == r.shape else sig, initial=0.0))  # as the gate takes it
        t = tol.exact_bound(sigma, tol.U64, inner_length(derivation, point.sizes), float(np.max(np.abs(r[np.isfinite(r)]), initial=0.0)))
    tau = np.full(r.shape, float(t))
    fd_t = float(g.threshold.get("finite_differences_max", 0.0))
    for ix in g.decided_by_fd:  # there the reference is a finite difference, judged by its own threshold
        tau[ix] = max(float(t), fd_t)
    return tau


def _examples(derivation: Derivation, param: str, evidence: Sequence[tuple[Point, Report]]) -> list[_Ex]:
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
            except (TypeError, ValueError):
                a = None
        out.append(_Ex(point, g, a, r, np.isfinite(r) & ~nd, _tau(derivation, point, g, r)))
    return out


# --- relations "analytic = c · T(reference)" -----------------------------------------------------------


def _snap(c: float) -> float:
    for v in (-1.0, 1.0, 0.0, *CONSTANTS, *(-k for k in CONSTANTS)):
        if abs(c - v) <= SNAP_RTOL * max(1.0, abs(v)):
            return v
    return c


def _fit(exs: Sequence[_Ex], transform: Transform) -> float | None:
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
            c = _snap(float(a @ t) / float(t @ t))
            break
    if c is None:
        return None
    ok = all(np.all(np.abs(a - c * t) <= MATCH_SLACK * tau * max(1.0, abs(c)) + MATCH_RTOL * np.abs(c * t)) for a, t, tau in rows)
    return c if ok else None


def _forms(symbols: Sequence[str]) -> list[tuple[int, str, Callable[[dict[str, int]], float], tuple[str, ...]]]:
    """Candidate forms of a factor, simplest first: (complexity, text, value(sizes), dims used)."""
    out = [(0, _frac_text(k), (lambda s, k=k: k), ()) for k in CONSTANTS]
    groups = [()] + [(d,) for d in symbols] + list(itertools.combinations(symbols, 2))
    for num, den in itertools.product(groups, groups):
        if not (num or den) or set(num) & set(den) or len(num) + len(den) > 2:
            continue
        for kn, kd in FORM_CONSTANTS:
            def value(s: dict[str, int], num=num, den=den, kn=kn, kd=kd) -> float:
                return kn * float(np.prod([s[d] for d in num])) / (kd * float(np.prod([s[d] for d in den])))

            top = "·".join(([str(kn)] if kn != 1 else []) + list(num)) or "1"
            bottom = "·".join(([str(kd)] if kd != 1 else []) + list(den))
            text = top if not bottom else f"{top}/({bottom})" if "·" in bottom else f"{top}/{bottom}"
            out.append((len(num) + len(den) + (kn != 1 or kd != 1), text, value, num + den))
    return sorted(out, key=lambda f: f[0])


def _frac_text(k: float) -> str:
    return f"{k:g}" if k >= 1 else f"1/{round(1 / k)}"


def _scale_form(derivation: Derivation, exs: list[_Ex], c: float, elsewhere: _Elsewhere) -> dict[str, Any]:
    """Name |c| as a simple form of the sizes; a form using dims must also fit at other sizes."""
    sizes = exs[0].point.sizes
    fits = lambda value, target: abs(target - value) <= SNAP_RTOL * abs(value)
    cands = [f for f in _forms(derivation.symbols) if fits(f[2](sizes), abs(c))]
    if not cands:
        return {}
    checked = None
    if any(f[3] for f in cands) and elsewhere.exs():
        c2 = _fit(elsewhere.exs(), _IDENTITY)
        if c2 is not None:
            cands = [f for f in cands if fits(f[2](elsewhere.sizes), abs(c2))]
            checked = elsewhere.sizes
    if not cands:
        return {"scale_form": None, "scale_form_note": "the factor changes with the sizes in no simple way"}
    _, text, _, dims = cands[0]
    sign = "−" if c < 0 else ""
    with_sizes = ", ".join(f"{d}={sizes[d]}" for d in dims)
    return {"scale_form": sign + text, "scale_form_text": f"{sign}{text}" + (f" with {with_sizes}" if dims else ""),
            "scale_form_checked_at": checked}


# --- layouts ----------------------------------------------------------------------------------------


def _layouts(shape_r: tuple[int, ...], shape_a: tuple[int, ...]) -> Iterator[tuple[str, Transform]]:
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


def _find_layout(exs: list[_Ex]) -> tuple[str, float] | None:
    for label, transform in _layouts(exs[0].r.shape, exs[0].a.shape):
        c = _fit(exs, transform)
        if c is not None and c != 0:
            return label, c
    return None


def _layout(param: str, exs: list[_Ex], elsewhere: _Elsewhere) -> Diagnosis | None:
    a_shape, r_shape = exs[0].a.shape, exs[0].r.shape
    found = _find_layout(exs)
    if found and elsewhere.refutes(lambda other: _find_layout(other) is not None):
        found = None
    if found:
        label, c = found
        times = "" if c == 1 else " and multiplied by −1" if c == -1 else f" and multiplied by {c:.6g}"
        what = "the transpose of the reference" if label == "transposed" else "the reference's entries in another order"
        sentence = (f"∂f/∂{param} has the right numbers in the wrong layout ({label}{times}): analytic {_sym(a_shape)} is "
                    f"{what} {_sym(r_shape)}, {_on(len(exs), len(exs))}")
        details = {"layout": label, "analytic_shape": list(a_shape), "expected_shape": list(r_shape)}
        if c != 1:
            details["scale_factor"] = c
        return Diagnosis("transpose", sentence, details, len(exs))
    return None


class _Elsewhere:
    """One example at other sizes (every dim changed), evaluated on first use. Claims about shapes and
    factors are tested there too: at the small sizes a search shrinks to, a dim of size 1 can make a
    wrong gradient look like a reshape, a per-sample gradient or a plain constant factor."""

    def __init__(self, derivation: Derivation, param: str, ex0: _Ex) -> None:
        self.derivation, self.param, self.ex0 = derivation, param, ex0
        self.sizes = _other_sizes(derivation, ex0.point.sizes)
        self._exs: list[_Ex] | None = None

    def exs(self) -> list[_Ex]:
        """The example at the other sizes ([] if it could not be evaluated or the gradient has no value there)."""
        if self._exs is None:
            point = draw_point(self.derivation, self.sizes, self.ex0.point.seed or 0)
            exs = _examples(self.derivation, self.param, [(point, evaluate(self.derivation, point))])
            self._exs = [ex for ex in exs if ex.a is not None or ex.g.problem == Problem.RAISED]
        return self._exs

    def refutes(self, holds: Callable[[list[_Ex]], bool]) -> bool:
        """Whether the example at other sizes fails in a way the claim ``holds`` does not explain."""
        exs = self.exs()
        if not exs or exs[0].g.status == "pass":
            return False
        return exs[0].a is None or not holds(exs)

def _other_sizes(derivation: Derivation, sizes: dict[str, int]) -> dict[str, int]:
    """Sizes that differ from ``sizes`` in every dim, and from each other where the ranges allow."""
    used: set[int] = set()
    out = {}
    for d in derivation.symbols:
        lo, hi = derivation.dim_range(d)
        options = [v for v in (*PROBE_SIZES, *range(lo, hi + 1)) if lo <= v <= hi and v != sizes.get(d)]
        pick = next((v for v in options if v not in used), options[0] if options else sizes.get(d, lo))
        used.add(pick)
        out[d] = pick
    return out
