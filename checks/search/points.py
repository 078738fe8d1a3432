"""Random points: sizes for the symbolic dims (drawn by hypothesis) and values (from a seeded RNG).

Values come from a continuous distribution seeded by a hypothesis-drawn integer rather than from
``hypothesis.extra.numpy.arrays``: arrays() may fill with one repeated value and shrinks values
toward 0, which puts ReLU pre-activations exactly on the kink. Shrinking then acts on the sizes,
which is what makes a counterexample small and readable.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from hypothesis import strategies as st

from verigrad.analytic import Derivation
from verigrad.checks.report import Point

#: Draws keep every declared switch at least this far from 0, relative to the switch's rms.
KINK_MARGIN = 1e-3
#: Redraws allowed to find values that keep the margin.
KINK_REDRAWS = 20
SEED_MAX = 2**32 - 1


def sizes_strategy(derivation: Derivation, max_size: int | None = None) -> st.SearchStrategy[dict[str, int]]:
    def dim(d: str) -> st.SearchStrategy[int]:
        lo, hi = derivation.dim_range(d)
        return st.integers(lo, hi if max_size is None else max(lo, min(hi, max_size)))

    return st.fixed_dictionaries({d: dim(d) for d in derivation.symbols})


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, SEED_MAX)


def _values(derivation: Derivation, sizes: Mapping[str, int], rng: np.random.Generator, scale: float):
    params = {}
    for name in derivation.params:
        shape = derivation.shape_of(name, sizes)
        if name in derivation.ranges:
            lo, hi = derivation.ranges[name]
            params[name] = rng.uniform(lo, hi, shape)
        else:
            params[name] = scale * rng.standard_normal(shape)
    g = rng.standard_normal(derivation.output_shape(sizes)) if derivation.is_layer else None
    return params, g


def kink_distance(derivation: Derivation, params: Mapping[str, np.ndarray]) -> float:
    """Smallest |switch| / rms(switch) over the declared switches (inf without any)."""
    if derivation.kinks is None:
        return float("inf")
    from verigrad.reference import np_xp

    worst = float("inf")
    with np.errstate(all="ignore"):
        for switch in derivation.kinks(np_xp, **params):
            s = np.asarray(switch, dtype=np.float64)
            if s.size:
                rms = float(np.sqrt(np.mean(s * s))) or 1.0
                worst = min(worst, float(np.min(np.abs(s))) / rms)
    return worst


def draw_point(
    derivation: Derivation,
    sizes: Mapping[str, int],
    seed: int,
    *,
    include_kinks: bool = False,
    scale: float = 1.0,
) -> Point:
    """Values for every parameter at ``sizes``, reproducible from ``seed``; away from kinks unless asked."""
    rng = np.random.default_rng(seed)
    params, g = _values(derivation, sizes, rng, scale)
    notes = []
    if not include_kinks and derivation.kinks is not None:
        for _ in range(KINK_REDRAWS):
            if kink_distance(derivation, params) >= KINK_MARGIN:
                break
            params, g = _values(derivation, sizes, rng, scale)
        else:
            notes.append(f"no draw kept a margin of {KINK_MARGIN:g} from the kinks in {KINK_REDRAWS} tries")
    ordered = {d: int(sizes[d]) for d in derivation.symbols}
    return Point(sizes=ordered, params=params, grad_output=g, seed=seed, notes=notes)


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
