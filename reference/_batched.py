"""Evaluate the scalar objective at many perturbed points in one call, memory-bounded.

The forward is written once against an array namespace; ``torch.func.vmap`` runs it over a stack
of perturbed copies of one parameter in float64 on the CPU, so thousands of finite-difference
evaluations cost a few batched calls instead of one Python call each. A forward that cannot be
vmapped (data-dependent Python control flow, ``.item()``, NumPy calls) falls back to NumPy
evaluation one point at a time, which is slower but gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from verigrad.analytic import Derivation

from ._heap import Heap
from ._objective import ForwardError, check_scalar, np_xp, objective
from ._switches import value_and_signs
from ._torch import Deferred, torch_namespace
from .constants import DEFAULT_MEMORY_BUDGET, INTERMEDIATE_FACTOR, MAX_CHUNK_ROWS, TINY, VMAP_AGREEMENT_ULPS

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

EPS64 = float(np.finfo(np.float64).eps)


class BatchedObjective:
    """f(params) at a base point, and at points where one parameter's entries are replaced."""

    def __init__(
        self,
        derivation: Derivation,
        params: Mapping[str, np.ndarray],
        grad_output: np.ndarray | None = None,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        f0: float | None = None,
    ) -> None:
        """``f0``: f at the point in NumPy when the caller has just evaluated it there (counted as one evaluation)."""
        self.derivation = derivation
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.grad_output = None if grad_output is None else np.asarray(grad_output, dtype=np.float64)
        self.memory_budget = memory_budget
        self._heap = Heap(memory_budget)
        self.evaluations = 0
        #: Called with the evaluation count after every batched call (progress on long runs).
        self.on_batch: Callable[[int], None] | None = None
        self._t = {k: torch.from_numpy(v.copy()) for k, v in self.params.items()}
        self._g = None if self.grad_output is None else torch.from_numpy(self.grad_output.copy())
        self._total = sum(v.size for v in self.params.values()) + (0 if grad_output is None else self.grad_output.size)
        if f0 is None:
            self.f0 = self._f_numpy(self.params)
        else:
            self.f0, self.evaluations = float(f0), self.evaluations + 1
        self._switch_base = self._switches(np_xp, self.params)
        # Whether the forward runs under vmap is learnt on the first batched call (the probe row rides
        # along with it, saving one vmap call per point) or on first access to ``vectorized``.
        self._vectorized: bool | None = None
        # One reusable stack of perturbed copies: rows are restored entry by entry between calls
        # instead of being copied afresh (a fresh stack costs b·size writes and page faults per call).
        self._stack_name: str | None = None
        self._stack: torch.Tensor | None = None
        self._dirty = np.zeros(0, dtype=np.int64)

    @property
    def vectorized(self) -> bool:
        """Whether batched evaluation uses ``torch.func.vmap`` (else one NumPy call per point)."""
        if self._vectorized is None:
            self._vectorized = self._probe_vmap()
        return self._vectorized

    # --- single evaluations ----------------------------------------------------------------
    def _f_numpy(self, params: Mapping[str, np.ndarray]) -> float:
        """f at ``params``, the forward handed copies: one that writes into its inputs changes no other evaluation."""
        self.evaluations += 1
        with np.errstate(all="ignore"):
            return check_scalar(self.derivation, objective(self.derivation, np_xp, _copies(params), self.grad_output))

    def _switches(self, xp, params) -> list:
        if self.derivation.kinks is None:
            return []
        with np.errstate(all="ignore"):
            return [s for s in self.derivation.kinks(xp, **(_copies(params) if xp is np_xp else params))]

    def _probe_vmap(self) -> bool:
        name = next(iter(self.params))
        flat = np.zeros(1, dtype=np.int64)
        try:
            raw = self._vmap_call(name, flat, self.params[name].reshape(-1)[flat])
        except Exception:  # user code: the forward does not run under vmap
            return False
        got = self._count(raw)[0]
        self.evaluations -= 1  # the probe is bookkeeping, not a witness evaluation
        return self._probe_agrees(float(got[0]))

    def _probe_agrees(self, got: float) -> bool:
        """The vmapped forward at the unperturbed point reproduces the NumPy value f0."""
        tol = VMAP_AGREEMENT_ULPS * EPS64 * max(abs(self.f0), TINY)
        return bool(np.isfinite(got) == np.isfinite(self.f0) and (not np.isfinite(self.f0) or abs(got - self.f0) <= tol))

    # --- batched evaluations ---------------------------------------------------------------
    def chunk_size(self, name: str) -> int:
        per_eval = 8 * (INTERMEDIATE_FACTOR * self._total + self.params[name].size)
        return max(1, min(MAX_CHUNK_ROWS, self.memory_budget // per_eval))

    def _vmap_call(self, name: str, flat: np.ndarray, values: np.ndarray):
        """The vmapped forward (and switch signs) over copies of the point with ``params[name].flat[flat[r]]
        = values[r]`` in row r; with declared switches the unperturbed point rides as a last row."""
        base = self._t[name]
        kinks = self.derivation.kinks
        if kinks is not None:
            # The unperturbed point rides as a last row, so switch signs are compared with values the
            # same batched kernels computed: a switch at rounding level (|s| ~ 1e-17) must not seem to
            # flip merely because NumPy and a batched matmul round differently.
            flat = np.concatenate([flat, [0]])
            values = np.concatenate([values, base.reshape(-1)[:1].numpy()])
        b = len(flat)
        stack = self._perturbed(name, flat, values).reshape(b, *base.shape)
        version = stack._version
        others = dict(self._t)

        def one(p):
            return value_and_signs(self.derivation, {**others, name: p}, self._g)

        versions = {k: t._version for k, t in others.items()}
        try:
            f, signs = torch.func.vmap(one)(stack)
        finally:
            if stack._version != version:  # the forward wrote into its input: never reuse those rows
                self._stack_name = self._stack = None
            self._restore(versions)
        return f.reshape(b).numpy().copy(), signs

    def _restore(self, versions: Mapping[str, int]) -> None:
        """The point's tensors afresh where the forward wrote into one (shared by every row of a call, and by the
        next call): each call sees the intended point."""
        for k, v in versions.items():
            if self._t[k]._version != v:
                self._t[k] = torch.from_numpy(self.params[k].copy())

    def _count(self, raw) -> tuple[np.ndarray, np.ndarray]:
        """(f, flipped) per perturbed row of a ``_vmap_call``, counted as evaluations and reported to ``on_batch``."""
        f, signs = raw
        b = len(f)
        self._heap.settle()
        if self.on_batch is not None:
            self.on_batch(self.evaluations + b)
        if self.derivation.kinks is None:
            self.evaluations += b
            return f, np.zeros(b, dtype=bool)
        flipped = torch.zeros(b - 1, dtype=torch.bool)
        for s in signs:
            flipped |= (s[:-1] != s[-1:]).reshape(b - 1, -1).any(dim=1)
        self.evaluations += b - 1  # the base row is bookkeeping, not a witness evaluation
        return f[:-1], flipped.numpy().copy()

    def _vmapped(self, name: str, flat: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._count(self._vmap_call(name, flat, values))

    def at_entries_many(self, requests: list[tuple[str, np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``at_entries`` for several parameters at once: one batched call when every row's full set of
        parameters fits the memory budget (small problems, where the fixed cost of a call dominates),
        else one call per parameter. Same numbers either way."""
        rows = sum(len(flat) for _, flat, _ in requests) + 1
        if self._vectorized is False or 8 * rows * INTERMEDIATE_FACTOR * self._total > self.memory_budget:
            return [self.at_entries(name, flat, values) for name, flat, values in requests]
        stacks = {n: t.reshape(1, -1).repeat(rows, 1) for n, t in self._t.items()}
        start = 0
        for name, flat, values in requests:
            n = len(flat)
            stacks[name][torch.arange(start, start + n), torch.from_numpy(np.asarray(flat, dtype=np.int64))] = torch.from_numpy(
                np.asarray(values, dtype=np.float64)
            )
            start += n
        names = list(self._t)

        def one(*ps):
            return value_and_signs(self.derivation, dict(zip(names, ps, strict=True)), self._g)

        try:
            f, signs = torch.func.vmap(one)(*(stacks[n].reshape(rows, *self._t[n].shape) for n in names))
            f = f.reshape(rows).numpy().copy()
        except Exception:  # user code: the forward does not run under vmap
            if self._vectorized is None:
                self._vectorized = False
            return [self.at_entries(name, flat, values) for name, flat, values in requests]
        if self._vectorized is None:
            # The last row is the unperturbed point: the vmap probe rides along.
            self._vectorized = self._probe_agrees(float(f[-1]))
            if not self._vectorized:
                return [self.at_entries(name, flat, values) for name, flat, values in requests]
        flipped = torch.zeros(rows - 1, dtype=torch.bool)
        for sg in signs:  # compared with the base row, computed by the same batched kernels
            flipped |= (sg[:-1] != sg[-1:]).reshape(rows - 1, -1).any(dim=1)
        self.evaluations += rows - 1
        out, start = [], 0
        for _, flat, _ in requests:
            out.append((f[start : start + len(flat)], flipped[start : start + len(flat)].numpy().copy()))
            start += len(flat)
        return out

    def _perturbed(self, name: str, flat: np.ndarray, values: np.ndarray) -> torch.Tensor:
        """Rows 0..b-1 of the reusable stack: copies of ``params[name]`` (flattened) with one entry replaced each."""
        base = self._t[name].reshape(-1)
        b = len(flat)
        if self._stack_name != name or self._stack is None or self._stack.shape[0] < b:
            self._stack = base.reshape(1, -1).repeat(b, 1)
            self._stack_name = name
            self._dirty = np.full(b, -1, dtype=np.int64)
        else:
            rows = np.flatnonzero(self._dirty >= 0)
            cols = torch.from_numpy(self._dirty[rows])
            self._stack[torch.from_numpy(rows), cols] = base[cols]
            self._dirty[:] = -1
        rows_b = torch.arange(b)
        self._stack[rows_b, torch.from_numpy(flat)] = torch.from_numpy(np.asarray(values, dtype=np.float64))
        self._dirty[:b] = flat
        return self._stack[:b]

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
        if self._vectorized is None and len(flat):
            first = self._first_batch(name, flat, values)
            if first is not None:
                return first
        if not self.vectorized:
            return self._looped(name, flat, values)
        step = self.chunk_size(name)
        parts = [self._vmapped(name, flat[i : i + step], values[i : i + step]) for i in range(0, len(flat), step)]
        if not parts:
            return np.empty(0), np.zeros(0, dtype=bool)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _first_batch(self, name: str, flat: np.ndarray, values: np.ndarray):
        """The first batched call, with the vmap probe (entry 0 of ``name`` at its own value) as one extra row.

        Returns the results when ``flat`` fits in one chunk and the forward vmaps faithfully; otherwise
        settles ``vectorized`` by a separate probe and returns None for the caller to proceed.
        """
        if len(flat) + 1 > self.chunk_size(name):
            return None
        x0 = self.params[name].reshape(-1)[:1]
        try:
            raw = self._vmap_call(name, np.concatenate([flat, [0]]), np.concatenate([values, x0]))
        except Exception:  # user code: the forward does not run under vmap
            self._vectorized = False
            return None
        f, flipped = self._count(raw)  # outside the guard: a failing progress callback is not a forward that does not vmap
        self.evaluations -= 1  # the probe row is bookkeeping, not a witness evaluation
        self._vectorized = self._probe_agrees(float(f[-1]))
        if not self._vectorized:
            self.evaluations -= len(flat)  # discarded: the NumPy loop recomputes them
            return None
        return f[:-1], flipped[:-1]

    def jittered(self, count: int, relative: float, rng: np.random.Generator, *, batched: bool = False) -> tuple[np.ndarray, float]:
        """f at ``count`` points whose every entry is moved by a random relative amount of about
        ``relative``, and f at the point itself by the same engine: NumPy one point at a time, or
        (``batched``, when the forward vmaps) one vmapped call whose last row is the point itself, so
        that the noise measured is that of the batched kernels the finite differences use."""
        moved = [{n: v * (1.0 + relative * rng.uniform(-1.0, 1.0, v.shape)) for n, v in self.params.items()} for _ in range(count)]
        return self.at_points(moved, batched=batched)

    def at_points(self, moved: list[dict[str, np.ndarray]], *, batched: bool = False) -> tuple[np.ndarray, float]:
        """f at each of the points ``moved`` (every parameter given) and at the point itself, by one engine: NumPy
        one point at a time, or (``batched``, when the forward vmaps) one vmapped call whose last row is the point."""
        count = len(moved)
        if batched and self.vectorized:
            names = list(self.params)
            stacks = [torch.from_numpy(np.stack([*(m[n] for m in moved), self.params[n]])) for n in names]
            xp = torch_namespace()
            try:
                with torch.no_grad():
                    f = torch.func.vmap(lambda *ps: objective(self.derivation, xp, dict(zip(names, ps, strict=True)), self._g))(*stacks)
                f = f.reshape(count + 1).numpy().copy()
            except Exception:  # user code: vmaps with one parameter batched, not with all: NumPy, like the differences' fallback
                f = None
            if f is not None:
                self.evaluations += count
                self._heap.settle()
                return f[:-1], float(f[-1])
        return np.array([self._f_numpy(ps) for ps in moved]), self.f0


def _copies(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in params.items()}


def forward_value(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output=None, *, shared: bool = False) -> float:
    """The objective at ``params`` in NumPy float64 (ForwardError if it is not a finite-or-not scalar). The
    forward is handed copies, or (``shared``) the arrays themselves, so that a forward that writes into its
    inputs changes ``params`` (the in-place check)."""
    args = params if shared else _copies(params)
    try:
        with np.errstate(all="ignore"):
            value = objective(derivation, np_xp, args, grad_output)
    except ForwardError:
        raise
    except Exception as e:  # user code
        raise ForwardError(f"forward raised: {type(e).__name__}: {e}") from e
    return check_scalar(derivation, value)


def forward_value_torch(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output=None, *, shared: bool = False) -> float:
    """The objective at ``params`` under torch in float64, without a graph (ForwardError as forward_value).
    The tensors are copies of the arrays, or (``shared``) share their memory, so that a forward that writes
    into its inputs changes ``params`` (the in-place check of a torch-only forward)."""
    as_tensor = lambda v: torch.from_numpy(v if shared and isinstance(v, np.ndarray) and v.dtype == np.float64 else np.array(v, dtype=np.float64))
    try:
        with torch.no_grad():
            value = objective(
                derivation,
                torch_namespace(),
                {k: as_tensor(v) for k, v in params.items()},
                None if grad_output is None else torch.from_numpy(np.array(grad_output, dtype=np.float64)),
            )
    except ForwardError:
        raise
    except Exception as e:  # user code
        raise ForwardError(f"forward raised under torch: {type(e).__name__}: {e}") from e
    return check_scalar(derivation, value)
