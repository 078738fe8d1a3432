"""Hyperparameters, and the binding of one example's hyperparameters, data and seed into a plain derivation.

``hyper={"stride": [1, 2], "pad": [0, 1], "mode": ["train", "test"]}``: each example draws one value per
name from its grid (numbers, strings, bools, None, tuples, lists or dicts of those: values a replay spec
can write and read back). An int hyperparameter may appear in a dim expression
(``"(H+2*pad-K)//stride+1"``); a configuration under which no sizes make every dim >= 1 is never drawn.

``configure(d, values)`` is ``d`` under one configuration: the hyperparameters substituted into its
dims and handed to every call of forward, gradients and kinks. ``bind(config, sizes, data, seed)`` adds
an example's data and seed: the result is a plain derivation (no data, hyper or seed left to draw),
which the witnesses, the verdict and the diagnosis check like any other; ``Derivation.bound`` says what
it was bound to, for the reports and the replay.
"""

from __future__ import annotations

import ast
import copy
import itertools
import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._data import DataSpec, Inputs
from ._dims import DimExpressionError, Expr, hyper_base, hyper_value, parse_dim, size_space, split_key
from ._validate import DEFAULT_DIM_RANGE

__all__ = ["FORWARD_SEED", "Setting", "bind", "check_hyper", "configs", "configure", "literal_text", "substitute"]

#: The argument a seeded forward and its gradients receive the example's seed by.
SEED_ARG = "seed"
#: The key of that seed in a replay spec (``seed=`` there is the point's own seed, from which its values are drawn).
FORWARD_SEED = "forward_seed"
#: Configurations of the hyperparameters that appear in dims, enumerated to find those some sizes allow.
MAX_CONFIGS = 4096


@dataclass(frozen=True)
class Setting:
    """What a bound derivation was bound to: one value per hyperparameter, the data arrays, the seed."""

    hyper: Mapping[str, Any]
    data: Mapping[str, np.ndarray]
    seed: int | None


def literal_text(value: Any) -> str | None:
    """``repr(value)`` if ``ast.literal_eval`` reads it back as an equal value of the same type, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    text = repr(value)
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text if type(back) is type(value) and back == value else None


def check_hyper(hyper: object) -> dict[str, tuple[Any, ...]]:
    """``hyper`` as ``{name: (value, ...)}``; ValueError (one line) saying what is wrong."""
    if not isinstance(hyper, Mapping):
        raise ValueError(f"hyper must be a dict {{name: [value, ...]}}, got {type(hyper).__name__}")
    out = {}
    for name, grid in hyper.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"hyper name {name!r} must be a Python identifier")
        if not isinstance(grid, list | tuple):
            raise ValueError(f"hyper[{name!r}] must be a list of values (a grid), got {grid!r}; write [{grid!r}]")
        if not grid:
            raise ValueError(f"hyper[{name!r}] is an empty grid; give at least one value")
        for v in grid:
            if literal_text(v) is None:
                raise ValueError(f"hyper[{name!r}] value {v!r} cannot be written in a replay spec; use numbers, strings, tuples or dicts of them")
        out[name] = tuple(grid)
    return out


def int_grid(grid: tuple[Any, ...]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in grid)


# --- hyperparameters in dims ------------------------------------------------------------------------


_PREC = {"+": 1, "-": 1, "*": 2, "//": 2}


def _text(e: Expr, values: Mapping[str, int]) -> tuple[str, int]:
    """The expression with the names in ``values`` replaced by their ints, and its precedence."""
    if e.op == "name":
        name = e.args[0]
        return (str(values[name]), 4) if name in values else (name, 4)
    if e.op == "int":
        return str(e.args[0]), 4
    if e.op == "neg":
        inner, p = _text(e.args[0], values)
        return "-" + (inner if p >= 3 else f"({inner})"), 3
    (lt, lp), (rt, rp) = _text(e.args[0], values), _text(e.args[1], values)
    prec = _PREC[e.op]
    left = lt if lp >= prec else f"({lt})"
    right = rt if rp > prec else f"({rt})"
    return f"{left}{e.op}{right}", prec


def substitute(dim: Any, values: Mapping[str, int]) -> Any:
    """``dim`` with the hyperparameters in ``values`` replaced by their ints: a dim naming none of them as
    is, one naming only them an int (possibly < 1: that configuration allows no sizes)."""
    if not isinstance(dim, str):
        return dim
    if dim.isidentifier():
        return values.get(dim, dim)
    e = parse_dim(dim)
    if not any(n in values for n in e.names):
        return dim
    if all(n in values for n in e.names):
        v = e.value(values)
        return 0 if v is None else v
    return _text(e, values)[0]


def _sub_shape(shape: Any, values: Mapping[str, int]) -> Any:
    return None if shape is None else tuple(substitute(d, values) for d in shape)


def _sub_spec(spec: DataSpec, values: Mapping[str, int]) -> DataSpec:
    return replace(spec, shape=_sub_shape(spec.shape, values), low=substitute(spec.low, values), high=substitute(spec.high, values))


def _space_dims(derivation: Any, values: Mapping[str, int]) -> list[Any]:
    """Every dim of the derivation under ``values``, with each integers input's ``high - low``."""
    outputs = getattr(derivation, "outputs", None)
    shapes = [*derivation.shapes.values(), derivation.output or (), *(outputs.shapes if outputs is not None and outputs.shapes else ())]
    dims = [substitute(d, values) for s in shapes for d in s]
    for spec in derivation.data.values():
        dims += [substitute(d, values) for d in spec.shape]
        span = spec.span()
        if span is not None:
            dims.append(substitute(span, values))
    return dims


