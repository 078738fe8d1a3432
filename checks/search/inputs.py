"""What an example draws besides the values: sizes, and for a derivation with ``hyper=``, ``data=`` or
``seed=True`` one value per hyperparameter, the data arrays and a forward seed.

hypothesis draws them all, so they shrink together: each hyperparameter toward the first value of its
grid (``sampled_from``), sizes toward their low ends, integers toward ``low``, masks toward False,
one-hot rows toward the first class, the forward seed toward 0. An example is then one *spec*: a dict
of the free dims' sizes, the hyperparameters' values, the data arrays and ``forward_seed``, keyed by
their names (as a replay spec writes them, checks/search/replay.py). ``bind_spec`` turns it into the
plain derivation the witnesses check (analytic/_hyper.py) and the sizes of its points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st

from verigrad.analytic import FORWARD_SEED, DataKind, Derivation, bind, configure, hyper_value, one_hot_rows, resolve
from verigrad.checks.report import Point, Report
from verigrad.checks.report.model import inputs_dict
from verigrad.checks.verdict.thresholds import TOP_SIZE_SHARE

__all__ = [
    "FORWARD_SEED",
    "bind_spec",
    "bound_for",
    "check_spec",
    "counterexample_of",
    "free_sizes",
    "plain_sizes",
    "point_inputs",
    "show_inputs",
    "spec_of",
    "spec_strategy",
    "split_spec",
]

#: Largest forward seed drawn (the seed handed to a seeded forward and its gradients).
FORWARD_SEED_MAX = 2**32 - 1
#: Resolution of the probability of a True in booleans(p=...): an entry is True when a drawn int in
#: [0, BOOL_STEPS) is at least (1 - p) * BOOL_STEPS, so a mask shrinks toward all False.
BOOL_STEPS = 1000


def plain_sizes(derivation: Derivation, max_size: int | None = None, top: bool = False) -> st.SearchStrategy[dict[str, int]]:
    """Sizes of the free dims (the expression dims follow from them), each in its range, shrinking toward
    its low end; where the ranges alone cannot keep every expression dim >= 1 (``H-K``), a draw that
    breaks one is redrawn, so shrinking too only ever meets consistent sizes. With ``top``, one draw in
    TOP_SIZE_SHARE takes the top of a dim's range (the search's rounds after the first failure)."""

    def dim(d: str) -> st.SearchStrategy[int]:
        lo, hi = derivation.dim_range(d)
        hi = hi if max_size is None else max(lo, min(hi, max_size))
        if hi == lo or not top:
            return st.integers(lo, hi)
        # The plain draw is the branch shrinking goes to; the last one takes the top of the range as a choice
        # of its own (integers(hi, hi), not just(hi)), which the plain branch can take over when shrinking
        # switches to it, so a failure found at the top still shrinks down from there.
        plain = st.integers(lo, hi)
        return st.one_of(*[plain] * (TOP_SIZE_SHARE - 1), st.integers(hi, hi))

    names = derivation.symbols
    sizes = st.fixed_dictionaries({d: dim(d) for d in names})
    if derivation.space.exact:
        return sizes
    # A filtered fixed_dictionaries may give its keys in another order: replay specs and the database keep this one.
    return sizes.filter(derivation.valid_sizes).map(lambda s: {d: s[d] for d in names})


def _hyper_strategy(derivation: Derivation) -> st.SearchStrategy[dict[str, Any]]:
    """One value per hyperparameter, each shrinking toward the first of its grid; only configurations of
    the int ones in dims that some sizes allow."""
    draw = st.fixed_dictionaries({n: st.sampled_from(grid) for n, grid in derivation.hyper.items()})
    if not derivation.hyper_dims:
        return draw
    allowed = {tuple(c[n] for n in derivation.hyper_dims) for c in derivation.hyper_configs}
    names = list(derivation.hyper)
    keep = lambda h: tuple(hyper_value(n, h) for n in derivation.hyper_dims) in allowed
    return draw.filter(keep).map(lambda h: {n: h[n] for n in names})


def _data_strategy(kind: DataKind, spec: Any, shape: tuple[int, ...], sizes: Mapping[str, int]) -> st.SearchStrategy[np.ndarray]:
    n = math.prod(shape)
    if kind == DataKind.INTEGERS:
        lo, hi = spec.bounds(sizes)
        ints = st.lists(st.integers(lo, hi - 1), min_size=n, max_size=n)
        return ints.map(lambda v: np.array(v, dtype=np.int64).reshape(shape))
    if kind == DataKind.BOOLEANS:
        cut = BOOL_STEPS - round(float(spec.p) * BOOL_STEPS)
        bits = st.lists(st.integers(0, BOOL_STEPS - 1), min_size=n, max_size=n)
        return bits.map(lambda v: (np.array(v, dtype=np.int64) >= cut).reshape(shape))
    rows = math.prod(shape[:-1])
    index = st.lists(st.integers(0, shape[-1] - 1), min_size=rows, max_size=rows)
    return index.map(lambda v: one_hot_rows(np.array(v, dtype=np.int64).reshape(shape[:-1]), shape))


def spec_strategy(derivation: Derivation, max_size: int | None = None, top: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Specs of examples of a derivation with hyperparameters, data or a seed (see the module docstring)."""

    @st.composite
    def specs(draw: Any) -> dict[str, Any]:
        hyper = draw(_hyper_strategy(derivation))
        config = configure(derivation, hyper)
        sizes = draw(plain_sizes(config, max_size, top))
        data = {}
        for name, spec in config.data.items():
            if spec.drawn:
                data[name] = draw(_data_strategy(spec.kind, spec, resolve(spec.shape, sizes, derivation.name), sizes))
        seed = {FORWARD_SEED: draw(st.integers(0, FORWARD_SEED_MAX))} if derivation.seed else {}
        return {**sizes, **hyper, **data, **seed}

    return specs()


