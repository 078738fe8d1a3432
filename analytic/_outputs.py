"""Forwards with several outputs, and a forward given once per array namespace.

Several outputs. A forward may return a tuple or a dict of arrays (an LSTM step's ``(next_h, next_c)``).
The witnesses see one flat output: the parts flattened (C order) and concatenated, in the order of the
tuple or of ``output=``'s dict. The upstream gradient G of that flat output is split back into the same
structure, each part reshaped to its output's shape, and the hand-derived gradients receive
``grad_output=(G_h, G_c)`` (or a dict): f = Σ_k ⟨G_k, out_k⟩. ``output=`` may declare each part's shape
(a tuple or dict of shapes: the flat output's size is then the expression Σ_k Π dims_k, searched and kept
>= 1 like any other); without it the structure and the shapes are read off the forward.

One namespace per forward. ``torch_forward=`` (or ``numpy_forward=``) gives the forward for the
namespace the main one cannot run in; the derivation's forward then calls whichever fits the namespace
it is handed, so both references run the user's own code.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._dims import dim_value
from ._validate import DerivationError, Shape, check_shape

__all__ = [
    "NAMESPACES",
    "Outputs",
    "by_namespace",
    "check_namespaces",
    "flat_grad_output",
    "output_parts",
    "part_names",
    "standing_for",
    "wrap_forward",
]

#: The array namespaces a forward can be run in, by the names ``namespaces=`` takes.
NAMESPACES = ("numpy", "torch")
#: Structures read off the forward remembered per process (keyed by the arguments' shapes); beyond it the
#: memory is cleared, and the next call of the gradients runs the forward once more to read it again.
STRUCTURES_KEPT = 256


@dataclass(frozen=True)
class Outputs:
    """The structure of a forward's several outputs: a tuple (``names`` "0", "1", ...) or a dict, with each
    part's declared shape (``shapes`` None: read off the forward)."""

    kind: str  # "tuple" or "dict"
    names: tuple[str, ...]
    shapes: tuple[Shape, ...] | None

    def label(self, i: int) -> str:
        return f"output {self.names[i]}" if self.kind == "tuple" else f"output {self.names[i]!r}"


def _is_shape_list(output: object) -> bool:
    return isinstance(output, tuple | list) and len(output) > 0 and all(isinstance(s, tuple | list) for s in output)


def output_parts(name: str, output: object) -> tuple[Outputs | None, Shape | object | None]:
    """``output=`` read as several outputs: (their structure, the flat output's one-dim shape), or (None,
    ``output`` unchanged) when it declares one array (or nothing)."""
    if isinstance(output, Mapping):
        if not output:
            raise DerivationError(name, "output= is an empty dict; give each output's shape, or leave output= out")
        keys = list(output)
        if not all(isinstance(k, str) and k for k in keys):
            raise DerivationError(name, f"output= dict keys must be non-empty strings (the outputs' names), got {keys!r}")
        parts = Outputs("dict", tuple(keys), tuple(check_shape(name, f"output {k!r}", output[k]) for k in keys))
    elif _is_shape_list(output):
        parts = Outputs("tuple", tuple(str(i) for i in range(len(output))), tuple(check_shape(name, f"output {i}", s) for i, s in enumerate(output)))
    else:
        return None, output
    return parts, (_flat_size(parts.shapes),)


def _flat_size(shapes: Sequence[Shape]) -> str | int:
    """Σ_k Π dims_k as a dim: an int when every dim is fixed, else an expression of the names."""
    fixed, terms = 0, []
    for shape in shapes:
        n, named = 1, []
        for d in shape:
            if isinstance(d, int):
                n *= d
            else:
                named.append(d if d.isidentifier() else f"({d})")
        if named:
            terms.append("*".join(([str(n)] if n != 1 else []) + named))
        else:
            fixed += n
    if not terms:
        return fixed
    return "+".join(terms + ([str(fixed)] if fixed else []))


def part_names(derivation: Any) -> tuple[str, ...]:
    """The names of a derivation's declared outputs ("0", "1", ... or the dict's keys); () for one output."""
    outputs = getattr(derivation, "outputs", None)
    return () if outputs is None else outputs.names


