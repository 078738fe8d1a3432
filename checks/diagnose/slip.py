"""Locate the slip: the first line of the hand-derived gradients whose value is wrong while the values it was
computed from are right.

For a failing gradient, the gradients function is traced once at its counterexample (``slip_trace``: every
local array after each statement, in-place writes and helpers of the same file included) and the forward's
intermediates are taken at the same point (``verigrad.reference.intermediates``: each intermediate's value and
∂f/∂it, by autograd, or by finite differences with an error bound for a forward that runs under NumPy only).
Each step is compared with those reference quantities (``slip_match``: equal within the failing gradient's own
threshold and the differences' error, up to a sign, a constant factor or a transpose). ``slip_point`` holds
what one point gives: the trace, the quantities, and the steps that recompute the forward, never followed.

From the returned value, whose target is ∂f/∂param, the search goes back through the statements:

* an input of the statement that equals a reference quantity is right, and so are the parameters;
* an input that does not is followed when putting the value it should have had in its place (the quantity it
  is c × or transposed of; or a quantity of its shape, rescaled, for one that matches nothing) makes the
  statement give its target: that input's own statement is then searched, with that value as its target;
* where no one input does, the wrong inputs whose names say which gradient they hold (``di``, ``df``, ``dg``, wrong
  from one earlier line) are given those gradients together; where that makes it right, the earliest is followed;
* a boolean mask the gradients made (``mask = window == np.min(window)``) that selects an entry whose share lands
  where the target is 0 is followed, its target the mask of the target's nonzero entries (``_wrong_mask``);
* an in-place write that left its array as it was (``dx /= 1``) while a sign or factor of its target is the slip
  itself, never the line whose value it hands on;
* a statement that adds its one wrong input to terms that are right (``dx = dx + g``, ``grad += term``) hands the
  search on to that input, its target the statement's target less the rest (``_share``);
* otherwise this statement is the slip. Its finding says which right input was used where another quantity
  belongs (the statement run again with that quantity in its place gives the target; where that input is a right
  value given a name that says it is the quantity that belongs, ``dx_hat = dout``, the slip is that name's line),
  else how its value relates to its target ("is −1 × ∂f/∂Y_pred", "is not summed over its axis 0"), else — where
  a step followed on the way is a sign, factor or transpose of its own target — that step and its relation, else that it is
  not its target (or, equal to it within the match, by how much it differs).

At a counterexample whose dims are all 1 the slip is located again at a point whose dims differ
(``slip_point.probe``); where the gradient is wrong there too and another line is named, that one is the slip.

Gradients whose slip is the same line share it: the sentence says which of them inherit it (``join``).
"""

from __future__ import annotations

import ast
import inspect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose.slip_match import Matcher, Ref
from verigrad.checks.diagnose.slip_point import SlipPoint, at_point, probe, top_code
from verigrad.checks.diagnose.slip_trace import ALIAS, ASSIGN, INPUT, Step, passes_through, rerun, writes_into
from verigrad.checks.report import Blame, GradientReport, Mark, Point, Problem, Report, Slip, TraceStep
from verigrad.checks.verdict.thresholds import MAX_SUBSTITUTES, MAX_TRACE_SHOWN

__all__ = ["join", "locate_slips"]


def locate_slips(derivation: Derivation, point: Point, failing: Sequence[GradientReport]) -> None:
    """Give each of the ``failing`` gradients (all found at ``point``) its slip and derivation trace, or a reason."""
    numeric = [g for g in failing if g.problem in (None, Problem.SHAPE) and g.blame != Blame.GRAPH]
    for g in failing:
        if g.blame == Blame.GRAPH:
            # The lines are matched against torch's ∂f/∂intermediate, which this graph gets wrong.
            g.slip_reason = "torch's graph is not the forward's function, so its intermediates' gradients cannot judge a line"
        elif g not in numeric:
            g.slip_reason = "no line is named for a gradient whose values could not be compared" + (
                " (the gradients function raised)" if g.problem == Problem.RAISED else "")
    if not numeric:
        return
    top = top_code(derivation)
    if top is None:
        for g in numeric:
            g.slip_reason = "the hand-derived gradients are not Python code that can be traced"
        return
    here = at_point(derivation, point, numeric, top)
    if isinstance(here, str):
        for g in numeric:
            g.slip_reason = here
        return
    elsewhere = _Elsewhere(derivation, point, numeric, top)
    for g in numeric:
        g.slip, g.trace, g.slip_reason = _located(derivation, g, here)
        if g.slip is not None and elsewhere.wanted:
            _confirm(derivation, g, elsewhere.get())


