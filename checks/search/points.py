"""Random points: sizes for the symbolic dims (drawn by hypothesis) and values (from a seeded RNG).

Values come from a continuous distribution seeded by a hypothesis-drawn integer rather than from
``hypothesis.extra.numpy.arrays``: arrays() may fill with one repeated value and shrinks values
toward 0, which puts ReLU pre-activations exactly on the kink. Shrinking then acts on the sizes,
which is what makes a counterexample small and readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from verigrad.analytic import DataKind, Derivation, bind, configure, dim_value, solve_sizes
from verigrad.checks.report import Point
from verigrad.checks.search.inputs import bind_spec, plain_sizes, spec_strategy
from verigrad.checks.verdict.thresholds import KINK_MARGIN, KINK_REDRAWS
from verigrad.reference import np_xp, read_as_scalar, seen_shape, torch_output_shape

SEED_MAX = 2**32 - 1


def sizes_strategy(derivation: Derivation, max_size: int | None = None, top: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Sizes of the free dims, each in its range, shrinking toward its low end, every expression dim >= 1
    (checks/search/inputs.py); for a derivation with hyperparameters, data or a seed, specs: the sizes
    with one value per hyperparameter, the data arrays and the forward seed. ``top``: see ``plain_sizes``."""
    return spec_strategy(derivation, max_size, top) if derivation.has_inputs else plain_sizes(derivation, max_size, top)


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, SEED_MAX)


class KinksError(Exception):
    """The derivation's ``kinks()`` raised, or returned something that is not arrays; the user's exception is the cause."""


@dataclass
class _Plan:
    """What each draw makes: (name, shape, uniform range or None) per parameter, and grad_output's shape
    (None for a scalar objective; read off the forward at the first draw for a layer without output=)."""

    params: list[tuple[str, tuple[int, ...], Any]]
    output: tuple[int, ...] | None
    infer: bool


def _plan(derivation: Derivation, sizes: Mapping[str, int]) -> _Plan:
    params = [(name, derivation.shape_of(name, sizes), derivation.ranges.get(name)) for name in derivation.params]
    infer = derivation.is_layer and derivation.output is None
    declared = derivation.output_shape(sizes) if derivation.is_layer and not infer else None
    return _Plan(params, declared, infer)