def check_namespaces(name: str, namespaces: object, extra: Mapping[str, object]) -> tuple[str, ...] | None:
    """``namespaces=`` as a tuple of known names (None: found out by trying); with a forward given for the
    other namespace too (``extra``), both."""
    given = [ns for ns, fn in extra.items() if fn is not None]
    for ns in given:
        if not callable(extra[ns]):
            raise DerivationError(name, f"{ns}_forward must be callable, got {type(extra[ns]).__name__}")
    if len(given) > 1:
        raise DerivationError(name, "give torch_forward= or numpy_forward=, not both: forward= is the other one")
    if namespaces is None:
        return NAMESPACES if given else None
    if isinstance(namespaces, str):
        namespaces = (namespaces,)
    out = tuple(dict.fromkeys(namespaces)) if isinstance(namespaces, tuple | list) else ()
    if not out or any(ns not in NAMESPACES for ns in out):
        raise DerivationError(name, f"namespaces= must name some of {', '.join(map(repr, NAMESPACES))}, got {namespaces!r}")
    if given:
        return NAMESPACES
    return out


def _is_torch_namespace(xp: Any) -> bool:
    return "torch" in getattr(xp, "__name__", "")


def standing_for(wrapper: Callable[..., Any], inner: Callable[..., Any], *, own_signature: bool = False) -> Callable[..., Any]:
    """``wrapper`` taking the name, module and code object of ``inner``: reports locate the user's function
    and tell its exceptions from the harness's by that code (checks/search/usercode.py). Its signature is
    ``inner``'s, or (``own_signature``) the wrapper's own."""
    out = _Wrapped(wrapper, inner)
    if own_signature:
        out.__signature__ = inspect.signature(wrapper)
    return out


class _Wrapped:
    """A callable standing for a user's function: it runs ``call`` and carries ``inner``'s identity."""

    def __init__(self, call: Callable[..., Any], inner: Callable[..., Any]) -> None:
        functools.update_wrapper(self, inner)  # __name__, __module__, __doc__, __wrapped__ (and inner's __dict__)
        self._call = call  # after: a wrapper of a wrapper must not take its inner one's call with its __dict__
        code = getattr(inner, "__code__", None) or getattr(vars(type(inner)).get("__call__"), "__code__", None)
        if code is not None:
            self.__code__ = code

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)


def _shape_of(x: Any) -> tuple[int, ...] | None:
    shape = getattr(x, "shape", None)
    return None if shape is None else tuple(int(n) for n in shape)


def _key(kwargs: Mapping[str, Any]) -> tuple:
    """What the structure of the output may depend on: the arguments' shapes, and the other values' text."""
    return tuple((k, _shape_of(v) if _shape_of(v) is not None else repr(v)) for k, v in sorted(kwargs.items()))


class _Structures:
    """The output structure the forward returned, per arguments' shapes: read where the forward runs, used
    where the gradients split the flat upstream gradient (always at a point where the forward ran first)."""

    def __init__(self) -> None:
        self._seen: dict[tuple, tuple[str, tuple[str, ...], tuple[tuple[int, ...], ...]] | None] = {}

    def remember(self, kwargs: Mapping[str, Any], found: Any) -> None:
        if len(self._seen) >= STRUCTURES_KEPT:
            self._seen.clear()
        self._seen[_key(kwargs)] = found

    def get(self, kwargs: Mapping[str, Any]) -> Any:
        return self._seen.get(_key(kwargs), KeyError)


def _parts_of(out: Any) -> tuple[str, tuple[str, ...], list[Any]] | None:
    """(kind, names, arrays) of a tuple or dict output; None for one array."""
    if isinstance(out, Mapping):
        return "dict", tuple(out), list(out.values())
    if isinstance(out, tuple | list) and out and all(hasattr(p, "shape") or isinstance(p, int | float) for p in out):
        return "tuple", tuple(str(i) for i in range(len(out))), list(out)
    return None


