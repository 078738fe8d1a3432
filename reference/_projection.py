"""Directional finite differences: ⟨∇f, v⟩ along random directions, with an error estimate, and group testing.

A direction lives on a *support*: some entries of one or more parameters, laid out as one flat vector
(parameters in the given order, each flattened). It is v = s ⊙ z with s_i = max(|x_i|, rms(x)) the
entry's scale (as in reference/_fd.py) and z a random vector on the support. For a subset S of the
support, v_S keeps the entries of v in S; its derivative is measured with the step h_S = H0 / ‖z_S‖₂,
so that no entry moves by more than its own per-entry step H0 · s_i and ‖h_S z_S‖₂ = H0.

Error model of one measurement, against a claimed gradient t (autograd), in the units of ⟨∇f, v_S⟩:

* the displacement actually applied is Δ = fl(x + h v) − fl(x − h v), so the claim predicts
  f(x + h v) − f(x − h v) ≈ ⟨t, Δ⟩ exactly as represented; the mismatch at step h is
  m(h) = (f(x + h v) − f(x − h v) − ⟨t, Δ⟩) / 2h;
* rounding: each evaluation carries at most ε_f (measured by reference.forward_noise), so m(h)
  carries ≤ ε_f/h and m(h/2) ≤ 2 ε_f/h;
* truncation: m(h) = μ + c h² + O(h⁴) with μ = ⟨∇f − t, v_S⟩. Richardson R = (4 m(h/2) − m(h)) / 3
  removes the h² term; its rounding is ≤ (4·2 + 1)/3 · ε_f/h = 3 ε_f/h. The remainder is bounded by
  the h² term left at h/2, |m(h) − m(h/2)| / 3 (which itself holds ≤ ε_f/h of rounding):
  e = |m(h) − m(h/2)| / 3 + 3 ε_f / h;
* the claim's own rounding: |t_i − ∂f/∂x_i| ≤ τ_i (the exact bound τ_ex of its parameter), which puts
  at most Σ_{i∈S} τ_i |v_i| into μ.

A set S *disagrees* when |R| > K · e + Σ_{i∈S} τ_i |v_i|, K the caller's safety factor for ε_f being
measured on a few points. μ is additive over disjoint sets, so after measuring one half A of a
disagreeing set S the other half's mismatch is known as R_S − R_A within the sum of both bounds:
bisection spends one measurement (4 evaluations) per level for an isolated wrong entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._batched import BatchedObjective, forward_value
from ._fd import steps_for
from ._objective import np_xp
from .constants import DIRECTIONAL_ROUNDING, EVALUATIONS_PER_MEASUREMENT, H0, MAX_LOCALIZED, UNRESOLVED_LISTED


@dataclass
class Measurement:
    """One directional measurement of μ_S = ⟨∇f − t, v_S⟩."""

    mismatch: float  # Richardson estimate R of μ_S
    bound: float  # K · e + Σ τ_i |v_i|: |R| above it means the set disagrees
    derivative: float  # Richardson estimate of ⟨∇f, v_S⟩ itself
    claimed: float  # ⟨t, v_S⟩
    nondifferentiable: bool  # a declared switch changed sign within ±h v_S

    @property
    def disagrees(self) -> bool:
        return not self.nondifferentiable and not abs(self.mismatch) <= self.bound


@dataclass
class Localization:
    """Entries whose claimed derivative disagrees with finite differences, found by group testing."""

    found: list[tuple[str, int]] = field(default_factory=list)  # (parameter, flat index)
    unresolved: list[list[tuple[str, int]]] = field(default_factory=list)  # sets left when the budget or signal ran out
    measurements: int = 0


class Support:
    """Entries of some parameters laid out as one flat vector."""

    def __init__(self, params: Mapping[str, np.ndarray], names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.shapes = {n: np.shape(params[n]) for n in self.names}
        sizes = [int(np.size(params[n])) for n in self.names]
        self.offsets = dict(zip(self.names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
        self.size = int(sum(sizes))
        self.x = np.concatenate([np.asarray(params[n], dtype=np.float64).reshape(-1) for n in self.names])
        self.scale = np.concatenate([steps_for(params[n]).reshape(-1) / H0 for n in self.names])

    def flat(self, per_param: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(per_param[n], dtype=np.float64).reshape(-1) for n in self.names])

    def entry(self, k: int) -> tuple[str, int]:
        for n in reversed(self.names):
            if k >= self.offsets[n]:
                return n, int(k - self.offsets[n])
        raise IndexError(k)

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {n: flat[self.offsets[n] : self.offsets[n] + int(np.prod(self.shapes[n], dtype=np.int64))].reshape(self.shapes[n]) for n in self.names}


class DirectionalFD:
    """Directional central differences of the objective against a claimed gradient, in NumPy float64.

    ``ev`` supplies the point, f0 and the evaluation counter (every evaluation here is added to
    ``ev.evaluations``); ``noise`` is ε_f; ``claim`` and ``tau`` are the claimed gradient and its
    per-parameter rounding bound; ``k`` the safety factor on the finite-difference error.
    """

    def __init__(
        self,
        ev: BatchedObjective,
        support: Support,
        noise: float,
        claim: Mapping[str, np.ndarray],
        tau: Mapping[str, float],
        k: float,
    ) -> None:
        self.ev = ev
        self.support = support
        self.noise = noise
        self.k = k
        self.t = support.flat(claim)
        self.tau = np.concatenate([np.full(int(np.prod(support.shapes[n], dtype=np.int64)), float(tau[n])) for n in support.names])
        self._switch_base = self._switches(ev.params)

    def _switches(self, params: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        kinks = self.ev.derivation.kinks
        if kinks is None:
            return []
        with np.errstate(all="ignore"):
            return [np.sign(np.asarray(s, dtype=np.float64)) for s in kinks(np_xp, **params)]

    def _f(self, flat_x: np.ndarray) -> tuple[float, bool]:
        params = {**self.ev.params, **self.support.split(flat_x)}
        self.ev.evaluations += 1
        f = forward_value(self.ev.derivation, params, self.ev.grad_output)
        flipped = any(np.any(s != s0) for s, s0 in zip(self._switches(params), self._switch_base, strict=True))
        return f, flipped

    def _mismatch(self, idx: np.ndarray, w: np.ndarray, h: float) -> tuple[float, float, bool]:
        """(m(h), derivative at h, flipped) along v = w on ``idx``."""
        xp = self.support.x.copy()
        xm = self.support.x.copy()
        xp[idx] += h * w
        xm[idx] -= h * w
        fp, flp = self._f(xp)
        fm, flm = self._f(xm)
        delta = xp[idx] - xm[idx]
        claimed = float(np.dot(self.t[idx], delta))
        return (fp - fm - claimed) / (2 * h), (fp - fm) / (2 * h), flp or flm

    def measure(self, idx: np.ndarray, z: np.ndarray) -> Measurement:
        """μ_S for the set ``idx`` (flat support indices) with direction weights ``z`` on it."""
        norm = float(np.linalg.norm(z))
        if norm == 0.0:
            return Measurement(0.0, 0.0, 0.0, 0.0, False)
        w = self.support.scale[idx] * z
        h = H0 / norm
        m1, d1, fl1 = self._mismatch(idx, w, h)
        m2, d2, fl2 = self._mismatch(idx, w, h / 2)
        rho = self.noise / h
        richardson = (4 * m2 - m1) / 3
        error = abs(m1 - m2) / 3 + DIRECTIONAL_ROUNDING * rho
        bound = self.k * error + float(np.dot(self.tau[idx], np.abs(w)))
        claimed = float(np.dot(self.t[idx], w))
        return Measurement(
            mismatch=richardson,
            bound=bound,
            derivative=(4 * d2 - d1) / 3,
            claimed=claimed,
            nondifferentiable=fl1 or fl2,
        )

    def localize(
        self,
        idx: np.ndarray,
        z: np.ndarray,
        top: Measurement,
        *,
        budget: int,
        max_found: int = MAX_LOCALIZED,
    ) -> Localization:
        """Bisect a disagreeing set down to single entries (group testing), within ``budget`` evaluations."""
        out = Localization()
        spent0 = self.ev.evaluations
        pending: list[tuple[np.ndarray, np.ndarray, float, float]] = [(idx, z, top.mismatch, top.bound)]
        while pending:
            s_idx, s_z, mu, bound = pending.pop()
            if len(s_idx) == 1:
                out.found.append(self.support.entry(int(s_idx[0])))
                if len(out.found) >= max_found:
                    break
                continue
            if self.ev.evaluations - spent0 + EVALUATIONS_PER_MEASUREMENT > budget:
                pending.append((s_idx, s_z, mu, bound))
                break
            half = len(s_idx) // 2
            a_idx, a_z, b_idx, b_z = s_idx[:half], s_z[:half], s_idx[half:], s_z[half:]
            a = self.measure(a_idx, a_z)
            out.measurements += 1
            b_mu, b_bound = mu - a.mismatch, bound + a.bound
            b_disagrees = not a.nondifferentiable and not abs(b_mu) <= b_bound
            if not a.disagrees and not b_disagrees:
                # Neither half stands out on its own: measure B directly (its noise is below S's).
                if self.ev.evaluations - spent0 + EVALUATIONS_PER_MEASUREMENT > budget:
                    pending.append((s_idx, s_z, mu, bound))
                    break
                b = self.measure(b_idx, b_z)
                out.measurements += 1
                b_mu, b_bound, b_disagrees = b.mismatch, b.bound, b.disagrees
                if not b_disagrees and not a.nondifferentiable:
                    out.unresolved.append([self.support.entry(int(k)) for k in s_idx[:UNRESOLVED_LISTED]])
                    continue
            if a.nondifferentiable:
                out.unresolved.append([self.support.entry(int(k)) for k in a_idx[:UNRESOLVED_LISTED]])
            elif a.disagrees:
                pending.append((a_idx, a_z, a.mismatch, a.bound))
            if b_disagrees:
                pending.append((b_idx, b_z, b_mu, b_bound))
        out.unresolved.extend([self.support.entry(int(k)) for k in s[:UNRESOLVED_LISTED]] for s, *_ in pending)
        return out


def random_direction(size: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-norm Gaussian weights z over a support of ``size`` entries."""
    z = rng.standard_normal(size)
    n = float(np.linalg.norm(z))
    return z / n if n > 0 else np.ones(size) / np.sqrt(size)
