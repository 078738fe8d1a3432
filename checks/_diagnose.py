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

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analytic import Derivation
from reference import ForwardError, autograd_gradients, np_xp, objective

from . import _tolerance as tol
from ._compare import _autograd_noise, evaluate
from ._model import Diagnosis, GradientReport, Report
from ._points import Point, draw_point

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
        auto = autograd_gradients(derivation, point.params, point.grad_output)
        sig = np.asarray(_autograd_noise(derivation, point, auto, np.random.default_rng(0))[g.param], dtype=np.float64)
        nd = np.asarray(g.nondiff_mask, bool) if g.nondiff_mask is not None else np.zeros(r.shape, bool)
        sigma = float(np.max(np.where(nd, 0.0, sig) if sig.shape == r.shape else sig, initial=0.0))  # as the gate takes it
        dims = sum(point.sizes.values()) + sum(d for s in derivation.shapes.values() for d in s if isinstance(d, int))
        t = tol.exact_bound(sigma, tol.U64, dims, float(np.max(np.abs(r[np.isfinite(r)]), initial=0.0)))
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
        if g.analytic is not None and not (g.message or "").startswith("gradients raised"):
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
            self._exs = [ex for ex in exs if ex.a is not None or (ex.g.message or "").startswith("gradients raised")]
        return self._exs

    def refutes(self, holds: Callable[[list[_Ex]], bool]) -> bool:
        """Whether the example at other sizes fails in a way the claim ``holds`` does not explain."""
        exs = self.exs()
        if not exs or exs[0].g.status == "pass":
            return False
        return exs[0].a is None or not holds(exs)


# --- broadcast parameters (biases) ------------------------------------------------------------------


def _budget(ex: _Ex, cand: np.ndarray) -> np.ndarray:
    """Allowed difference from a per-copy gradient: the gate's τ plus the rounding of summing the copies."""
    summing = tol.C_SIZE * tol.U64 * np.sqrt(cand.size) * float(np.max(np.abs(cand), initial=0.0))
    return MATCH_SLACK * (float(np.max(ex.tau, initial=0.0)) + summing) + MATCH_RTOL * np.abs(cand)


def _close(ex: _Ex, cand: np.ndarray) -> bool:
    return ex.a is not None and cand.shape == ex.a.shape and bool(np.all(np.abs(ex.a - cand) <= _budget(ex, cand)))


def _per_copy(derivation: Derivation, ex: _Ex, param: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """∂f/∂(each broadcast copy of param) with param broadcast to ``shape``; None unless broadcasting it
    first leaves the objective, and the gradient summed over the copies, unchanged."""
    p = np.asarray(ex.point.params[param])
    try:
        if shape == p.shape or np.broadcast_shapes(p.shape, shape) != shape:
            return None
        moved = {**ex.point.params, param: np.broadcast_to(p, shape).copy()}
        with np.errstate(all="ignore"):
            f0 = float(objective(derivation, np_xp, ex.point.params, ex.point.grad_output))
            f1 = float(objective(derivation, np_xp, moved, ex.point.grad_output))
        per = autograd_gradients(derivation, ex.point.params, ex.point.grad_output, expand={param: shape})[param]
    except _BROADCAST_ERRORS:
        return None
    lead = len(shape) - p.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(p.shape) if n == 1 and shape[lead + i] != 1)
    total = per.sum(axis=axes).reshape(p.shape)
    spread = np.abs(per).sum(axis=axes).reshape(p.shape)
    same_f = abs(f1 - f0) <= MATCH_SLACK * tol.U64 * max(abs(f0), 1e-300) * np.sqrt(per.size)
    return per if same_f and bool(np.all(np.abs(total - ex.r) <= np.max(_budget(ex, per)) + MATCH_RTOL * spread)) else None


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


def _batch_sum(derivation: Derivation, param: str, exs: list[_Ex], elsewhere: _Elsewhere | None = None) -> Diagnosis | None:
    """A broadcast parameter's gradient given per copy, or summed over the wrong axis; with ``elsewhere``, the
    claim must also hold at other sizes."""
    found = _batch_relation(derivation, param, exs)
    if found is None or elsewhere is None:
        return None if found is None else _batch_diagnosis(param, derivation, exs, found, kept=False)
    if elsewhere.refutes(lambda other: _batch_relation(derivation, param, other) is not None):
        return None
    other = elsewhere.exs()
    if found[0] == "per copy" and all(exs[0].a.shape[ax] == 1 for ax in found[1]) and not _is_broadcast(derivation, param, other):
        return None  # a length-1 axis broadcasts against anything: without a batch to broadcast over, it is a reshape
    kept = (found[0] == "per copy" and bool(other) and other[0].a is not None and other[0].a.shape != other[0].r.shape
            and all(exs[0].a.shape[ax] == 1 and other[0].a.shape[ax] == 1 for ax in found[1]))
    return _batch_diagnosis(param, derivation, exs, found, kept)


