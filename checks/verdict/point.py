"""One point, three witnesses, one verdict per gradient (the judgement: checks/verdict/judge.py;
thresholds: checks/verdict/thresholds.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import FAIL, GradientReport, Point, Report
from verigrad.checks.verdict.before import (
    Checked,
    Prepared,
    blank_report,
    checked_with,
    conclude,
    error_report,
    forward_problem,
    inner_length,
    judge_param,
    name_graph_cause,
    numpy_forward_problem,
    torch_agrees,
    torch_problem,
)
from verigrad.checks.verdict.calls import check_inputs, global_draw_notes
from verigrad.checks.verdict.fd_only import one_namespace
from verigrad.checks.verdict.judge import clean, judge_at_point, mark_unmeasured, refine_where_autograd_disagrees
from verigrad.checks.verdict.noise import autograd_noise, with_analytic_noise, with_line_noise
from verigrad.checks.verdict.references import fits_one_call, stacked_references
from verigrad.reference import (
    GENERATORS,
    BatchedObjective,
    FDEstimate,
    ForwardError,
    Stack,
    Unstackable,
    autograd_gradients,
    finite_differences,
    line_autograd,
    seeded_at,
)

__all__ = ["check_point", "evaluate", "inner_length", "prepare", "seeded", "with_references"]


def _notes(derivation: Derivation, analytic: Mapping[str, Any] | None, unused: list[str]) -> list[str]:
    """Warnings about the derivation at this point: parameters the forward ignores, unknown gradient keys."""
    out = [f"the forward does not depend on parameter {n}: its gradient is identically 0" for n in unused if n in derivation.check]
    extra = sorted(set(analytic or ()) - set(derivation.params))
    if extra:
        out.append(f"gradients returned unknown key(s) {', '.join(map(repr, extra))}, ignored")
    return out


def check_point(derivation: Derivation, point: Point, *, mode: str, torch_later: bool = False) -> Checked | Report:
    """The checks every mode shares before the references: inputs, a finite deterministic forward that
    leaves its inputs alone, the analytic gradients called twice. A Report if one fails. ``torch_later``: the
    forward's value under torch is left to the stack of one, whose unperturbed row is that evaluation
    (``stack_of_one``; ``torch_problem`` where the stack cannot serve)."""
    started = time.perf_counter()
    rep = blank_report(derivation, point, mode)
    bad_input = check_inputs(derivation, point)
    if bad_input:
        return error_report(rep, bad_input, started)
    if (alone := one_namespace(derivation, point)) is not None:  # a forward that runs under NumPy or torch only
        return alone
    return checked_with(derivation, point, rep, started, numpy_forward_problem if torch_later else forward_problem)


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


def _batches(derivation: Derivation, progress) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    label = f"{derivation.name}: finite differences"
    return lambda done, planned: progress(label, done, planned, "forward evaluations")


def _judged(derivation: Derivation, c: Checked, grads: list[GradientReport], evaluations: int) -> Report:
    """The report at the point from its gradients' verdicts."""
    c.rep.evaluations = evaluations
    c.rep.gradients.extend(grads)
    name_graph_cause(derivation, c.params, c.grad_output, c.rep)
    return conclude(c.rep, c.started)


def stack_of_one(derivation: Derivation, point: Point, c: Checked, fd_seed: int, progress, *, noise: bool = False) -> Report | None:
    """The verdict at the point from a stack of one (checks/verdict/references.py), as the search's points
    get theirs; None where the stack cannot serve it (``Unstackable``; finite differences beyond one batched
    call; a batched forward that does not reproduce f in NumPy): the caller checks it alone.

    Judged with σ = 0 first: where every gradient passes clean, σ cannot change the verdict and is not
    measured (``noise``: measure it all the same); the gradients say so and can measure it later (``remeasure``)."""
    stack = Stack(derivation, [c.params], [c.grad_output] if derivation.is_layer else None)
    if not fits_one_call(stack, derivation.check):
        return None
    try:
        refs = stacked_references(derivation, stack, [_measurable(c)], fd_seed)
    except Unstackable:
        return None
    if not refs.agrees(np.array([c.f0]))[0] or not torch_agrees(c.f0, float(refs.f0[0])):
        return None
    fd = {n: FDEstimate(e.value[0], e.error[0], e.step[0], e.nondifferentiable[0], e.refined[0]) for n, e in refs.fd.items()}
    at = lambda values: {n: v[0] for n, v in values.items()}
    judge = lambda sigma: _judge_all(derivation, c, at(refs.auto), sigma, fd)
    grads = None if noise else judge(dict.fromkeys(derivation.check, 0.0))
    if grads is None or not all(clean(g) for g in grads):
        try:
            grads = judge(at(refs.measure_noise()))
            if any(g.status == FAIL for g in grads):  # the rounding along lines where the jitter's does not suffice:
                lined = stacked_references(derivation, stack, [_measurable(c)], fd_seed, line=True)  # ε_f's: the differences again
                refs = replace(lined, auto=refs.auto, sigma=refs.sigma)  # the jitter's σ as measured, at the same copies
                fd = {n: FDEstimate(e.value[0], e.error[0], e.step[0], e.nondifferentiable[0], e.refined[0]) for n, e in refs.fd.items()}
                grads = judge(at(refs.measure_line_noise([0])))  # and σ's
        except Unstackable:
            return None
    else:
        mark_unmeasured(grads, lambda: _measured(derivation, point, refs, judge, fd_seed))
    c.rep.warnings.extend(_notes(derivation, c.analytic, []))  # a parameter the forward ignores is Unstackable
    evaluations = int(refs.evaluations[0])
    batches = _batches(derivation, progress)
    if batches is not None:
        batches(evaluations, 2 * sum(np.size(c.params[n]) for n in derivation.check))
    return _judged(derivation, c, grads, evaluations)


