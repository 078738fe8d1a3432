"""The forward's intermediates at one point, with autograd's gradient of f with respect to each.

The forward runs once under torch in float64 inside a ``TorchFunctionMode`` that keeps every tensor an
operation returns inside the forward (in its own frames or in helpers it calls, of its file or another; not
inside torch, NumPy or array-api-compat); a trace of those frames names each tensor after the local variable
that holds it (``h``, ``Y_pred``), else after the source text of the expression that made it
(``(X @ W1 + b1)``, read off the frame's instruction positions). One ``torch.autograd.grad`` then gives
∂f/∂(each of them). The parameters are quantities too (their values and ∂f/∂param), and so is the upstream
gradient G of a layer (∂f/∂out). The hand-derived gradients are compared step by step with these values
(checks/diagnose/slip.py).
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

import numpy as np

from verigrad.analytic import Derivation

from ._namespace import TORCH, runs_in
from ._numpy_intermediates import numpy_intermediates
from ._objective import objective
from ._quantities import Intermediates, Quantity, is_user_file
from ._torch import Deferred, torch_namespace

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

__all__ = ["MAX_INTERMEDIATES", "Intermediates", "Quantity", "intermediates"]

#: Tensors kept from one forward at most: the counterexamples a search shrinks to run a forward of a few dozen
#: operations; a forward with loops over long sequences keeps its first MAX_INTERMEDIATES results (enough to name
#: the early steps) rather than holding an unbounded graph's worth of copies.
MAX_INTERMEDIATES = 512


@functools.cache
def _keep_mode() -> type:
    """The torch function mode that keeps the intermediates (a class made on first use: it subclasses torch's)."""

    class Keep(torch.overrides.TorchFunctionMode):
        """Keeps each tensor an operation returns inside the forward's file, with the frame and instruction that made it."""

        def __init__(self, file: str) -> None:
            super().__init__()
            self.file = file
            self.kept: list[tuple[torch.Tensor, str | None, int]] = []  # tensor, source text, line
            self.op_errors: set[int] = set()  # exceptions the forward's own operations raised
            self.cut = False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            try:
                out = func(*args, **(kwargs or {}))
            except Exception as e:  # user code: the forward's operation (its error passes through this frame unchanged)
                self.op_errors.add(id(e))
                raise
            # An operation of several results (``values, indices = torch.topk(...)``, ``torch.max(x, dim)``)
            # returns a tuple: each differentiable tensor in it is an intermediate of its own.
            made = [t for t in (out if isinstance(out, tuple) else (out,)) if isinstance(t, torch.Tensor)]
            made = [t for t in made if t.requires_grad and t.is_floating_point()]
            frame = _user_frame(sys._getframe(1), self.file) if made else None
            if frame is not None:
                for t in made:
                    if len(self.kept) < MAX_INTERMEDIATES:
                        self.kept.append((t, _expression(frame), frame.f_lineno))
                    else:
                        self.cut = True
            return out

    return Keep


def _user_frame(frame: FrameType | None, file: str) -> FrameType | None:
    """The innermost frame of the user's code (the forward's file, or a helper of another file it calls) under the
    forward's own frame; None outside the forward."""
    inner = None
    while frame is not None:
        name = frame.f_code.co_filename
        if inner is None and is_user_file(name):
            inner = frame
        if name == file:
            return inner
        frame = frame.f_back
    return None


def _expression(frame: FrameType) -> str | None:
    """The source text of the expression the frame is evaluating (one line, or None)."""
    positions = list(frame.f_code.co_positions())
    k = frame.f_lasti // 2
    if not 0 <= k < len(positions):
        return None
    l0, l1, c0, c1 = positions[k]
    if l0 is None or l0 != l1 or c0 is None or c1 is None:
        return None
    import linecache

    text = linecache.getline(frame.f_code.co_filename, l0)[c0:c1]
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    return text


class _Names:
    """A trace of the forward's frames: the first local variable name each kept tensor was bound to."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.names: dict[int, str] = {}
        self.alive: list[Any] = []

    def _scan(self, frame: FrameType) -> None:
        for name, v in frame.f_locals.items():
            if isinstance(v, torch.Tensor) and id(v) not in self.names:
                self.names[id(v)] = name
                self.alive.append(v)

    def _local(self, frame: FrameType, event: str, arg: Any):
        if event in ("line", "return"):
            self._scan(frame)
        return self._local

    def __call__(self, frame: FrameType, event: str, arg: Any):
        if event == "call" and is_user_file(frame.f_code.co_filename):
            return self._local
        return None


def _innermost_file(e: BaseException) -> str | None:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return None if tb is None else tb.tb_frame.f_code.co_filename


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split()) or '(no message)'}"


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64, copy=True)


def intermediates(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None = None, *,
                  fd_entries: int = 0, fd_first: Sequence[str] = ()) -> Intermediates:
    """The reference quantities of ``derivation`` at ``params`` (module docstring). The forward is user code: an
    exception it raises is the result's ``problem``, never raised. A forward that runs under NumPy only has its
    intermediates taken by finite differences (``_numpy_intermediates``), up to ``fd_entries`` entries in all
    (0: none are taken, and the result's problem says why), ∂f/∂(the parameters in ``fd_first``) before any other."""
    if not runs_in(derivation, TORCH, params, grad_output):  # NumPy-only code (np.pad, .dot on 2-D arrays): reference/_namespace.py
        if fd_entries > 0:
            return numpy_intermediates(derivation, params, grad_output, fd_entries, fd_first)
        return Intermediates(problem="the forward runs under NumPy only, so it has no torch intermediates")
    runs = derivation.torch_forward or derivation.forward  # the forward that runs under torch, wherever it is defined
    file = getattr(getattr(runs, "__code__", None), "co_filename", None)
    leaves = {n: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for n, v in params.items()}
    g = None if grad_output is None else torch.as_tensor(np.asarray(grad_output, dtype=np.float64))
    keep, names = _keep_mode()(file or "<none>"), _Names(file or "<none>")
    previous = sys.gettrace()
    try:
        sys.settrace(names)
        with keep:
            f = objective(derivation, torch_namespace(), leaves, g)
    except Exception as e:  # the forward is user code (a bug of the recording here propagates)
        if _innermost_file(e) == __file__ and id(e) not in keep.op_errors:
            raise
        return Intermediates(problem=f"the forward raised under torch: {_one_line(e)}")
    finally:
        sys.settrace(previous)
    if not isinstance(f, torch.Tensor) or not f.requires_grad:
        return Intermediates(problem="the forward computes no torch intermediates that f depends on")
    kept = [(t, text, line) for t, text, line in keep.kept if t is not f]
    wrt = [*leaves.values(), *(t for t, _, _ in kept)]
    try:
        grads = torch.autograd.grad(f.reshape(()), wrt, allow_unused=True)
    except RuntimeError as e:  # torch cannot differentiate an operation of the user's forward
        return Intermediates(problem=f"autograd could not differentiate the forward's intermediates: {_one_line(e)}")
    out = [
        Quantity(n, _numpy(t), _numpy(gr) if gr is not None else np.zeros(t.shape), None, True)
        for (n, t), gr in zip(leaves.items(), grads, strict=False)
    ]
    for (t, text, line), gr in zip(kept, grads[len(leaves) :], strict=True):
        if gr is None:
            continue  # not on the way to f
        name = names.names.get(id(t)) or (f"({text})" if text else f"(line {line})")
        out.append(Quantity(name, _numpy(t), _numpy(gr), line))
    if len(out) == len(leaves):
        return Intermediates(out, problem="the forward computes no torch intermediates that f depends on")
    return Intermediates(out, cut=keep.cut)
