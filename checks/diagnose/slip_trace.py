"""A step-by-step trace of the hand-derived gradients function at one point (``sys.settrace``).

Every frame of the user's code the gradients function runs is traced: the function, the helpers of its file, and
the user's code of other files it calls (a wrapper in the check file around a course's ``lstm_step_backward``
imported from its module); never verigrad's, NumPy's, torch's or the standard library's
(``verigrad.reference.is_user_file``). Each step carries its own file.
After each statement, every local array (NumPy or torch) that is new or whose values changed — an in-place
write such as ``grad_h[h < 0] = 0`` included — becomes a ``Step``: the line, the statement's source, a float64
copy of the value, the steps its statement read (found by object identity, so a value passed into a helper
keeps its history) and the frame's locals before the statement (copied), so that the statement can be run
again with one input replaced (``rerun``). Each returned entry is a step too: the line of its entry in the
return statement when it is built there, else the step that made it. A value that is the very object another
step made (``b = a``, a helper's result) is an alias of that step.
"""

from __future__ import annotations

import ast
import linecache
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

import numpy as np

from verigrad.checks.verdict.thresholds import MAX_TRACE_STEPS
from verigrad.reference import is_user_file

INPUT, ASSIGN, ENTRY, ALIAS = "input", "assign", "entry", "alias"


def as_float(value: Any) -> np.ndarray | None:
    """A float64 copy of a NumPy array or torch tensor (a boolean mask as 0 and 1), or None for anything else."""
    if isinstance(value, np.ndarray):
        return np.array(value, dtype=np.float64, copy=True) if value.dtype.kind in "fiub" else None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().cpu().numpy().astype(np.float64, copy=True)
    return None


def _boolean(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == np.bool_


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().clone()
    return value


@dataclass(eq=False)
class Step:
    """One value the gradients function computed (see the module docstring)."""

    kind: str  # INPUT, ASSIGN, ENTRY or ALIAS
    file: str
    line: int
    name: str  # the local variable, or the returned key
    source: str  # the statement (for an entry, its text in the return statement), on one line
    value: np.ndarray
    inputs: dict[str, Step] = field(default_factory=dict)  # the local name each input was read by -> its step
    alias: Step | None = None
    node: ast.AST | None = None  # the statement, or the entry's expression: what ``rerun`` runs
    env: dict[str, Any] | None = None
    globals: dict[str, Any] | None = None
    order: int = 0
    mask: bool = False  # a boolean NumPy array (its value: 0 and 1)


class _Source:
    """The text of the traced file as it is now (read again for each trace, so an edited file is seen), its syntax
    tree, and the statement at each line."""

    def __init__(self, file: str) -> None:
        self.file = file
        linecache.checkcache(file)
        self.text = "".join(linecache.getlines(file))
        try:
            self.tree: ast.Module | None = ast.parse(self.text)
        except SyntaxError:
            self.tree = None
        self._at: dict[int, ast.stmt | None] = {}

    def statement(self, line: int) -> ast.stmt | None:
        """The innermost simple statement that contains ``line`` (a compound statement's header counts)."""
        if line not in self._at:
            best = None
            for node in ast.walk(self.tree) if self.tree is not None else ():
                if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno):
                    body = getattr(node, "body", None)
                    if body and isinstance(body, list) and body[0].lineno <= line:
                        continue  # the line is in the body of this compound statement
                    if best is None or node.lineno >= best.lineno:
                        best = node
            self._at[line] = best
        return self._at[line]

    def segment(self, node: ast.AST) -> str:
        """The node's source text on one line."""
        return " ".join((ast.get_source_segment(self.text, node) or "").split())