def _sizes(derivation: Any, kwargs: Mapping[str, Any]) -> dict[str, int]:
    """The named dims read off the arrays handed to the forward, and the int-valued other arguments (a
    hyperparameter an output's expression may name)."""
    sizes: dict[str, int] = {k: v for k, v in kwargs.items() if isinstance(v, int) and not isinstance(v, bool)}
    for param, spec in derivation.shapes.items():
        shape = _shape_of(kwargs.get(param))
        if shape is None or len(shape) != len(spec):
            continue
        for d, n in zip(spec, shape, strict=True):
            if isinstance(d, str) and d.isidentifier():
                sizes.setdefault(d, n)
    return sizes


def _declared(derivation: Any, outputs: Outputs, kwargs: Mapping[str, Any]) -> list[tuple[int, ...] | None]:
    """Each part's declared shape at the arguments' sizes (None where a dim cannot be told from them)."""
    sizes = _sizes(derivation, kwargs)
    out = []
    for shape in outputs.shapes or ():
        try:
            dims = [dim_value(d, sizes) for d in shape]
        except KeyError:
            out.append(None)
            continue
        out.append(None if any(n is None for n in dims) else tuple(int(n) for n in dims))
    return out


def _flatten(xp: Any, parts: Sequence[Any]) -> Any:
    flat = [xp.reshape(p if hasattr(p, "shape") else xp.asarray(p), (-1,)) for p in parts]
    return flat[0] if len(flat) == 1 else xp.concat(flat)


def _check_structure(outputs: Outputs, kind: str, names: tuple[str, ...]) -> None:
    """ValueError unless the forward returned the declared structure (a tuple of as many, a dict of the keys)."""
    if kind != outputs.kind or (kind == "dict" and set(names) != set(outputs.names)) or len(names) != len(outputs.names):
        what = f"a dict with keys {', '.join(map(repr, names))}" if kind == "dict" else f"a tuple of {len(names)}"
        want = f"a dict with keys {', '.join(map(repr, outputs.names))}" if outputs.kind == "dict" else f"a tuple of {len(outputs.names)}"
        raise ValueError(f"forward returned {what}; output= declares {want}")


