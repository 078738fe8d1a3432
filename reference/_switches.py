"""The forward's value and the signs of its declared switches, at the rows of one batched call.

A declared switch is usually an intermediate of the forward itself: ``kinks=lambda xp, X, W, Y: [X @ W]``
beside ``h = X @ W`` in the forward. Evaluated after the forward, the switch computes the same matrix
product again, and at the seed's sizes that second product is nearly half of a finite-difference row.

So while the forward runs, its matrix products are kept, and a switch that asks for the same operation on
the very same operand objects is handed the kept result, once: the value it would have computed itself, the
same kernel on the same inputs. f is copied before the switches run (a scalar), so that a switch writing into
what it is handed cannot move a forward value that is a view of it. Any operation that writes in place (``add_``, ``x[i] = ...``, ``*=``,
``out=``) drops every product kept before it: an operand or a kept product might then hold other values
than when it was kept, and under vmap a tensor's version counter does not say so. Only matrix products are kept;
cheaper operations cost less to compute again than to look up.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ._objective import objective
from ._torch import Deferred, torch_namespace

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

__all__ = ["value_and_signs"]

#: Names of the in-place dunder methods of a tensor (those that end in "_", such as add_, are found by name).
IN_PLACE_DUNDERS = frozenset(
    {
        "__iadd__", "__isub__", "__imul__", "__imatmul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
        "__ilshift__", "__irshift__", "__iand__", "__ixor__", "__ior__", "__setitem__", "__delitem__", "__set__",
    }
)  # fmt: skip


def value_and_signs(derivation: Any, values: Mapping[str, Any], grad_output: Any) -> tuple[Any, tuple]:
    """(f, the sign of each declared switch) at one row, in torch: ``objective`` and then ``kinks``."""
    xp = torch_namespace()
    kinks = derivation.kinks
    if kinks is None:
        return objective(derivation, xp, values, grad_output), ()
    shared = _shared_products()()
    with shared:
        f = objective(derivation, xp, values, grad_output)
        if isinstance(f, torch.Tensor):
            f = f.clone()  # a switch may write into a product it is handed; f may be a view of that product
        shared.serving = True
        switches = kinks(xp, **values)
    return f, tuple(torch.sign(torch.as_tensor(s)) for s in switches)


def writes_in_place(func: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether a torch operation may write into a tensor: an ``out=`` argument, a method such as ``add_``,
    item assignment or an in-place operator."""
    return "out" in kwargs or _kind(func)[0]


#: Per torch operation seen, (whether its name says it writes in place, whether it is a kept matrix product): read
#: once per operation, not once per call (every operation of every forward row under the mode passes here).
_KINDS: dict[Any, tuple[bool, bool]] = {}


def _kind(func: Any) -> tuple[bool, bool]:
    try:
        return _KINDS[func]
    except (KeyError, TypeError):  # not seen yet, or not hashable (read each time)
        name = getattr(func, "__name__", "")
        kind = (name in IN_PLACE_DUNDERS or (name.endswith("_") and not name.startswith("__")), _is_product(func))
        if getattr(func, "__hash__", None) is not None:
            _KINDS[func] = kind
        return kind


def _is_product(func: Any) -> bool:
    try:
        return func in _products()
    except TypeError:  # not hashable: no matrix product
        return False


@functools.cache
def _products() -> frozenset:
    """The matrix products that are kept (made on first use: torch is imported by then)."""
    return frozenset({torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm})


@functools.cache
def _shared_products() -> type:
    """The torch function mode that keeps the forward's matrix products for its switches (a class made on
    first use: it subclasses torch's)."""

    class SharedProducts(torch.overrides.TorchFunctionMode):
        """Keeps each matrix product of the forward; hands it to the switches, once, while nothing wrote in place."""

        def __init__(self) -> None:
            super().__init__()
            #: (operation, operands, result) of the products since the last write; the operands held alive.
            self.kept: list[tuple[Any, tuple, Any]] = []
            self.serving = False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if writes_in_place(func, kwargs):
                self.kept.clear()  # whatever it writes into, no kept operand or result is trusted after it
            product = not kwargs and _kind(func)[1] and all(isinstance(a, torch.Tensor) for a in args)
            if product and self.serving:
                for i, (op, operands, result) in enumerate(self.kept):
                    if op is func and len(operands) == len(args) and all(a is b for a, b in zip(operands, args, strict=True)):
                        # Handed over once: a second call is a tensor of its own, as it would be without sharing.
                        # f was copied before the switches ran: a write into the product leaves f alone.
                        del self.kept[i]
                        return result
            out = func(*args, **kwargs)
            if product and not self.serving:
                self.kept.append((func, tuple(args), out))
            return out

    return SharedProducts