def config_space(derivation: Any, values: Mapping[str, int], ranges: Mapping[str, tuple[int, int]]):
    """The SizeSpace under ``values`` of the hyperparameters in dims; None where no sizes make every dim >= 1."""
    dims = _space_dims(derivation, values)
    if any(isinstance(d, int) and d < 1 for d in dims):
        return None
    try:
        return size_space(dims, ranges)
    except DimExpressionError:
        return None


def configs(derivation: Any, in_dims: tuple[str, ...], ranges: Mapping[str, tuple[int, int]]) -> list[dict[str, int]]:
    """The configurations of the hyperparameters ``in_dims`` (names, or keys of dicts: ``conv_param['pad']``)
    under which some sizes make every dim >= 1, each ``{dim name: int}``."""
    bases = tuple(dict.fromkeys(hyper_base(n) for n in in_dims))
    combos = itertools.islice(itertools.product(*(derivation.hyper[b] for b in bases)), MAX_CONFIGS)
    out: list[dict[str, int]] = []
    for combo in combos:
        values = dict(zip(bases, combo, strict=True))
        ints = {n: hyper_value(n, values) for n in in_dims}
        if ints not in out and config_space(derivation, ints, ranges) is not None:
            out.append(ints)
    return out


# --- the calls of one configuration / one example ---------------------------------------------------


class UserCall:
    """The user's forward, gradients or kinks with the hyperparameters (copied per call), the data
    (converted to the namespace of the call, copied per call) and the seed of one configuration or example.
    It carries the user function's name, module and code, so that reports locate it and its exceptions are
    told from the harness's (checks/search/usercode.py)."""

    def __init__(
        self, fn: Callable[..., Any], takes_xp: bool, hyper: Mapping[str, Any], inputs: Inputs | None = None, seed: int | None = None
    ) -> None:
        self.fn, self.takes_xp, self.hyper, self.inputs, self.seed = fn, takes_xp, dict(hyper), inputs, seed
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            value = getattr(fn, attr, None)
            if value is not None:
                setattr(self, attr, value)
        self.__wrapped__ = fn
        code = getattr(fn, "__code__", None) or getattr(vars(type(fn)).get("__call__"), "__code__", None)
        if code is not None:
            self.__code__ = code

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        extra = {k: copy.deepcopy(v) for k, v in self.hyper.items()}
        if self.inputs is not None:
            xp = args[0] if self.takes_xp and args else None
            extra.update(_for_namespace(xp, self.inputs.arrays(kwargs), kwargs))
        if self.seed is not None:
            extra[SEED_ARG] = self.seed
        return self.fn(*args, **kwargs, **extra)