class _Elsewhere:
    """The SlipPoint at other sizes (``slip_point.probe``), made when first asked for (None: there is none)."""

    def __init__(self, derivation: Derivation, point: Point, failing: Sequence[GradientReport], top) -> None:
        self.derivation, self.failing, self.top = derivation, failing, top
        self.point = probe(derivation, point)
        self.wanted = self.point is not None
        self._made: SlipPoint | None = None

    def get(self) -> SlipPoint | None:
        if self.wanted and self._made is None:
            made = at_point(self.derivation, self.point, self.failing, self.top, counterexample=False)
            # References cut short by the finite-difference budget would stop the search early there: not a second opinion.
            self._made = made if isinstance(made, SlipPoint) and made.refs.problem is None and not made.refs.cut else None
            self.wanted = self._made is not None
        return self._made


def _confirm(derivation: Derivation, g: GradientReport, other: SlipPoint | None) -> None:
    """At a counterexample of all-ones dims, the slip located again where the dims differ: where the gradient is
    wrong there too and another line is named, that line (with that point's trace) is the slip."""
    if other is None or not other.fails(derivation, g):
        return
    slip, steps, reason = _located(derivation, g, other)
    if slip is None or (slip.file, slip.line) == (g.slip.file, g.slip.line):
        return
    sizes = ", ".join(f"{k}={v}" for k, v in other.point.sizes.items())
    slip.finding += f" (at {sizes}, where the dims differ)"
    g.slip, g.trace, g.slip_reason = slip, steps, reason


def _located(derivation: Derivation, g: GradientReport, at: SlipPoint) -> tuple[Slip | None, list[TraceStep], str | None]:
    """(the slip, the derivation trace, the reason no slip is named or the trace was cut) of ``g`` at ``at``."""
    final, matcher = at.final(derivation, g.param), at.matcher
    if final is None:
        return None, [], f"the returned ∂f/∂{g.param} was not computed by a traced line of {at.traced.file}"
    target = matcher.target(g)
    if at.refs.problem is not None or target is None:
        problem = at.refs.problem or f"∂f/∂{g.param} was not taken at this point"
        return None, _steps(final, matcher, {}), f"{problem}: the steps could not be compared with reference quantities"
    root, chain = _locate(final, target, matcher, set(at.forward))
    root, finding = _finding(root, chain, matcher, at.forward)
    slip = Slip(root.file, root.line, root.source, finding, own=root is _resolve(final),
                elsewhere=os.path.abspath(root.file) != _gradients_file(derivation, at.traced.file))
    reason = "the trace was cut after its first steps (MAX_TRACE_STEPS)" if at.traced.cut else None
    return slip, _steps(final, matcher, chain), reason


def _gradients_file(derivation: Derivation, traced: str) -> str:
    """The file the derivation's gradients are written in: the user's function an adapter stands for (its
    ``__wrapped__``), else the traced code's."""
    fn = derivation.gradients
    if derivation.torch_function is not None:
        fn = getattr(derivation.torch_function, "backward", fn)
    code = getattr(inspect.unwrap(fn), "__code__", None) if callable(fn) else None
    return os.path.abspath(traced if code is None else code.co_filename)


def _resolve(step: Step) -> Step:
    """The step that made ``step``'s value: through aliases and entries that only hand a value on."""
    while True:
        if step.kind == ALIAS and step.alias is not None:
            step = step.alias
        elif passes_through(step) is not None and passes_through(step).kind != INPUT:
            step = passes_through(step)
        else:
            return step