def _in_place(node: ast.AST) -> set[str]:
    """The arrays a statement writes into (``g[m] = 0``, ``g += d``, ``g.fill(0)`` is not seen)."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
    out = set()
    for t in targets:
        base = t
        while isinstance(base, ast.Subscript | ast.Attribute):
            base = base.value
        if isinstance(base, ast.Name) and (base is not t or isinstance(node, ast.AugAssign)):
            out.add(base.id)
    return out


def _read(node: ast.AST) -> list[str]:
    """The names a statement or expression reads, in order, each once; an in-place write reads the array it
    writes into."""
    seen: dict[str, None] = dict.fromkeys(sorted(_in_place(node)))
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            seen.setdefault(n.id, None)
    return list(seen)


@dataclass
class _Frame:
    src: _Source
    node: ast.stmt | None = None
    line: int = 0
    env: dict[str, Any] | None = None
    reads: dict[str, Step] = field(default_factory=dict)
    known: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)


class Tracer:
    """Traces the frames of ``top`` (the gradients function, or a Function's backward), the other code of its file,
    and the user's code of other files."""

    def __init__(self, top: CodeType) -> None:
        self.top, self.file = top, top.co_filename
        self.sources: dict[str, _Source] = {}
        self.steps: list[Step] = []
        self.producer: dict[int, tuple[Any, Step]] = {}  # id(object) -> (the object, kept alive; the last step that made it)
        self.frames: dict[FrameType, _Frame] = {}
        self.entries: dict[Any, Step] | None = None  # the top frame's returned entries (key or index -> step)
        self.cut = False

    # --- bookkeeping ------------------------------------------------------------------------------
    def _add(self, step: Step, obj: Any) -> Step:
        if len(self.steps) >= MAX_TRACE_STEPS:
            self.cut = True
            return step
        step.order = len(self.steps)
        self.steps.append(step)
        self.producer[id(obj)] = (obj, step)
        return step

    def made(self, obj: Any) -> Step | None:
        """The step that made this very object (its values still those it made), or None."""
        value = as_float(obj)
        return None if value is None else self._made(obj, value)

    def _made(self, obj: Any, value: np.ndarray) -> Step | None:
        """The step that made this very object, if its values are still the ones it made."""
        held = self.producer.get(id(obj))
        if held is None or held[0] is not obj:
            return None
        step = held[1]
        return step if step.value.shape == value.shape and np.array_equal(step.value, value, equal_nan=True) else None

    # --- the trace functions ------------------------------------------------------------------------
    def __call__(self, frame: FrameType, event: str, arg: Any):
        file = frame.f_code.co_filename
        if event != "call" or (file != self.file and not is_user_file(file)):
            return None
        if file not in self.sources:
            self.sources[file] = _Source(file)
        state = self.frames[frame] = _Frame(self.sources[file])
        for name in frame.f_code.co_varnames[: frame.f_code.co_argcount + frame.f_code.co_kwonlyargcount]:
            obj = frame.f_locals.get(name)
            value = as_float(obj)
            if value is None:
                continue
            made = self._made(obj, value)
            step = made or self._add(Step(INPUT, file, frame.f_lineno, name, name, value), obj)
            state.known[name] = (id(obj), value)
            del step
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any):
        state = self.frames.get(frame)
        if state is None:
            return None
        if event == "line":
            node = state.src.statement(frame.f_lineno)
            if node is None or node is not state.node:
                self._finish(frame, state)
                self._begin(frame, state, node)
        elif event == "return":
            self._finish(frame, state)
            self._returned(frame, state, arg)
            del self.frames[frame]
        return self._local

    def _begin(self, frame: FrameType, state: _Frame, node: ast.stmt | None) -> None:
        state.node, state.line = node, frame.f_lineno
        local = frame.f_locals
        state.env = {k: _copy(v) for k, v in local.items()}
        state.reads = {}
        for name in _read(node) if node is not None else ():
            obj = local.get(name)
            value = as_float(obj)
            made = None if value is None else self._made(obj, value)
            if made is not None:
                state.reads[name] = made

    def _finish(self, frame: FrameType, state: _Frame) -> None:
        if state.node is None:
            return
        written = _in_place(state.node)  # a new version even where the write changed nothing at this point
        for name, obj in list(frame.f_locals.items()):
            value = as_float(obj)
            if value is None:
                continue
            before = state.known.get(name)
            same = before is not None and before[0] == id(obj) and before[1].shape == value.shape
            if same and name not in written and np.array_equal(before[1], value, equal_nan=True):
                continue
            state.known[name] = (id(obj), value)
            made = None if name in written else self._made(obj, value)
            if made is not None:
                self._add(Step(ALIAS, state.src.file, state.line, name, state.src.segment(state.node), value, alias=made), obj)
                continue
            step = Step(ASSIGN, state.src.file, state.line, name, state.src.segment(state.node), value, dict(state.reads),
                        node=state.node, env=state.env, globals=frame.f_globals, mask=_boolean(obj))
            self._add(step, obj)
        state.node = None

    def _returned(self, frame: FrameType, state: _Frame, value: Any) -> None:
        ret = state.src.statement(state.line) if state.line else None
        expr = ret.value if isinstance(ret, ast.Return) else None
        if isinstance(value, Mapping):
            items, nodes = list(value.items()), _dict_nodes(expr)
        elif isinstance(value, tuple | list):
            items = list(enumerate(value))
            nodes = dict(enumerate(expr.elts)) if isinstance(expr, ast.Tuple | ast.List) else {}
        else:
            items, nodes = [(None, value)], {None: expr}
        entries = {}
        for key, obj in items:
            arr = as_float(obj)
            if arr is None:
                continue
            made = self._made(obj, arr)
            node = nodes.get(key)
            if made is not None and node is None:
                entries[key] = made
            elif node is not None:
                reads = self._reads_at_return(frame, state, node)
                line = node.lineno
                text = state.src.segment(node)
                label = f"{key!r}: {text}" if isinstance(key, str) else text
                entries[key] = self._add(Step(ENTRY, state.src.file, line, str(key), label, arr, reads, node=node,
                                              env=state.env, globals=frame.f_globals), obj)
        if frame.f_code is self.top and self.entries is None:
            self.entries = entries

    def _reads_at_return(self, frame: FrameType, state: _Frame, node: ast.AST) -> dict[str, Step]:
        names = _read(node)
        return {n: state.reads[n] for n in names if n in state.reads}


