"""The checks a Derivation's fields pass when it is built: each returns the field normalised or raises
DerivationError naming the derivation and the problem (see ``analytic/_contract.py`` for the contract)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._data import DataError, check_spec
from ._dims import DimExpressionError, SizeSpace, hyper_base, parse_dim, size_space

Dim = str | int
Shape = tuple[Dim, ...]

#: Default inclusive range of sizes drawn for every symbolic dimension.
DEFAULT_DIM_RANGE = (1, 8)
#: The one name a dim may not have: replay specs (``N=2,seed=7``) use it for the point's seed.
RESERVED_DIM = "seed"
#: Argument names a parameter may not take: the forward's namespace and the layer's upstream gradient.
RESERVED_ARGS = ("xp", "grad_output")
#: Names no data input or hyperparameter may take: those, the seed argument, and the replay spec's key of it.
RESERVED_INPUTS = (*RESERVED_ARGS, "seed", "forward_seed")


class DerivationError(ValueError):
    """A derivation is malformed; the message names the derivation and the problem."""

    def __init__(self, name: object, problem: str) -> None:
        self.derivation = name
        self.problem = problem
        super().__init__(f"derivation {name!r}: {problem}")


def accepts(fn: Callable[..., Any], names: Sequence[str]) -> list[str]:
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


def names_argument(fn: Callable[..., Any], arg: str) -> bool:
    """Whether ``fn``'s signature names ``arg`` as a keyword-able parameter (a ``**kwargs`` does not count)."""
    try:
        p = inspect.signature(fn).parameters.get(arg)
    except (TypeError, ValueError):
        return False
    return p is not None and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DerivationError(name, "name must be a non-empty string")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        # A lone surrogate cannot be written to a UTF-8 report nor typed in a command line.
        raise DerivationError(name, "name holds a lone surrogate character; use text that UTF-8 can encode")
    return str.__str__(name)  # a plain str: a StrEnum member of the user's module would carry its class wherever the name goes


def _dim(name: str, what: str, d: object) -> Dim:
    if isinstance(d, bool) or not isinstance(d, str | int):
        raise DerivationError(name, f"{what}: dim {d!r} must be a name or a positive int (or an expression of names such as 'H-2')")
    if isinstance(d, int):
        if d < 1:
            raise DerivationError(name, f"{what}: fixed dim {d} must be >= 1")
        return d
    text = d.strip()
    if not text.isidentifier():
        try:
            expr = parse_dim(text)
        except DimExpressionError as e:
            raise DerivationError(name, f"{what}: dim {d!r} {e}") from None
        if expr.op == "name":  # "(H)" is H
            text = expr.args[0]
        elif not expr.names:
            raise DerivationError(name, f"{what}: dim {d!r} names no dim; write a fixed size as an int")
        else:
            if RESERVED_DIM in expr.names:
                raise DerivationError(name, f"{what}: dim {d!r} uses the reserved name {RESERVED_DIM!r}; rename the dim")
            return text
    if text == RESERVED_DIM:
        raise DerivationError(name, f"{what}: dim name {text!r} is reserved (replay specs use {RESERVED_DIM}=N); rename the dim")
    return text


def check_shape(name: str, what: str, shape: object) -> Shape:
    if isinstance(shape, str | int):
        shape = (shape,)
    if not isinstance(shape, tuple | list):
        raise DerivationError(name, f"{what} must be a tuple of dims, got {shape!r}")
    return tuple(_dim(name, what, d) for d in shape)


def dim_names(shape: Shape) -> list[str]:
    """The free names a shape uses: its named dims and the names inside its expressions."""
    out: list[str] = []
    for d in shape:
        if isinstance(d, str):
            out += [d] if d.isidentifier() else list(parse_dim(d).names)
    return out


def check_output(name: str, output: object, symbols: set[str]) -> Shape | None:
    if output is None:
        return None
    out = check_shape(name, "output", output)
    unknown = [d for d in dim_names(out) if hyper_base(d) not in symbols]  # symbols: the hyperparameters too
    if unknown:
        raise DerivationError(name, f"output uses dim {unknown[0]!r}, which no parameter's shape declares")
    return out


def check_signatures(name: str, forward: object, gradients: object, params: list[str], layer: bool, inputs: Sequence[str] = ()) -> None:
    """Both functions callable and taking the parameters, then ``inputs`` (the data, the hyperparameters,
    ``seed``), by keyword."""
    for role, fn in (("forward", forward), ("gradients", gradients)):
        if not callable(fn):
            raise DerivationError(name, f"{role} must be callable, got {type(fn).__name__}")
    params = [*params, *inputs]
    missing = accepts(forward, ["xp", *params])
    if missing:
        raise DerivationError(name, f"forward cannot take the argument(s) {', '.join(missing)}; write forward(xp, {', '.join(params)})")
    grad_args = params + (["grad_output"] if layer else [])
    missing = accepts(gradients, grad_args)
    if missing:
        raise DerivationError(name, f"gradients cannot take the argument(s) {', '.join(missing)}; write gradients({', '.join(grad_args)})")


def check_checked(name: str, check: object, params: list[str]) -> tuple[str, ...]:
    if isinstance(check, str):
        raise DerivationError(name, "check must be a list of parameter names, not a string")
    checked = list(params if check is None else check)
    unknown = [p for p in checked if p not in params]
    if unknown:
        raise DerivationError(name, f"check names unknown parameter(s) {', '.join(map(repr, unknown))}; parameters are {', '.join(params)}")
    if not checked:
        raise DerivationError(name, "check is empty: nothing would be checked")
    return tuple(dict.fromkeys(checked))