def split_spec(derivation: Derivation, spec: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, Any], dict[str, Any], int | None]:
    """(sizes, hyperparameters, data, forward seed) of a spec. Where it gives the sizes alone
    (``draw_point(d, sizes, seed)``), a hyperparameter takes the first value of its grid and the forward
    seed 0; data it does not give are left out (``bind_spec`` draws them); KeyError for a missing size."""
    sizes = {d: int(spec[d]) for d in derivation.symbols}
    hyper = {h: spec.get(h, grid[0]) for h, grid in derivation.hyper.items()}
    data = {n: spec[n] for n, s in derivation.data.items() if s.drawn and n in spec}
    return sizes, hyper, data, (int(spec.get(FORWARD_SEED, 0)) if derivation.seed else None)


def free_sizes(derivation: Derivation, spec: Mapping[str, Any]) -> dict[str, int]:
    """The free dims' sizes of a spec (of plain sizes, the sizes themselves)."""
    return {d: int(spec[d]) for d in derivation.symbols if d in spec} if derivation.has_inputs else dict(spec)


def bind_spec(derivation: Derivation, spec: Mapping[str, Any]) -> tuple[Derivation, dict[str, int]]:
    """The plain derivation a spec's example is checked as, and its sizes (a plain derivation: itself)."""
    if not derivation.has_inputs:
        return derivation, dict(spec)
    sizes, hyper, data, seed = split_spec(derivation, spec)
    config = configure(derivation, hyper)
    arrays = {n: np.asarray(v, dtype=_dtype(config.data[n].kind)) for n, v in data.items()}
    missing = [n for n, s in config.data.items() if s.drawn and n not in arrays]
    if missing:  # sizes alone: the data drawn from a generator seeded by the sizes and the forward seed
        rng = np.random.default_rng([seed or 0, *sizes.values()])
        for n in missing:
            arrays[n] = config.data[n].draw(resolve(config.data[n].shape, sizes, derivation.name), sizes, rng)
    return bind(config, sizes, arrays, seed), sizes


def _dtype(kind: DataKind) -> Any:
    return np.int64 if kind == DataKind.INTEGERS else bool if kind == DataKind.BOOLEANS else np.float64


def bound_for(derivation: Derivation, point: Point) -> Derivation:
    """The plain derivation ``point`` is checked with: ``derivation`` bound to the point's hyperparameters,
    data and forward seed (itself when it has none)."""
    if not derivation.has_inputs:
        return derivation
    return bind_spec(derivation, spec_of(point))[0]


def spec_of(point: Point) -> dict[str, Any]:
    """The spec of the example ``point`` was drawn from (its sizes alone for a plain derivation)."""
    seed = {} if point.forward_seed is None else {FORWARD_SEED: point.forward_seed}
    return {**point.sizes, **point.hyper, **point.data, **seed}


