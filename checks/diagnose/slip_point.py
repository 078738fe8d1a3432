"""What the slip is located with at one point: the hand-derived gradients traced there (``slip_trace``), the
reference quantities there (``verigrad.reference.intermediates``: autograd's, or finite differences for a forward
that runs under NumPy only), a ``Matcher`` of the two, and the steps that recompute the forward.

A step recomputes the forward — it is a forward step, never a candidate for the slip behind a later line — when
it reads only forward steps (the parameters, data and hyperparameters; not the upstream gradient a layer's
backward is given), its variable does not name a gradient (``grad_h``, ``dW``), and, for a scalar objective
(where every gradient is computed from the parameters alone), its value equals a forward value and no gradient.
So ``Z = X @ W`` or ``x, w = cache`` is never blamed for a wrong ``dY`` however its shape happens to fit.
A boolean mask a layer's backward makes from the forward's values (``mask = window == np.max(window)``) is the
backward's own choice of the entries a gradient reaches, not a value of the forward: it stays a candidate (judged
by where the shares of its entries land, ``slip._wrong_mask``) unless it equals a forward value.

At a counterexample whose dims are all 1 every local has the shape of every parameter, and a value equals
another by chance; ``probe`` gives the point at other sizes (evidence.other_sizes: each dim distinct) where
the slip is located again before a line is named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose import slip_trace
from verigrad.checks.diagnose.evidence import other_sizes
from verigrad.checks.diagnose.slip_match import Matcher, references
from verigrad.checks.diagnose.slip_trace import ALIAS, ENTRY, INPUT, Step, Tracer, as_float, trace
from verigrad.checks.report import GradientReport, Point
from verigrad.checks.search.points import KinksError, draw_point
from verigrad.checks.verdict.thresholds import MAX_SLIP_FD_ENTRIES
from verigrad.reference import Intermediates, intermediates, user_call

__all__ = ["SlipPoint", "at_point", "probe", "top_code"]


def top_code(derivation: Derivation):
    """The code object the trace follows: the gradients function, or a Function's backward (None: not Python code)."""
    fn = derivation.gradients
    if derivation.torch_function is not None:
        fn = getattr(derivation.torch_function, "backward", None)
    return getattr(fn, "__code__", None) or getattr(vars(type(fn)).get("__call__"), "__code__", None)


@dataclass
class SlipPoint:
    """The trace, the reference quantities and their matcher at ``point``; ``forward``: ids of the forward steps."""

    point: Point
    traced: Tracer
    returned: dict[str, object]
    refs: Intermediates
    matcher: Matcher
    forward: frozenset[int]

    def final(self, derivation: Derivation, param: str) -> Step | None:
        """The step that made the returned ∂f/∂param: the entry of that key (of that position, for a Function's
        backward), else the step that made the very object the gradients returned for it (an adapter's backward
        returns a tuple or one array), else the returned entry with its values."""
        entries = self.traced.entries or {}
        positions = getattr(derivation.gradients, "positions", None) or {}  # checks/torch_functions.BackwardOf
        key = positions.get(param, param) if derivation.torch_function is None else derivation.params.index(param)
        if key in entries:
            return entries[key]
        made = self.traced.made(self.returned.get(param))
        if made is not None:
            return made
        value = as_float(self.returned.get(param))
        same = [s for s in entries.values() if value is not None and s.value.shape == value.shape and np.array_equal(s.value, value)]
        return same[0] if same else None

    def fails(self, derivation: Derivation, g: GradientReport) -> bool:
        """Whether the gradients return a wrong ∂f/∂(g's param) here (False where that cannot be told)."""
        final = self.final(derivation, g.param)
        target = self.matcher.target(g)
        return final is not None and target is not None and not self.matcher.same(final.value, target.array, target.error)


def _call(derivation: Derivation, point: Point, returned: dict[str, object]):
    """The call of the user's gradients at ``point``; what it returns is put in ``returned``."""
    args = {k: np.array(v, dtype=np.float64, copy=True) for k, v in point.params.items()}
    if derivation.is_layer:
        args["grad_output"] = np.array(point.grad_output, dtype=np.float64, copy=True)

    def call() -> None:
        out = user_call(derivation.gradients, **args)  # the global generators seeded as for the verdict
        if isinstance(out, Mapping):
            returned.update(out)

    return call


def _raised_by_tracer(e: BaseException) -> bool:
    """Whether the innermost frame of ``e`` is the tracer's own code (a harness bug), not the user's."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename == slip_trace.__file__


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split()) or '(no message)'}"


def at_point(derivation: Derivation, point: Point, failing: Sequence[GradientReport], top, *, counterexample: bool = True) -> SlipPoint | str:
    """The SlipPoint of ``point``, or why there is none (the gradients raised while traced). ``counterexample``:
    the failing gradients' references were taken at this point (else at another: they give thresholds only)."""
    refs = intermediates(derivation, point.params, point.grad_output, fd_entries=MAX_SLIP_FD_ENTRIES, fd_first=[g.param for g in failing])
    returned: dict[str, object] = {}
    try:
        traced = trace(top, _call(derivation, point, returned))
    except Exception as e:  # user code: the gradients, called once more under the trace (a bug of the tracer propagates)
        if _raised_by_tracer(e):
            raise
        return f"the gradients function raised while traced: {_one_line(e)}"
    matcher = Matcher(references(refs), failing, derivation, point, counterexample=counterexample)
    return SlipPoint(point, traced, returned, refs, matcher, _forward_steps(traced.steps, matcher, derivation))


def _upstream(step: Step, derivation: Derivation) -> bool:
    """Whether an input of the gradients is the upstream gradient of a layer (``grad_output``, a backward's ``dout``)."""
    declared = {*derivation.params, *(derivation.data or {}), *(derivation.hyper or {})}
    return derivation.is_layer and step.name not in declared


def _forward_steps(steps: Sequence[Step], m: Matcher, derivation: Derivation) -> frozenset[int]:
    """The ids of the steps that recompute the forward (module docstring), found in the order the steps were made."""
    out: set[int] = set()
    for s in steps:
        if s.kind == INPUT:
            forward = not _upstream(s, derivation)
        elif s.kind == ALIAS:
            forward = s.alias is not None and id(s.alias) in out
        elif s.kind == ENTRY or m.intended(s.name) is not None or not all(id(i) in out for i in s.inputs.values()):
            forward = False
        else:
            forward = (derivation.is_layer and not s.mask) or m.is_value(s.value)
        if forward:
            out.add(id(s))
    return frozenset(out)


def probe(derivation: Derivation, point: Point) -> Point | None:
    """At a point whose dims are all 1, the point at other sizes, each dim distinct (None elsewhere, or where
    the derivation's kinks raise there)."""
    if not point.sizes or any(v != 1 for v in point.sizes.values()):
        return None
    sizes = other_sizes(derivation, dict(point.sizes))
    if sizes == dict(point.sizes):
        return None
    try:
        return draw_point(derivation, sizes, point.seed or 0)
    except KinksError:  # the user's kinks() raised there: the slip is located at the counterexample alone
        return None
