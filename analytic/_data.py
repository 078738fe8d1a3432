"""Data inputs: arrays the forward and gradients take that are never differentiated.

``integers(low, high, shape)`` (class labels, word ids: ints in [low, high), a bound may name a dim or be
an expression of dims), ``booleans(shape, p)`` (masks), ``one_hot(shape)`` (one 1.0 per row along the last
axis) and ``fixed(array)`` (a user-given array, passed as is). The search draws them with hypothesis at
each example's sizes, so they vary and shrink (labels toward ``low``, masks toward False, one-hot rows
toward the first class); here they are only declared, checked, and drawn from a seeded generator where
the diagnosis asks for the same inputs at other sizes (``Inputs``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from ._dims import DimExpressionError, dim_value, parse_dim, solve_sizes

__all__ = ["DataKind", "DataSpec", "Inputs", "booleans", "fixed", "integers", "one_hot"]

Dim = str | int


class DataKind(StrEnum):
    INTEGERS = "integers"
    BOOLEANS = "booleans"
    ONE_HOT = "one_hot"
    FIXED = "fixed"


@dataclass(frozen=True, eq=False)
class DataSpec:
    """One declared data input (made by ``integers``, ``booleans``, ``one_hot`` or ``fixed``)."""

    kind: DataKind
    shape: tuple[Any, ...]
    low: Any = 0
    high: Any = 1
    p: Any = 0.5
    array: Any = field(default=None, repr=False)

    @property
    def drawn(self) -> bool:
        """Whether the search draws it (a fixed array is the same at every point)."""
        return self.kind != DataKind.FIXED

    def names(self) -> list[str]:
        """The dim names its shape and bounds use."""
        out: list[str] = []
        for d in (*self.shape, *((self.low, self.high) if self.kind == DataKind.INTEGERS else ())):
            if isinstance(d, str):
                out += [d] if d.isidentifier() else list(parse_dim(d).names)
        return out

    def bounds(self, sizes: Mapping[str, int]) -> tuple[int, int]:
        """``(low, high)`` of an integers input at ``sizes``."""
        return int(dim_value(self.low, sizes) or 0), int(dim_value(self.high, sizes) or 0)

    def span(self) -> str | None:
        """For integers with a bound that names a dim: the expression ``high - low`` that must be >= 1."""
        if self.kind != DataKind.INTEGERS or not (isinstance(self.low, str) or isinstance(self.high, str)):
            return None
        return f"({self.high})-({self.low})"

    def draw(self, shape: tuple[int, ...], sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
        """A value at ``shape`` from ``rng`` (the search draws with hypothesis instead)."""
        if self.kind == DataKind.INTEGERS:
            lo, hi = self.bounds(sizes)
            return rng.integers(lo, hi, size=shape, dtype=np.int64)
        if self.kind == DataKind.BOOLEANS:
            return rng.random(shape) < float(self.p)
        if self.kind == DataKind.ONE_HOT:
            return one_hot_rows(rng.integers(0, shape[-1], size=shape[:-1]), shape)
        return np.array(self.array, copy=True)

    def describe(self) -> str:
        if self.kind == DataKind.INTEGERS:
            return f"integers({self.low!r}, {self.high!r}, shape={self.shape!r})"
        if self.kind == DataKind.BOOLEANS:
            return f"booleans({self.shape!r}, p={self.p!r})"
        if self.kind == DataKind.ONE_HOT:
            return f"one_hot({self.shape!r})"
        return f"fixed(array of shape {self.shape!r})"


def one_hot_rows(index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Float64 rows of ``shape`` with a 1.0 at ``index`` along the last axis."""
    out = np.zeros(shape, dtype=np.float64)
    np.put_along_axis(out, np.asarray(index, dtype=np.int64)[..., None], 1.0, axis=-1)
    return out


def integers(low: Dim, high: Dim, shape: Sequence[Dim] | Dim = ()) -> DataSpec:
    """Integers in ``[low, high)`` of ``shape``; a bound may be an int, a dim name or a dim expression."""
    return DataSpec(DataKind.INTEGERS, _as_shape(shape), low, high)


def booleans(shape: Sequence[Dim] | Dim = (), p: float = 0.5) -> DataSpec:
    """A bool array of ``shape``, each entry True with probability ``p``."""
    return DataSpec(DataKind.BOOLEANS, _as_shape(shape), p=p)


def one_hot(shape: Sequence[Dim] | Dim) -> DataSpec:
    """Float64 rows of ``shape`` with one 1.0 each along the last axis (the others 0.0)."""
    return DataSpec(DataKind.ONE_HOT, _as_shape(shape))


