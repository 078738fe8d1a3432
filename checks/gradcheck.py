"""``verigrad.gradcheck`` and ``verigrad.gradgradcheck``: torch.autograd.gradcheck's signatures, this harness's verdict.

A test that calls ``torch.autograd.gradcheck(func, inputs)`` switches by changing its import. What is checked:

* the backward of ``func`` (a custom ``torch.autograd.Function``'s, or any graph's) is the hand-derived
  gradient: f = Σ_k ⟨G_k, out_k⟩ over the differentiable outputs, with fixed random G_k (seed 0), and
  ∂f/∂input by ``torch.autograd.grad`` through ``func`` — one vector-Jacobian product per input instead
  of torch's whole Jacobian, which a wrong entry of the Jacobian changes just the same (almost surely);
* against central finite differences of f with the error model of reference/_fd.py at ``inputs``,
  every entry, kinks found per entry (checks/verdict/judge.py). Where the graph goes through one custom
  Function once, in float64, and its forward runs as plain torch operations (checks/torch_functions.py: the same
  outputs, with a graph that autograd can run back through, writes in place included), autograd through that
  forward is a third witness: a wrong backward is blamed on the analytic side, diagnosed, and its slip searched
  along the lines of the backward.
  Elsewhere (a forward outside torch, several Functions, float32), and where autograd through the inlined
  forward is not the function's derivative (a part computed outside torch; an iterative forward, whose autograd
  differentiates its iterations, rejecting the backward by no more than ITERATION_CAP of the gradient's scale:
  docs/tolerances.md §13; the check is run again),
  autograd is the backward under test and finite differences decide (the ``graph`` blame); a float32 failure
  whose Function runs in float64 too has its slip looked for there (``_located_in_float64``);
* ``gradgradcheck``: the backward's own backward, as torch defines it — ``gradcheck`` of
  (inputs, grad_outputs) ↦ ∂⟨grad_outputs, func(inputs)⟩/∂inputs with ``create_graph=True`` (never inlined:
  the backward is differentiated as written, so finite differences decide);
* ``check_forward_ad=True``: forward-mode AD through ``func`` (a custom Function's ``jvp`` staticmethod, as torch
  runs it) along a random direction v of the inputs, J·v per differentiable output, against the differences of
  ``func`` along v with the same error model, stepped for the outputs' precision (checks/verdict/second_order.py;
  ``check_fwd_over_rev`` of ``gradgradcheck``: the same of the backward).

Tolerances. The error model decides. ``atol=``/``rtol=`` given by the caller can only loosen a failure:
an entry the error model rejects passes when |backward − reference| ≤ atol + rtol·|reference| (torch's
rule), and the message says that the caller's tolerance decided. ``eps=`` is accepted and not used: the
steps are sized per entry by the error model. ``nondet_tol`` is torch's reentrancy check: the backward called twice
at the inputs; a difference beyond it fails, one within it is tolerated (the check judges the first call's result,
an entry off by no more than nondet_tol is accepted, and a warning says so). ``check_undefined_grad`` is torch's
too: the backward with undefined upstream gradients must not raise, nor give a nonzero gradient when all are
undefined. Every other keyword of torch's is accepted; the checks
that have no counterpart here (``check_batched_grad``, ``fast_mode`` and the like)
are named in a warning when asked for. Complex inputs or outputs are refused with one line.

The failure raises ``GradcheckError``, a ``torch.autograd.gradcheck.GradcheckError``, with this harness's
words: which output and input, the entries, the diagnosis and the worst entry (``raise_exception=False``:
returns False).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.autograd.gradcheck import GradcheckError as TorchGradcheckError

from verigrad.analytic import Derivation
from verigrad.checks.assertion import failure_text
from verigrad.checks.backward_calls import reentrant, undefined_grad_failure
from verigrad.checks.diagnose.second_order import diagnose_jvp
from verigrad.checks.report import FAIL, PASS, Blame, Report
from verigrad.checks.search import check
from verigrad.checks.torch_functions import BackwardOf, backward_code, function_nodes, inlined, saved_without_graph
from verigrad.checks.verdict.second_order import Operator, judge_tangents
from verigrad.checks.verdict.thresholds import ITERATION_CAP, unit_roundoff
from verigrad.reference import along, direction

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]

#: The seed of the upstream gradients G_k that make the outputs one scalar f.
UPSTREAM_SEED = 0
#: Keywords of torch's whose checks have no counterpart here: asking for them gets a warning naming them.
NOT_CHECKED = ("check_batched_grad", "check_batched_forward_grad", "check_grad_dtypes", "fast_mode", "masked")


class GradcheckError(TorchGradcheckError):
    """A backward that is not the gradient of its function: torch's error type, this harness's message."""


def _key(params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((n, np.asarray(v).tobytes()) for n, v in params.items()))


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _title(func: Callable[..., Any]) -> str:
    owner = getattr(func, "__self__", None)  # Square.apply: the Function's name, not "Function.apply"
    if isinstance(owner, type):
        return f"{owner.__name__}.{func.__name__}"
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__


#: Where the forward of a gradcheck's derivation is compiled: the tensors made beneath a frame of the forward's file
#: are the function's intermediates (reference.intermediates, the slip's quantities), and no frame of this name is
#: ever above it — the harness's calls that lead to the forward (this module's among them) are never taken for them.
FORWARD_FILE = "<verigrad.gradcheck: the function under check>"


def _forward_of(problem: _Problem) -> Callable[..., Any]:
    """``forward(xp, **params)`` of ``problem``'s derivation: f at the params, its code in FORWARD_FILE."""
    scope = {"value": problem.value}
    exec(compile("def forward(xp, **params):\n    return value(params)\n", FORWARD_FILE, "exec"), scope)
    return scope["forward"]


