"""Random points: sizes for the symbolic dims (drawn by hypothesis) and values (from a seeded RNG).

Values come from a continuous distribution seeded by a hypothesis-drawn integer rather than from
``hypothesis.extra.numpy.arrays``: arrays() may fill with one repeated value and shrinks values
toward 0, which puts ReLU pre-activations exactly on the kink. Shrinking then acts on the sizes,
which is what makes a counterexample small and readable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from hypothesis import strategies as st

from verigrad.analytic import Derivation
from verigrad.checks.report import Point
from verigrad.checks.verdict.thresholds import KINK_MARGIN, KINK_REDRAWS
from verigrad.reference import np_xp

SEED_MAX = 2**32 - 1


def sizes_strategy(derivation: Derivation, max_size: int | None = None) -> st.SearchStrategy[dict[str, int]]:
    def dim(d: str) -> st.SearchStrategy[int]:
        lo, hi = derivation.dim_range(d)
        return st.integers(lo, hi if max_size is None else max(lo, min(hi, max_size)))

    return st.fixed_dictionaries({d: dim(d) for d in derivation.symbols})


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, SEED_MAX)


class KinksError(Exception):
    """The derivation's ``kinks()`` raised, or returned something that is not arrays; the user's exception is the cause."""


def _plan(derivation: Derivation, sizes: Mapping[str, int]):
    """What each draw makes: (name, shape, uniform range or None) per parameter, and grad_output's shape."""
    params = [(name, derivation.shape_of(name, sizes), derivation.ranges.get(name)) for name in derivation.params]
    return params, (derivation.output_shape(sizes) if derivation.is_layer else None)


def _values(plan, rng: np.random.Generator, scale: float):
    params = {}
    for name, shape, bounds in plan[0]:
        if bounds is not None:
            params[name] = rng.uniform(bounds[0], bounds[1], shape)
        else:
            z = rng.standard_normal(shape)
            params[name] = z if scale == 1.0 else scale * z
    g = rng.standard_normal(plan[1]) if plan[1] is not None else None
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
            params, g = _values(plan, rng, scale)
            notes = []
            if keep_off:
                for _ in range(KINK_REDRAWS):
                    if _distance(derivation, params) >= KINK_MARGIN:
                        break
                    params, g = _values(plan, rng, scale)
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
    """Sizes of the symbolic dims read off user-given arrays; ValueError naming the clash."""
    sizes: dict[str, int] = {}
    where: dict[str, str] = {}
    specs = dict(derivation.shapes)
    if derivation.is_layer and "grad_output" in at:
        specs["grad_output"] = derivation.output
    for name, spec in specs.items():
        if name not in at:
            if name == "grad_output":
                continue
            raise ValueError(f"at: no value for parameter {name!r}")
        shape = np.shape(at[name])
        if len(shape) != len(spec):
            raise ValueError(f"at: {name} has shape {shape}, but shapes declare {len(spec)} dims {spec}")
        for d, n in zip(spec, shape, strict=True):
            if isinstance(d, int):
                if n != d:
                    raise ValueError(f"at: {name} has shape {shape}, but its dim of fixed size {d} is {n}")
            elif d in sizes and sizes[d] != n:
                raise ValueError(f"at: dim {d} is {sizes[d]} in {where[d]} but {n} in {name}")
            else:
                sizes.setdefault(d, n)
                where.setdefault(d, name)
    extra = [k for k in at if k not in specs]
    if extra:
        raise ValueError(f"at: unknown parameter(s) {', '.join(map(repr, extra))}")
    return sizes
