"""Derivations from code written in the usual conventions, pasted unchanged.

* ``Derivation.from_forward_backward(name, forward, backward, shapes=...)`` — the course convention
  ``forward(x, w, b, conv_param) -> (out, cache)``, ``backward(dout, cache) -> (dx, dw, db)``; with
  ``outputs=2``, ``forward(...) -> (next_h, next_c, cache)`` and ``backward(dnext_h, dnext_c, cache)``.
* ``Derivation.from_loss(name, loss, shapes=...)`` — ``loss(x, y) -> (loss, dx)`` (one gradient per
  parameter of ``shapes``, in its order, after the loss); or a loss class (``forward(x, t) -> loss``,
  ``backward(dout=1) -> dx``), which is ``from_layer(..., loss=True)``.
* ``Derivation.from_layer(name, layer, shapes=...)`` — a class (or an instance) with ``forward`` and
  ``backward`` methods and its state on the object: a fresh instance for every call.

The user's forward takes its arguments by name from ``shapes``, ``data`` and ``hyper`` (matched to its
signature, so their order does not matter); a backward gets the data and hyperparameters it takes by
name (``pool_backward(dA, cache, mode="max")``); the tuple ``backward`` returns is read in the order of
``shapes``. Such code calls NumPy itself (``np.pad``, in-place writes): the derivation runs in NumPy
only (``namespaces=("numpy",)``) and is checked against finite differences alone, unless
``torch_forward=`` gives a forward for autograd. Misuse — a forward that returns no cache, a backward
that returns another number of arrays — is one line naming the function and what it returned.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._outputs import standing_for
from ._tree import GRADIENT_NAMES
from ._validate import DerivationError

__all__ = ["from_forward_backward", "from_layer", "from_loss"]


class AdapterError(ValueError):
    """User code given to an adapter returned something other than its convention says."""


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    shape = getattr(value, "shape", None)
    return f"an array of shape {tuple(shape)}" if shape is not None else type(value).__name__


def _title(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _arguments(name: str, fn: Callable[..., Any], role: str) -> tuple[list[str], bool]:
    """(the names ``fn`` takes, whether it takes ``**kwargs``), refusing ``*args``-only signatures we cannot match."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise DerivationError(name, f"{role} has no signature to match its arguments by name") from None
    names, var_kw = [], False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.append(p.name)
    return names, var_kw


def _required(fn: Callable[..., Any]) -> list[str]:
    sig = inspect.signature(fn)
    kinds = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return [p.name for p in sig.parameters.values() if p.default is inspect.Parameter.empty and p.kind not in kinds]


def _bind(name: str, fn: Callable[..., Any], role: str, declared: Sequence[str], *, all_declared: bool) -> list[str]:
    """The declared names ``fn`` takes (in ``declared``'s order); DerivationError for a required argument
    nothing declares, or (``all_declared``) a declared name ``fn`` does not take."""
    taken, var_kw = _arguments(name, fn, role)
    missing = [a for a in _required(fn) if a not in declared]
    if missing:
        raise DerivationError(
            name, f"{role}({', '.join(taken)}) takes {', '.join(map(repr, missing))}, which shapes, data and hyper do not declare"
        )
    if var_kw:
        return list(declared)
    extra = [d for d in declared if d not in taken]
    if all_declared and extra:
        raise DerivationError(name, f"{role}({', '.join(taken)}) does not take {', '.join(map(repr, extra))}, which are declared")
    return [d for d in declared if d in taken]