def _judge_all(derivation: Derivation, c: Checked, auto, sigma, fd: Mapping[str, FDEstimate]) -> list[GradientReport]:
    """Every checked gradient judged at the point: together (judge.judge_at_point), or each failing where
    the gradients raised."""
    if c.raised is not None:
        prep = Prepared(**vars(c), auto=auto, sigma=sigma)
        return [judge_param(prep, n, fd[n]) for n in derivation.check]
    return judge_at_point([(n, c.analytic.get(n), auto[n], fd[n], sigma[n]) for n in derivation.check], c.total_dims)


def _measured(derivation: Derivation, point: Point, refs, judge, fd_seed: int) -> list[GradientReport]:
    """The gradients at ``point`` judged again with σ measured; checked again alone, σ included, where the
    forward has no double backward (as it was checked before σ waited for a verdict to need it)."""
    try:
        with seeded_at(point.seed):
            return judge({n: v[0] for n, v in refs.measure_noise().items()})
    except Unstackable:
        return evaluate(derivation, point, fd_seed=fd_seed, noise=True).gradients


def seeded(point: Point, run: Callable[[], Report]) -> Report:
    """``run()``'s report at ``point`` with every call of user code preceded by seeding the global random
    generators from the point's seed (reference.seeded_at), and a note for each one the code drew from."""
    with seeded_at(point.seed) as drawn:
        rep = run()
    rep.global_generators = [g for g in GENERATORS if g in drawn]
    rep.warnings.extend(global_draw_notes(rep.global_generators))
    return rep


def evaluate(derivation: Derivation, point: Point, *, fd_seed: int = 0, device: str = "cpu", progress=None, noise: bool = False) -> Report:
    """Check ``derivation`` at one point with all three witnesses, every entry by finite differences: as a
    stack of one where it can (``stack_of_one``; σ measured where a verdict needs it, or ``noise``), else
    alone (reference.finite_differences). The global generators are seeded from the point's seed before
    every call of user code (``seeded``)."""
    return seeded(point, lambda: _evaluate(derivation, point, fd_seed=fd_seed, device=device, progress=progress, noise=noise))


def _evaluate(derivation: Derivation, point: Point, *, fd_seed: int, device: str, progress, noise: bool) -> Report:
    on_cpu = device == "cpu"
    c = check_point(derivation, point, mode="exhaustive", torch_later=on_cpu)
    if isinstance(c, Report):
        return c
    if on_cpu:
        rep = stack_of_one(derivation, point, c, fd_seed, progress, noise=noise)
        if rep is not None:
            return rep
        if torch_problem(derivation, c.params, c.grad_output, c.f0) is not None:  # the report the checks in order give
            return check_point(derivation, point, mode="exhaustive")
    prep = with_references(derivation, point, c, seed=fd_seed, device=device)
    if isinstance(prep, Report):
        return prep
    refine = refine_where_autograd_disagrees(prep.auto)

    def differenced(line: bool):
        ev = BatchedObjective(derivation, prep.params, prep.grad_output, f0=prep.f0)
        return finite_differences(
            derivation, prep.params, prep.grad_output, refine=refine, seed=fd_seed, evaluator=ev, progress=_batches(derivation, progress), line=line
        )

    try:
        fd = differenced(False)
    except ForwardError as e:
        return error_report(prep.rep, str(e), prep.started)
    evaluations = fd.evaluations
    grads = _judge_all(derivation, prep, prep.auto, prep.sigma, fd.gradients)
    if any(g.status == FAIL for g in grads):  # the rounding along lines where the jitter's does not suffice (§2, §4)
        try:
            lined = differenced(True)
            line = line_autograd(derivation, prep.params, prep.grad_output, np.random.default_rng(fd_seed).spawn(1)[0], device=device)
        except ForwardError:  # the forward fails somewhere along the lines: the verdict with the jitter's rounding stands
            return _judged(derivation, prep, grads, evaluations)
        fd, evaluations = lined, evaluations + lined.evaluations
        prep.sigma = with_line_noise(derivation, prep.sigma, _measurable(prep), prep.auto, *line)
        grads = _judge_all(derivation, prep, prep.auto, prep.sigma, fd.gradients)
    return _judged(derivation, prep, grads, evaluations)