def _check_shapes(derivation: Any, outputs: Outputs, parts: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """ValueError unless each part (in the declared order) has its declared shape where the sizes tell it."""
    for i, expected in enumerate(_declared(derivation, outputs, kwargs)):
        got = _shape_of(parts[i]) or ()
        if expected is not None and got != expected:
            raise ValueError(f"forward's {outputs.label(i)} has shape {got}, expected {expected} (output {outputs.shapes[i]!r})")


def wrap_outputs(derivation: Any, forward: Callable[..., Any], gradients: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(forward, gradients) as the witnesses call them: one flat output; the gradients handed G in the
    forward's structure. One array output passes through unchanged."""
    outputs: Outputs | None = derivation.outputs
    seen = _Structures()

    def flat_forward(xp: Any, **kwargs: Any) -> Any:
        out = forward(xp, **kwargs)
        found = _parts_of(out)
        if found is None:
            if isinstance(out, tuple | list):
                raise ValueError(
                    f"forward returned a {type(out).__name__} of {len(out)} whose items are not all arrays; for the (out, cache)"
                    " convention use Derivation.from_forward_backward"
                )
            if outputs is not None:
                raise ValueError(f"forward returned {type(out).__name__}; output= declares {len(outputs.names)} outputs (a {outputs.kind})")
            seen.remember(kwargs, None)
            return out
        kind, names, parts = found
        if outputs is not None:
            _check_structure(outputs, kind, names)
            parts = [parts[names.index(n)] for n in outputs.names] if kind == "dict" else parts
            names = outputs.names
            _check_shapes(derivation, outputs, parts, kwargs)
        seen.remember(kwargs, (kind, names, tuple(_shape_of(p) or () for p in parts)))
        return _flatten(xp, parts)

    def structured_gradients(**kwargs: Any) -> Any:
        g = kwargs.pop("grad_output")
        found = seen.get(kwargs)
        if found is KeyError:  # the forward has not run at these sizes in this process: read it off once
            _run_once(flat_forward, kwargs)
            found = seen.get(kwargs)
        if found is None or found is KeyError:
            return gradients(grad_output=g, **kwargs)
        kind, names, shapes = found
        split, start = [], 0
        flat = g.reshape(-1)
        for shape in shapes:
            n = 1
            for s in shape:
                n *= s
            split.append(flat[start : start + n].reshape(shape))
            start += n
        structured = dict(zip(names, split, strict=True)) if kind == "dict" else tuple(split)
        return gradients(grad_output=structured, **kwargs)

    return standing_for(flat_forward, forward), standing_for(structured_gradients, gradients)


def _run_once(flat_forward: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Run the forward on copies of ``kwargs`` to learn its output structure: under NumPy, else under torch."""
    import array_api_compat.numpy as np_xp
    import numpy as np

    arrays = {k: np.array(v, copy=True) if hasattr(v, "shape") else v for k, v in kwargs.items()}
    try:
        flat_forward(np_xp, **arrays)
    except Exception:  # user code: a forward that runs only under torch
        import array_api_compat.torch as torch_xp
        import torch

        with torch.no_grad():
            flat_forward(torch_xp, **{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()})


def by_namespace(forward: Callable[..., Any], other: Callable[..., Any], other_namespace: str) -> Callable[..., Any]:
    """One forward that calls ``other`` when handed ``other_namespace`` ("torch" or "numpy") and ``forward``
    otherwise."""

    def either(xp: Any, **kwargs: Any) -> Any:
        torch_given = _is_torch_namespace(xp)
        use_other = torch_given if other_namespace == "torch" else not torch_given
        return (other if use_other else forward)(xp, **kwargs)

    return standing_for(either, forward)


Fn = Callable[..., Any]


def wrap_forward(derivation: Any, torch_forward: Fn | None, numpy_forward: Fn | None) -> tuple[Fn, Fn]:
    """The derivation's (forward, gradients) as the witnesses call them: by namespace when a second forward
    is given, flattened when a layer's forward may return several outputs."""
    forward, gradients = derivation.forward, derivation.gradients
    if torch_forward is not None:
        forward = by_namespace(forward, torch_forward, "torch")
    elif numpy_forward is not None:
        forward = by_namespace(forward, numpy_forward, "numpy")
    if derivation.outputs is not None or (derivation.layer and derivation.output is None):
        forward, gradients = wrap_outputs(derivation, forward, gradients)
    return forward, gradients


def flat_grad_output(derivation: Any, at: Mapping[str, Any]) -> dict[str, Any]:
    """``at`` (the arrays of ``check(d, at=...)``) with a ``grad_output`` given in the forward's structure (a
    tuple, or a dict for declared outputs) flattened as the witnesses see it; ValueError naming the mismatch."""
    out = dict(at)
    g = out.get("grad_output")
    structured = isinstance(g, Mapping) or (isinstance(g, tuple | list) and len(g) > 0 and all(hasattr(p, "shape") for p in g))
    if not structured:
        return out
    outputs: Outputs | None = getattr(derivation, "outputs", None)
    if isinstance(g, Mapping):
        if outputs is None or outputs.kind != "dict":
            raise ValueError("at: grad_output is a dict, but output= declares no dict of outputs (declare it to give one)")
        if set(g) != set(outputs.names):
            raise ValueError(f"at: grad_output has keys {', '.join(map(repr, g))}; output= declares {', '.join(map(repr, outputs.names))}")
        parts = [g[n] for n in outputs.names]
    else:
        parts = list(g)
        if outputs is not None and len(parts) != len(outputs.names):
            raise ValueError(f"at: grad_output has {len(parts)} parts; output= declares {len(outputs.names)} outputs")
    import numpy as np  # the caller's arrays, flattened

    arrays = [np.asarray(p, dtype=np.float64) for p in parts]
    if outputs is not None:
        for i, expected in enumerate(_declared(derivation, outputs, at)):
            if expected is not None and arrays[i].shape != expected:
                raise ValueError(f"at: grad_output's part for {outputs.label(i)} has shape {arrays[i].shape}, expected {expected}")
    out["grad_output"] = np.concatenate([a.reshape(-1) for a in arrays])
    return out