def _by_name(fn: Callable[..., Any], skip: int, declared: Sequence[str]) -> list[str]:
    """The declared names (data, hyperparameters) ``fn`` takes by name after its first ``skip`` positional
    arguments (the upstream gradients and the cache): ``pool_backward(dA, cache, mode="max")`` gets ``mode``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ps = list(sig.parameters.values())
    rest = [p for p in ps[skip:] if p.kind in (*positional[1:], inspect.Parameter.KEYWORD_ONLY)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps):
        return list(declared)
    return [d for d in declared if d in {p.name for p in rest}]


def _declared(shapes: Mapping[str, Any], data: Mapping[str, Any] | None, hyper: Mapping[str, Any] | None) -> list[str]:
    return [*shapes, *(data or {}), *(hyper or {})]


def _pick(kwargs: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {n: kwargs[n] for n in names if n in kwargs}


def _inputs(data: Mapping[str, Any] | None, hyper: Mapping[str, Any] | None, options: dict[str, Any]) -> dict[str, Any]:
    """The Derivation keywords: data= and hyper= only when given; NumPy only unless the caller says otherwise."""
    out = dict(options)
    if data:
        out["data"] = data
    if hyper:
        out["hyper"] = hyper
    if out.get("torch_forward") is None:
        out.setdefault("namespaces", ("numpy",))
    return out


def _split(fn_name: str, returned: Any, outputs: int, what: str) -> tuple[list[Any], Any]:
    """(the outputs, the cache) of a forward's return value ``(out..., cache)``; AdapterError otherwise."""
    if not isinstance(returned, tuple | list) or len(returned) != outputs + 1:
        raise AdapterError(f"{fn_name} returned {_describe(returned)}; expected {what}")
    return list(returned[:outputs]), returned[outputs]


def _gradient_tuple(fn_name: str, returned: Any, params: Sequence[str]) -> dict[str, Any]:
    """``{param: array}`` from the tuple a backward returned in the order of ``params``, or the dict it returned as it
    is (its keys read by the naming rule, analytic/_tree.py); AdapterError otherwise."""
    if isinstance(returned, Mapping):
        return dict(returned)
    if len(params) == 1 and not isinstance(returned, tuple | list):
        returned = (returned,)
    if not isinstance(returned, tuple | list) or len(returned) != len(params):
        raise AdapterError(
            f"{fn_name} returned {_describe(returned)}; expected {len(params)} array(s), the gradients of {', '.join(params)} in the order of shapes"
        )
    return dict(zip(params, returned, strict=True))


def _check_outputs(name: str, outputs: object) -> int:
    if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
        raise DerivationError(name, f"outputs= must be the number of arrays the forward returns before its cache (1, 2, ...), got {outputs!r}")
    return outputs


def _check_differentiated(name: str, differentiated: object, outputs: int) -> list[int]:
    """The outputs the backward takes an upstream gradient for (default: all), by their index in the forward's return."""
    if differentiated is None:
        return list(range(outputs))
    given = list(differentiated) if isinstance(differentiated, tuple | list) else [differentiated]
    ok = given and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < outputs for i in given)
    if not ok or len(set(given)) != len(given):
        raise DerivationError(
            name,
            f"differentiated= must name distinct outputs among 0..{outputs - 1} (the forward returns {outputs} before its cache),"
            f" got {differentiated!r}",
        )
    return given


def from_forward_backward(cls: type, name: str, forward: Callable[..., Any], backward: Callable[..., Any], *, shapes: Mapping[str, Any],
                          data: Mapping[str, Any] | None = None, hyper: Mapping[str, Any] | None = None, outputs: int = 1,
                          differentiated: Sequence[int] | None = None, **options: Any) -> Any:
    """A Derivation of ``forward(...) -> (out..., cache)`` and ``backward(dout..., cache) -> (dparam, ...)`` (or a dict
    of gradients in the code's own names, ``{"dxt": ..., "dWax": ...}``). ``differentiated=(0,)``: of the forward's
    outputs, those the backward takes an upstream gradient for, in its order (``(a_next, yt_pred, cache)`` and
    ``backward(da_next, cache)``); the others (a prediction beside the state) are not part of the objective."""
    for role, fn in (("forward", forward), ("backward", backward)):
        if not callable(fn):
            raise DerivationError(name, f"{role} must be callable, got {type(fn).__name__}")
    outputs = _check_outputs(name, outputs)
    chosen = _check_differentiated(name, differentiated, outputs)
    taken = _bind(name, forward, f"forward {_title(forward)}", _declared(shapes, data, hyper), all_declared=True)
    params, f_name, b_name = list(shapes), _title(forward), _title(backward)
    what = "(out, cache)" if outputs == 1 else f"({', '.join(f'out{i + 1}' for i in range(outputs))}, cache)"
    b_taken = _by_name(backward, len(chosen) + 1, _declared({}, data, hyper))

    def run(kwargs: Mapping[str, Any]) -> tuple[list[Any], Any]:
        return _split(f_name, forward(**_pick(kwargs, taken)), outputs, what)

    def adapted_forward(xp: Any, **kwargs: Any) -> Any:
        outs, _ = run(kwargs)
        return outs[chosen[0]] if len(chosen) == 1 else tuple(outs[i] for i in chosen)

    def adapted_gradients(grad_output: Any, **kwargs: Any) -> dict[str, Any]:
        _, cache = run(kwargs)
        douts = [grad_output] if len(chosen) == 1 else list(grad_output)
        return _gradient_tuple(b_name, backward(*douts, cache, **_pick(kwargs, b_taken)), params)

    return cls(name=name, shapes=shapes, forward=standing_for(adapted_forward, forward, own_signature=True),
               gradients=standing_for(adapted_gradients, backward, own_signature=True), **_inputs(data, hyper, options))


