"""Random points: sizes for the symbolic dims (drawn by hypothesis) and values (from a seeded RNG).

Values come from a continuous distribution seeded by a hypothesis-drawn integer rather than from
``hypothesis.extra.numpy.arrays``: arrays() may fill with one repeated value and shrinks values
toward 0, which puts ReLU pre-activations exactly on the kink. Shrinking then acts on the sizes,
which is what makes a counterexample small and readable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from verigrad.analytic import Derivation, dim_value, solve_sizes
from verigrad.checks.report import Point
from verigrad.checks.verdict.thresholds import KINK_MARGIN, KINK_REDRAWS
from verigrad.reference import np_xp, torch_output_shape

SEED_MAX = 2**32 - 1


def sizes_strategy(derivation: Derivation, max_size: int | None = None) -> st.SearchStrategy[dict[str, int]]:
    """Sizes of the free dims (the expression dims follow from them), each in its range, shrinking toward
    its low end; where the ranges alone cannot keep every expression dim >= 1 (``H-K``), a draw that
    breaks one is redrawn, so shrinking too only ever meets consistent sizes."""

    def dim(d: str) -> st.SearchStrategy[int]:
        lo, hi = derivation.dim_range(d)
        return st.integers(lo, hi if max_size is None else max(lo, min(hi, max_size)))

    names = derivation.symbols
    sizes = st.fixed_dictionaries({d: dim(d) for d in names})
    if derivation.space.exact:
        return sizes
    # A filtered fixed_dictionaries may give its keys in another order: replay specs and the database keep this one.
    return sizes.filter(derivation.valid_sizes).map(lambda s: {d: s[d] for d in names})


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


def _values(derivation: Derivation, plan: _Plan, rng: np.random.Generator, scale: float):
    params = {}
    for name, shape, bounds in plan.params:
        if bounds is not None:
            params[name] = rng.uniform(bounds[0], bounds[1], shape)
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
    """``draw_point`` at each of ``seeds``, all at ``sizes`` (the shapes are resolved once)."""
    plan = _plan(derivation, sizes)
    ordered = {d: int(sizes[d]) for d in derivation.symbols}
    keep_off = not include_kinks and derivation.kinks is not None
    points = []
    with np.errstate(all="ignore"):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            params, g = _values(derivation, plan, rng, scale)
            notes = []
            if keep_off:
                for _ in range(KINK_REDRAWS):
                    if _distance(derivation, params) >= KINK_MARGIN:
                        break
                    params, g = _values(derivation, plan, rng, scale)
                else:
                    notes.append(f"no draw kept a margin of {KINK_MARGIN:g} from the kinks in {KINK_REDRAWS} tries")
            points.append(Point(sizes=dict(ordered), params=params, grad_output=g, seed=seed, notes=notes))
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
    if derivation.output is not None and "grad_output" in at:
        specs["grad_output"] = derivation.output
    for name, spec in specs.items():
        if name not in at:
            raise ValueError(f"at: no value for parameter {name!r}")
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