def _headline(problem: _Problem, report: Report) -> str:
    """Which outputs were contracted, and which inputs' backward is wrong, in torch's terms."""
    wrong = ", ".join(f"input {problem.names[g.param]} ({g.mismatches} of {g.entries} entries)" for g in report.failures)
    outs = ", ".join(map(str, problem.outs))
    return (
        f"verigrad.{problem.api}: the backward of {problem.title} is not the gradient of its function with respect to {wrong}; "
        f"output(s) {outs} contracted with fixed random upstream gradients (seed {UPSTREAM_SEED}), judged against finite differences"
    )


def _forward_headline(problem: _Problem, report: Report) -> str:
    wrong = ", ".join(f"output {g.param.removeprefix('output')} ({g.mismatches} of {g.entries} entries)" for g in report.failures)
    return (
        f"verigrad.gradcheck: the forward-mode derivative of {problem.title} is not the derivative of its function along v for "
        f"{wrong}; v a random direction of the inputs (seed {UPSTREAM_SEED}), judged against differences along v"
    )


class _Problem:
    """The function under check, taken apart: which inputs and outputs are differentiable, and the G_k."""

    def __init__(self, func: Callable[..., Any], inputs: Sequence[Any], *, inline: bool = True, api: str = "gradcheck") -> None:
        self.func, self.inputs = func, list(inputs)
        self.wrt = [i for i, x in enumerate(self.inputs) if isinstance(x, torch.Tensor) and x.requires_grad]
        if not self.wrt:
            raise ValueError("gradcheck: no input tensor requires grad; give at least one with requires_grad=True")
        for i in self.wrt:
            if self.inputs[i].is_complex() or not self.inputs[i].is_floating_point():
                raise ValueError(f"gradcheck: input {i} has dtype {self.inputs[i].dtype}; only real floating inputs are checked here")
        outs = _tuple(func(*[x.detach().requires_grad_(True) if i in self.wrt else x for i, x in enumerate(self.inputs)]))
        self.outs = [k for k, o in enumerate(outs) if isinstance(o, torch.Tensor) and o.requires_grad and o.is_floating_point()]
        for k, o in enumerate(outs):
            if isinstance(o, torch.Tensor) and o.is_complex():
                raise ValueError(f"gradcheck: output {k} is complex ({o.dtype}); only real outputs are checked here")
        rng = np.random.default_rng(UPSTREAM_SEED)
        self.upstream = {k: rng.standard_normal(tuple(outs[k].shape)) for k in self.outs}
        self.names = {f"input{i}": i for i in self.wrt}
        nodes = function_nodes([outs[k] for k in self.outs])
        self.functions = list(dict.fromkeys(node._forward_cls for node in nodes))
        self.may_inline = inline
        self.api = api  # which of ours the caller called, as the message's first word says
        #: The first backward's result at the point, where a nondeterministic backward is tolerated (``reentrant``).
        self.first: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}
        self.inline = self.functions if inline and len(nodes) == 1 and self._inlines(outs) else []

    @property
    def title(self) -> str:
        """``func``'s name, with the Functions its graph goes through where it is not one's ``apply`` itself."""
        name = _title(self.func)
        through = [c.__name__ for c in self.functions if not name.startswith(f"{c.__name__}.")]
        return f"{name} (through {', '.join(through)})" if through else name

    def _inlines(self, outs: Sequence[Any]) -> bool:
        """Whether the Function's forward, run as plain torch operations, gives the same outputs with a graph to the
        float64 inputs: autograd through it is then a witness of its own, a wrong backward is blamed on the analytic
        side and its slip searched; else autograd is the backward under test (blame ``graph``). Asked only of a graph
        with one Function node: where several are chained, the upstream gradient one backward is handed may be
        another's wrong result, and a line would be named in the wrong one."""
        if any(self.inputs[i].dtype != torch.float64 for i in self.wrt):
            # Below float64 the backward and autograd are computations in the coarse precision that round differently,
            # and the error model bounds analytic − autograd for float64 only.
            return False
        leaves = {n: self._leaf(n, self.inputs[i].detach().cpu().double().numpy()) for n, i in self.names.items()}
        try:
            with inlined(self.functions):
                again = _tuple(self.call(*self._args(leaves)))
            same = all(
                k < len(again)
                and isinstance(again[k], torch.Tensor)
                and again[k].requires_grad
                and again[k].shape == outs[k].shape
                and torch.equal(again[k].detach(), outs[k].detach())
                for k in self.outs
            )
            # Still through the Function: ``func`` calls it by a name bound before (``sparsemax = Sparsemax.apply``).
            if not same or function_nodes([again[k] for k in self.outs]):
                return False
            # Autograd must run back through the forward's operations (a graph saved before a write in place is kept as
            # it was saved: checks/torch_functions.py), and may still fail only here.
            outs_again = [again[k] for k in self.outs]
            torch.autograd.grad(outs_again, list(leaves.values()), [torch.ones_like(o) for o in outs_again], allow_unused=True)
        except Exception:  # user code: a forward that cannot run, or be differentiated, with a graph (in-place, say)
            return False
        return True

    def objective(self, params: dict[str, Any]) -> Any:
        """f = Σ_k ⟨G_k, out_k⟩ with the inputs of ``params`` (in their own dtype and device), a scalar in the
        outputs' precision: the finite differences are sized and judged for it (reference.torch_forward_unit)."""
        outs = _tuple(self.call(*self._args(params)))
        # One tensordot per output, added without a 0 first: the slip's reference quantities (the tensors the forward
        # makes) are then the function's own, with none of this contraction among them.
        terms = [
            torch.tensordot(torch.as_tensor(self.upstream[k], dtype=outs[k].dtype, device=outs[k].device), outs[k], dims=outs[k].dim())
            for k in self.outs
        ]
        if not terms:
            return torch.as_tensor(0.0, dtype=torch.float64)
        f = terms[0]
        for t in terms[1:]:
            f = f + t
        return f.cpu()

    def call(self, *args: Any) -> Any:
        """``func(*args)``; ``Cls.apply`` given as ``func`` is looked up at each call, so that ``inlined`` reaches it."""
        owner = getattr(self.func, "__self__", None)
        if isinstance(owner, type) and issubclass(owner, torch.autograd.Function) and getattr(self.func, "__name__", None) == "apply":
            return owner.apply(*args)
        return self.func(*args)

    def value(self, params: dict[str, Any]) -> Any:
        """f at ``params``, with the Functions' forwards inlined where they can be (``_inlines``)."""
        with inlined(self.inline):
            return self.objective(params)

    def gradients(self, **params: np.ndarray) -> dict[str, np.ndarray]:
        """∂f/∂input through ``func``'s backward (None as zeros), handed over in float64: autograd, the other exact
        witness, runs through the same backward in the same precision, so the two agree to their last bit, and the
        backward's precision is judged where it shows, against the finite differences sized for it. Where a
        nondeterministic backward is tolerated (``nondet_tol``: checks/backward_calls.py), every call at the point returns
        the first one's."""
        first = self.first.get(_key(params)) if self.first else None
        if first is not None:
            return {n: a.copy() for n, a in first.items()}
        leaves = {n: self._leaf(n, v) for n, v in params.items()}
        f = self.objective(leaves)
        grads = torch.autograd.grad(f, list(leaves.values()), allow_unused=True) if f.requires_grad else [None] * len(leaves)
        return {n: (np.zeros(t.shape) if g is None else g.detach().cpu().double().numpy()) for (n, t), g in zip(leaves.items(), grads, strict=True)}

    def _leaf(self, name: str, value: np.ndarray) -> Any:
        x = self.inputs[self.names[name]]
        return torch.tensor(value, dtype=x.dtype, device=x.device, requires_grad=True)

    def derivation(self) -> Derivation:
        shapes = {n: tuple(int(d) for d in self.inputs[i].shape) for n, i in self.names.items()}
        code = backward_code(self.inline[0]) if self.inline else None
        owner = getattr(self.func, "__self__", None)  # ``Cls.apply`` itself: input i is the backward's i-th gradient
        positions = dict(self.names) if owner in self.inline and getattr(self.func, "__name__", None) == "apply" else None
        gradients = self.gradients if code is None else BackwardOf(self.gradients, code, positions)
        return Derivation(name=f"{self.api} {self.title}", shapes=shapes, forward=_forward_of(self), gradients=gradients, namespaces=("torch",))

    def point(self) -> dict[str, np.ndarray]:
        return {n: self.inputs[i].detach().cpu().to(torch.float64).numpy().copy() for n, i in self.names.items()}

    def _args(self, params: dict[str, Any]) -> list[Any]:
        """The arguments of ``func``: ``params`` in the inputs' dtype and device (a tensor already so is passed as it is:
        a copy would stand between the input and its gradient among the slip's reference quantities)."""
        args = list(self.inputs)
        for name, i in self.names.items():
            x, v = self.inputs[i], params[name]
            same = isinstance(v, torch.Tensor) and v.dtype == x.dtype and v.device == x.device
            args[i] = v if same else torch.as_tensor(v).to(dtype=x.dtype, device=x.device)
        return args

    def outputs(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The differentiable outputs at ``params``, as float64 arrays (the differences along v are taken of them)."""
        with torch.no_grad():
            outs = _tuple(self.call(*self._args(params)))
        return {f"output{k}": outs[k].detach().cpu().double().numpy() for k in self.outs}

    def tangents(self, params: dict[str, np.ndarray], v: dict[str, np.ndarray]) -> dict[str, Any]:
        """J·v of each differentiable output by forward-mode AD through ``func`` (its Functions' ``jvp``), in the
        outputs' own dtype; GradcheckError (one line) where forward mode cannot run through it."""
        import torch.autograd.forward_ad as fwad

        args = self._args(params)
        try:
            with fwad.dual_level():
                for name, i in self.names.items():
                    args[i] = fwad.make_dual(args[i], torch.as_tensor(v[name]).to(dtype=args[i].dtype, device=args[i].device))
                outs = _tuple(self.call(*args))
                found = {k: fwad.unpack_dual(outs[k]).tangent for k in self.outs}
        except RuntimeError as e:  # user code: a Function without jvp, an op without a forward-mode formula
            raise GradcheckError(f"verigrad.gradcheck: forward-mode AD cannot run through {self.title}: {' '.join(str(e).split())}") from e
        return {f"output{k}": (np.zeros(tuple(outs[k].shape)) if t is None else t.detach().cpu().numpy()) for k, t in found.items()}


def _forward_mode(problem: _Problem) -> Report:
    """The verdict on ``func``'s forward-mode derivative along a random direction (seed UPSTREAM_SEED)."""
    params = problem.point()
    v = direction(params, list(params), np.random.default_rng(UPSTREAM_SEED))
    unit = max(*(float(torch.finfo(problem.inputs[i].dtype).eps) / 2 for i in problem.wrt), unit_roundoff(np.float64))
    total = sum(int(d) for x in params.values() for d in x.shape)
    reports = judge_tangents(problem.tangents(params, v), problem.outputs, params, v, total, unit=unit, seed=UPSTREAM_SEED)
    failing = [g for g in reports if g.status != PASS]
    differences = lambda w: {k: e.value for k, e in along(problem.outputs, params, w, np.random.default_rng(UPSTREAM_SEED), unit)[0].items()}
    op = Operator(lambda w: problem.tangents(params, w), differences, v, reports)
    for g in failing:
        if g.status == FAIL and g.problem is None:
            g.diagnosis = diagnose_jvp(op, g, np.random.default_rng(UPSTREAM_SEED + 1))
    return Report(
        name=f"forward mode of {problem.title}",
        status=FAIL if failing else PASS,
        gradients=reports,
        message=None if not failing else f"{failing[0].title}: {failing[0].mismatches} of {failing[0].entries} entries disagree",
    )


def _loosened(report: Report, atol: float | None, rtol: float | None) -> bool:
    """Whether the caller's atol/rtol accept every entry the error model rejected (torch's rule per entry)."""
    if report.status != FAIL or (atol is None and rtol is None):
        return False
    a_tol, r_tol = atol or 0.0, rtol or 0.0
    for g in report.failures:
        if g.analytic is None or g.reference is None:
            return False
        a, r = np.asarray(g.analytic, dtype=np.float64), np.asarray(g.reference, dtype=np.float64)
        if a.shape != r.shape or not np.all(np.abs(a - r) <= a_tol + r_tol * np.abs(r)):
            return False
    return True


def _unchecked(options: dict[str, Any]) -> None:
    asked = [k for k in NOT_CHECKED if options.get(k)]
    if asked:
        warnings.warn(
            f"verigrad.gradcheck does not perform {', '.join(asked)}: the backward is checked against finite differences only", stacklevel=3
        )


def gradcheck(
    func: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float | None = None,
    rtol: float | None = None,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_batched_forward_grad: bool = False,
    check_forward_ad: bool = False,
    check_backward_ad: bool = True,
    fast_mode: bool = False,
    masked: bool | None = None,
) -> bool:
    """True when ``func``'s backward is the gradient of ``func`` at ``inputs``; else ``GradcheckError`` (or False)."""
    _unchecked(
        {
            "check_forward_ad": check_forward_ad,
            "check_batched_grad": check_batched_grad,
            "fast_mode": fast_mode,
            "check_batched_forward_grad": check_batched_forward_grad,
            "check_grad_dtypes": check_grad_dtypes,
            "masked": masked,
        }
    )
    problem = _Problem(func, _tuple(inputs))
    return _verdict(problem, atol, rtol, raise_exception, check_forward_ad, check_backward_ad, nondet_tol, check_undefined_grad)


def _verdict(
    problem: _Problem,
    atol: float | None,
    rtol: float | None,
    raise_exception: bool,
    forward_ad: bool,
    backward_ad: bool,
    nondet_tol: float = 0.0,
    undefined_grad: bool = False,
    note: str | None = None,
) -> bool:
    """gradcheck's answer on ``problem``: True, False, or GradcheckError (the caller's stack frame two above), whose
    message ends with ``note`` where one is given."""
    try:
        failure = _forward_failure(problem) if forward_ad else None
        if failure is None and backward_ad:
            failure = _backward_failure(problem, atol, rtol, nondet_tol)
        if failure is None and backward_ad and undefined_grad:
            failure = undefined_grad_failure(problem.call, problem.inputs, problem.wrt, problem.outs, problem.title)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    if failure is None:
        return True
    if not raise_exception:
        return False
    if isinstance(failure, Report):
        located = _located_in_float64(problem, failure)
        failure = "\n".join([_headline(problem, failure), failure_text(failure), *located, *([note] if note else [])])
    raise GradcheckError(failure)


def _forward_failure(problem: _Problem) -> str | None:
    forward = _forward_mode(problem)
    return None if forward.status == PASS else _forward_headline(problem, forward) + "\n" + failure_text(forward)


def _backward_failure(problem: _Problem, atol: float | None, rtol: float | None, nondet_tol: float) -> str | Report | None:
    """Why the backward is not the gradient: a line (not reentrant), the failing report, or None where it passes or the
    caller's tolerances accept it (a warning says which)."""
    point = problem.point()
    not_reentrant, spread, first = reentrant(problem.gradients, point, problem.title, problem.names, nondet_tol)
    if not_reentrant is not None:
        return not_reentrant
    if first is not None:  # every later call at the point returns the first call's result
        problem.first = {_key(point): first}
    report = check(problem.derivation(), at=problem.point(), database=False)
    if report.status != PASS and problem.inline:
        # Checked again with the backward as autograd, finite differences alone deciding: where autograd through the
        # inlined forward is not the function's derivative (a part computed outside torch), and where it alone rejects
        # the backward by no more than an iterative forward's truncation (thresholds.ITERATION_CAP).
        inlined, inlined_report = problem.inline, report
        truncation = _within_iteration_cap(problem, report)
        if truncation is not None or any(g.blame != Blame.ANALYTIC for g in report.failures):
            problem.inline = []
            report = check(problem.derivation(), at=problem.point(), database=False)
        if truncation is not None and report.status == PASS:
            warnings.warn(
                f"verigrad.gradcheck: autograd through the forward of {problem.title} differs from its backward by up to "
                f"{truncation:.3g} ({ITERATION_CAP:.1e} of the gradient's scale at most: an iterative forward's truncation, "
                "not a formula's slip); the finite differences agree with the backward: passed",
                stacklevel=4,
            )
        elif truncation is not None:  # the differences confirm it: the slip is named through the inlined forward
            problem.inline, report = inlined, inlined_report
    nondeterministic = (
        f"the backward of {problem.title} is nondeterministic: two calls at the same point differ by up to {spread:.3g}, "
        f"within nondet_tol={nondet_tol:g}; judged on the first call's result"
    )
    if report.status == PASS:
        if spread > 0.0:
            warnings.warn(f"verigrad.gradcheck: {nondeterministic}", stacklevel=4)
        return None
    if spread > 0.0 and _loosened(report, nondet_tol, None):
        warnings.warn(f"verigrad.gradcheck: {nondeterministic}; the error model rejects it by no more than nondet_tol: accepted", stacklevel=4)
        return None
    if _loosened(report, atol, rtol):
        warnings.warn(
            f"verigrad.gradcheck: the error model rejects {report.name}'s backward; the given atol={atol}, rtol={rtol} accept it", stacklevel=4
        )
        return None
    return report


def _within_iteration_cap(problem: _Problem, report: Report) -> float | None:
    """The largest |backward − autograd through the inlined forward| where every failure is blamed on the backward by
    no more than ITERATION_CAP of the gradient's scale (max|t|, and the largest upstream gradient); else None."""
    if report.status != FAIL or not report.failures:
        return None
    scale = max((float(np.max(np.abs(g), initial=0.0)) for g in problem.upstream.values()), default=0.0)
    worst = 0.0
    for g in report.failures:
        if g.blame != Blame.ANALYTIC or g.analytic is None or g.reference is None:
            return None
        a, t = np.asarray(g.analytic, dtype=np.float64), np.asarray(g.reference, dtype=np.float64)
        err = float(np.max(np.abs(a - t), initial=0.0))
        if a.shape != t.shape or not err <= ITERATION_CAP * max(scale, float(np.max(np.abs(t), initial=0.0))):
            return None
        worst = max(worst, err)
    return worst


def _located_in_float64(problem: _Problem, report: Report) -> list[str]:
    """Where a backward judged below float64 (blame ``graph``: no line named) runs in float64 too, its slips found there,
    with its Function's forward inlined (its rounding then within the error model), as lines of the message."""
    if (
        not problem.may_inline
        or problem.inline
        or all(problem.inputs[i].dtype == torch.float64 for i in problem.wrt)
        or any(g.blame != Blame.GRAPH for g in report.failures)
    ):
        return []
    wide = [
        x.detach().double().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in problem.inputs
    ]
    try:
        again = _Problem(problem.func, wide)
    except Exception:  # user code: a function that runs in its own precision only
        return []
    if not again.inline:
        return []
    lines: dict[str, str] = {}  # one line per slip: gradients that inherit it share its sentence
    for g in check(again.derivation(), at=again.point(), database=False).failures:
        if g.blame == Blame.ANALYTIC and g.slip is not None:
            lines.setdefault(g.slip.sentence, f"in float64 (the inputs widened, autograd through the forward a witness): slip: {g.slip.sentence}")
    return list(lines.values())


def gradgradcheck(
    func: Callable[..., Any],
    inputs: Any,
    grad_outputs: Any = None,
    *,
    eps: float = 1e-6,
    atol: float | None = None,
    rtol: float | None = None,
    gen_non_contig_grad_outputs: bool = False,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_fwd_over_rev: bool = False,
    check_rev_over_rev: bool = True,
    fast_mode: bool = False,
    masked: bool = False,
) -> bool:
    """``gradcheck`` of the backward itself: (inputs, grad_outputs) ↦ ∂⟨grad_outputs, func(inputs)⟩/∂inputs."""
    if not check_rev_over_rev:
        return True
    inputs = _tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.requires_grad]
    outs = [o for o in _tuple(func(*inputs)) if isinstance(o, torch.Tensor) and o.requires_grad and o.is_floating_point()]
    if grad_outputs is None:
        gen = torch.Generator().manual_seed(UPSTREAM_SEED)
        grad_outputs = [torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device) for o in outs]
    grad_outputs = [g.detach().requires_grad_(True) for g in _tuple(grad_outputs)]
    n = len(inputs)

    def backward_of(*args: Any) -> tuple[Any, ...]:
        # Evaluated for its value alone (finite differences, or with forward-mode tangents), an input is a fresh leaf: the
        # backward needs a graph. A clone, not a detached copy: it keeps the tangent of a forward-over-reverse check.
        args = tuple(x.clone().requires_grad_(True) if i in wrt and not x.requires_grad else x for i, x in enumerate(args))
        with torch.enable_grad():
            outs_now = [o for o in _tuple(func(*args[:n])) if isinstance(o, torch.Tensor) and o.requires_grad and o.is_floating_point()]
            grads = torch.autograd.grad(outs_now, [args[i] for i in wrt], args[n:], create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    backward_of.__qualname__ = f"{_title(func)}'s backward"  # "the backward of Cls.apply's backward": its double backward
    _unchecked({"check_batched_grad": check_batched_grad, "fast_mode": fast_mode, "check_grad_dtypes": check_grad_dtypes, "masked": masked})
    # Not inlined: the backward under check is differentiated as the caller wrote it, its own forwards included.
    problem = _Problem(backward_of, (*inputs, *grad_outputs), inline=False, api="gradgradcheck")
    note = saved_without_graph(outs, inputs)
    return _verdict(problem, atol, rtol, raise_exception, check_fwd_over_rev, True, nondet_tol, check_undefined_grad, note)
