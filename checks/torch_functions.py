"""A custom ``torch.autograd.Function`` in a graph, for ``verigrad.gradcheck`` (checks/gradcheck.py): its nodes, its
forward run as plain torch operations (a witness of its own: autograd through the forward's operations, without the
hand-written backward), the code of its backward (where the slip is searched), and what it saved from a forward
that ran without a graph (a constant to its backward's own backward)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["BackwardOf", "backward_code", "function_nodes", "inlined", "saved_without_graph"]


def function_nodes(outs: Sequence[Any]) -> list[Any]:
    """The nodes of the graph of ``outs`` that are a ``torch.autograd.Function``'s backward (their ``_forward_cls``)."""
    found: list[Any] = []
    todo, seen = [o.grad_fn for o in outs if isinstance(o, torch.Tensor)], set()
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(getattr(node, "_forward_cls", None), type):
            found.append(node)
        todo.extend(nxt for nxt, _ in node.next_functions)
    return found


def saved_without_graph(outs: Sequence[Any], inputs: Sequence[Any]) -> str | None:
    """For gradgradcheck's message: the Functions that save a floating tensor their forward computed (none of the
    inputs, no output): the forward runs without a graph, so their backward's own backward sees it as a constant."""
    given = {x.data_ptr() for x in inputs if isinstance(x, torch.Tensor)}
    found = []
    for node in function_nodes(outs):
        try:
            saved = node.saved_tensors
        except RuntimeError:  # freed, or none saved
            continue
        at = [
            k
            for k, t in enumerate(saved)
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not t.requires_grad and t.data_ptr() not in given
        ]
        if at:
            found.append(f"{node._forward_cls.__name__} saves ctx.saved_tensors[{', '.join(map(str, at))}]")
    if not found:
        return None
    return (
        f"suspect: {'; '.join(found)}, computed in the forward, which runs without a graph: its backward's own backward "
        "sees it as a constant, and a second-order term through it is missing (save inputs or outputs and recompute it)"
    )


class _Context:
    """What a Function's forward may ask of its ``ctx`` when run as plain torch operations: it keeps nothing."""

    def __init__(self, args: Sequence[Any]) -> None:
        self.needs_input_grad = tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        self.saved_tensors: tuple[Any, ...] = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors

    def _ignore(self, *args: Any, **kwargs: Any) -> None:
        return None

    save_for_forward = mark_non_differentiable = mark_dirty = set_materialize_grads = _ignore


def _unpacked(saved: Any) -> Any:
    return saved


def _run_inline(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``cls.apply`` without its backward: the forward's own torch operations, recorded by autograd."""
    ctx = _Context(args)
    # Each tensor the graph saves is saved as a copy: a forward that writes in place into one (``p /= p.sum()``, fine
    # inside a Function, which records no graph) is then differentiated as its operations compute, not refused.
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(torch.clone, _unpacked):
        if cls.setup_context is not torch.autograd.Function.setup_context:  # forward(*args) + setup_context(ctx, ...)
            output = cls.forward(*args, **kwargs)
            cls.setup_context(ctx, args, output)
        else:
            output = cls.forward(ctx, *args, **kwargs)
    return output  # named: the slip's quantity ∂f/∂output


@contextlib.contextmanager
def inlined(classes: Sequence[type]) -> Iterator[None]:
    """Each Function of ``classes`` runs its forward as plain torch operations (``_run_inline``) within."""
    own = {c: vars(c).get("apply") for c in classes}
    for c in classes:
        c.apply = classmethod(_run_inline)
    try:
        yield
    finally:
        for c, apply in own.items():
            if apply is None:
                delattr(c, "apply")
            else:
                c.apply = apply


def backward_code(cls: type) -> Any:
    """The code of ``cls``'s hand-written backward (under ``once_differentiable`` and other wrappers), or None."""
    backward = inspect.unwrap(vars(cls).get("backward") or getattr(cls, "backward", None))
    return getattr(backward, "__code__", None)


class BackwardOf:
    """The gradients of a problem, standing for a Function's backward they run through: the slip is searched along
    the lines of that backward's file (checks/diagnose/slip_point.top_code reads ``__code__``)."""

    def __init__(self, gradients: Callable[..., dict[str, np.ndarray]], code: Any, positions: dict[str, int] | None = None) -> None:
        self._gradients, self.__code__ = gradients, code
        #: Where the backward's returned tuple holds each parameter's gradient, where that is known (the function
        #: checked is the Function's own ``apply``): two gradients of equal value are then told apart by place.
        self.positions = positions or {}
        self.__name__ = self.__qualname__ = code.co_name
        self.__signature__ = inspect.signature(gradients)

    def __call__(self, **params: np.ndarray) -> dict[str, np.ndarray]:
        return self._gradients(**params)