def check_ranges(name: str, ranges: Mapping[str, Any] | None, params: list[str], data: Sequence[str] = ()) -> dict[str, tuple[float, float]]:
    out = dict(ranges or {})
    for param, rng in out.items():
        hint = f"declare it as data= instead, e.g. data={{{param!r}: integers(0, 2, shape=...)}}"
        if isinstance(rng, set | frozenset) or (isinstance(rng, tuple | list) and len(rng) == 3 and rng[2] in (int, bool)):
            raise DerivationError(name, f"ranges[{param!r}] = {rng!r} is not a (low, high) range of floats; for integer or categorical inputs {hint}")
        if param in data:
            raise DerivationError(name, f"ranges names {param!r}, which is a data input (drawn as data= declares it, never differentiated)")
        if param not in params:
            raise DerivationError(name, f"ranges names unknown parameter {param!r}")
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise DerivationError(name, f"ranges[{param!r}] must be (low, high), got {rng!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise DerivationError(name, f"ranges[{param!r}] must be finite with low < high, got {rng!r}")
        out[param] = (lo, hi)
    return out


def check_dims(name: str, dims: Mapping[str, Any] | None, symbols: Sequence[str]) -> dict[str, tuple[int, int]]:
    out = dict(dims or {})
    for dim, rng in out.items():
        if dim not in symbols:
            raise DerivationError(name, f"dims names {dim!r}, which no parameter's shape uses")
        if (
            not isinstance(rng, tuple | list)
            or len(rng) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
            or not 1 <= rng[0] <= rng[1]
        ):
            raise DerivationError(name, f"dims[{dim!r}] must be (low, high) with 1 <= low <= high, got {rng!r}")
        out[dim] = (rng[0], rng[1])
    return out


def check_space(name: str, shapes: Sequence[Shape], dims: Mapping[str, tuple[int, int]], symbols: Sequence[str]) -> SizeSpace:
    """The sizes the search may draw; refused when no sizes in the ranges make every expression dim >= 1."""
    ranges = {d: dims.get(d, DEFAULT_DIM_RANGE) for d in symbols}
    try:
        return size_space([d for s in shapes for d in s], ranges)
    except DimExpressionError as e:
        raise DerivationError(name, str(e)) from None


def check_data(name: str, data: object, params: Sequence[str], hyper: Sequence[str]) -> dict[str, Any]:
    """``data`` as ``{name: DataSpec}`` with shapes and bounds checked; the names clash with no parameter,
    hyperparameter or reserved argument."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        kinds = "integers(...) | booleans(...) | one_hot(...) | fixed(...)"
        raise DerivationError(name, f"data must be a dict {{name: {kinds}}}, got {type(data).__name__}")
    out = {}
    for key, spec in data.items():
        if not isinstance(key, str) or not key.isidentifier() or key in RESERVED_INPUTS:
            raise DerivationError(name, f"data name {key!r} must be a Python identifier other than {', '.join(RESERVED_INPUTS)}")
        if key in params:
            raise DerivationError(name, f"data name {key!r} is also a parameter in shapes; a data input is never differentiated, so name it once")
        if key in hyper:
            raise DerivationError(name, f"data name {key!r} is also a hyperparameter; name it once")
        try:
            out[key] = check_spec(f"data[{key!r}]", spec, lambda what, shape: check_shape(name, what, shape))
        except DataError as e:
            raise DerivationError(name, str(e)) from None
    return out


def check_hyper_names(name: str, hyper: Mapping[str, Any], params: Sequence[str]) -> None:
    for key in hyper:
        if key in params:
            raise DerivationError(name, f"hyperparameter {key!r} is also a parameter in shapes; name it once")
        if key in RESERVED_INPUTS:
            raise DerivationError(name, f"hyperparameter name {key!r} is reserved ({', '.join(RESERVED_INPUTS)})")


def check_seed(name: str, seed: object) -> bool:
    if not isinstance(seed, bool):
        raise DerivationError(name, f"seed must be True (forward and gradients receive seed=<int>) or False, got {seed!r}")
    return seed


def check_higher(d: Any, name: str) -> None:
    """``hvp=`` and ``jvp=`` of the derivation ``d`` being built: callables taking the direction ``v`` and the
    parameters, data and hyperparameters by keyword as ``gradients`` takes them (``hvp`` of a layer ``grad_output``
    too), on a derivation whose parameters are plain arrays handed to the user's code as drawn
    (checks/verdict/second_order.py moves them along ``v``; the data and hyperparameters stay as the point's)."""
    given = {role: fn for role, fn in (("hvp", d.hvp), ("jvp", d.jvp)) if fn is not None}
    for role, fn in given.items():
        if not callable(fn):
            raise DerivationError(name, f"{role} must be callable or None, got {type(fn).__name__}")
        args = [*d.shapes, *(["grad_output"] if role == "hvp" and d.layer else []), *d.data, *d.hyper]
        missing = accepts(fn, args)
        if missing:
            raise DerivationError(name, f"{role} cannot take the argument(s) {', '.join(missing)}; write {role}(v, {', '.join(args)})")
        why = _higher_refused(d)
        if why:
            raise DerivationError(name, f"{role}= is checked for derivations of plain array parameters; this one has {why}")


def _higher_refused(d: Any) -> str | None:
    if d.tree.nested:
        return "dict, list or tuple parameters"
    for what, has in (("seed=True", d.seed), ("draws=", d.draws), ("several outputs", d.outputs)):
        if has:
            return what
    return None
