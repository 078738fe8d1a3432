"""Locate the slip: the first line of the hand-derived gradients whose value is wrong while the values it was
computed from are right.

For a failing gradient, the gradients function is traced once at its counterexample (``slip_trace``: every
local array after each statement, in-place writes and helpers of the same file included) and the forward's
intermediates are taken at the same point (``verigrad.reference.intermediates``: each intermediate's value and
∂f/∂it). Each step is compared with those reference quantities (``slip_match``: equal within the failing
gradient's own threshold, up to a sign, a constant factor or a transpose).

From the returned value, whose target is ∂f/∂param, the search goes back through the statements:

* an input of the statement that equals a reference quantity is right, and so are the parameters;
* an input that does not is followed when putting the value it should have had in its place (the quantity it
  is c × or transposed of; or a quantity of its shape, rescaled, for one that matches nothing) makes the
  statement give its target: that input's own statement is then searched, with that value as its target;
* otherwise this statement is the slip. Its finding says which right input was used where another quantity
  belongs (the statement run again with that quantity in its place gives the target), else how its value
  relates to its target ("is −1 × ∂f/∂Y_pred"), else that it is not it.

Gradients whose slip is the same line share it: the sentence says which of them inherit it (``join``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose import slip_trace
from verigrad.checks.diagnose.slip_match import Matcher, Ref, references
from verigrad.checks.diagnose.slip_trace import ALIAS, ASSIGN, INPUT, Step, Tracer, as_float, passes_through, rerun, trace, writes_into
from verigrad.checks.report import Blame, GradientReport, Mark, Point, Problem, Report, Slip, TraceStep
from verigrad.checks.verdict.thresholds import MAX_SLIP_FD_ENTRIES, MAX_SUBSTITUTES, MAX_TRACE_SHOWN
from verigrad.reference import intermediates

__all__ = ["join", "locate_slips"]


def _top_code(derivation: Derivation):
    fn = derivation.gradients
    if derivation.torch_function is not None:
        fn = getattr(derivation.torch_function, "backward", None)
    return getattr(fn, "__code__", None) or getattr(vars(type(fn)).get("__call__"), "__code__", None)


def _call(derivation: Derivation, point: Point, returned: dict[str, object]):
    """The call of the user's gradients at ``point``; what it returns is put in ``returned``."""
    args = {k: np.array(v, dtype=np.float64, copy=True) for k, v in point.params.items()}
    if derivation.is_layer:
        args["grad_output"] = np.array(point.grad_output, dtype=np.float64, copy=True)

    def call() -> None:
        out = derivation.gradients(**args)
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
    top = _top_code(derivation)
    if top is None:
        for g in numeric:
            g.slip_reason = "the hand-derived gradients are not Python code that can be traced"
        return
    refs = intermediates(derivation, point.params, point.grad_output, fd_entries=MAX_SLIP_FD_ENTRIES)
    try:
        returned: dict[str, object] = {}
        traced = trace(top, _call(derivation, point, returned))
    except Exception as e:  # user code: the gradients, called once more under the trace (a bug of the tracer propagates)
        if _raised_by_tracer(e):
            raise
        for g in numeric:
            g.slip_reason = f"the gradients function raised while traced: {_one_line(e)}"
        return
    matcher = Matcher(references(refs), numeric, derivation, point)
    for g in numeric:
        _one(g, _final(derivation, g.param, traced, returned), traced, refs, matcher)


def _final(derivation: Derivation, param: str, traced: Tracer, returned: Mapping[str, object]) -> Step | None:
    """The step that made the returned ∂f/∂param: the entry of that key (of that position, for a Function's
    backward), else the step that made the very object the gradients returned for it (an adapter's backward
    returns a tuple or one array), else the returned entry with its values."""
    entries = traced.entries or {}
    key = param if derivation.torch_function is None else derivation.params.index(param)
    if key in entries:
        return entries[key]
    made = traced.made(returned.get(param))
    if made is not None:
        return made
    value = as_float(returned.get(param))
    same = [s for s in entries.values() if value is not None and s.value.shape == value.shape and np.array_equal(s.value, value)]
    return same[0] if same else None


