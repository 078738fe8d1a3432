"""The derivation contract: the one object users write (see the glossary in ``analytic/__init__.py``)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._torch_function import function_gradients, is_torch_function

Dim = str | int
Shape = tuple[Dim, ...]

#: Default inclusive range of sizes drawn for every symbolic dimension.
DEFAULT_DIM_RANGE = (1, 8)
#: The one name a dim may not have: replay specs (``N=2,seed=7``) use it for the point's seed.
RESERVED_DIM = "seed"


class DerivationError(ValueError):
    """A derivation is malformed; the message names the derivation and the problem."""

    def __init__(self, name: object, problem: str) -> None:
        self.derivation = name
        self.problem = problem
        super().__init__(f"derivation {name!r}: {problem}")


def _accepts(fn: Callable[..., Any], names: Sequence[str]) -> list[str]:
    """The names in ``names`` that ``fn`` cannot take as keyword arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return []
    kinds = {p.kind for p in sig.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return []
    keywordable = {
        n
        for n, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return [n for n in names if n not in keywordable]


@dataclass(frozen=True, eq=False)
class Derivation:
    """A hand-derived gradient, with the forward it claims to differentiate.

    Required:
      name       unique, human-readable name (used in reports and replay commands).
      shapes     ``{param: (dim, ...)}``; a dim is a symbolic name shared across parameters
                 (``"N"``) or a fixed int.
      forward    ``forward(xp, **params)``: the objective, written once against the array
                 namespace ``xp`` (NumPy or torch). A scalar, or an array of shape ``output``.
      gradients  ``gradients(**params)`` (plus ``grad_output=G`` for a layer) returning
                 ``{param: ndarray}``: the hand-derived formulas, in NumPy. Or a
                 ``torch.autograd.Function`` subclass whose ``apply(*params)`` (in the order of
                 ``shapes``) computes the forward and whose ``backward`` is hand-written; it is
                 then ``torch_function`` and ``gradients`` calls its backward.

    Optional:
      output     ``None`` for a scalar objective; for a layer, the shape of ``forward``'s
                 output. Its gradients then receive the upstream gradient ``grad_output`` and
                 return ∂⟨G, forward⟩/∂param (the vector-Jacobian product).
      check      the parameters whose gradients are checked (default: all). Parameters not
                 listed are still drawn and passed; their gradients may be omitted.
      ranges     ``{param: (low, high)}``: draw that parameter uniformly in the range
                 (e.g. positive values for a log). Default: standard normal.
      dims       ``{dim: (low, high)}``: inclusive size range of a symbolic dim (default 1..8).
      kinks      ``kinks(xp, **params) -> [array, ...]``: switches of the forward, such as
                 ReLU pre-activations; where one is 0 the forward is not differentiable.
                 Used to keep random points away from kinks and to mark entries whose
                 finite-difference step crosses one.
      doc        one paragraph shown in reports; defaults to the forward's module docstring.
    """

    name: str
    shapes: Mapping[str, Shape]
    forward: Callable[..., Any]
    gradients: Callable[..., Mapping[str, Any]]
    output: Shape | None = None
    check: Sequence[str] | None = None
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    dims: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    kinks: Callable[..., Sequence[Any]] | None = None
    doc: str = ""
    torch_function: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise DerivationError(name, "name must be a non-empty string")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
            # A lone surrogate cannot be written to a UTF-8 report nor typed in a command line.
            raise DerivationError(name, "name holds a lone surrogate character; use text that UTF-8 can encode")
        fail = lambda problem: DerivationError(name, problem)

        if not isinstance(self.shapes, Mapping) or not self.shapes:
            raise fail("shapes must be a non-empty mapping {param: (dim, ...)}")
        shapes: dict[str, Shape] = {}
        for param, shape in self.shapes.items():
            if not isinstance(param, str) or not param.isidentifier() or param in ("xp", "grad_output"):
                raise fail(f"parameter name {param!r} must be a Python identifier other than 'xp' and 'grad_output'")
            shapes[param] = _shape(name, f"shape of {param!r}", shape)
        object.__setattr__(self, "shapes", shapes)
        symbols = {d for s in shapes.values() for d in s if isinstance(d, str)}

        if self.output is not None:
            out = _shape(name, "output", self.output)
            unknown = [d for d in out if isinstance(d, str) and d not in symbols]
            if unknown:
                raise fail(f"output uses dim {unknown[0]!r}, which no parameter's shape declares")
            object.__setattr__(self, "output", out)

        if is_torch_function(self.gradients):
            object.__setattr__(self, "torch_function", self.gradients)
            object.__setattr__(self, "gradients", function_gradients(self.gradients, list(shapes), self.output is not None))
        for role, fn in (("forward", self.forward), ("gradients", self.gradients)):
            if not callable(fn):
                raise fail(f"{role} must be callable, got {type(fn).__name__}")
        params = list(shapes)
        missing = _accepts(self.forward, ["xp", *params])
        if missing:
            raise fail(f"forward cannot take the argument(s) {', '.join(missing)}; write forward(xp, {', '.join(params)})")
        grad_args = params + (["grad_output"] if self.output is not None else [])
        missing = _accepts(self.gradients, grad_args)
        if missing:
            raise fail(f"gradients cannot take the argument(s) {', '.join(missing)}; write gradients({', '.join(grad_args)})")

        checked = list(params if self.check is None else self.check)
        if isinstance(self.check, str):
            raise fail("check must be a list of parameter names, not a string")
        unknown = [p for p in checked if p not in shapes]
        if unknown:
            raise fail(f"check names unknown parameter(s) {', '.join(map(repr, unknown))}; parameters are {', '.join(params)}")
        if not checked:
            raise fail("check is empty: nothing would be checked")
        object.__setattr__(self, "check", tuple(dict.fromkeys(checked)))

        ranges = dict(self.ranges or {})
        for param, rng in ranges.items():
            if param not in shapes:
                raise fail(f"ranges names unknown parameter {param!r}")
            try:
                lo, hi = (float(v) for v in rng)
            except (TypeError, ValueError):
                raise fail(f"ranges[{param!r}] must be (low, high), got {rng!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise fail(f"ranges[{param!r}] must be finite with low < high, got {rng!r}")
            ranges[param] = (lo, hi)
        object.__setattr__(self, "ranges", ranges)

        dims = dict(self.dims or {})
        for dim, rng in dims.items():
            if dim not in symbols:
                raise fail(f"dims names {dim!r}, which no parameter's shape uses")
            if (
                not isinstance(rng, tuple | list)
                or len(rng) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
                or not 1 <= rng[0] <= rng[1]
            ):
                raise fail(f"dims[{dim!r}] must be (low, high) with 1 <= low <= high, got {rng!r}")
            dims[dim] = (rng[0], rng[1])
        object.__setattr__(self, "dims", dims)

        if self.kinks is not None and not callable(self.kinks):
            raise fail("kinks must be callable or None")
        if not self.doc:
            mod = inspect.getmodule(self.forward)
            object.__setattr__(self, "doc", inspect.cleandoc(mod.__doc__) if mod and mod.__doc__ else "")

    # --- derived facts -------------------------------------------------------------------
    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbolic dims in order of first appearance."""
        seen: dict[str, None] = {}
        for shape in (*self.shapes.values(), self.output or ()):
            for d in shape:
                if isinstance(d, str):
                    seen.setdefault(d, None)
        return tuple(seen)

    @property
    def is_layer(self) -> bool:
        return self.output is not None

    def dim_range(self, dim: str) -> tuple[int, int]:
        return self.dims.get(dim, DEFAULT_DIM_RANGE)

    def shape_of(self, param: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return resolve(self.shapes[param], sizes, self.name)

    def output_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return resolve(self.output or (), sizes, self.name)

    def __repr__(self) -> str:
        return f"Derivation({self.name!r}, params={list(self.shapes)})"


def _shape(name: str, what: str, shape: object) -> Shape:
    if isinstance(shape, str | int):
        shape = (shape,)
    if not isinstance(shape, tuple | list):
        raise DerivationError(name, f"{what} must be a tuple of dims, got {shape!r}")
    out: list[Dim] = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, str | int):
            raise DerivationError(name, f"{what}: dim {d!r} must be a name or a positive int")
        if isinstance(d, int) and d < 1:
            raise DerivationError(name, f"{what}: fixed dim {d} must be >= 1")
        if isinstance(d, str) and not d.isidentifier():
            raise DerivationError(name, f"{what}: dim name {d!r} must be an identifier")
        if d == RESERVED_DIM:
            raise DerivationError(name, f"{what}: dim name {d!r} is reserved (replay specs use {RESERVED_DIM}=N); rename the dim")
        out.append(d)
    return tuple(out)


def resolve(shape: Shape, sizes: Mapping[str, int], name: str = "?") -> tuple[int, ...]:
    """Concrete shape of a symbolic one given ``sizes`` for the symbolic dims."""
    try:
        return tuple(d if isinstance(d, int) else int(sizes[d]) for d in shape)
    except KeyError as e:
        raise DerivationError(name, f"no size given for dim {e.args[0]!r}") from None