def _dict_nodes(expr: ast.AST | None) -> dict[Any, ast.AST]:
    """The value expression of each constant key of a dict display (``{"W1": X.T @ dh, **rest}``)."""
    if isinstance(expr, ast.Dict):
        return {k.value: v for k, v in zip(expr.keys, expr.values, strict=True) if isinstance(k, ast.Constant)}
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "dict":
        return {kw.arg: kw.value for kw in expr.keywords if kw.arg is not None}
    return {}


def passes_through(step: Step) -> Step | None:
    """The step an entry only hands on (``"W": grad_W``, ``return grad_X, grad_W``), or None."""
    if step.kind == ENTRY and isinstance(step.node, ast.Name) and len(step.inputs) == 1:
        return next(iter(step.inputs.values()))
    return None


def writes_into(step: Step) -> bool:
    """Whether ``step`` is an in-place write into its variable (``grad_h[h < 0] = 0``, ``grad_h *= mask``)."""
    return step.node is not None and step.name in _in_place(step.node)


def trace(top: CodeType, call: Any) -> Tracer:
    """Run ``call()`` (the user's gradients at the point) under a Tracer of ``top``; what it raises propagates."""
    tracer = Tracer(top)
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(previous)
    return tracer


def rerun(step: Step, replace: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The value ``step`` would have had with the locals in ``replace`` given those values (None: it cannot be run
    again: an alias, an input, a statement that raised so, or one that assigns nothing readable). Runs user code."""
    if step.node is None or step.env is None:
        return None
    env = {k: _copy(v) for k, v in step.env.items()}
    for name, value in replace.items():
        env[name] = _like(env.get(name), value)
    if isinstance(step.node, ast.stmt):
        code = compile(ast.Module(body=[_at_zero(step.node)], type_ignores=[]), step.file, "exec")
        try:
            exec(code, step.globals or {}, env)
        except Exception:  # user code: the statement, run with another value in one input's place: no value then
            return None
        return as_float(env.get(step.name))
    code = compile(ast.Expression(body=_at_zero(step.node)), step.file, "eval")
    try:
        out = eval(code, step.globals or {}, env)
    except Exception:  # user code: the expression, as above
        return None
    return as_float(out)


def _at_zero(node: ast.AST) -> Any:
    """A copy of ``node`` at column 0 (a statement of an indented body compiles on its own)."""
    copy = ast.parse(ast.unparse(node)).body[0]
    return copy if isinstance(node, ast.stmt) else copy.value


def _like(original: Any, value: np.ndarray) -> Any:
    """``value`` as the type the frame held (a torch tensor in a Function's backward), a copy: a statement run again
    may write into it in place (``dX -= q * gppr``), and ``value`` is a reference quantity that must stay as it is."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(original, torch.Tensor):
        return torch.tensor(value, dtype=original.dtype, device=original.device)
    return np.array(value, dtype=getattr(original, "dtype", np.float64))