def _locate(step: Step, target: Ref, m: Matcher, seen: set[int]) -> tuple[Step, dict[Step, Ref]]:
    """The slip behind ``step`` (whose value should be ``target``), and the chain of steps followed, each with its target."""
    chain: dict[Step, Ref] = {}
    while True:
        named = _renamed(step, target, m, seen)
        if named is not None:
            chain[named] = target
            return named, chain
        step = _resolve(step)
        chain[step] = target
        seen.add(id(step))
        nxt = _follow(step, target, m, seen)
        if nxt is None:
            return step, chain
        step, target = nxt


def _follow(step: Step, target: Ref, m: Matcher, seen: set[int]) -> tuple[Step, Ref] | None:
    """The input of ``step`` to follow (see the module docstring), with the value it should have had. Inputs that
    equal no gradient are tried first; one that equals a forward value may still be a gradient with a slip that
    makes it equal a value by chance (2 · (Y_pred − Y) / N at N = 2 is Y_pred − Y), so it is tried after them,
    with gradients in its place only, as they are (not rescaled)."""
    if _left_unchanged(step, target, m):
        return None
    candidates = []
    for name, read in step.inputs.items():
        inp = _resolve(read)
        if inp.kind == INPUT or id(inp) in seen or inp.mask:
            continue
        here = m.right(inp.value, inp.name)
        if here is None:
            candidates.append((name, inp, _corrections(inp, m), True))
        elif not here.ref.grad:
            candidates.append((name, inp, iter(m.of_shape(inp.value.shape, True)[:MAX_SUBSTITUTES]), False))
    candidates.sort(key=lambda c: not c[3])
    for name, inp, values, rescale in candidates:
        for value in values:
            out = rerun(step, {name: value.array})
            if out is None:
                break
            if m.same(out, target.array, target.error):
                return inp, value
            c = m.factor(out, target.array, target.error) if rescale else None
            if c is not None and c != 0:
                scaled = value.times(1 / c)
                if m.same(rerun(step, {name: scaled.array}), target.array, target.error):
                    return inp, scaled
    return _together(step, target, m, seen) or _wrong_mask(step, target, m, seen) or _share(step, target, m, seen)


def _share(step: Step, target: Ref, m: Matcher, seen: set[int]) -> tuple[Step, Ref] | None:
    """A statement that adds one wrong term to right ones (``grad_M = grad_M + (US * gS) @ V.T``, ``dx += dmean``):
    where ``step`` is its one unmatched input plus what the rest of the statement gives (the same with the input set to
    0), the input should have been the target less that rest, and it is followed with that as its target. Any other
    statement (a product, a second wrong input, a sum that accumulates over the passes of a loop) is left to be the slip
    itself."""
    wrong = []
    for name, read in step.inputs.items():
        inp = _resolve(read)
        if inp.kind == INPUT or inp.mask or m.right(inp.value, inp.name) is not None:
            continue
        wrong.append((name, inp))
    if len(wrong) != 1 or id(wrong[0][1]) in seen:
        return None
    name, inp = wrong[0]
    if (inp.file, inp.line) == (step.file, step.line):
        # the same line at an earlier pass of a loop (``dX[s] += da @ U.T``): what the sum lacks is a pass the loop
        # did not make (backprop through time truncated), not a wrong line before it; this line stays the slip
        return None
    rest = rerun(step, {name: np.zeros_like(inp.value)})
    if rest is None or rest.shape != target.array.shape or inp.value.shape != target.array.shape:
        return None
    if not m.same(step.value, inp.value + rest, 0.0):  # not the input plus the rest here: a product, a mask
        return None
    share = Ref(f"{target.label} less the rest of line {step.line}", target.array - rest, target.grad, 1.0, target.error)
    return (inp, share) if m.same(rerun(step, {name: share.array}), target.array, target.error) else None


