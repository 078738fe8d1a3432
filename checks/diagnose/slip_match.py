"""Which reference quantity a step of a traced derivation equals, up to a sign, a constant factor or a transpose.

The reference quantities (``references``) are the forward's intermediates and parameters at the point, each as
its value (``h``) and as ∂f/∂it (``∂f/∂h``), named ones first. A step equals c · T(q) when, per entry,

    |step − c · T(q)| ≤ MATCH_SLACK · ρ · max|q| · max(1, |c|) + MATCH_RTOL · |c · T(q)|,

ρ = τ_ex / max|reference| the failing gradients' own threshold relative to their size at the point (the
loosest of them; never below the size term of τ_ex alone). See checks/verdict/thresholds.py, "the slip".

Values alone can be ambiguous: f depends on Y − Y_pred, so ∂f/∂Y = −∂f/∂Y_pred, and a sign slip in
``grad_Y_pred`` would equal ∂f/∂Y. A step's variable name settles it when it names a quantity the way
backprop is written (``grad_Y_pred``, ``grad_h``, ``dW1``, ``d_h``, ``dL_dh``, ``h_grad``): it is compared
with ∂f/∂(that quantity) first, and a step that is a sign, factor or transpose of it is not right, whatever
else it equals. (A step that is none of these may still equal another quantity: ``grad_h`` before its mask
is applied in place is ∂f/∂h_relu.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose.evidence import CONSTANTS, snap
from verigrad.checks.report import GradientReport, Point
from verigrad.checks.verdict import inner_length
from verigrad.checks.verdict.thresholds import FD_MATCH_SLACK, MATCH_RTOL, MATCH_SLACK, MIN_FACTOR_ENTRIES, U64, exact_bound

__all__ = ["Matcher", "Ref", "Relation", "factor_text", "references"]

#: How backprop names ∂f/∂q: a prefix or a suffix around the quantity's name.
_PREFIXES = ("grad_", "grad", "dL_d", "dL_d_", "df_d", "df_d_", "d_", "d", "g_", "delta_")
_SUFFIX = re.compile(r"^(.+?)_grad$")
#: The factors a value of fewer than MIN_FACTOR_ENTRIES entries may be related by (evidence.snap's vocabulary).
SIMPLE = frozenset((1.0, -1.0, *CONSTANTS, *(-k for k in CONSTANTS)))
_FRACTIONS = {0.5: "1/2", 1 / 3: "1/3", 0.25: "1/4"}


def factor_text(c: float) -> str:
    """A factor as a sentence writes it: −1, 2, 1/2, 0.731."""
    sign = "−" if c < 0 else ""
    a = abs(c)
    if a in _FRACTIONS:
        return sign + _FRACTIONS[a]
    return sign + (f"{a:g}" if a == round(a) else f"{a:.6g}")


@dataclass(frozen=True, eq=False)
class Ref:
    """A reference quantity: its name (``∂f/∂h``, ``h``), its value at the point, whether it is a gradient, and
    the factor it was taken with (``1/2 × ∂f/∂h``: the value a step should have had to make a later line right)."""

    name: str
    array: np.ndarray
    grad: bool = True
    scale: float = 1.0
    error: np.ndarray | float = 0.0  # per entry, the finite-difference error bound of a NumPy-only forward's ∂f/∂q

    @property
    def label(self) -> str:
        return self.name if self.scale == 1.0 else f"{factor_text(self.scale)} × {self.name}"

    def times(self, k: float) -> Ref:
        return Ref(self.name, self.array * k, self.grad, self.scale * k, self.error * abs(k))

    @property
    def t_error(self) -> np.ndarray | float:
        """The error bound as the transposed array's (``array.T``)."""
        return self.error.T if isinstance(self.error, np.ndarray) else self.error


@dataclass(frozen=True)
class Relation:
    """value = c · T(ref), T the identity or a transpose."""

    ref: Ref
    c: float
    transposed: bool = False

    @property
    def identity(self) -> bool:
        return self.c == 1.0 and not self.transposed

    def text(self) -> str:
        base = self.ref.name + (" transposed" if self.transposed else "")
        c = snap(self.c * self.ref.scale)
        return base if c == 1.0 else f"{factor_text(c)} × {base}"

    @property
    def simple(self) -> bool:
        """A sign, a transpose or a plain constant: a relation that names a slip by itself."""
        return self.c in SIMPLE


