"""Evaluate the scalar objective at many perturbed points in one call, memory-bounded.

The forward is written once against an array namespace; ``torch.func.vmap`` runs it over a stack
of perturbed copies of one parameter in float64 on the CPU, so thousands of finite-difference
evaluations cost a few batched calls instead of one Python call each. A forward that cannot be
vmapped (data-dependent Python control flow, ``.item()``, NumPy calls) falls back to NumPy
evaluation one point at a time, which is slower but gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.func import vmap

from analytic import Derivation

from ._objective import ForwardError, check_scalar, np_xp, objective, torch_xp

#: Memory one batched call may use, in bytes (perturbed copies plus an allowance for intermediates).
DEFAULT_MEMORY_BUDGET = 512 * 2**20
#: Intermediates of a forward are assumed to take at most this many times the total parameter size.
INTERMEDIATE_FACTOR = 4


class BatchedObjective:
    """f(params) at a base point, and at points where one parameter's entries are replaced."""

    def __init__(
        self,
        derivation: Derivation,
        params: Mapping[str, np.ndarray],
        grad_output: np.ndarray | None = None,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        self.derivation = derivation
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.grad_output = None if grad_output is None else np.asarray(grad_output, dtype=np.float64)
        self.memory_budget = memory_budget
        self.evaluations = 0
        self._t = {k: torch.from_numpy(v.copy()) for k, v in self.params.items()}
        self._g = None if self.grad_output is None else torch.from_numpy(self.grad_output.copy())
        self._total = sum(v.size for v in self.params.values()) + (0 if grad_output is None else self.grad_output.size)
        self.f0 = self._f_numpy(self.params)
        self._switch_base = self._switches(np_xp, self.params)
        self.vectorized = self._probe_vmap()

    # --- single evaluations ----------------------------------------------------------------
    def _f_numpy(self, params: Mapping[str, np.ndarray]) -> float:
        self.evaluations += 1
        with np.errstate(all="ignore"):
            return check_scalar(self.derivation, objective(self.derivation, np_xp, params, self.grad_output))

    def _switches(self, xp, params) -> list:
        if self.derivation.kinks is None:
            return []
        with np.errstate(all="ignore"):
            return [s for s in self.derivation.kinks(xp, **params)]

    def _probe_vmap(self) -> bool:
        try:
            name = next(iter(self.params))
            flat = np.zeros(1, dtype=np.int64)
            got = self._vmapped(name, flat, self.params[name].reshape(-1)[flat])[0]
        except Exception:
            return False
        self.evaluations -= 1  # the probe is bookkeeping, not a witness evaluation
        tol = 64 * np.finfo(np.float64).eps * max(abs(self.f0), np.finfo(np.float64).tiny)
        return bool(np.isfinite(got[0]) == np.isfinite(self.f0) and (not np.isfinite(self.f0) or abs(got[0] - self.f0) <= tol))

    # --- batched evaluations ---------------------------------------------------------------
    def chunk_size(self, name: str) -> int:
        per_eval = 8 * (INTERMEDIATE_FACTOR * self._total + self.params[name].size)
        return max(1, min(4096, self.memory_budget // per_eval))

    def _vmapped(self, name: str, flat: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        base = self._t[name]
        b = len(flat)
        stack = base.reshape(1, -1).repeat(b, 1)
        stack[torch.arange(b), torch.from_numpy(flat)] = torch.from_numpy(np.asarray(values, dtype=np.float64))
        stack = stack.reshape(b, *base.shape)
        others = dict(self._t)
        base_switch = [torch.as_tensor(s) for s in self._switch_base]

        def one(p):
            ps = {**others, name: p}
            f = objective(self.derivation, torch_xp, ps, self._g)
            if self.derivation.kinks is None:
                return f, torch.zeros((), dtype=torch.bool)
            flips = [torch.any(torch.sign(s) != torch.sign(s0)) for s, s0 in zip(self.derivation.kinks(torch_xp, **ps), base_switch, strict=True)]
            return f, torch.stack(flips).any()

        f, flipped = vmap(one)(stack)
        self.evaluations += b
        return f.reshape(b).numpy().copy(), flipped.reshape(b).numpy().copy()

    def _looped(self, name: str, flat: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.empty(len(flat))
        flipped = np.zeros(len(flat), dtype=bool)
        for k, (i, v) in enumerate(zip(flat, values, strict=True)):
            p = self.params[name].copy()
            p.reshape(-1)[i] = v
            ps = {**self.params, name: p}
            f[k] = self._f_numpy(ps)
            for s, s0 in zip(self._switches(np_xp, ps), self._switch_base, strict=True):
                if np.any(np.sign(s) != np.sign(s0)):
                    flipped[k] = True
        return f, flipped

    def at_entries(self, name: str, flat: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f with ``params[name].flat[flat[k]] = values[k]``, for each k; and whether a declared switch changed sign."""
        flat = np.asarray(flat, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if not self.vectorized:
            return self._looped(name, flat, values)
        step = self.chunk_size(name)
        parts = [self._vmapped(name, flat[i : i + step], values[i : i + step]) for i in range(0, len(flat), step)]
        if not parts:
            return np.empty(0), np.zeros(0, dtype=bool)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def jittered(self, count: int, relative: float, rng: np.random.Generator) -> np.ndarray:
        """f at ``count`` points whose every entry is moved by a random relative amount of about ``relative``."""
        out = np.empty(count)
        for k in range(count):
            ps = {n: v * (1.0 + relative * rng.uniform(-1.0, 1.0, v.shape)) for n, v in self.params.items()}
            out[k] = self._f_numpy(ps)
        return out


def forward_value(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output=None) -> float:
    """The objective at ``params`` in NumPy float64 (ForwardError if it is not a finite-or-not scalar)."""
    try:
        with np.errstate(all="ignore"):
            value = objective(derivation, np_xp, params, grad_output)
    except ForwardError:
        raise
    except Exception as e:
        raise ForwardError(f"forward raised: {type(e).__name__}: {e}") from e
    return check_scalar(derivation, value)
