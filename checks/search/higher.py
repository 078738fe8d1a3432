"""Second order and forward mode in a check: a derivation's ``hvp=`` and ``jvp=`` judged at some of the check's points.

At a given point (``at=``) or a replayed one, there; in a search, at the point the report's figures were taken and
at HIGHER_POINTS more points of random sizes (the run's seed draws them), smallest first. Each product keeps its
first failing point (the smallest), else its largest passing one; the direction v is drawn from the point's seed, so
a replay of the point sees the same products; a failing H·v or J·v is diagnosed there
(checks/diagnose/second_order.py) and carries that point's replay command. The products' verdicts are appended to
the report's gradients (``GradientReport.quantity``) and fail it as a gradient does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose.second_order import diagnose_hvp, diagnose_jvp
from verigrad.checks.report import FAIL, PASS, Diagnosis, GradientReport, Kind, Point, Quantity, Report, Status
from verigrad.checks.search.inputs import bound_for, counterexample_of
from verigrad.checks.search.usercode import raised_in_user_code
from verigrad.checks.verdict.second_order import Operator, hvp_at, jvp_at
from verigrad.reference import seeded_at

__all__ = ["HIGHER_POINTS", "higher_orders", "search_points", "wants_higher"]

#: Points of random sizes the products are checked at in a search, besides the report's own (a count of work).
HIGHER_POINTS = 3


def wants_higher(d: Derivation) -> bool:
    return d.hvp is not None or d.jvp is not None


def _sizes(d: Derivation, rng: np.random.Generator) -> dict[str, int] | None:
    for _ in range(100):
        sizes = {s: int(rng.integers(d.dim_range(s)[0], d.dim_range(s)[1] + 1)) for s in d.symbols}
        if d.valid_sizes(sizes):
            return sizes
    return None


def search_points(report: Report, seed: int, draw: Callable[[dict[str, int], int], Point | Report], d: Derivation) -> list[Point]:
    rng = np.random.default_rng([seed, 2])
    wanted = [] if report.point_seed is None else [(dict(report.shapes), int(report.point_seed))]
    for _ in range(HIGHER_POINTS):
        sizes = _sizes(d, rng)
        if sizes is not None:
            wanted.append((sizes, int(rng.integers(2**32))))
    points = [p for p in (draw(s, k) for s, k in wanted) if isinstance(p, Point)]
    return sorted(points, key=lambda p: sum(np.size(x) for x in p.params.values()))


def _at(d: Derivation, point: Point, trusted: bool, seed: int, device: str) -> list[Operator]:
    seed = seed if point.seed is None else point.seed  # the direction v is the point's: a replay sees the same
    d = bound_for(d, point)  # the point's data and hyperparameters handed to every call, hvp and jvp among them
    with seeded_at(point.seed):
        ops = [hvp_at(d, point, trusted=trusted, seed=seed, device=device)] if d.hvp is not None else []
        if d.jvp is not None:
            ops.append(jvp_at(d, point, seed=seed, device=device))
    return ops


def _diagnosis(d: Derivation, op: Operator, g: GradientReport, point: Point, seed: int) -> Diagnosis:
    try:
        with seeded_at(point.seed):
            diagnose = diagnose_hvp if g.quantity == Quantity.HVP else diagnose_jvp
            return diagnose(op, g, np.random.default_rng(seed + 1))
    except Exception as e:  # user code failed along another direction: the verdict stands (a harness bug propagates)
        if not raised_in_user_code(d, e):
            raise
        return Diagnosis(Kind.UNKNOWN, f"{g.title}: the diagnosis could not be made ({type(e).__name__}: {e})", {}, 0)


def higher_orders(
    d: Derivation,
    report: Report,
    points: list[Point],
    trusted: Callable[[Point], bool],
    replay: Callable[[Point], str | None],
    *,
    seed: int = 0,
    device: str = "cpu",
) -> None:
    """The verdicts on ``d``'s hand-derived products at ``points``, appended to ``report`` (module docstring)."""
    kept: dict[tuple[Quantity, str], GradientReport] = {}
    for point in points:
        for op in _at(d, point, trusted(point), seed, device):
            for g in op.reports:
                key = (g.quantity, g.param)
                if key in kept and kept[key].status != PASS:
                    continue
                g.warnings.extend(op.notes)
                if point.seed is not None:
                    g.counterexample = {**counterexample_of(point), "replay": replay(point)}
                if g.status == FAIL and g.problem is None:
                    g.diagnosis = _diagnosis(d, op, g, point, seed)
                kept[key] = g
    report.gradients.extend(kept.values())
    failed = [g for g in kept.values() if g.status != PASS]
    if failed and report.status == PASS:
        first = failed[0]
        report.status = FAIL if any(g.status == FAIL for g in failed) else Status.ERROR
        report.message = (
            first.message or f"{first.title}: {first.mismatches} of {first.entries} entries disagree (max abs err {first.max_abs_err:.3g})"
        )