def _wrong_mask(step: Step, target: Ref, m: Matcher, seen: set[int]) -> tuple[Step, Ref] | None:
    """A boolean mask made by a line of the gradients (``mask = window == np.min(window)``) that selects an entry
    whose share lands where the target is 0: that line is followed, its target the mask of the entries whose
    share lands where the target is not 0. An entry's share is what ``step`` gives with that entry alone set, less
    what it gives with none (the mask's entries taken one at a time, as many reruns as MAX_SUBSTITUTES at most)."""
    for name, read in step.inputs.items():
        inp = _resolve(read)
        if not inp.mask or inp.kind != ASSIGN or id(inp) in seen or not 0 < inp.value.size <= MAX_SUBSTITUTES:
            continue
        base = rerun(step, {name: np.zeros_like(inp.value)})
        if base is None or base.shape != target.array.shape:
            continue
        meant = np.zeros_like(inp.value)
        for k in range(inp.value.size):
            one = np.zeros_like(inp.value)
            one.flat[k] = 1.0
            share = rerun(step, {name: one})
            if share is None or share.shape != base.shape:
                break
            lands = (share - base) != 0
            meant.flat[k] = float(np.any(lands) and not m.same(np.where(lands, 0.0, target.array), target.array, target.error))
        else:
            if not np.array_equal(meant, inp.value) and np.any(inp.value > meant):
                return inp, Ref(f"the mask of {target.label}'s nonzero entries", meant, grad=False)
    return None


def _left_unchanged(step: Step, target: Ref, m: Matcher) -> bool:
    """Whether ``step`` is an in-place write that left its array as it was (``dx /= 1`` where ``dx /= N`` belongs)
    while a sign, factor or transpose of its target: the write is the slip, not the line before it, whose value it
    hands on unchanged."""
    before = step.inputs.get(step.name)
    if not writes_into(step) or before is None or not np.array_equal(_resolve(before).value, step.value):
        return False
    rel = m.relation(step.value, target)
    return rel is not None and rel.simple and not rel.identity


def _together(step: Step, target: Ref, m: Matcher, seen: set[int]) -> tuple[Step, Ref] | None:
    """Where no one input alone makes ``step`` right: the wrong inputs whose names say which gradient they hold
    (``di``, ``df``, ``dg``, wrong from one earlier line), given those gradients together. Where that makes ``step``
    give its target, the earliest of them is followed, with the gradient its name says."""
    named = []
    for name, read in step.inputs.items():
        inp = _resolve(read)
        if inp.kind == INPUT or id(inp) in seen or inp.mask or m.right(inp.value, inp.name) is not None:
            continue
        meant = m.intended(inp.name)
        if meant is not None and meant.array.shape == inp.value.shape:
            named.append((name, inp, meant))
    if len(named) < 2 or not m.same(rerun(step, {name: meant.array for name, _, meant in named}), target.array, target.error):
        return None
    _, inp, meant = min(named, key=lambda n: n[1].order)
    return inp, meant


def _corrections(inp: Step, m: Matcher) -> Iterator[Ref]:
    """Values ``inp`` might have been meant to have: the quantity its name says, the one it relates to, then
    those of its shape."""
    meant = m.intended(inp.name)
    related = m.related(inp.value, inp.name)
    first = [r for r in (meant, None if related is None else related.ref) if r is not None and r.array.shape == inp.value.shape]
    yield from first
    yield from (r for r in m.of_shape(inp.value.shape)[:MAX_SUBSTITUTES] if all(r is not f for f in first))


def _finding(step: Step, chain: dict[Step, Ref], m: Matcher, forward: frozenset[int]) -> tuple[Step, str]:
    """What is wrong at the slip: a right input used where another gradient belongs (``_substituted``); else a sign,
    transpose or plain factor of its target; else a forward value used where another belongs; else, where a step
    followed on the way there is a sign, transpose or plain factor of its own target, that step (a known relation
    names a slip better than "not"); else another relation, its shape, or that it is not its target. (A value put
    in a value's place can fit by chance where a ReLU is off, so a plain relation to the target goes first there.)"""
    target = chain[step]
    found = _substituted(step, target, m, forward)
    rel = m.relation(step.value, target)
    if found is not None and (found[2].grad or rel is None or not rel.simple):
        at, text, other = found
        if at is not step:  # moved to the line that made the input: its target is the quantity that belongs
            chain[at] = other
        return at, text
    if rel is not None or _missing_sum(step.value, target, m) is not None:
        return step, _wrong(step.value, target, m)
    if step.kind == ALIAS:  # a name given to a value right as another quantity (``_renamed``)
        here = m.right(step.value)
        if here is not None:
            return step, f"is {here.ref.label} where {target.label} belongs"
    related = _related_on_the_way(step, chain, m)
    if related is not None:
        return related, _wrong(related.value, chain[related], m)
    return step, _wrong(step.value, target, m)


