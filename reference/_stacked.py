"""Both references for several points of one derivation at the same sizes, in a few batched calls.

Checked alone, a small point pays a fixed cost of milliseconds in Python and torch dispatch (a
backward, double backwards for the rounding noise, a vmapped call for finite differences, the
forward noise) that dwarfs its arithmetic. Points of the same sizes stack along a leading axis, so
that one vmapped forward serves all of them; every number is computed as for a single point
(reference/_autograd.py, reference/_fd.py), row by row:

* autograd: the forward vmapped over the K points, one backward of the sum (∂Σf_r/∂x_r = ∂f_r/∂x_r
  exactly: every row's gradient is its own); the rounding noise σ_t only when asked (``noise``): the
  forward vmapped over the points and their jittered copies, and one double backward for the
  Hessian-vector products;
* finite differences: one row per point and perturbation (x ± h e_i), plus jittered rows for the
  forward's noise ε_f, plus each point's unperturbed row: ε_f, f(x) and the switch signs come from
  the same batched kernels as the differences;
* refinement (h/2, h/4, Richardson, kink test) for the entries the caller names, in one more call.

Anything the stack cannot do faithfully (a forward that does not vmap, an op without double
backward, a parameter the forward ignores) raises ``Unstackable``: the caller checks those points
one at a time instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from verigrad.analytic import Derivation

from ._fd import FDEstimate, line_points, noise_from_jitter, noise_from_line, richardson, stacked_steps
from ._heap import Heap
from ._objective import objective
from ._switches import value_and_signs
from ._threads import serial_if_small
from ._torch import Deferred, torch_namespace
from .constants import DEFAULT_MEMORY_BUDGET, INTERMEDIATE_FACTOR, JITTER_POINTS, JITTER_ULPS, LINE_POINTS, U64

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

__all__ = ["Stack", "Unstackable"]


class Unstackable(RuntimeError):
    """These points cannot be evaluated as a stack; check them one at a time."""


@dataclass
class Edit:
    """Rows of a batched call that replace single entries of one parameter."""

    name: str
    rows: np.ndarray  # row index within the call
    flat: np.ndarray  # flat entry index within the parameter
    values: np.ndarray


@dataclass(frozen=True)
class FDPlan:
    """Where the rows of ``Stack.finite_differences``'s first call go, for k points and the checked parameters'
    sizes: per parameter its columns (a, b) of the (k, Σm) arrays, its edit rows and flat entries (per point
    x + h, then x − h); per row its point; the jittered rows; the rows of f(x + h) and f(x − h) and the parameter
    per column."""

    columns: tuple[tuple[int, int], ...]
    rows: tuple[np.ndarray, ...]
    flat: tuple[np.ndarray, ...]
    point: np.ndarray
    jitter_rows: np.ndarray
    plus: np.ndarray
    minus: np.ndarray
    owner: np.ndarray  # per column, the index of its parameter


@functools.lru_cache(maxsize=256)
def _fd_plan(k: int, sizes: tuple[int, ...]) -> FDPlan:
    """The FDPlan of k points whose checked parameters have ``sizes`` entries (the same for every stack of them): a
    few passes over every row and column at once (a point checked alone has sizes of its own, so this runs per point)."""
    m = np.array(sizes, dtype=np.int64).reshape(-1)
    col_end, row_end = np.cumsum(m), np.cumsum(2 * k * m)
    col_start, row_start = col_end - m, row_end - 2 * k * m
    columns = tuple(zip(col_start.tolist(), col_end.tolist(), strict=True))
    start, width = (int(row_end[-1]), int(col_end[-1])) if len(sizes) else (0, 0)
    # A parameter's block holds, point by point, a run of m rows x + h and a run of m rows x − h, each editing entries
    # 0 … m − 1: every row's entry is its index less its run's first row, and each point repeats over its 2m rows.
    rows_all = np.arange(start)
    runs = np.repeat(m, 2 * k)
    flat_all = rows_all - np.repeat(np.cumsum(runs) - runs, runs)
    point = np.repeat(np.tile(np.arange(k), len(sizes) + 1), np.concatenate([np.repeat(2 * m, k), np.full(k, JITTER_POINTS)]))
    jitter_rows = start + np.arange(JITTER_POINTS * k)
    # Column c of a parameter: point p's x + h row is its block's start + 2m·p + (c − the parameter's first column).
    owner = np.repeat(np.arange(len(sizes)), m)
    plus_all = (row_start - col_start)[owner] + np.arange(width) + np.arange(k)[:, None] * (2 * m)[owner]
    minus_all = plus_all + m[owner]
    for a in (rows_all, flat_all, point, jitter_rows, plus_all, minus_all, owner):
        a.flags.writeable = False  # shared by every stack of these sizes (and their views below)
    rows = tuple(rows_all[a:b] for a, b in zip(row_start.tolist(), row_end.tolist(), strict=True))
    flat = tuple(flat_all[a:b] for a, b in zip(row_start.tolist(), row_end.tolist(), strict=True))
    return FDPlan(columns, rows, flat, point, jitter_rows, plus_all, minus_all, owner)


class Stack:
    """K points of ``derivation`` with the same sizes (a leading axis of length K on every array)."""

    def __init__(
        self,
        derivation: Derivation,
        params: Sequence[Mapping[str, np.ndarray]],
        grad_outputs: Sequence[np.ndarray] | None = None,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        self.derivation = derivation
        self.k = len(params)
        self.names = list(derivation.params)
        # np.array of the list: the same new C-ordered float64 stack as np.stack's, at a third of its cost.
        self.x = {n: np.array([p[n] for p in params], dtype=np.float64) for n in self.names}
        self.g = None if grad_outputs is None else np.array(list(grad_outputs), dtype=np.float64)
        self._total = sum(v[0].size for v in self.x.values()) + (0 if self.g is None else self.g[0].size)
        self.memory_budget = memory_budget
        self._heap = Heap(memory_budget)
        #: Forward evaluations spent per point, counted as a single point's check counts them.
        self.evaluations = np.zeros(self.k, dtype=np.int64)
        self.probes: list[list[tuple]] = []
        self._jittered: tuple | None = None  # (jitters, δ, the uniform numbers of every copy) drawn by ``autograd``

    # --- autograd ----------------------------------------------------------------------------
    def _row(self, *args, signs: bool = False):
        *ps, g = args
        values = dict(zip(self.names, ps, strict=True))
        if signs:
            return value_and_signs(self.derivation, values, g)
        return objective(self.derivation, torch_namespace(), values, g), ()

    def _vmapped(self, args: Sequence[torch.Tensor | None], *, signs: bool = False) -> tuple[torch.Tensor, tuple]:
        """f per row (and the signs of the declared switches per row) by one vmapped call."""
        in_dims = tuple(None if a is None else 0 for a in args)
        try:
            f, sg = torch.func.vmap(lambda *a: self._row(*a, signs=signs), in_dims=in_dims)(*args)
        except Exception as e:  # user code: the forward does not vmap (Python control flow on values, .item(), NumPy calls)
            raise Unstackable(f"the forward does not run under vmap: {type(e).__name__}") from e
        rows = len(next(a for a in args if a is not None))
        if not isinstance(f, torch.Tensor) or f.dtype != torch.float64 or f.numel() != rows:
            raise Unstackable("the vmapped forward does not give one float64 value per row")
        return f.reshape(rows), sg

    def _draw(self, rng: np.random.Generator, jitters: int, relative: float) -> None:
        """The jittered copies σ_t is measured at, drawn from ``rng`` whether σ_t is measured or not: what
        ``rng`` gives next (the finite differences' jitter) is the same either way. One draw for every parameter and
        grad_output, split in their order (the numbers each gets are those of one draw apiece); the copies are
        made only where σ_t is measured (``_jitter``)."""
        arrays = [*self.x.values(), *(() if self.g is None else (self.g,))]
        u = rng.uniform(-1, 1, jitters * sum(v.size for v in arrays))
        self._jittered = (jitters, relative, u)
        self._line_rng = rng.spawn(1)[0]  # the lines σ is measured along where the jitter's σ does not suffice

    def _jitter(self) -> tuple:
        """(jitters, x', Δx, grad_output', Δgrad_output): the copies x' = x + x·δ·U(−1, 1) of ``_draw``'s numbers."""
        (j, relative, u), k, start = self._jittered, self.k, 0

        def copies(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            nonlocal start
            jit = v + v * relative * u[start : start + j * v.size].reshape(j, *v.shape)
            start += j * v.size
            return jit.reshape(j * k, *v.shape[1:]), (jit - v).reshape(j * k, *v.shape[1:])

        moved, steps = {}, {}
        for n, v in self.x.items():
            moved[n], steps[n] = copies(v)
        g_moved, g_step = (None, None) if self.g is None else copies(self.g)
        return j, moved, steps, g_moved, g_step

    def autograd_with_noise(self, rng: np.random.Generator, *, jitters: int, relative: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(∂f/∂param, σ_t per entry) for every point, stacked, from one call (``noise``): where σ is wanted anyway."""
        self._draw(rng, jitters, relative)
        return self.noise()

    def autograd(self, rng: np.random.Generator, *, jitters: int, relative: float) -> dict[str, np.ndarray]:
        """∂f/∂param for every point, stacked (reference.autograd_gradients): one vmapped forward of the K
        points and one backward. The copies ``noise`` measures σ_t at are drawn here."""
        self._draw(rng, jitters, relative)
        return self._autograd_rows(self.x, self.g, self.k)

    def _autograd_rows(self, x: Mapping[str, np.ndarray], g: np.ndarray | None, rows: int) -> dict[str, np.ndarray]:
        """∂f/∂param at each of ``rows`` rows (parameters ``x``, grad_output ``g``, leading axis the rows): one vmapped
        forward, one backward of the sum."""
        leaves = [torch.from_numpy(x[n]).requires_grad_(True) for n in self.names]
        g_leaf = None if g is None else torch.from_numpy(g)
        with serial_if_small(rows * self._total):
            f, _ = self._vmapped([*leaves, g_leaf])
            if not f.requires_grad:
                raise Unstackable("the forward does not depend on the parameters")
            try:
                grads = torch.autograd.grad(f.sum(), leaves, allow_unused=True)
            except Exception as e:  # user code: the forward's graph (a custom backward)
                raise Unstackable(f"autograd through the vmapped forward failed: {e}") from e
        if any(gr is None for gr in grads):
            raise Unstackable("the forward does not use every parameter")
        return {n: gr.numpy() for n, gr in zip(self.names, grads, strict=True)}

    def noise(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(∂f/∂param, σ_t per point and entry) as reference.rounding_noise measures σ_t, at the jittered copies
        ``autograd`` drew: one vmapped forward of the K points and their copies, a backward of the sum and a
        double backward for the Hessian-vector products along the jitter steps. Sets ``probes``."""
        k = self.k
        j, moved, steps, g_moved, g_step = self._jitter()
        leaves = [torch.from_numpy(np.concatenate([self.x[n], moved[n]])).requires_grad_(True) for n in self.names]
        g_leaf = None if g_moved is None else torch.from_numpy(np.concatenate([self.g, g_moved])).requires_grad_(True)
        with serial_if_small(len(leaves[0]) * self._total):
            grads, hv = self._gradients(leaves, g_leaf, g_step, steps)
        auto, sigma, linear = {}, {}, {}
        for n, gr, h in zip(self.names, grads, hv, strict=False):
            full = gr.detach().numpy()
            base = full[:k]
            linear[n] = np.zeros((j, *base.shape)) if h is None else h.detach().numpy()[k:].reshape(j, *base.shape)
            dev = full[k:].reshape(j, *base.shape) - linear[n] - base
            auto[n] = base.copy()
            sigma[n] = np.maximum.reduce(np.where(np.isfinite(dev), np.abs(dev), 0.0), axis=0, initial=0.0)  # nothing here warns
        #: Per point, (x', grad_output', H·(x' − x)) for each jitter, as rounding_noise's ``probes``.
        self.probes = [
            [
                (
                    {n: moved[n][jj * k + i] for n in self.names},
                    None if g_moved is None else g_moved[jj * k + i],
                    {n: linear[n][jj, i] for n in self.names},
                )
                for jj in range(j)
            ]
            for i in range(k)
        ]
        return auto, sigma

    def line_autograd(self, idx: Sequence[int]) -> tuple[dict[str, np.ndarray], np.ndarray | None, dict[str, np.ndarray]]:
        """Autograd along a random line of each point of ``idx`` (reference._fd.line_points): (the parameters and
        grad_output there, and ∂f/∂param there), each (len(idx), points on the lines, …): one vmapped forward, one
        backward. The lines are drawn from the generator ``autograd`` was given (a child of it, drawn from once)."""
        idx = np.asarray(idx, dtype=np.int64)
        moved, g_moved = line_points({n: v[idx] for n, v in self.x.items()}, None if self.g is None else self.g[idx], self._line_rng, stacked=True)
        rows = len(idx) * next(iter(moved.values())).shape[1]
        flat = lambda v: np.ascontiguousarray(v.reshape(rows, *v.shape[2:]))
        grads = self._autograd_rows({n: flat(v) for n, v in moved.items()}, None if g_moved is None else flat(g_moved), rows)
        return moved, g_moved, {n: gr.reshape(moved[n].shape) for n, gr in grads.items()}

    def _gradients(self, leaves, g_leaf, g_step, steps):
        """Autograd at every row (one backward of the sum) and the Hessian-vector products along the jitter
        steps of the jittered rows (one double backward)."""
        k = self.k
        f, _ = self._vmapped([*leaves, g_leaf])
        if not f.requires_grad:
            raise Unstackable("the forward does not depend on the parameters")
        wrt = leaves + ([g_leaf] if g_leaf is not None else [])
        try:
            grads = torch.autograd.grad(f.sum(), wrt, create_graph=True, allow_unused=True)
            if any(gr is None for gr in grads[: len(leaves)]):
                raise Unstackable("the forward does not use every parameter")
            pairs = [(gr[k:], torch.from_numpy(steps[n])) for n, gr in zip(self.names, grads, strict=False)]
            if g_leaf is not None and grads[-1] is not None:
                pairs.append((grads[-1][k:], torch.from_numpy(g_step)))
            # Σ_q ⟨∂f/∂q, Δq⟩ as one dot product: its backward hands every gradient exactly its step Δq.
            live = [(gr, s) for gr, s in pairs if gr.requires_grad]
            inner = torch.dot(torch.cat([gr.reshape(-1) for gr, _ in live]), torch.cat([s.reshape(-1) for _, s in live])) if live else torch.zeros(())
            hv = torch.autograd.grad(inner, leaves, allow_unused=True) if inner.requires_grad else [None] * len(leaves)
        except Unstackable:
            raise
        except Exception as e:  # user code: the forward's graph (no double backward through some op, a custom backward)
            raise Unstackable(f"autograd through the vmapped forward failed: {e}") from e
        return grads, hv

    # --- batched forward rows ----------------------------------------------------------------
    def chunk_rows(self) -> int:
        """Rows one batched call may hold within the memory budget (besides the K unperturbed ones)."""
        per_row = 8 * INTERMEDIATE_FACTOR * max(self._total, 1)
        return max(1, self.memory_budget // per_row - self.k)

    def fd_rows(self, check: Sequence[str]) -> int:
        """Rows of the first batched call of ``finite_differences`` (two per entry, the jittered ones)."""
        return self.k * (2 * sum(self.x[n][0].size for n in check) + JITTER_POINTS)

    def rows(self, point: np.ndarray, edits: Sequence[Edit], jitter: tuple[np.ndarray, float, np.random.Generator] | None = None):
        """f at rows: row r is point ``point[r]`` with ``edits`` applied; ``jitter=(rows, δ, rng)`` moves
        every parameter entry of those rows to x(1 + δ·U(−1, 1)). Returns (f per row, f(x) per point,
        whether a declared switch has another sign than at the row's own point), chunked to the budget.
        """
        n_rows = len(point)
        per = self.chunk_rows()
        f = np.empty(n_rows)
        flipped = np.zeros(n_rows, dtype=bool)
        if n_rows <= per:  # one call (small problems): nothing to split
            f, f0, flipped = self._call(point, edits, jitter)
            self._heap.settle()
            return f, f0, flipped
        f0 = None
        for lo in range(0, n_rows, per):
            hi = min(n_rows, lo + per)
            part = [Edit(e.name, e.rows[m] - lo, e.flat[m], e.values[m]) for e in edits for m in [(e.rows >= lo) & (e.rows < hi)] if m.any()]
            jit = None
            if jitter is not None:
                m = (jitter[0] >= lo) & (jitter[0] < hi)
                jit = (jitter[0][m] - lo, jitter[1], jitter[2]) if m.any() else None
            f[lo:hi], f0_part, flipped[lo:hi] = self._call(point[lo:hi], part, jit)
            self._heap.settle()
            f0 = f0_part if f0 is None else f0
        return f, f0, flipped

    def _call(self, point: np.ndarray, edits: Sequence[Edit], jitter):
        with serial_if_small((len(point) + self.k) * self._total):  # the rows' copies and edits too
            return self._evaluate_rows(point, edits, jitter)

    def _evaluate_rows(self, point: np.ndarray, edits: Sequence[Edit], jitter):
        r = len(point)
        # Every call ends with the K unperturbed points: f(x) and the switch signs each row is compared
        # with come from the same batched kernels as the row itself.
        # The rows are built in NumPy (fancy indexing of small arrays costs a fraction of torch's), the same
        # float64 values: copies, single entries replaced, and jittered rows x·(1 + δ·U(−1, 1)).
        take = np.concatenate([np.asarray(point, dtype=np.int64), np.arange(self.k)])
        stacks = {n: np.take(v.reshape(self.k, -1), take, axis=0) for n, v in self.x.items()}  # np.take: the same rows, faster than [take]
        for e in edits:
            stacks[e.name][np.asarray(e.rows, dtype=np.int64), np.asarray(e.flat, dtype=np.int64)] = np.asarray(e.values, dtype=np.float64)
        if jitter is not None:
            rows, rel, rng = jitter
            idx = np.asarray(rows, dtype=np.int64)
            # One draw for every parameter, split in their order: the numbers each gets are those of one draw apiece.
            moved = [np.take(stack, idx, axis=0) for stack in stacks.values()]
            scale = 1.0 + rel * rng.uniform(-1.0, 1.0, sum(v.size for v in moved))  # elementwise: the same numbers in one pass
            start = 0
            for stack, v in zip(stacks.values(), moved, strict=True):
                stack[idx] = v * scale[start : start + v.size].reshape(v.shape)
                start += v.size
        args = [torch.from_numpy(stacks[n].reshape(r + self.k, *self.x[n].shape[1:])) for n in self.names]  # NumPy's reshape: a view, cheaper
        g = None if self.g is None else torch.from_numpy(self.g.reshape(self.k, -1)[take]).reshape(r + self.k, *self.g.shape[1:])
        with torch.no_grad():
            f, signs = self._vmapped([*args, g], signs=True)
        f = f.numpy().copy()
        flipped = np.zeros(r, dtype=bool)
        own = r + take[:r]
        for sign in signs:  # small boolean comparisons: NumPy's dispatch costs a fraction of torch's
            rows = sign.reshape(r + self.k, -1).numpy()
            flipped |= (rows[:r] != np.take(rows, own, axis=0)).any(axis=1)
        return f[:r], f[r:], flipped

    # --- finite differences ------------------------------------------------------------------
    def finite_differences(
        self, check: Sequence[str], refine: Callable[[str, FDEstimate], np.ndarray], rng: np.random.Generator, *, line: bool = False
    ):
        """Stacked FDEstimate per checked parameter (arrays with the leading point axis), ε_f and f(x)
        per point: reference.finite_differences for every point at once. Every checked entry of every point
        is one column of (k, Σm) arrays, so the steps and the differences take one pass over all of them.
        ``line``: ε_f at least the rounding along a line at the steps' scale too (_fd.line_noise; LINE_POINTS − 1
        more rows per point), as a check that the jitter's ε_f did not pass asks for."""
        k = self.k
        xs = [self.x[n].reshape(k, -1) for n in check]
        plan = _fd_plan(k, tuple(x.shape[1] for x in xs))
        x = np.concatenate(xs, axis=1)
        h = stacked_steps(x, plan.columns)
        xp, xm = x + h, x - h
        both = np.stack([xp, xm], axis=1)  # (k, 2, Σm): per point x + h, then x − h, of every column
        edits = [
            Edit(n, rows, flat, both[:, :, a:b].reshape(-1)) for n, (a, b), rows, flat in zip(check, plan.columns, plan.rows, plan.flat, strict=True)
        ]
        line_rows, point = np.arange(0), plan.point
        if line:
            line_rows = len(plan.point) + np.arange(k * (LINE_POINTS - 1))
            edits += self._line_edits(line_rows, rng.spawn(1)[0])
            point = np.concatenate([plan.point, np.repeat(np.arange(k), LINE_POINTS - 1)])
        f, f0, flipped = self.rows(point, edits, (plan.jitter_rows, JITTER_ULPS * U64 * 2, rng))
        noise = noise_from_jitter(f[plan.jitter_rows].reshape(k, JITTER_POINTS), f0)
        if line:
            noise = np.maximum(noise, noise_from_line(np.concatenate([f0[:, None], f[line_rows].reshape(k, -1)], axis=1)))
        self.evaluations += 1 + JITTER_POINTS + len(line_rows) // k + 2 * x.shape[1]
        fp, fm = f[plan.plus], f[plan.minus]
        d1 = (fp - fm) / (xp - xm)
        error = noise[:, None] / h
        nondiff = flipped[plan.plus] | flipped[plan.minus]
        refined = np.zeros(x.shape, dtype=bool)
        # Views of the (k, Σm) arrays: the refinement writes into those, once for every parameter.
        est = {
            n: FDEstimate(*(v[:, a:b].reshape(self.x[n].shape) for v in (d1, error, h, nondiff, refined)))
            for n, (a, b) in zip(check, plan.columns, strict=True)
        }
        self._refine(check, plan, est, (x, h, d1, fp, fm, d1, error, nondiff, refined), refine, noise, f0)
        return est, noise, f0

    def _line_edits(self, rows: np.ndarray, rng: np.random.Generator) -> list[Edit]:
        """Rows ``rows`` (LINE_POINTS − 1 per point, point by point) moved along a random line of each point, every
        entry of every parameter (reference._fd.line_points: ε_f's half-line)."""
        along = line_points({n: v.reshape(self.k, -1) for n, v in self.x.items()}, None, rng, stacked=True, both=False, lines=1)[0]
        return [Edit(n, np.repeat(rows, v.shape[2]), np.tile(np.arange(v.shape[2]), len(rows)), v.reshape(-1)) for n, v in along.items()]

    def _refine(self, check, plan: FDPlan, est, full, refine, noise, f0) -> None:
        """Steps h/2 and h/4 at the entries ``refine`` names (not at flipped ones), as reference.refine_entries: the
        masks of every parameter side by side in (k, Σm) ``full`` arrays (x, h, D(h), f(x + h), f(x − h), and the
        estimates' value, error, nondifferentiable and refined, which ``est`` views), and Richardson and the kink test
        in one pass over every entry picked."""
        k = self.k
        x, h, d1, fp, fm, value, error, nondiff, refined = full
        mask = np.empty(x.shape, dtype=bool)
        for n, (a, b) in zip(check, plan.columns, strict=True):
            mask[:, a:b] = np.asarray(refine(n, est[n]), dtype=bool).reshape(k, -1)
        mask &= ~nondiff
        if not mask.any():
            return
        # The rows laid out parameter by parameter, then point by point and entry by entry, four per entry.
        pi, ci = np.nonzero(mask)
        order = np.argsort(plan.owner[ci], kind="stable")
        pi, ci = pi[order], ci[order]
        xi, hi = x[pi, ci], h[pi, ci]
        bounds = np.searchsorted(plan.owner[ci], np.arange(len(check) + 1))
        edits, point, gather = [], [], []
        for j, n in enumerate(check):
            lo, up = int(bounds[j]), int(bounds[j + 1])
            if lo == up:
                continue
            c, xs, hs = up - lo, xi[lo:up], hi[lo:up]
            rows = 4 * lo + np.arange(4 * c)
            edits.append(
                Edit(n, rows, np.tile(ci[lo:up] - plan.columns[j][0], 4), np.concatenate([xs + hs / 2, xs - hs / 2, xs + hs / 4, xs - hs / 4]))
            )
            point.append(np.tile(pi[lo:up], 4))
            gather.append(rows.reshape(4, c))
        f, _, flipped = self.rows(np.concatenate(point), edits)
        rows = np.concatenate(gather, axis=1)
        q = f[rows]
        fl = flipped[rows].any(axis=0)
        d2 = (q[0] - q[1]) / ((xi + hi / 2) - (xi - hi / 2))
        d3 = (q[2] - q[3]) / ((xi + hi / 4) - (xi - hi / 4))
        rho = noise[pi] / hi
        v, e, kinked = richardson(d1[pi, ci], d2, d3, fp[pi, ci], fm[pi, ci], q[2], q[3], f0[pi], hi, rho)
        value[pi, ci], error[pi, ci] = v, e
        nondiff[pi, ci] |= kinked | fl
        refined[pi, ci] = True
        np.add.at(self.evaluations, pi, 4)