def _for_namespace(xp: Any, data: Mapping[str, np.ndarray], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Copies of ``data``: NumPy arrays, or tensors on the parameters' device for a torch forward."""
    if xp is None or "torch" not in getattr(xp, "__name__", ""):
        return {k: np.array(v, copy=True) for k, v in data.items()}
    device = next((v.device for v in kwargs.values() if hasattr(v, "device")), None)
    return {k: xp.asarray(np.array(v, copy=True), device=device) for k, v in data.items()}


_CONFIGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _config_key(values: Mapping[str, Any]) -> str:
    return repr(sorted(values.items()))


def configure(derivation: Any, values: Mapping[str, Any]) -> Any:
    """``derivation`` under one value per hyperparameter (cached): its dims with the int ones substituted,
    every call handed them. Plain (``bound`` set) when it declares no data and no seed."""
    cache = _CONFIGS.setdefault(derivation, {})
    key = _config_key(values)
    if key in cache:
        return cache[key]
    ints = {n: hyper_value(n, values) for n in derivation.hyper_dims}
    c = copy.copy(derivation)
    setattr_ = lambda name, v: object.__setattr__(c, name, v)
    setattr_("shapes", {p: _sub_shape(s, ints) for p, s in derivation.shapes.items()})
    setattr_("output", _sub_shape(derivation.output, ints))
    outputs = getattr(derivation, "outputs", None)
    if outputs is not None and outputs.shapes:
        setattr_("outputs", replace(outputs, shapes=tuple(_sub_shape(s, ints) for s in outputs.shapes)))
    setattr_("data", {n: _sub_spec(s, ints) for n, s in derivation.data.items()})
    setattr_("hyper", {})
    setattr_("hyper_dims", ())
    ranges = {d: derivation.dims.get(d, DEFAULT_DIM_RANGE) for d in derivation.symbols}
    space = config_space(derivation, ints, ranges)
    if space is None:
        raise ValueError(f"no sizes make every dim >= 1 with {', '.join(f'{k}={v!r}' for k, v in ints.items())}")
    setattr_("space", space)
    setattr_("forward", UserCall(derivation.forward, True, values))
    setattr_("gradients", UserCall(derivation.gradients, False, values))
    for role, takes_xp in (("kinks", True), ("hvp", False), ("jvp", False)):
        if getattr(derivation, role) is not None:
            setattr_(role, UserCall(getattr(derivation, role), takes_xp, values))
    if not derivation.data and not derivation.seed:
        setattr_("bound", Setting(dict(values), {}, None))
    cache[key] = c
    return c


def bind(config: Any, sizes: Mapping[str, int], data: Mapping[str, np.ndarray], seed: int | None) -> Any:
    """The plain derivation of one example of ``config`` (a configured derivation): its data at ``sizes``
    (the fixed arrays added here) and its seed handed to every call."""
    if config.bound is not None:
        return config
    arrays = {n: (np.asarray(data[n]) if spec.drawn else np.array(spec.array, copy=True)) for n, spec in config.data.items()}
    inputs = Inputs(config.shapes, config.data, sizes, arrays, seed) if config.data else None
    seed = seed if config.seed else None
    b = copy.copy(config)
    fwd, grads = config.forward, config.gradients
    object.__setattr__(b, "forward", UserCall(fwd.fn, True, fwd.hyper, inputs, seed))
    object.__setattr__(b, "gradients", UserCall(grads.fn, False, grads.hyper, inputs, seed))
    for role, takes_xp in (("kinks", True), ("hvp", False), ("jvp", False)):
        call = getattr(config, role)
        if call is not None:
            object.__setattr__(b, role, UserCall(call.fn, takes_xp, call.hyper, inputs, seed))
    shown = {n: arrays[n] for n, spec in config.data.items() if spec.drawn}
    object.__setattr__(b, "bound", Setting(dict(fwd.hyper), shown, seed))
    return b


# --- the declaration ----------------------------------------------------------------------------------


def check_inputs(d: Any, name: str) -> None:
    """Check ``data=``, ``hyper=`` and ``seed=`` of the derivation ``d`` being built (normalised in place)."""
    from ._torch_function import is_torch_function
    from ._validate import DerivationError, accepts, check_data, check_hyper_names, check_seed

    try:
        hyper = check_hyper({} if d.hyper is None else d.hyper)
    except ValueError as e:
        raise DerivationError(name, str(e)) from None
    roots = list(d.tree.skeletons)  # the parameters as the user's calls take them (a structure by its name)
    params = list(dict.fromkeys([*d.shapes, *roots]))  # no data or hyperparameter may take a leaf's name or a structure's
    check_hyper_names(name, hyper, params)
    object.__setattr__(d, "hyper", hyper)
    object.__setattr__(d, "data", check_data(name, d.data, params, list(hyper)))
    object.__setattr__(d, "seed", check_seed(name, d.seed))
    if (d.data or hyper or d.seed) and is_torch_function(d.gradients):
        raise DerivationError(
            name, "a torch.autograd.Function's apply takes the parameters only; with data=, hyper= or seed= write gradients(...) instead"
        )
    _check_bounds(d, name)
    if d.kinks is not None and callable(d.kinks):
        missing = accepts(d.kinks, [*roots, *d.input_names])
        if missing:
            raise DerivationError(
                name, f"kinks cannot take the argument(s) {', '.join(missing)}; kinks receive the data, hyperparameters and seed too"
            )


def _check_bounds(d: Any, name: str) -> None:
    """An integers bound names only dims some shape declares, or int hyperparameters."""
    from ._validate import DerivationError, dim_names

    declared = {n for s in d.shapes.values() for n in dim_names(s)} | set(d.hyper)
    declared |= {n for spec in d.data.values() for n in dim_names(spec.shape)}
    for key, spec in d.data.items():
        unknown = [n for n in dim_names(tuple(b for b in (spec.low, spec.high) if spec.kind == "integers")) if n not in declared]
        if unknown:
            raise DerivationError(name, f"data[{key!r}]: a bound names dim {unknown[0]!r}, which no shape declares (nor a hyperparameter)")


def dims_named(d: Any, every: list) -> set[str]:
    """The names the derivation's dims use: its shapes and output (``every``), the data's shapes and bounds."""
    from ._validate import dim_names

    out = {n for s in every for n in dim_names(s)}
    for spec in d.data.values():
        out |= set(spec.names())
    return out


def hyper_in_dims(d: Any, name: str, named: set[str]) -> tuple[str, ...]:
    """The names in dims that stand for hyperparameters: each one named itself, then the keys of it named
    (``conv_param['pad']``), in the order of ``hyper=``. DerivationError for a key of anything else."""
    from ._validate import DerivationError

    stray = sorted(n for n in named if split_key(n) is not None and hyper_base(n) not in d.hyper)
    if stray:
        raise DerivationError(name, f"dim {stray[0]} takes a key of {hyper_base(stray[0])!r}, which is not a hyperparameter;"
                                      " only a key of a dict in hyper= may be written so")
    keyed = lambda h: sorted(n for n in named if split_key(n) is not None and hyper_base(n) == h)
    return tuple(n for h in d.hyper for n in ([h] if h in named else []) + keyed(h))


def _key_problem(dim: str, grid: tuple[Any, ...]) -> str | None:
    """Why the hyperparameter values ``grid`` cannot give the int ``dim`` stands for (a name, or a key of a dict)."""
    keyed = split_key(dim)
    if keyed is None:
        return None if int_grid(grid) else f"hyperparameter {dim!r} appears in a dim, so its values must be ints, got {list(grid)!r}"
    base, key = keyed
    for v in grid:
        if not isinstance(v, Mapping):
            return f"dim {dim} takes key {key!r} of hyperparameter {base!r}, whose value {v!r} is not a dict"
        if key not in v:
            return f"dim {dim}: hyperparameter {base!r} has no key {key!r} in its value {v!r} (keys: {', '.join(map(repr, v))})"
        if not int_grid((v[key],)):
            return f"dim {dim}: {base}[{key!r}] is {v[key]!r} in {v!r}; a key used in a dim must hold an int"
    return None


def space_of(d: Any, name: str, every: list, dims: Mapping[str, tuple[int, int]]) -> Any:
    """The derivation's SizeSpace, the data's dims and the integers' ``high - low`` included; with int
    hyperparameters in dims, the configurations some sizes allow are kept on ``d.hyper_configs``."""
    from ._validate import DerivationError, check_space

    named = dims_named(d, every)
    in_dims = hyper_in_dims(d, name, named)
    for h in in_dims:
        problem = _key_problem(h, d.hyper[hyper_base(h)])
        if problem:
            raise DerivationError(name, problem)
    object.__setattr__(d, "hyper_dims", in_dims)
    extra = [x for spec in d.data.values() for x in spec.shape] + [s for spec in d.data.values() if (s := spec.span()) is not None]
    if not in_dims:
        return check_space(name, [*every, tuple(extra)], dims, d.symbols)
    ranges = {s: dims.get(s, DEFAULT_DIM_RANGE) for s in d.symbols}
    grids = {h: [hyper_value(h, {hyper_base(h): v}) for v in d.hyper[hyper_base(h)]] for h in in_dims}
    boxes = {h: (min(g), max(g)) for h, g in grids.items()}
    try:
        space = size_space([x for s in every for x in s] + extra, ranges, boxes)
    except DimExpressionError as e:
        raise DerivationError(name, str(e)) from None
    valid = configs(d, in_dims, ranges)
    if not valid:
        raise DerivationError(name, f"no values of {', '.join(in_dims)} in their grids let some sizes make every dim >= 1")
    object.__setattr__(d, "hyper_configs", tuple(valid))
    return space