def _data_fits(derivation: Derivation, name: str, value: Any, sizes: Mapping[str, int]) -> str | None:
    """Why ``value`` is not a value the search could have drawn for data input ``name`` at ``sizes``, or None."""
    spec = derivation.data[name]
    try:
        arr = np.asarray(value)
        shape = resolve(spec.shape, sizes, derivation.name)
    except (TypeError, ValueError):
        return "is not an array of the declared shape"
    if arr.shape != shape:
        return f"has shape {arr.shape}, expected {shape}"
    if spec.kind == DataKind.INTEGERS:
        lo, hi = spec.bounds(sizes)
        if arr.dtype.kind not in "iu" or (arr.size and not (lo <= arr.min() and arr.max() < hi)):
            return f"must hold integers in [{lo}, {hi})"
    elif spec.kind == DataKind.BOOLEANS and arr.dtype.kind != "b":
        return "must hold True/False"
    elif spec.kind == DataKind.ONE_HOT and not (arr.dtype.kind in "biuf" and np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=-1) == 1)):
        return "must hold one 1.0 per row along the last axis"
    return None


def check_spec(derivation: Derivation, spec: Mapping[str, Any]) -> None:
    """ValueError (one line naming the derivation) unless ``spec`` names exactly the derivation's free dims,
    hyperparameters (values of their grids), drawn data inputs (arrays it could draw) and forward seed."""
    name = derivation.name
    wanted = [
        *derivation.symbols,
        *derivation.hyper,
        *(n for n, s in derivation.data.items() if s.drawn),
        *([FORWARD_SEED] if derivation.seed else []),
    ]
    missing = [k for k in wanted if k not in spec]
    unknown = [k for k in spec if k not in wanted]
    if missing or unknown:
        problem = f"no value for {', '.join(missing)}" if missing else f"unknown name(s) {', '.join(unknown)}"
        raise ValueError(f"--replay: {problem} for derivation {name!r} (it takes: {', '.join(wanted)})")
    for h, grid in derivation.hyper.items():
        if not any(type(spec[h]) is type(v) and spec[h] == v for v in grid):
            raise ValueError(f"--replay: {h}={spec[h]!r} is not in the grid of hyperparameter {h!r} ({list(grid)!r}) of derivation {name!r}")
    bad = next(
        (
            d
            for d in [*derivation.symbols, *([FORWARD_SEED] if derivation.seed else [])]
            if not isinstance(spec[d], int) or isinstance(spec[d], bool) or (spec[d] < 1 and d != FORWARD_SEED)
        ),
        None,
    )
    if bad is not None:
        raise ValueError(f"--replay: {bad} must be an integer{' >= 1' if bad != FORWARD_SEED else ''} for derivation {name!r}")
    sizes, hyper, data, seed = split_spec(derivation, spec)
    try:
        config = configure(derivation, hyper)
    except ValueError as e:
        raise ValueError(f"--replay: derivation {name!r}: {e}") from None
    if not config.valid_sizes(sizes):
        raise ValueError(f"--replay: these sizes make a dim < 1 for derivation {name!r} with {', '.join(f'{k}={v!r}' for k, v in hyper.items())}")
    for n, value in data.items():
        why = _data_fits(config, n, value, sizes)
        if why:
            raise ValueError(f"--replay: data input {n} {why} for derivation {name!r}")
    if seed is not None and not 0 <= seed <= FORWARD_SEED_MAX:
        raise ValueError(f"--replay: {FORWARD_SEED} must be in 0..{FORWARD_SEED_MAX} for derivation {name!r}")


def point_inputs(derivation: Derivation) -> dict[str, Any]:
    """Point's fields for the hyperparameters, data and forward seed a bound derivation was bound to."""
    setting = derivation.bound
    if setting is None:
        return {}
    return {"hyper": dict(setting.hyper), "data": dict(setting.data), "forward_seed": setting.seed}


def counterexample_of(point: Point) -> dict[str, Any]:
    """A report's counterexample at ``point``: its sizes and seed, with its hyperparameters, data and forward
    seed where it has them (JSON-ready)."""
    out: dict[str, Any] = {"shapes": dict(point.sizes), "seed": point.seed}
    if point.hyper or point.data or point.forward_seed is not None:
        out.update(inputs_dict(point.hyper, point.data, point.forward_seed))
    return out


def show_inputs(report: Report, point: Point) -> None:
    """The reported point's hyperparameters, data and forward seed, on ``report``."""
    report.hyper, report.data, report.forward_seed = dict(point.hyper), dict(point.data), point.forward_seed