def _is_broadcast(derivation: Derivation, param: str, other: list[_Ex]) -> bool:
    """Whether the forward broadcasts ``param`` over a batch of more than one copy (at the other sizes)."""
    if not other:
        return False
    ex = other[0]
    p_shape = np.shape(ex.point.params[param])
    return any(_per_copy(derivation, ex, param, (s, *p_shape)) is not None for s in sorted(set(ex.point.sizes.values())) if s > 1)


def _batch_relation(derivation: Derivation, param: str, exs: list[_Ex]) -> tuple[str, Any] | None:
    """("per copy", axes summed) or ("wrong axis", (copies, what was summed)) if one holds on every example."""
    a_shape, p_shape = exs[0].a.shape, exs[0].r.shape
    pers = [_per_copy(derivation, ex, param, a_shape) for ex in exs]
    if all(p is not None and _close(ex, p) for ex, p in zip(exs, pers, strict=True)):
        lead = len(a_shape) - len(p_shape)
        return "per copy", list(range(lead)) + [i for i in range(lead, len(a_shape)) if p_shape[i - lead] == 1 and a_shape[i] != 1]
    if not p_shape:
        return None
    reductions = (("the feature axes instead of the batch axis 0", lambda p: p.sum(axis=tuple(range(1, p.ndim)))),
                  ("every axis, the batch and the features", lambda p: np.asarray(p.sum())))
    for s in sorted(set(exs[0].point.sizes.values())):
        pers = [_per_copy(derivation, ex, param, (s, *p_shape)) for ex in exs]
        if any(p is None for p in pers):
            continue
        for label, reduce in reductions:
            if all(_close(ex, reduce(p)) for ex, p in zip(exs, pers, strict=True)):
                return "wrong axis", ((s, *p_shape), label)
    return None


def _batch_diagnosis(param: str, derivation: Derivation, exs: list[_Ex], found: tuple[str, Any], kept: bool) -> Diagnosis:
    n, a_shape, p_shape = len(exs), exs[0].a.shape, exs[0].r.shape
    expected = f"{_sym(derivation.shapes[param])} = {_sym(p_shape)}"
    base = {"analytic_shape": list(a_shape), "expected_shape": list(p_shape)}
    how, what = found
    if how == "wrong axis":
        copies, label = what
        sentence = (f"∂f/∂{param} is summed over the wrong axis: analytic {_sym(a_shape)} is the per-sample gradients "
                    f"{_sym(copies)} summed over {label}; expected shape {expected}, {_on(n, n)}")
        return Diagnosis("missing_batch_sum", sentence, {**base, "summed_over": label}, n)
    if kept:
        sentence = (f"∂f/∂{param} keeps the summed batch axis: shape {_sym(a_shape)} instead of {expected}; sum without "
                    f"keepdims (drop axis {what[0]}), {_on(n, n)}")
    else:
        sentence = (f"∂f/∂{param} is not summed over the batch: it is one gradient per sample, shape {_sym(a_shape)}, "
                    f"instead of their sum over axis {', '.join(map(str, what))}, shape {expected}, {_on(n, n)}")
    return Diagnosis("missing_batch_sum", sentence, {**base, "sum_over_axes": what, "keepdims": kept}, n)


# --- partial errors -----------------------------------------------------------------------------------


def _index_names(symbols: Sequence[Any], taken: Sequence[str] = ()) -> list[str]:
    names: list[str] = []
    for k, d in enumerate(symbols):
        base = d.lower() if isinstance(d, str) else f"i{k}"
        name, j = base, 2
        while name in names or name in taken:
            name, j = f"{base}{j}", j + 1
        names.append(name)
    return names


def _switch_symbols(derivation: Derivation) -> list[tuple[str | None, ...]]:
    """The symbolic dim of each axis of each declared kink switch, read off a point where the dims differ."""
    sizes = _other_sizes(derivation, {})
    by_size: dict[int, list[str]] = {}
    for d, v in sizes.items():
        by_size.setdefault(v, []).append(d)
    try:
        switches = derivation.kinks(np_xp, **draw_point(derivation, sizes, 0).params)
    except Exception:  # user code; without switches the other patterns still apply
        return []
    return [tuple(by_size[n][0] if len(by_size.get(n, ())) == 1 else None for n in np.shape(s)) for s in switches]


def _mapping(g_syms: Sequence[Any], g_shape: tuple[int, ...], s_syms: Sequence[Any], s_shape: tuple[int, ...]) -> dict[int, int]:
    """Gradient axis → switch axis over the same dim (by name where known, else by size)."""
    mapping: dict[int, int] = {}
    for k, gs in enumerate(g_syms):
        for ax, ss in enumerate(s_syms):
            if ax in mapping.values() or s_shape[ax] != g_shape[k]:
                continue
            if isinstance(gs, str) and ss is not None and ss != gs:
                continue
            mapping[k] = ax
            break
    return mapping