def _related_on_the_way(root: Step, chain: dict[Step, Ref], m: Matcher) -> Step | None:
    """The step followed last before ``root`` (the nearest it) that is a sign, transpose or plain factor of its
    own target; the steps after it leave the chain. None where there is none."""
    steps = list(chain)
    for k in range(len(steps) - 2, -1, -1):
        rel = m.relation(steps[k].value, chain[steps[k]])
        if rel is not None and rel.simple and not rel.identity:
            for later in steps[k + 1 :]:
                del chain[later]
            return steps[k]
    return None


def _missing_sum(value: np.ndarray, target: Ref, m: Matcher) -> int | None:
    """The axis of ``value`` whose sum is ``target`` (a gradient of a broadcast parameter left unsummed), or None.
    An axis of length 1 is not one: summing it only drops it (a kept axis, or one entry that is the sum)."""
    if value.shape == target.array.shape:
        return None
    for axis in range(value.ndim):
        if value.shape[axis] > 1 and m.same(value.sum(axis=axis), target.array, target.error):
            return axis
    return None


def _wrong(value: np.ndarray, target: Ref, m: Matcher) -> str:
    """What is wrong with a value that should be ``target``: the relation it has to it (a sign, factor or
    transpose), how far it is off where it equals it within the matching tolerance, its shape, or that it is not
    it. Never the bare name of the quantity it should be."""
    rel = m.relation(value, target)
    if rel is not None and not rel.identity:
        return "is " + rel.text()
    axis = _missing_sum(value, target, m)
    if axis is not None:
        return f"is not summed over its axis {axis}: its sum over that axis is {target.label}"
    if value.shape != target.array.shape:
        return f"has shape {value.shape} where {target.label} has {target.array.shape}"
    off = np.abs(value - target.array)
    wrong = int(np.sum(off > 0)) if rel is not None else m.differing(value, target)
    if rel is not None:
        return f"differs from {target.label} by up to {float(np.max(off, initial=0.0)):.3g} ({wrong} of {value.size} entries)"
    return f"is not {target.label}: {wrong} of {value.size} entries differ"


def _substituted(step: Step, target: Ref, m: Matcher, forward: frozenset[int]) -> tuple[Step, str, Ref] | None:
    """(the slip, its finding, the quantity that belongs there) for a right input of ``step`` whose place another
    quantity of its kind (a value for a value, a gradient for a gradient) would have made ``step`` right. The slip
    moves to the input's own line when that line made it: an in-place write that left it (``grad_h[h > 0] = 0``
    changing nothing, or the wrong entries), or a statement whose value is a sign or plain factor of the gradient
    that belongs (``dy = 2 (Y − Y_pred)``, read as ∂f/∂Y where ∂f/∂Y_pred belongs); never to a forward step."""
    for name, read in step.inputs.items():
        inp = _resolve(read)
        here = m.right(inp.value, None if inp.kind == INPUT else inp.name)
        if here is None:
            continue
        meant = m.intended(None if inp.kind == INPUT else inp.name)
        shape = inp.value.shape
        others = [r for r in (meant, *m.of_shape(shape, here.ref.grad)[:MAX_SUBSTITUTES]) if r is not None and r.array.shape == shape]
        for other in others:
            if other is here.ref or m.same(inp.value, other.array, other.error):
                continue
            if not m.same(rerun(step, {name: other.array}), target.array, target.error):
                continue
            if _misnamed(read, other, m, forward):
                return read, f"is {here.ref.label} where {other.label} belongs", other
            movable = inp.kind == ASSIGN and id(inp) not in forward
            if movable and writes_into(inp):
                return inp, f"is {here.ref.label} where {other.label} belongs", other
            rel = m.relation(inp.value, other) if movable and other.grad else None
            if rel is not None and rel.simple:
                return inp, "is " + rel.text(), other
            return step, f": {here.ref.label} used where {other.label} belongs", other
    return None


