"""What kind of mistake a failing hand-derived H·v shows: a factor, a transposed block, symmetry broken, a missing term.

The diagnosis calls the hand-derived product and the reference (autograd's double backward, or the differences of
the gradients) along more directions at the point (checks/verdict/second_order.py::Operator), on two directions v
and w, and restricted to one parameter q at a time (v|q: v on q, 0 elsewhere), which reads the Hessian block by
block: (H·v|q)_p = ∂²f/∂p∂q · v_q. Entries match as everywhere in the diagnosis (evidence.relation_holds, within
MATCH_SLACK·τ_ex of the verdict). Tried in this order, first match wins, each on both directions:

* ``sign_flip`` / ``scale``  (H·v)_p = c · reference for one constant c;
* ``transpose``              a block applied transposed: (H·v|q)_p = (∂²f/∂p∂q · v_q)ᵀ or ∂²f/∂p∂q · v_qᵀ;
* ``scale`` of a block       (H·v|q)_p = c · ∂²f/∂p∂q · v_q, the other blocks right;
* ``asymmetric``             symmetry broken: wᵀ(A v) ≠ vᵀ(A w) beyond the τ_ex of both products, and the block
                             p ← q is wrong while its mirror q ← p is right: a transposed or one-sided term;
* ``missing_term``           a wrong block whose error is symmetric (the mirror block wrong by its transpose, or a
                             diagonal block): A = H − T, a second-order term T left out (the σ'' term, the
                             residual term of Gauss-Newton, a regulariser's);
* ``unknown``                none of these.

A failing J·v (``diagnose_jvp``) is read the same way, J being linear in v: the whole product c × the reference
(``sign_flip`` / ``scale``), the term of one parameter's tangent v|q scaled or left out (c = 0: ``missing_term``),
or wrong on the same entries of the output along both directions and right on the others (``partial``: a branch or
a mask of the forward the rule misses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from verigrad.checks.diagnose.evidence import relation_holds, snap
from verigrad.checks.report import Diagnosis, GradientReport, Kind
from verigrad.checks.verdict.second_order import Operator
from verigrad.checks.verdict.thresholds import MATCH_RTOL, MATCH_SLACK

__all__ = ["diagnose_hvp", "diagnose_jvp"]

Field = dict[str, np.ndarray]


def _only(v: Mapping[str, np.ndarray], q: str) -> Field:
    return {n: (x if n == q else np.zeros_like(x)) for n, x in v.items()}


def _fit(pairs: Sequence[tuple[np.ndarray, np.ndarray]], tau: float) -> float | None:
    """The one c with a = c·r on every pair (snapped to a simple constant), or None."""
    r = np.concatenate([np.ravel(b) for _, b in pairs])
    a = np.concatenate([np.ravel(x) for x, _ in pairs])
    if not float(r @ r) > 0:
        return None
    c = snap(float(a @ r) / float(r @ r))
    return c if all(relation_holds(np.asarray(x, float), np.asarray(b, float), MATCH_SLACK * tau, c) for x, b in pairs) else None


def _square_t(x: np.ndarray) -> np.ndarray | None:
    return x.T if x.ndim == 2 and x.shape[0] == x.shape[1] else None


class _Probe:
    """The analytic and reference products along the directions the diagnosis asks for (each computed once)."""

    def __init__(self, op: Operator, rng: np.random.Generator) -> None:
        self.op = op
        self.dirs = [op.v, {n: np.abs(x) * np.where(rng.random(x.shape) < 0.5, -1.0, 1.0) for n, x in op.v.items()}]
        self.cache: dict[tuple, tuple[Field, Field]] = {}

    def at(self, k: int, q: str | None = None, flip: bool = False) -> tuple[Field, Field]:
        key = (k, q, flip)
        if key not in self.cache:
            v = self.dirs[k] if q is None else _only(self.dirs[k], q)
            if flip:
                v = {n: x.T for n, x in v.items()}
            a = {n: np.asarray(x, dtype=np.float64) for n, x in self.op.analytic(v).items()}
            self.cache[key] = (a, self.op.reference(v))
        return self.cache[key]


def _sym_text(probe: _Probe) -> tuple[str, bool]:
    """wᵀ(A v) against vᵀ(A w), and whether they differ beyond the τ_ex of both products."""
    (a_v, _), (a_w, _) = probe.at(0), probe.at(1)
    v, w = probe.dirs
    taus = {g.param: float(g.threshold.get("analytic_vs_autograd", 0.0)) for g in probe.op.reports}
    s1 = sum(float(np.sum(w[n] * a_v[n])) for n in v if n in a_v)
    s2 = sum(float(np.sum(v[n] * a_w[n])) for n in v if n in a_w)
    bound = MATCH_SLACK * sum(taus.get(n, 0.0) * (float(np.abs(w[n]).sum()) + float(np.abs(v[n]).sum())) for n in v)
    return f"wᵀ(H·v) = {s1:.6g} but vᵀ(H·w) = {s2:.6g}", abs(s1 - s2) > bound


def _block_ok(probe: _Probe, p: str, q: str, tau: float) -> bool:
    return all(relation_holds(probe.at(k, q)[0][p], probe.at(k, q)[1][p], MATCH_SLACK * tau, 1.0) for k in (0, 1))


def _block(probe: _Probe, p: str, q: str, tau: float) -> Diagnosis | None:
    """What is wrong in the block p ← q (``None``: nothing this table names)."""
    pairs = [(probe.at(k, q)[0][p], probe.at(k, q)[1][p]) for k in (0, 1)]
    name = f"∂²f/∂{p}∂{q}"
    if all(_square_t(r) is not None for _, r in pairs) and _fit([(a, _square_t(r)) for a, r in pairs], tau) == 1.0:
        return Diagnosis(
            Kind.TRANSPOSE, f"(H·v)_{p}: the block {name} is applied transposed (its product comes out as its transpose)", {"block": [p, q]}, 2
        )
    if probe.dirs[0][q].ndim == 2 and probe.dirs[0][q].shape[0] == probe.dirs[0][q].shape[1]:
        flipped = [(a, probe.at(k, q, flip=True)[1][p]) for k, (a, _) in enumerate(pairs)]
        if _fit(flipped, tau) == 1.0:
            return Diagnosis(Kind.TRANSPOSE, f"(H·v)_{p}: the block {name} is applied to v_{q}ᵀ instead of v_{q}", {"block": [p, q]}, 2)
    c = _fit(pairs, tau)
    if c is not None and c not in (0.0, 1.0):
        kind = Kind.SIGN_FLIP if c == -1.0 else Kind.SCALE
        return Diagnosis(
            kind, f"(H·v)_{p}: the block {name} is {c:g} × the reference, the other blocks are right", {"scale_factor": c, "block": [p, q]}, 2
        )
    return None


def _error_symmetric(probe: _Probe, p: str, q: str, tau_p: float, tau_q: float) -> bool:
    """Whether the error of block p ← q is the transpose of block q ← p's: ⟨w_p, E v_q⟩ = ⟨v_q, E' w_p⟩."""
    v, w = probe.dirs
    a1, r1 = probe.at(0, q)
    e1 = float(np.sum(w[p] * (a1[p] - r1[p])))
    wp = _only(w, p)
    a2, r2 = (np.asarray(x, float) for x in (probe.op.analytic(wp)[q], probe.op.reference(wp)[q]))
    e2 = float(np.sum(v[q] * (a2 - r2)))
    bound = MATCH_SLACK * (tau_p * float(np.abs(w[p]).sum()) + tau_q * float(np.abs(v[q]).sum()))
    return abs(e1 - e2) <= bound + MATCH_RTOL * max(abs(e1), abs(e2))


def diagnose_hvp(op: Operator, g: GradientReport, rng: np.random.Generator) -> Diagnosis:
    """The kind of mistake of the failing (H·v)_p ``g`` (module docstring)."""
    found = _diagnosis(op, g, rng)
    found.names_param = found.kind != Kind.ASYMMETRIC  # every other sentence begins with (H·v)_p itself
    return found


def _diagnosis(op: Operator, g: GradientReport, rng: np.random.Generator) -> Diagnosis:
    p = g.param
    taus = {r.param: float(r.threshold.get("analytic_vs_autograd", 0.0)) for r in op.reports}
    probe = _Probe(op, rng)
    whole = _fit([(probe.at(k)[0][p], probe.at(k)[1][p]) for k in (0, 1)], taus[p])
    if whole is not None and whole not in (0.0, 1.0):
        kind = Kind.SIGN_FLIP if whole == -1.0 else Kind.SCALE
        return Diagnosis(kind, f"(H·v)_{p} is {whole:g} × the reference along every direction tried", {"scale_factor": whole}, 2)
    said, asymmetric = _sym_text(probe)
    wrong = [q for q in op.v if not _block_ok(probe, p, q, taus[p])]
    for q in wrong:
        found = _block(probe, p, q, taus[p])
        if found is not None:
            found.details["symmetric"] = not asymmetric
            return found
    for q in wrong:
        mirror_ok = q != p and all(relation_holds(probe.at(k, p)[0][q], probe.at(k, p)[1][q], MATCH_SLACK * taus[q], 1.0) for k in (0, 1))
        if asymmetric and mirror_ok:
            return Diagnosis(
                Kind.ASYMMETRIC,
                (
                    f"symmetry broken: {said}. The block ∂²f/∂{p}∂{q} of (H·v)_{p} is wrong while its mirror "
                    f"∂²f/∂{q}∂{p} in (H·v)_{q} is right: a term of (H·v)_{p} from v_{q} transposed or left out"
                ),
                {"block": [p, q]},
                2,
            )
    for q in wrong:
        if q == p or _error_symmetric(probe, p, q, taus[p], taus[q]):
            return Diagnosis(
                Kind.MISSING_TERM,
                (
                    f"(H·v)_{p}: the block ∂²f/∂{p}∂{q} is off by a symmetric term (the hand Hessian stays "
                    f"symmetric): a second-order term left out or wrong, such as the second derivative of an "
                    f"activation or a residual's curvature"
                ),
                {"block": [p, q], "symmetric": not asymmetric},
                2,
            )
    blocks = ", ".join(f"∂²f/∂{p}∂{q}" for q in wrong) or "none alone"
    return Diagnosis(
        Kind.UNKNOWN,
        f"(H·v)_{p} is wrong in the block(s) {blocks}; no factor, transpose or symmetric term explains it ({said})",
        {"symmetric": not asymmetric},
        2,
    )


def diagnose_jvp(op: Operator, g: GradientReport, rng: np.random.Generator) -> Diagnosis:
    """The kind of mistake of the failing J·v ``g`` (module docstring)."""
    k, tau = g.param, float(g.threshold.get("analytic_vs_autograd", 0.0))
    probe = _Probe(op, rng)
    pairs = [(probe.at(j)[0][k], probe.at(j)[1][k]) for j in (0, 1)]
    whole = _fit(pairs, tau)
    if whole is not None and whole not in (0.0, 1.0):
        kind = Kind.SIGN_FLIP if whole == -1.0 else Kind.SCALE
        return Diagnosis(kind, f"J·v is {whole:g} × the reference along every direction tried", {"scale_factor": whole}, 2)
    for q in op.v:
        c = _fit([(probe.at(j, q)[0][k], probe.at(j, q)[1][k]) for j in (0, 1)], tau)
        others = [n for n in op.v if n != q]
        right = all(relation_holds(probe.at(j, n)[0][k], probe.at(j, n)[1][k], MATCH_SLACK * tau, 1.0) for j in (0, 1) for n in others)
        if c is None or c == 1.0 or not right:
            continue
        if c == 0.0:
            return Diagnosis(Kind.MISSING_TERM, f"J·v leaves out the term of v_{q}: the tangent of {q} is not propagated", {"param": q}, 2)
        kind = Kind.SIGN_FLIP if c == -1.0 else Kind.SCALE
        return Diagnosis(kind, f"J·v: the term of v_{q} is {c:g} × the reference, the other terms are right", {"scale_factor": c, "param": q}, 2)
    wrong = [np.abs(a - r) > MATCH_SLACK * tau + MATCH_RTOL * np.abs(r) for a, r in pairs]
    n, m = int(wrong[0].size), int(wrong[0].sum())
    if 0 < m < n and np.array_equal(wrong[0], wrong[1]):
        entries = [list(map(int, ix)) for ix in np.argwhere(wrong[0])[:5]]
        return Diagnosis(
            Kind.PARTIAL,
            f"J·v is wrong on the same {m} of {n} entries of the output along both directions and right on the others "
            f"(first {entries}): a branch or mask of the forward the rule misses",
            {"wrong_entries": entries},
            2,
        )
    return Diagnosis(Kind.UNKNOWN, "J·v is wrong; no factor, left-out tangent or set of entries explains it", {}, 2)