def references(found) -> list[Ref]:
    """The reference quantities of ``verigrad.reference.intermediates``'s result, in the order they are preferred:
    ∂f/∂(named intermediates), ∂f/∂(parameters), named values, parameters' values, then the unnamed ones."""
    named = [q for q in found.quantities if not q.param and not q.name.startswith("(")]
    params = [q for q in found.quantities if q.param]
    unnamed = [q for q in found.quantities if not q.param and q.name.startswith("(")]
    grad = lambda q: Ref(f"∂f/∂{q.name}", q.grad, error=0.0 if q.error is None else q.error)
    out = [grad(q) for q in (*named, *params)]
    out += [Ref(q.name, q.value, False) for q in (*named, *params)]
    out += [grad(q) for q in unnamed] + [Ref(q.name, q.value, False) for q in unnamed]
    return [r for r in out if r.array.size and np.all(np.isfinite(r.array))]


def _informative(r: Ref) -> bool:
    """A quantity a value may be matched with: not all zeros (every zero value would equal it)."""
    return bool(np.any(r.array != 0))


class Matcher:
    """Compares step values with the reference quantities (module docstring)."""

    def __init__(self, refs: list[Ref], failing: Sequence[GradientReport], derivation: Derivation, point: Point, *,
                 counterexample: bool = True) -> None:
        self.counterexample = counterexample  # the failing gradients' references were taken at this point
        self.refs = [r for r in refs if _informative(r)]
        self.zeros = [r for r in refs if not _informative(r)]  # substitutes only, after the others
        self.by_param: dict[str, Ref] = {}  # ∂f/∂q by the name q, zeros included (a variable may name one)
        for r in refs:
            if r.grad:
                self.by_param.setdefault(r.name[len("∂f/∂"):], r)
        floor = float(exact_bound(0.0, U64, inner_length(derivation, point.sizes), 1.0))
        rhos = [floor]
        for g in failing:
            tau = g.threshold.get("analytic_vs_autograd")
            if tau is not None and g.reference is not None:
                size = float(np.max(np.abs(np.where(np.isfinite(g.reference), g.reference, 0.0)), initial=0.0))
                if size > 0:
                    rhos.append(float(tau) / size)
        self.rho = max(rhos)

    def intended(self, name: str | None) -> Ref | None:
        """∂f/∂q for a variable whose name says it holds ∂f/∂q (module docstring), or None."""
        if not name:
            return None
        m = _SUFFIX.match(name)
        if m and m.group(1) in self.by_param:
            return self.by_param[m.group(1)]
        for prefix in _PREFIXES:
            if name.startswith(prefix) and name[len(prefix):] in self.by_param:
                return self.by_param[name[len(prefix):]]
        return None

    def target(self, g: GradientReport) -> Ref | None:
        """∂f/∂param, what the returned gradient should be: the reference quantity at the point, else the verdict's
        reference where it was taken here (None: neither)."""
        own = self.by_param.get(g.param)
        if own is not None and (not self.counterexample or own.array.shape == np.shape(g.reference)):
            return Ref(f"∂f/∂{g.param}", own.array, error=own.error)
        if not self.counterexample:
            return None
        return Ref(f"∂f/∂{g.param}", np.asarray(g.reference, dtype=np.float64))

    def is_value(self, v: np.ndarray) -> bool:
        """Whether ``v`` equals a forward value (an intermediate or a parameter) and no gradient."""
        values = [r for r in self.refs if not r.grad and self.same(v, r.array)]
        return bool(values) and not any(r.grad and self.same(v, r.array, r.error) for r in self.refs)

    def _within(self, v: np.ndarray, t: np.ndarray, c: float, err: np.ndarray | float) -> np.ndarray:
        """Per entry, whether |v − c · t| is within the tolerance (module docstring; ``err``: t's FD error bound)."""
        tau = MATCH_SLACK * self.rho * float(np.max(np.abs(t), initial=0.0)) * max(1.0, abs(c))
        with np.errstate(invalid="ignore", over="ignore"):
            return np.abs(v - c * t) <= tau + MATCH_RTOL * np.abs(c * t) + FD_MATCH_SLACK * abs(c) * err

    def _holds(self, v: np.ndarray, t: np.ndarray, c: float, err: np.ndarray | float = 0.0) -> bool:
        return bool(np.all(self._within(v, t, c, err)))

    def same(self, v: np.ndarray | None, t: np.ndarray, err: np.ndarray | float = 0.0) -> bool:
        """Whether ``v`` equals ``t`` (same shape, within the tolerance; ``err``: t's FD error bound per entry)."""
        return v is not None and v.shape == t.shape and self._holds(v, t, 1.0, err)

    def factor(self, v: np.ndarray | None, t: np.ndarray, err: np.ndarray | float = 0.0) -> float | None:
        """c with v = c · t, or None."""
        if v is None or v.shape != t.shape or not np.all(np.isfinite(v)):
            return None
        tt = float(np.vdot(t, t))
        if tt == 0.0:
            return None
        c = snap(float(np.vdot(v, t)) / tt)
        if np.count_nonzero(t) < MIN_FACTOR_ENTRIES and c not in SIMPLE:
            # A few entries are often a multiple of others, and so are arrays of a few nonzero entries (a max-pool
            # gradient, one per window): only a simple constant says something there.
            return None
        return c if self._holds(v, t, c, err) else None

    def relation(self, v: np.ndarray, ref: Ref) -> Relation | None:
        """value = c · T(ref) for the identity or a transpose (a 2-d array), or None; the identity first."""
        c = self.factor(v, ref.array, ref.error)
        if c is not None and c != 0.0:
            return Relation(ref, c)
        if ref.array.ndim == 2 and ref.array.T.shape == v.shape:
            c = self.factor(v, ref.array.T, ref.t_error)
            if c is not None and c != 0.0:
                return Relation(ref, c, True)
        return None

    def right(self, v: np.ndarray, name: str | None = None) -> Relation | None:
        """The first reference quantity ``v`` equals, or None; for a variable ``name`` that names ∂f/∂q, ∂f/∂q first,
        and none when ``v`` is a sign, factor or transpose of ∂f/∂q (the name says which of two equal values it is)."""
        meant = self.intended(name)
        if meant is not None:
            if self.same(v, meant.array, meant.error):
                return Relation(meant, 1.0)
            if self.relation(v, meant) is not None:
                return None
        for r in self.refs:
            if self.same(v, r.array, r.error):
                return Relation(r, 1.0)
        return None

    def related(self, v: np.ndarray, name: str | None = None) -> Relation | None:
        """The first reference quantity ``v`` is −1 ×, transposed of or c × (preferred in that order; the quantity
        a variable ``name`` names first), or None."""
        meant = self.intended(name)
        rel = None if meant is None else self.relation(v, meant)
        if rel is not None and not rel.identity:
            return rel
        found = [rel for r in self.refs if (rel := self.relation(v, r)) is not None and not rel.identity]
        ranks = (lambda x: x.c == -1.0 and not x.transposed, lambda x: abs(x.c) == 1.0, lambda x: x.c > 0, lambda x: True)
        for rank in ranks:
            pick = next((x for x in found if rank(x)), None)
            if pick is not None:
                return pick
        return None

    def of_shape(self, shape: tuple[int, ...], grad: bool | None = None) -> list[Ref]:
        """The quantities of ``shape`` (to put in an input's place; only gradients or only values when ``grad`` says),
        those that are all zeros last."""
        return [r for r in (*self.refs, *self.zeros) if r.array.shape == shape and (grad is None or r.grad == grad)]

    def differing(self, v: np.ndarray, t: Ref) -> int:
        """How many entries of ``v`` differ from ``t``'s."""
        return int(np.sum(~self._within(v, t.array, 1.0, t.error)))