def _one(g: GradientReport, final: Step | None, traced: Tracer, refs, matcher: Matcher) -> None:
    if final is None:
        g.slip_reason = f"the returned ∂f/∂{g.param} was not computed by a traced line of {traced.file}"
        return
    if refs.problem is not None:
        g.trace = _steps(final, matcher, {})
        g.slip_reason = f"{refs.problem}: the steps could not be compared with reference quantities"
        return
    root, chain = _locate(final, matcher.target(g), matcher, set())
    root, finding = _finding(root, chain, matcher)
    g.slip = Slip(root.file, root.line, root.source, finding, own=root is _resolve(final))
    g.trace = _steps(final, matcher, chain)
    if traced.cut:
        g.slip_reason = "the trace was cut after its first steps (MAX_TRACE_STEPS)"


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
    candidates = []
    for name, read in step.inputs.items():
        inp = _resolve(read)
        if inp.kind == INPUT or id(inp) in seen:
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
    return None


def _corrections(inp: Step, m: Matcher) -> Iterator[Ref]:
    """Values ``inp`` might have been meant to have: the quantity its name says, the one it relates to, then
    those of its shape."""
    meant = m.intended(inp.name)
    related = m.related(inp.value, inp.name)
    first = [r for r in (meant, None if related is None else related.ref) if r is not None and r.array.shape == inp.value.shape]
    yield from first
    yield from (r for r in m.of_shape(inp.value.shape)[:MAX_SUBSTITUTES] if all(r is not f for f in first))


def _finding(step: Step, chain: dict[Step, Ref], m: Matcher) -> tuple[Step, str]:
    """What is wrong at the slip: a right input used where another gradient belongs (``_substituted``); else a sign,
    transpose or plain factor of its target; else a forward value used where another belongs; else another
    relation, its shape, or that it is not its target. (A value put in a value's place can fit by chance where a
    ReLU is off, so a plain relation to the target goes first there.)"""
    target = chain[step]
    found = _substituted(step, target, m)
    rel = m.relation(step.value, target)
    if found is not None and (found[2].grad or rel is None or not rel.simple):
        at, text, other = found
        if at is not step:  # moved to the line that made the input: its target is the quantity that belongs
            chain[at] = other
        return at, text
    if rel is not None:
        return step, "is " + rel.text()
    if step.value.shape != target.array.shape:
        return step, f"has shape {step.value.shape} where {target.label} has {target.array.shape}"
    wrong = m.differing(step.value, target)
    return step, f"is not {target.label}: {wrong} of {step.value.size} entries differ"


def _substituted(step: Step, target: Ref, m: Matcher) -> tuple[Step, str, Ref] | None:
    """(the slip, its finding, the quantity that belongs there) for a right input of ``step`` whose place another
    quantity of its kind (a value for a value, a gradient for a gradient) would have made ``step`` right. The slip
    moves to the input's own line when that line made it: an in-place write that left it (``grad_h[h > 0] = 0``
    changing nothing, or the wrong entries), or a statement whose value is a sign or plain factor of the gradient
    that belongs (``dy = 2 (Y − Y_pred)``, read as ∂f/∂Y where ∂f/∂Y_pred belongs)."""
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
            if inp.kind == ASSIGN and writes_into(inp):
                return inp, f"is {here.ref.label} where {other.label} belongs", other
            rel = m.relation(inp.value, other) if inp.kind == ASSIGN and other.grad else None
            if rel is not None and rel.simple:
                return inp, "is " + rel.text(), other
            return step, f": {here.ref.label} used where {other.label} belongs", other
    return None


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
    if len(steps) > MAX_TRACE_SHOWN:
        keep = {id(s) for s in chain} | {id(s) for s in steps[-MAX_TRACE_SHOWN:]}
        steps = [s for s in steps if id(s) in keep][-MAX_TRACE_SHOWN:]
    out = []
    for s in steps:
        if passes_through(s) is not None and s not in chain:
            continue  # "W": grad_W says nothing the step of grad_W does not
        if s in chain:
            rel = m.relation(s.value, chain[s])
            text = rel.text() if rel is not None else f"not {chain[s].label}"
            out.append(TraceStep(s.file, s.line, s.source, Mark.WRONG, text))
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