def fixed(array: Any) -> DataSpec:
    """A user-given array, the same at every point (a copy is handed to each call)."""
    try:
        value = np.array(array, copy=True)
    except (TypeError, ValueError):  # a ragged list: refused by the derivation, naming it
        value = None
    shape = () if value is None else tuple(int(n) for n in value.shape)
    return DataSpec(DataKind.FIXED, shape, array=value)


def _as_shape(shape: Any) -> tuple[Any, ...]:
    return (shape,) if isinstance(shape, str | int) else tuple(shape) if isinstance(shape, tuple | list) else shape


class DataError(ValueError):
    """A data declaration is malformed; the message says how (the derivation adds its name)."""


def check_spec(what: str, spec: object, check_shape: Any) -> DataSpec:
    """``spec`` with its shape checked by ``check_shape(what, shape)``; DataError saying what is wrong."""
    if not isinstance(spec, DataSpec):
        raise DataError(f"{what} must be integers(...), booleans(...), one_hot(...) or fixed(...), got {type(spec).__name__}")
    if spec.kind == DataKind.FIXED:
        if spec.array is None or spec.array.dtype.kind not in "biuf":
            raise DataError(f"{what}: fixed() needs a numeric or bool array")
        return spec
    shape = check_shape(what, spec.shape)
    if spec.kind == DataKind.ONE_HOT and not shape:
        raise DataError(f"{what}: one_hot needs a shape with at least one axis (the classes)")
    low, high = spec.low, spec.high
    if spec.kind == DataKind.INTEGERS:
        low, high = (_bound(what, b) for b in (spec.low, spec.high))
        if isinstance(low, int) and isinstance(high, int) and high <= low:
            raise DataError(f"{what}: integers({low}, {high}) is empty; high must be > low")
    p = spec.p
    if spec.kind == DataKind.BOOLEANS:
        if isinstance(p, bool) or not isinstance(p, int | float) or not (0.0 <= float(p) <= 1.0):
            raise DataError(f"{what}: booleans p must be a number in [0, 1], got {p!r}")
    return DataSpec(spec.kind, shape, low, high, p)


def _bound(what: str, b: object) -> Dim:
    if isinstance(b, bool) or not isinstance(b, int | str):
        raise DataError(f"{what}: an integers bound must be an int, a dim name or a dim expression, got {b!r}")
    if isinstance(b, int):
        return b
    try:
        parse_dim(b.strip())
    except DimExpressionError as e:
        raise DataError(f"{what}: bound {b!r} {e}") from None
    return b.strip()


# --- the data of one example, at its sizes and at others ------------------------------------------------


class Inputs:
    """The data an example was drawn with, handed to every call at its sizes. At other sizes (the
    diagnosis checks a gradient there too) the sizes are read off the parameters' shapes, and the data
    are drawn there from a generator seeded by the example's seed, the same for forward and gradients."""

    def __init__(
        self, shapes: Mapping[str, tuple], specs: Mapping[str, DataSpec], sizes: Mapping[str, int], data: Mapping[str, np.ndarray], seed: int | None
    ) -> None:
        self.shapes, self.specs, self.sizes, self.seed = dict(shapes), dict(specs), dict(sizes), seed
        self._cache: dict[tuple, dict[str, np.ndarray]] = {}
        self._cache[self._key_at(self.sizes)] = {k: np.asarray(v) for k, v in data.items()}

    def _key_at(self, sizes: Mapping[str, int]) -> tuple:
        try:
            return tuple(tuple(int(dim_value(d, sizes) or 0) for d in s) for s in self.shapes.values())
        except KeyError:
            return ()

    def arrays(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The data for a call with ``params`` (NumPy arrays, not copied)."""
        key = tuple(tuple(int(n) for n in np.shape(params[p])) if p in params else () for p in self.shapes)
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = self._draw(key)
        return got

    def _draw(self, key: tuple) -> dict[str, np.ndarray]:
        sizes: dict[str, int] = {}
        observed = []
        for shape, dims in zip(key, self.shapes.values(), strict=True):
            for n, d in zip(shape, dims, strict=False):
                if isinstance(d, str) and d.isidentifier():
                    sizes.setdefault(d, n)
                elif isinstance(d, str):
                    observed.append((d, n))
        solve_sizes(observed, sizes)
        sizes = {**self.sizes, **sizes}  # a dim only the data use keeps the example's size
        rng = np.random.default_rng([self.seed or 0, *(int(sizes.get(k, 1)) for k in sorted(self.sizes))])
        out = {}
        for name, spec in self.specs.items():
            shape = tuple(int(dim_value(d, sizes) or 1) for d in spec.shape)
            out[name] = spec.draw(shape, sizes, rng) if spec.drawn else np.array(spec.array, copy=True)
        return out