def from_loss(cls: type, name: str, loss: Callable[..., Any], *, shapes: Mapping[str, Any], data: Mapping[str, Any] | None = None,
              hyper: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """A Derivation of ``loss(...) -> (loss, dparam, ...)``: the scalar loss and its gradients in the order of ``shapes``;
    or of a loss layer (a class or instance with ``forward(x, t) -> loss`` and ``backward(dout=1) -> dx``): ``from_layer``
    with ``loss=True``."""
    if callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None)):
        return from_layer(cls, name, loss, shapes=shapes, data=data, hyper=hyper, loss=True, **options)
    if not callable(loss):
        raise DerivationError(name, f"loss must be callable, got {type(loss).__name__}")
    taken = _bind(name, loss, f"loss {_title(loss)}", _declared(shapes, data, hyper), all_declared=True)
    params, l_name = list(shapes), _title(loss)
    what = f"(loss, {', '.join('d' + p for p in params)})"

    def run(kwargs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        returned = loss(**_pick(kwargs, taken))
        if not isinstance(returned, tuple | list) or len(returned) != len(params) + 1:
            raise AdapterError(f"{l_name} returned {_describe(returned)}; expected {what}")
        return returned[0], dict(zip(params, returned[1:], strict=True))

    def adapted_forward(xp: Any, **kwargs: Any) -> Any:
        return run(kwargs)[0]

    def adapted_gradients(**kwargs: Any) -> dict[str, Any]:
        return run(kwargs)[1]

    return cls(name=name, shapes=shapes, forward=standing_for(adapted_forward, loss, own_signature=True),
               gradients=standing_for(adapted_gradients, loss, own_signature=True), **_inputs(data, hyper, options))


def _method(layer: Any, method: str) -> Callable[..., Any]:
    """``layer``'s method as a callable whose signature leaves out ``self`` (for a class as for an instance)."""
    fn = getattr(layer, method, None)
    if not callable(fn):
        raise AttributeError(method)
    return functools.partial(fn, None) if isinstance(layer, type) else fn  # the signature without self


def _attribute_gradient(obj: Any, param: str, where: str | Callable[[Any], Any] | None, layer_name: str) -> Any:
    """The gradient of ``param`` the layer's backward left on ``obj``: where ``grads=`` says, else the first of
    GRADIENT_NAMES (analytic/_tree.py) present; AdapterError naming what was looked for."""
    if callable(where):
        return where(obj)
    tried = [where] if where else [pattern.format(param) for pattern in GRADIENT_NAMES]
    for attr in tried:
        if hasattr(obj, attr):
            return getattr(obj, attr)
    looked = ", ".join(tried)
    raise AdapterError(
        f"{layer_name}.backward left no gradient of {param} on the layer (looked for {looked}); say where with grads={{{param!r}: 'name'}}"
    )


def from_layer(cls: type, name: str, layer: Any, *, shapes: Mapping[str, Any], data: Mapping[str, Any] | None = None,
               hyper: Mapping[str, Any] | None = None, outputs: int = 1, grads: Mapping[str, Any] | None = None, loss: bool = False,
               **options: Any) -> Any:
    """A Derivation of a layer object: ``forward(inputs...)`` and ``backward(dout...)``, state on the object.

    Each declared name goes where the layer takes it: to the constructor (a class: a fresh instance per call)
    or to ``forward`` by name, else it is set as an attribute (a parameter living on the layer, ``self.W``).
    ``backward`` returns the gradients of the ``shapes`` parameters ``forward`` takes (a tuple in the order of
    ``shapes``, or one array); those of the attribute parameters are read off the layer afterwards, from
    ``grads={param: attribute}`` (an attribute name, or a callable of the layer) or the first of dW, grad_W,
    W_grad, d_W present. Data and hyperparameters the backward takes by name are handed to it too.

    ``loss=True``: a loss layer (``forward(x, t) -> loss``, ``backward(dout=1) -> dx``): the forward's scalar is
    the objective, and ``backward`` is called with the upstream gradient 1 (with none, if it takes none)."""
    layer_name = _title(layer if isinstance(layer, type) else type(layer))
    try:
        forward, backward = _method(layer, "forward"), _method(layer, "backward")
    except AttributeError as e:
        raise DerivationError(name, f"layer {layer_name} has no {e.args[0]}() method") from None
    outputs = _check_outputs(name, outputs)
    if loss and outputs != 1:
        raise DerivationError(name, "loss=True: a loss layer's forward returns one scalar, so outputs= must be 1")
    declared = _declared(shapes, data, hyper)
    init = _bind(name, layer, f"layer {layer_name}", declared, all_declared=False) if isinstance(layer, type) else []
    taken = _bind(name, forward, f"{layer_name}.forward", [d for d in declared if d not in init], all_declared=False)
    attrs = [d for d in declared if d not in init and d not in taken]
    returned_for = [p for p in shapes if p in taken]
    unknown = sorted(set(grads or {}) - set(shapes))
    if unknown:
        raise DerivationError(name, f"grads= names {', '.join(map(repr, unknown))}, which shapes does not declare")
    upstream = outputs if not loss else min(1, _positional(backward))  # a loss's dout=1, if it takes one
    b_taken = _by_name(backward, upstream, _declared({}, data, hyper))

    def fresh(kwargs: Mapping[str, Any]) -> Any:
        obj = layer(**_pick(kwargs, init)) if isinstance(layer, type) else copy.deepcopy(layer)
        for a in attrs:
            setattr(obj, a, kwargs[a])
        return obj

    def run(obj: Any, kwargs: Mapping[str, Any]) -> Any:
        out = obj.forward(**_pick(kwargs, taken))
        if outputs > 1 and (not isinstance(out, tuple | list) or len(out) != outputs):
            raise AdapterError(f"{layer_name}.forward returned {_describe(out)}; expected {outputs} outputs")
        return tuple(out) if outputs > 1 else out

    def adapted_forward(xp: Any, **kwargs: Any) -> Any:
        return run(fresh(kwargs), kwargs)

    def gradients_after(obj: Any, douts: list[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        back = obj.backward(*douts, **_pick(kwargs, b_taken))
        out = _gradient_tuple(f"{layer_name}.backward", back, returned_for) if returned_for else {}
        for p in shapes:
            if p not in out:
                out[p] = _attribute_gradient(obj, p, (grads or {}).get(p), layer_name)
        return out

    def adapted_gradients(grad_output: Any, **kwargs: Any) -> dict[str, Any]:
        obj = fresh(kwargs)
        run(obj, kwargs)
        return gradients_after(obj, [grad_output] if outputs == 1 else list(grad_output), kwargs)

    def loss_gradients(**kwargs: Any) -> dict[str, Any]:
        obj = fresh(kwargs)
        run(obj, kwargs)
        return gradients_after(obj, [1] * upstream, kwargs)

    chosen = loss_gradients if loss else adapted_gradients
    return cls(name=name, shapes=shapes, forward=standing_for(adapted_forward, layer.forward, own_signature=True),
               gradients=standing_for(chosen, layer.backward, own_signature=True), **_inputs(data, hyper, options))


def _positional(fn: Callable[..., Any]) -> int:
    """How many arguments ``fn`` can take by position (its upstream gradient ``dout=1`` among them)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in inspect.signature(fn).parameters.values())