def _misnamed(read: Step, other: Ref, m: Matcher, forward: frozenset[int] | set[int]) -> bool:
    """Whether ``read`` is a name given to another name's value (``dx_hat = dout``) that says it holds ``other``,
    the quantity that belongs where it is read: that line is the slip where the value is right as another."""
    if read.kind != ALIAS or id(read) in forward:
        return False
    try:
        (stmt,) = ast.parse(read.source).body
    except (SyntaxError, ValueError):
        return False
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Name)):
        return False
    meant = m.intended(read.name)
    return meant is not None and meant.name == other.name and other.scale == 1.0


def _renamed(step: Step, target: Ref, m: Matcher, seen: set[int]) -> Step | None:
    """The name given to a value that is right as another quantity (``dprev_c = dc``, ``dbeta = dout``) on the way
    from ``step`` to the step that made its value, where the name says it holds ``target``: that line is the slip."""
    while True:
        handed = passes_through(step)
        if handed is not None and handed.kind != INPUT:
            step = handed
            continue
        if step.kind != ALIAS or step.alias is None:
            return None
        made = _resolve(step)
        if _misnamed(step, target, m, seen) and not m.same(step.value, target.array, target.error):
            if m.right(made.value, None if made.kind == INPUT else made.name) is not None:
                return step
        step = step.alias


def _ancestors(final: Step) -> list[Step]:
    out: dict[int, Step] = {}
    todo = [final]
    while todo:
        s = _resolve(todo.pop())
        if id(s) in out or s.kind == INPUT:
            continue
        out[id(s)] = s
        todo.extend(s.inputs.values())
    return sorted(out.values(), key=lambda s: s.order)


#: What a step of a trace without reference quantities shows (the slip's reason says why there are none).
NOT_COMPARED = "not compared"


def _steps(final: Step, m: Matcher, chain: dict[Step, Ref]) -> list[TraceStep]:
    """The derivation trace of one gradient: the steps its value was computed from, each marked."""
    steps = _ancestors(final)
    steps = sorted([*steps, *(s for s in chain if s not in steps)], key=lambda s: s.order)  # a name the slip is at
    if len(steps) > MAX_TRACE_SHOWN:
        keep = {id(s) for s in chain} | {id(s) for s in steps[-MAX_TRACE_SHOWN:]}
        steps = [s for s in steps if id(s) in keep][-MAX_TRACE_SHOWN:]
    out = []
    for s in steps:
        if passes_through(s) is not None and s not in chain:
            continue  # "W": grad_W says nothing the step of grad_W does not
        if s in chain:
            out.append(TraceStep(s.file, s.line, s.source, Mark.WRONG, _wrong_mark(s.value, chain[s], m)))
            continue
        match = m.right(s.value, s.name) if m.refs else None
        if match is not None:
            out.append(TraceStep(s.file, s.line, s.source, Mark.RIGHT, match.ref.label))
            continue
        if not m.refs:  # no reference quantities (a NumPy-only forward): the trace shows the steps alone
            out.append(TraceStep(s.file, s.line, s.source, Mark.UNCHECKED, NOT_COMPARED))
            continue
        rel = m.related(s.value, s.name)
        out.append(TraceStep(s.file, s.line, s.source, Mark.UNCHECKED, rel.text() if rel is not None else ""))
    return out


def _wrong_mark(value: np.ndarray, target: Ref, m: Matcher) -> str:
    """A wrong step's text in the trace: ``_wrong``'s, without its verb ("−1 × ∂f/∂Y", "not ∂f/∂h")."""
    text = _wrong(value, target, m)
    if text.startswith("is not "):
        return "not " + target.label
    return text.removeprefix("is ")


@dataclass(frozen=True)
class _Where:
    file: str
    line: int


def join(report: Report) -> None:
    """Tell each failing gradient which others share its slip's line (``Slip.inherited_by``: those whose returned
    value that line does not compute itself; none when one gradient alone has it)."""
    by_line: dict[_Where, list[GradientReport]] = {}
    for g in report.failures:
        if g.slip is not None:
            by_line.setdefault(_Where(g.slip.file, g.slip.line), []).append(g)
    for group in by_line.values():
        heirs = [g.param for g in group if not g.slip.own] if len(group) > 1 else []
        for g in group:
            g.slip.inherited_by = heirs
