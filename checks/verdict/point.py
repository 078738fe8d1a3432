"""One point, three witnesses, one verdict per gradient (the judgement: checks/verdict/judge.py;
thresholds: checks/verdict/thresholds.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import ERROR, FAIL, PASS, Blame, GradientReport, Point, Problem, Report
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.calls import (
    call_gradients,
    changed_in_place,
    check_inputs,
    copies,
    forward_mutation_warnings,
    global_draw_notes,
    mutation_warnings,
    nondeterministic,
)
from verigrad.checks.verdict.judge import judge_point, refine_where_autograd_disagrees
from verigrad.checks.verdict.noise import autograd_noise, with_analytic_noise
from verigrad.checks.verdict.references import fits_one_call, stacked_references
from verigrad.reference import (
    GENERATORS,
    NUMPY,
    BatchedObjective,
    FDEstimate,
    ForwardError,
    Stack,
    Unstackable,
    autograd_gradients,
    custom_functions,
    finite_differences,
    forward_value_in,
    forward_value_torch,
    seeded_at,
)


def error_report(rep: Report, message: str, started: float) -> Report:
    """``rep`` as an error with one line saying why the point could not be checked."""
    rep.status = ERROR
    rep.message = message
    rep.duration_s = time.perf_counter() - started
    return rep


def inner_length(derivation: Derivation, sizes: Mapping[str, int]) -> int:
    """L of τ_ex: the sum of all dims, symbolic (expression dims included) and fixed (a bound on the forward's
    inner-product lengths)."""
    return sum(derivation.all_sizes(sizes).values()) + sum(d for s in derivation.shapes.values() for d in s if isinstance(d, int))


@dataclass
class Checked:
    """A point that every check before the references passed: its arrays, the analytic gradients (or the
    exception they raised), L of τ_ex and f at the point in NumPy (deterministic: the same value every time)."""

    rep: Report
    started: float
    params: dict[str, np.ndarray]
    grad_output: np.ndarray | None
    analytic: dict[str, Any] | None
    raised: str | None
    total_dims: int
    f0: float


@dataclass
class Prepared(Checked):
    """What every mode needs before differencing: the checked point, autograd and its rounding noise σ."""

    auto: dict[str, np.ndarray]
    sigma: dict[str, Any]


def forward_problem_in(
    derivation: Derivation, namespace: str, params: dict[str, np.ndarray], g_out, written: list[str] | None = None
) -> tuple[float | None, str | None]:
    """(f at the point, None), or (None, why the forward cannot be a witness there): it raises, is not finite,
    or not deterministic — all in ``namespace``. The arguments it writes into are added to ``written``: every
    evaluation hands it copies, so it is judged on its values all the same."""
    try:
        args = copies(params)
        f1 = forward_value_in(derivation, namespace, args, g_out)
        if written is not None:
            written.extend(changed_in_place(params, args))
        again = [forward_value_in(derivation, namespace, copies(params), g_out) for _ in range(tol.DETERMINISM_REPEATS)]
    except ForwardError as e:
        return None, str(e)
    if not np.isfinite(f1):
        return None, f"forward is not finite at the point (f = {f1})"
    differs = [f for f in again if f != f1]
    if differs:
        return None, f"forward is not deterministic: evaluations at the same point gave {f1!r} and {differs[0]!r}"
    return f1, None


def forward_problem(
    derivation: Derivation, params: dict[str, np.ndarray], g_out: np.ndarray | None, written: list[str] | None = None
) -> tuple[float | None, str | None]:
    """(f at the point in NumPy, None), or (None, why the forward cannot be a witness there): as
    ``forward_problem_in`` NumPy, and the same value under torch."""
    f1, problem = forward_problem_in(derivation, NUMPY, params, g_out, written)
    if problem:
        return None, problem
    try:
        f_torch = forward_value_torch(derivation, params, g_out)
    except ForwardError as e:
        return None, str(e)
    if not abs(f_torch - f1) <= tol.BACKEND_RTOL * max(abs(f1), abs(f_torch)):
        return None, (
            f"forward gives {f1!r} under NumPy but {f_torch!r} under torch at the same point: it is not deterministic,"
            " or it depends on the array library"
        )
    return f1, None


def _notes(derivation: Derivation, analytic: Mapping[str, Any] | None, unused: list[str]) -> list[str]:
    """Warnings about the derivation at this point: parameters the forward ignores, unknown gradient keys."""
    out = [f"the forward does not depend on parameter {n}: its gradient is identically 0" for n in unused if n in derivation.check]
    extra = sorted(set(analytic or ()) - set(derivation.params))
    if extra:
        out.append(f"gradients returned unknown key(s) {', '.join(map(repr, extra))}, ignored")
    return out


def blank_report(derivation: Derivation, point: Point, mode: str) -> Report:
    """A passing report of ``derivation`` at ``point`` with nothing judged yet (the point's notes as warnings)."""
    rep = Report(name=derivation.name, status=PASS, shapes=dict(point.sizes), point_seed=point.seed, examples=1, points=1, mode=mode)
    rep.warnings.extend(point.notes)
    return rep


def check_point(derivation: Derivation, point: Point, *, mode: str) -> Checked | Report:
    """The checks every mode shares before the references: inputs, a finite deterministic forward that
    leaves its inputs alone, the analytic gradients called twice. A Report if one fails."""
    started = time.perf_counter()
    rep = blank_report(derivation, point, mode)
    bad_input = check_inputs(derivation, point)
    if bad_input:
        return error_report(rep, bad_input, started)
    from verigrad.checks.verdict.fd_only import one_namespace  # here: fd_only builds on this module

    if (alone := one_namespace(derivation, point)) is not None:  # a forward that runs under NumPy or torch only
        return alone
    return checked_with(derivation, point, rep, started, forward_problem)


#: (derivation, params, grad_output, written) -> (f, problem), as ``forward_problem``.
ForwardCheck = Callable[[Derivation, dict[str, np.ndarray], Any, list[str]], tuple[float | None, str | None]]


def checked_with(derivation: Derivation, point: Point, rep: Report, started: float, forward_check: ForwardCheck) -> Checked | Report:
    """The forward checked as a witness by ``forward_check`` (``forward_problem``, or ``forward_problem_in`` one
    namespace), then the analytic gradients: a warning if either wrote into its arguments (both are judged on
    their values: they are handed copies), an error if the gradients are not a function of the point."""
    params = copies(point.params)
    g_out = None if point.grad_output is None else np.array(point.grad_output, dtype=np.float64)
    written: list[str] = []
    f0, problem = forward_check(derivation, params, g_out, written)
    rep.forward_modified_in_place = list(dict.fromkeys(written))
    rep.warnings.extend(forward_mutation_warnings(rep.forward_modified_in_place))
    if problem:
        return error_report(rep, problem, started)
    analytic, raised, modified = call_gradients(derivation, point)
    rep.modified_in_place = list(modified)
    rep.warnings.extend(mutation_warnings(modified))  # judged all the same: they were handed copies
    if raised is None and analytic is not None and (changing := nondeterministic(derivation, point, analytic)):
        return error_report(rep, changing, started)
    return Checked(rep, started, params, g_out, analytic, raised, inner_length(derivation, point.sizes), f0)


def _measurable(c: Checked) -> dict[str, Any] | None:
    """The analytic gradients whose own rounding noise σ_a joins σ (none when they raised)."""
    return c.analytic if c.analytic is not None and c.raised is None else None


def with_references(derivation: Derivation, point: Point, c: Checked, *, seed: int = 0, device: str = "cpu") -> Prepared | Report:
    """``c`` with autograd and its rounding noise, one point alone (reference.autograd_gradients and
    reference.rounding_noise): where a stack cannot run, and for projection mode. A Report if the forward fails."""
    try:
        unused: list[str] = []
        auto = autograd_gradients(derivation, c.params, c.grad_output, unused=unused, device=device)
        probes: list = []
        sigma = autograd_noise(derivation, point, np.random.default_rng(seed), device, probes, at_base=auto)
    except ForwardError as e:
        return error_report(c.rep, str(e), c.started)
    analytic = _measurable(c)
    if analytic is not None:
        sigma = with_analytic_noise(derivation, sigma, analytic, probes, auto)
    c.rep.warnings.extend(_notes(derivation, c.analytic, unused))
    return Prepared(**vars(c), auto=auto, sigma=sigma)


def prepare(derivation: Derivation, point: Point, *, mode: str, seed: int = 0, device: str = "cpu") -> Prepared | Report:
    """``check_point``, then ``with_references``: the checks every mode shares, and autograd with its
    rounding noise. A Report if one fails."""
    c = check_point(derivation, point, mode=mode)
    return c if isinstance(c, Report) else with_references(derivation, point, c, seed=seed, device=device)


def judge_param(prep: Prepared, name: str, fd: FDEstimate) -> GradientReport:
    """The verdict on one parameter given its finite-difference estimate (all entries, or some)."""
    auto = prep.auto[name]
    if prep.raised is not None:
        g = GradientReport(param=name, status=FAIL, blame=Blame.ANALYTIC, entries=int(auto.size))
        g.message, g.problem, g.raised = f"gradients raised {prep.raised}", Problem.RAISED, prep.raised
        g.reference = auto
        g.nondiff_mask = fd.nondifferentiable
        return g
    return judge_point(name, prep.analytic.get(name), auto, fd, prep.sigma[name], prep.total_dims)


def name_graph_cause(derivation: Derivation, params: dict[str, np.ndarray], grad_output, rep: Report) -> None:
    """Each gradient blamed on the graph says what in the forward's torch graph can make it differ from the function."""
    wrong = [g for g in rep.gradients if g.blame == Blame.GRAPH]
    if not wrong:
        return
    try:
        names = custom_functions(derivation, params, grad_output)
    except ForwardError:  # it ran at this point before; nothing more to say if it does not now
        return
    if names:
        cause = (f"the forward's torch graph goes through torch.autograd.Function {', '.join(names)}:"
                 " its hand-written backward is the suspect")
    else:
        cause = ("no custom torch.autograd.Function is in the forward's torch graph: a value taken out of the graph"
                 " (float(), .item(), .detach(), a NumPy round trip) is the suspect: autograd sees a constant where the function varies")
    for g in wrong:
        g.warnings.append(cause)


def conclude(rep: Report, started: float) -> Report:
    """The derivation's status and one-line message from its gradients' verdicts."""
    failures = rep.failures
    if failures:
        rep.status = FAIL
        first = failures[0]
        rep.message = first.message or (
            f"∂f/∂{first.param}: {first.mismatches} of {first.entries} entries disagree (max abs err {first.max_abs_err:.3g})"
        )
    rep.duration_s = time.perf_counter() - started
    return rep


def _batches(derivation: Derivation, progress) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    label = f"{derivation.name}: finite differences"
    return lambda done, planned: progress(label, done, planned, "forward evaluations")


def _judged(derivation: Derivation, prep: Prepared, fd: Mapping[str, FDEstimate], evaluations: int) -> Report:
    prep.rep.evaluations = evaluations
    prep.rep.gradients.extend(judge_param(prep, name, fd[name]) for name in derivation.check)
    name_graph_cause(derivation, prep.params, prep.grad_output, prep.rep)
    return conclude(prep.rep, prep.started)


def stack_of_one(derivation: Derivation, c: Checked, fd_seed: int, progress) -> Report | None:
    """The verdict at the point from a stack of one (checks/verdict/references.py), as the search's points
    get theirs; None where the stack cannot serve it (``Unstackable``; finite differences beyond one batched
    call; a batched forward that does not reproduce f in NumPy): the caller checks it alone."""
    stack = Stack(derivation, [c.params], [c.grad_output] if derivation.is_layer else None)
    if not fits_one_call(stack, derivation.check):
        return None
    try:
        refs = stacked_references(derivation, stack, [_measurable(c)], fd_seed)
    except Unstackable:
        return None
    if not refs.agrees(np.array([c.f0]))[0]:
        return None
    auto, sigma, fd = refs.at(0)
    c.rep.warnings.extend(_notes(derivation, c.analytic, []))  # a parameter the forward ignores is Unstackable
    evaluations = int(refs.evaluations[0])
    batches = _batches(derivation, progress)
    if batches is not None:
        batches(evaluations, 2 * sum(np.size(c.params[n]) for n in derivation.check))
    return _judged(derivation, Prepared(**vars(c), auto=auto, sigma=sigma), fd, evaluations)


def seeded(point: Point, run: Callable[[], Report]) -> Report:
    """``run()``'s report at ``point`` with every call of user code preceded by seeding the global random
    generators from the point's seed (reference.seeded_at), and a note for each one the code drew from."""
    with seeded_at(point.seed) as drawn:
        rep = run()
    rep.global_generators = [g for g in GENERATORS if g in drawn]
    rep.warnings.extend(global_draw_notes(rep.global_generators))
    return rep


def evaluate(derivation: Derivation, point: Point, *, fd_seed: int = 0, device: str = "cpu", progress=None) -> Report:
    """Check ``derivation`` at one point with all three witnesses, every entry by finite differences: as a
    stack of one where it can (``stack_of_one``), else alone (reference.finite_differences). The global
    generators are seeded from the point's seed before every call of user code (``seeded``)."""
    return seeded(point, lambda: _evaluate(derivation, point, fd_seed=fd_seed, device=device, progress=progress))


def _evaluate(derivation: Derivation, point: Point, *, fd_seed: int, device: str, progress) -> Report:
    c = check_point(derivation, point, mode="exhaustive")
    if isinstance(c, Report):
        return c
    if device == "cpu":
        rep = stack_of_one(derivation, c, fd_seed, progress)
        if rep is not None:
            return rep
    prep = with_references(derivation, point, c, seed=fd_seed, device=device)
    if isinstance(prep, Report):
        return prep
    refine = refine_where_autograd_disagrees(prep.auto)
    try:
        ev = BatchedObjective(derivation, prep.params, prep.grad_output, f0=prep.f0)
        batches = _batches(derivation, progress)
        fd = finite_differences(derivation, prep.params, prep.grad_output, refine=refine, seed=fd_seed, evaluator=ev, progress=batches)
    except ForwardError as e:
        return error_report(prep.rep, str(e), prep.started)
    return _judged(derivation, prep, fd.gradients, fd.evaluations)