def forward_shape(derivation: Derivation, params: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """The shape of the forward's output at ``params`` (run in NumPy on copies): a layer's output shape when
    ``output=`` is not declared. () if the forward raises there: the check runs it again and reports why."""
    args = {k: np.array(v, copy=True) for k, v in params.items()}
    try:
        with np.errstate(all="ignore"):
            out = derivation.forward(np_xp, **args)
        shape = getattr(out, "shape", None)
        return tuple(int(n) for n in (np.shape(out) if shape is None else shape))
    except Exception:  # user code: the forward, or its output's shape
        return torch_output_shape(derivation, params)  # a forward that runs under torch only; () if neither


def grad_output_shape(derivation: Derivation, sizes: Mapping[str, int], params: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """The shape of a layer's upstream gradient at ``sizes``: declared, or read off the forward at ``params``."""
    return derivation.output_shape(sizes) if derivation.output is not None else forward_shape(derivation, params)


def uniform(rng: np.random.Generator, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    """Values uniform in [low, high): numpy's own draw where high - low is a finite float, so every point drawn so
    far keeps its values bit for bit; where the width overflows (ranges=(-1e308, 1e308)) each value is
    low·(1 − u) + high·u, which never leaves the range's magnitude. Both take one double per value from ``rng``."""
    if math.isfinite(high - low):
        return rng.uniform(low, high, shape)
    u = rng.random(shape)
    return np.clip(low * (1.0 - u) + high * u, low, high)


def scalar_notes(derivation: Derivation, spec: Mapping[str, Any], bound: Derivation, params: Mapping[str, np.ndarray]) -> list[str]:
    """The warning a point of ``bound`` (``derivation`` bound to ``spec``) carries when its forward returns the scalar
    objective as a size-1 array, (1,) or (1, 1), which every witness reads as the scalar it holds
    (reference.read_as_scalar); none otherwise. The forward is first run at larger sizes: an array of more than one
    entry there makes its size-1 value here a vector of length 1, refused as any vector is."""
    shape = () if bound.is_layer else forward_shape(bound, params)
    if not read_as_scalar(bound, shape):
        return []
    seen_shape(bound, _grown_shape(derivation, spec))
    if not read_as_scalar(bound, shape):
        return []
    return [f"the forward returned its scalar objective as an array of shape {shape}: read as the scalar it holds"]


def _grown_shape(derivation: Derivation, spec: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of the forward's value with every free dim at 2 or more where its range allows (the data drawn
    anew at those sizes); () where those sizes cannot be drawn or the forward raises there."""
    grown = {k: v for k, v in spec.items() if k not in derivation.data}
    grown.update({d: min(derivation.dim_range(d)[1], max(2, int(spec[d]))) for d in derivation.symbols})
    try:
        bound, sizes = bind_spec(derivation, grown)
        params, _ = _values(bound, _plan(bound, sizes), np.random.default_rng(0), 1.0)
    except ValueError:  # sizes that break an expression dim (H-K at K=H): no larger point to look at
        return ()
    return forward_shape(bound, params)


def _values(derivation: Derivation, plan: _Plan, rng: np.random.Generator, scale: float):
    params = {}
    for name, shape, bounds in plan.params:
        if bounds is not None:
            params[name] = uniform(rng, bounds[0], bounds[1], shape)
        else:
            z = rng.standard_normal(shape)
            params[name] = z if scale == 1.0 else scale * z
    if plan.infer:
        plan.output, plan.infer = forward_shape(derivation, params), False
    g = rng.standard_normal(plan.output) if plan.output is not None else None
    return params, g


def _distance(derivation: Derivation, params: Mapping[str, np.ndarray]) -> float:
    try:
        switches = [np.asarray(s, dtype=np.float64) for s in derivation.kinks(np_xp, **params)]
    except Exception as e:  # user code
        raise KinksError(f"{type(e).__name__}: {e}") from e
    worst = float("inf")
    for s in switches:
        if s.size:
            # np.add.reduce(·, axis=None) / size is np.mean's own arithmetic, without its dispatch.
            rms = float(np.sqrt(np.add.reduce(s * s, axis=None) / s.size)) or 1.0
            worst = min(worst, float(np.abs(s).min()) / rms)
    return worst


def kink_distance(derivation: Derivation, params: Mapping[str, np.ndarray]) -> float:
    """Smallest |switch| / rms(switch) over the declared switches (inf without any); KinksError if kinks() fails."""
    if derivation.kinks is None:
        return float("inf")
    with np.errstate(all="ignore"):
        return _distance(derivation, params)


def draw_points(
    derivation: Derivation,
    sizes: Mapping[str, int],
    seeds: Sequence[int],
    *,
    include_kinks: bool = False,
    scale: float = 1.0,
) -> list[Point]:
    """``draw_point`` at each of ``seeds``, all at ``sizes`` (the shapes are resolved once). For a derivation
    with hyperparameters, data or a seed, ``sizes`` is an example's spec (checks/search/inputs.py)."""
    spec = sizes
    unbound, (derivation, sizes) = derivation, bind_spec(derivation, sizes)
    setting = derivation.bound
    inputs = {} if setting is None else {"hyper": dict(setting.hyper), "data": dict(setting.data), "forward_seed": setting.seed}
    plan = _plan(derivation, sizes)
    ordered = {d: int(sizes[d]) for d in derivation.symbols}
    keep_off = not include_kinks and derivation.kinks is not None
    points = []
    said: list[str] | None = None  # the forward's value is read the same way at every point of one size
    with np.errstate(all="ignore"):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            params, g = _values(derivation, plan, rng, scale)
            said = scalar_notes(unbound, spec, derivation, params) if said is None else said
            notes = list(said)
            if keep_off:
                for _ in range(KINK_REDRAWS):
                    if _distance(derivation, params) >= KINK_MARGIN:
                        break
                    params, g = _values(derivation, plan, rng, scale)
                else:
                    notes.append(f"no draw kept a margin of {KINK_MARGIN:g} from the kinks in {KINK_REDRAWS} tries")
            points.append(Point(sizes=dict(ordered), params=params, grad_output=g, seed=seed, notes=notes, **inputs))
    return points


def draw_point(
    derivation: Derivation,
    sizes: Mapping[str, int],
    seed: int,
    *,
    include_kinks: bool = False,
    scale: float = 1.0,
) -> Point:
    """Values for every parameter at ``sizes``, reproducible from ``seed``; away from kinks unless asked.

    KinksError if the derivation's kinks() raises (it is called to keep the draw off the kinks).
    """
    return draw_points(derivation, sizes, [seed], include_kinks=include_kinks, scale=scale)[0]


def infer_sizes(derivation: Derivation, at: Mapping[str, object]) -> dict[str, int]:
    """Sizes of the free dims read off user-given arrays (a dim that appears only inside an expression is
    solved for); ValueError naming the clash."""
    sizes: dict[str, int] = {}
    where: dict[str, str] = {}
    computed: list[tuple[str, str, tuple[int, ...], int]] = []
    specs = dict(derivation.shapes)
    if derivation.has_inputs:  # a configured derivation: its data's shapes declare dims too
        specs.update({n: spec.shape for n, spec in derivation.data.items() if spec.drawn})
    if derivation.output is not None and "grad_output" in at:
        specs["grad_output"] = derivation.output
    for name, spec in specs.items():
        if name not in at:
            raise ValueError(f"at: no value for {'data input' if name in derivation.data else 'parameter'} {name!r}")
        shape = np.shape(at[name])
        if len(shape) != len(spec):
            raise ValueError(f"at: {name} has shape {shape}, but shapes declare {len(spec)} dims {spec}")
        for d, n in zip(spec, shape, strict=True):
            if isinstance(d, int):
                if n != d:
                    raise ValueError(f"at: {name} has shape {shape}, but its dim of fixed size {d} is {n}")
            elif not d.isidentifier():
                computed.append((name, d, shape, n))
            elif d in sizes and sizes[d] != n:
                raise ValueError(f"at: dim {d} is {sizes[d]} in {where[d]} but {n} in {name}")
            else:
                sizes.setdefault(d, n)
                where.setdefault(d, name)
    extra = [k for k in at if k not in specs and not (k == "grad_output" and derivation.is_layer)]
    if extra:
        raise ValueError(f"at: unknown parameter(s) {', '.join(map(repr, extra))}")
    solve_sizes([(d, n) for _, d, _, n in computed], sizes)
    for name, d, shape, n in computed:
        _check_computed(derivation, sizes, name, d, shape, n)
    return {k: sizes[k] for k in derivation.symbols if k in sizes}


def _check_computed(derivation: Derivation, sizes: Mapping[str, int], name: str, d: str, shape: tuple[int, ...], n: int) -> None:
    """ValueError unless the expression dim ``d`` of ``name`` is ``n`` at ``sizes``."""
    try:
        value = dim_value(d, sizes)
    except KeyError as e:
        raise ValueError(f"at: {name} has shape {shape}, but no size of {e.args[0]} makes its dim {d!r} {n}") from None
    if value != n:
        there = ", ".join(f"{k}={sizes[k]}" for k in derivation.symbols if k in sizes)
        raise ValueError(f"at: {name} has shape {shape}, but its dim {d!r} is {value} at {there}")


def _data_value(derivation: Derivation, name: str, value: object) -> np.ndarray:
    """A data input given at ``at=`` as an array of its kind's dtype; ValueError naming what does not fit."""
    spec, arr = derivation.data[name], np.asarray(value)
    if spec.kind == DataKind.INTEGERS and arr.dtype.kind not in "iu":
        raise ValueError(f"at: data input {name!r} is declared {spec.describe()}, so it must be an integer array, got dtype {arr.dtype}")
    if spec.kind == DataKind.BOOLEANS and arr.dtype.kind != "b":
        raise ValueError(f"at: data input {name!r} is declared {spec.describe()}, so it must be a bool array, got dtype {arr.dtype}")
    if spec.kind == DataKind.ONE_HOT and arr.dtype.kind not in "biuf":
        raise ValueError(f"at: data input {name!r} must be a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64) if spec.kind == DataKind.ONE_HOT else arr


def bind_at(derivation: Derivation, at: Mapping[str, object]) -> tuple[Derivation, dict[str, object], dict[str, int]]:
    """For ``check(d, at=...)``: (the derivation bound to the data, hyperparameters and ``seed`` given in
    ``at`` (a hyperparameter not given takes the first value of its grid, the seed 0), the parameters and
    grad_output left, the sizes); ValueError naming what does not fit."""
    if not derivation.has_inputs:
        return derivation, dict(at), infer_sizes(derivation, at)
    arrays = dict(at)
    hyper = {h: arrays.pop(h, grid[0]) for h, grid in derivation.hyper.items()}
    seed = int(arrays.pop("seed", 0)) if derivation.seed else None
    try:
        config = configure(derivation, hyper)
    except ValueError as e:
        raise ValueError(f"at: {e}") from None
    sizes = infer_sizes(config, arrays)
    data = {n: _data_value(config, n, arrays.pop(n)) for n, spec in config.data.items() if spec.drawn}
    return bind(config, sizes, data, seed), arrays, sizes