def _project(cond: np.ndarray, mapping: dict[int, int], g_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient entries whose mapped switch entries satisfy ``cond`` for some value of the unmapped axes."""
    rest = tuple(ax for ax in range(cond.ndim) if ax not in mapping.values())
    red = cond.any(axis=rest) if rest else cond
    kept = sorted(mapping.values())
    red = red.transpose([kept.index(mapping[k]) for k in sorted(mapping)])
    return np.broadcast_to(red.reshape([g_shape[k] if k in mapping else 1 for k in range(len(g_shape))]), g_shape)


def _switch_patterns(derivation: Derivation, param: str, exs: list[_Ex]) -> Iterator[tuple[str, str, list[np.ndarray]]]:
    """(pattern, text, predicted mask per example) for each declared switch, side and axis alignment."""
    if derivation.kinks is None:
        return
    g_syms = derivation.shapes[param]
    g_names = _index_names(g_syms)
    try:
        switches = [[np.asarray(s, dtype=np.float64) for s in derivation.kinks(np_xp, **ex.point.params)] for ex in exs]
    except Exception:  # user code
        return
    for i, s_syms in enumerate(_switch_symbols(derivation)):
        if any(i >= len(sw) or sw[i].ndim != len(s_syms) for sw in switches):
            break
        s_shape = switches[0][i].shape
        mappings = [_mapping(g_syms, ex.r.shape, s_syms, sw[i].shape) for ex, sw in zip(exs, switches, strict=True)]
        mapping = mappings[0]
        if not mapping or any(m != mapping for m in mappings):
            continue
        own = _index_names([s_syms[ax] or f"j{ax}" for ax in range(len(s_shape))], taken=g_names)
        back = {ax: k for k, ax in mapping.items()}
        s_names = [g_names[back[ax]] if ax in back else own[ax] for ax in range(len(s_shape))]
        reduced = [s_names[ax] for ax in range(len(s_shape)) if ax not in back]
        elementwise = not reduced and len(mapping) == len(g_syms)
        for op, cond in (("≤", lambda s: s <= 0), (">", lambda s: s > 0)):
            where = f"kinks()[{i}][{', '.join(s_names)}] {op} 0" + (f" for some {', '.join(reduced)}" if reduced else "")
            text = f"where {where}" if elementwise else f"at the entries [{', '.join(g_names)}] where {where}"
            yield f"kinks()[{i}] {op} 0", text, [_project(cond(sw[i]), mapping, ex.r.shape) for ex, sw in zip(exs, switches, strict=True)]


def _more(derivation: Derivation, param: str, exs: list[_Ex]) -> list[_Ex]:
    """Further examples at the counterexample's sizes until MIN_PATTERN_ENTRIES entries are covered."""
    per = max(int(exs[0].r.size), 1)
    need = -(-MIN_PATTERN_ENTRIES // per) - len(exs)
    base = (exs[0].point.seed or 0) + MORE_SEED_OFFSET
    out = []
    for k in range(max(need, 0)):
        point = draw_point(derivation, exs[0].point.sizes, (base + k) % 2**32)
        out += [ex for ex in _examples(derivation, param, [(point, evaluate(derivation, point))]) if ex.a is not None and ex.a.shape == ex.r.shape]
    return out


def _slices(w: np.ndarray, live: np.ndarray, axis: int) -> tuple[int, ...] | None:
    """Indices along ``axis`` whose slices are wholly wrong, if every slice is wholly wrong or wholly right."""
    other = tuple(i for i in range(w.ndim) if i != axis)
    some, whole = w.any(axis=other), (w | ~live).all(axis=other)
    return None if np.any(some & ~whole) else tuple(int(i) for i in np.flatnonzero(some))


def _pattern(derivation: Derivation, param: str, exs: list[_Ex], wrong: list[np.ndarray], elsewhere: _Elsewhere) -> tuple[str, str, int]:
    """The most specific pattern the wrong entries follow on every example: (pattern, text, support). Where a
    slice is a single entry at these sizes (a row of a one-row array), the example at other sizes decides."""
    n = len(exs)
    # A switch pattern must also hold at the other sizes: on one-entry gradients a few examples fit one by chance.
    other = [ex for ex in elsewhere.exs() if ex.a is not None and ex.a.shape == ex.r.shape]
    every = exs + other + _more(derivation, param, exs) if derivation.kinks is not None else exs + other
    every_wrong = wrong + [_wrong(ex) for ex in every[len(exs):]]
    patterns = list(_switch_patterns(derivation, param, every))
    for key, text, preds in patterns:
        if all(np.array_equal(w, p & ex.live) for w, p, ex in zip(every_wrong, preds, every, strict=True)):
            return key, f"wrong exactly {text}, right elsewhere", n
    shape = exs[0].r.shape
    axes = [k for k in range(len(shape)) if len(shape) >= 2 and int(np.prod(shape)) // shape[k] > 1]
    thin = [k for k in range(len(shape)) if len(shape) >= 2 and shape[k] > 1 and int(np.prod(shape)) // shape[k] == 1]
    word = lambda k: {0: "rows", 1: "columns"}.get(k, f"slices along axis {k}") if len(shape) == 2 else f"slices along axis {k}"
    for k in axes + thin:
        sl = [_slices(w, ex.live, k) for w, ex in zip(wrong, exs, strict=True)]
        if not all(s is not None and s == sl[0] for s in sl):
            continue
        if k in thin:
            if not other or int(np.prod(other[0].r.shape)) // other[0].r.shape[k] == 1 or _slices(_wrong(other[0]), other[0].live, k) != sl[0]:
                continue
        return f"{word(k)} {list(sl[0])}", f"wrong in the same {word(k)} {list(sl[0])} on every example", n
    if all(np.array_equal(w, wrong[0]) for w in wrong):
        listed = [list(map(int, ix)) for ix in np.argwhere(wrong[0])[:MAX_LISTED]]
        return f"entries {listed}", f"wrong at the same entries {listed} on every example", n
    for key, text, preds in patterns:
        inside = all(not np.any(w & ~p) for w, p in zip(every_wrong, preds, strict=True))
        excludes = any(np.any(ex.live & ~p) for p, ex in zip(preds, every, strict=True))
        if inside and excludes:
            return f"only {key}", f"wrong only {text} (right wherever that does not hold)", n
    for k in axes:
        sl = [_slices(w, ex.live, k) for w, ex in zip(wrong, exs, strict=True)]
        if all(s is not None for s in sl):
            return f"whole {word(k)}", f"wrong in whole {word(k)}, which ones changing with the values", n
    support = sum(bool(np.any(ex.live & ~w)) for w, ex in zip(wrong, exs, strict=True))
    return "scattered", "wrong entries follow no row, column or kink pattern", support


def _there(exs: list[_Ex], wrong: list[np.ndarray]) -> str:
    """What the wrong entries have in common, if anything simple."""
    a = np.concatenate([ex.a[w] for ex, w in zip(exs, wrong, strict=True)])
    r = np.concatenate([ex.r[w] for ex, w in zip(exs, wrong, strict=True)])
    tau = MATCH_SLACK * np.concatenate([ex.tau[w] for ex, w in zip(exs, wrong, strict=True)])
    if np.all(np.abs(r) <= tau):
        return "; there the reference is 0 and the analytic is not"
    if np.all(np.abs(a) <= tau):
        return "; there the analytic is 0 and the reference is not"
    if float(r @ r) > float(tau @ tau):
        c = _snap(float(a @ r) / float(r @ r))
        if np.all(np.abs(a - c * r) <= tau * max(1.0, abs(c)) + MATCH_RTOL * np.abs(c * r)):
            return f"; there analytic = {c:.6g} × reference"
    return ""


def _wrong(ex: _Ex) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ex.live & ~(np.abs(ex.a - ex.r) <= ex.tau + MATCH_RTOL * np.abs(ex.r))


def _partial(derivation: Derivation, param: str, exs: list[_Ex], elsewhere: _Elsewhere) -> Diagnosis | None:
    wrong = [_wrong(ex) for ex in exs]
    n_wrong = sum(int(w.sum()) for w in wrong)
    n_live = sum(int(ex.live.sum()) for ex in exs)
    if n_wrong in (0, n_live):
        return None
    pattern, text, support = _pattern(derivation, param, exs, wrong, elsewhere)
    k, n = int(wrong[0].sum()), int(exs[0].live.sum())
    pooled = f" ({n_wrong} of {n_live} over the {len(exs)} examples)" if len(exs) > 1 else ""
    sentence = (f"∂f/∂{param} is partly wrong: {k} of {n} entries disagree{pooled}, {text}{_there(exs, wrong) if pattern != 'scattered' else ''}; "
                f"consistent {_on(support, len(exs))}")
    details = {"fraction_wrong": k / n if n else 0.0, "fraction_wrong_all": n_wrong / n_live, "pattern": pattern,
               "wrong_entries": [list(map(int, ix)) for ix in np.argwhere(wrong[0])[:MAX_LISTED]]}
    return Diagnosis("partial", sentence, details, support)


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
    if message.startswith("gradients raised"):
        exc = message.removeprefix("gradients raised").strip()
        k = sum((ex.g.message or "").startswith("gradients raised") for ex in exs)
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
