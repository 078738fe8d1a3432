"""What the search has judged of each gradient: one it never judged is an error, not a pass.

A verdict at a point says something about the hand-derived values of ∂f/∂p only where some entry of the
reference exceeds τ_ex (checks/verdict/judge.py, ``judged``): where the reference is exactly 0 at every
entry, or underflows below τ_ex's floor, any gradient within τ_ex of 0 passes, right or wrong. A search
that drew only such points for a parameter has judged nothing of its gradient, and says so.

A passing gradient is shown at the most demanding point the search judged it at: the one where its largest
error came closest to its threshold (``demand``), kept as the points are seen, so it costs no evaluation.
A tie (every judged point matched exactly, say) keeps the point with most entries, then the first seen.

The search reports one point, but gradients (or a forward) that write into their arguments may do so at some
points only (``dx[x <= 0] = 0`` changes nothing where x > 0): the warning of every point that showed it is
carried into the report (``carry_warnings``, for each field of ``calls.CARRIED``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from verigrad.checks.report import GradientReport, Point, Report, Status
from verigrad.checks.verdict import demand, judged
from verigrad.checks.verdict.calls import CARRIED


@dataclass
class Coverage:
    """Per parameter, over every point the search checked: whether some verdict judged its values, and
    whether some reference entry was finite and not 0 (told apart: a zero reference from an underflowing one),
    and the most demanding point at which it passed and was judged.

    A gradient that passed with σ = 0 (``GradientReport.remeasure``) has a smaller τ_ex than it would have with σ:
    its demand and ``judged`` are upper bounds. "Was it judged" is answered as σ measured at every point would
    answer it: σ is measured at such a point as it is seen, until one judges the gradient; the point shown is the
    one of largest bound, measured there (``most_demanding``)."""

    judged: set[str] = field(default_factory=set)
    nonzero: set[str] = field(default_factory=set)
    points: int = 0
    modified_in_place: list[str] = field(default_factory=list)  # the arguments the gradients wrote into, at some point
    forward_modified_in_place: list[str] = field(default_factory=list)  # ... and the forward
    global_generators: list[str] = field(default_factory=list)  # the global generators the code drew from
    #: Per parameter: ((demand, entries), order seen) of the most demanding judged pass so far, its report and its point.
    demanding: dict[str, tuple[tuple[float, int], int, GradientReport, Point | None]] = field(default_factory=dict)
    #: Per parameter: the pass judged with σ = 0 of largest bound, where it is above ``demanding``'s. One is kept: a pass
    #: that waits for σ holds its stack's references (``GradientReport.remeasure``).
    pending: dict[str, tuple[tuple[float, int], int, GradientReport, Point | None]] = field(default_factory=dict)
    seen: int = 0

    def see(self, report: Report, point: Point | None = None) -> None:
        """Count one checked point (``point``: where ``report`` was taken, when the search drew it)."""
        self.points += 1
        carry(self, report)
        for g in report.gradients:
            self.seen += 1
            if g.status == Status.PASS:
                self._keep_if_demanding(g, point)
            if g.param in self.judged:
                continue
            if judged(g):
                if g.remeasure is not None:  # judged with σ = 0: with σ it may not be. Asked now, not kept till the end
                    self.nonzero.add(g.param)  # some finite reference entry is not 0, whatever σ says
                    measured = g.remeasure()
                    if measured is None or not judged(measured):
                        continue
                self.judged.add(g.param)
            elif g.reference is not None:
                ref = np.asarray(g.reference, dtype=np.float64)
                if np.any(np.isfinite(ref) & (ref != 0)):
                    self.nonzero.add(g.param)

    def _keep_if_demanding(self, g: GradientReport, point: Point | None) -> None:
        key = (demand(g), g.entries)
        best = self.demanding.get(g.param)
        if (best is None or key > best[0]) and judged(g):  # judged last: it reads the whole reference
            if g.remeasure is None:
                self.demanding[g.param] = (key, self.seen, g, point)
            elif g.param not in self.pending or key > self.pending[g.param][0]:
                self.pending[g.param] = (key, self.seen, g, point)

    def was_judged(self, param: str) -> bool:
        """Whether some point judged ∂f/∂``param``, with σ measured (at the points that judged it with σ = 0 only,
        until one does)."""
        return param in self.judged

    def most_demanding(self, param: str) -> tuple[GradientReport, Point | None] | None:
        """The passing report of ∂f/∂``param`` at the judged point where its error came closest to its threshold,
        with that point; None when no point judged it passing. The ties go to the first seen.

        The points are ranked by that ratio with σ = 0 where σ was not measured (an upper bound of the ratio with
        σ): σ is measured at the point ranked first, whose figures are then those σ gives; where with σ it no longer
        judges the gradient, the best point with σ measured is shown. Measuring every point that might rank above
        it would need σ at most stacks."""
        waiting = self.pending.pop(param, None)
        best = self.demanding.get(param)
        if waiting is not None and (best is None or (waiting[0], -waiting[1]) > (best[0], -best[1])):
            _, order, g, point = waiting
            measured = g.remeasure()
            if measured is not None and measured.status == Status.PASS and judged(measured):
                self.demanding[param] = best = ((demand(measured), measured.entries), order, measured, point)
        return None if best is None else best[2:]

    def why_not(self, param: str) -> str:
        """The one line saying that nothing of ∂f/∂``param`` could be judged, and why (the view names the gradient)."""
        points = f"{self.points} point{'' if self.points == 1 else 's'}"
        if param in self.nonzero:
            reason = f"its reference stays within rounding (τ_ex) of 0 at every entry of the {points} drawn (the values underflow)"
        else:
            reason = f"its reference is exactly 0 at every entry of the {points} drawn"
        return f"nothing could be judged: {reason}, where any gradient near 0 passes, right or wrong"


def mark_unjudged(report: Report, coverage: Coverage) -> None:
    """Every passing gradient of ``report`` that no point judged becomes an error with its line; the
    derivation too, unless another gradient failed."""
    lines = []
    for g in report.gradients:
        if g.status == Status.PASS and not coverage.was_judged(g.param):
            g.status, g.message = Status.ERROR, coverage.why_not(g.param)
            lines.append(f"∂f/∂{g.param}: {g.message}")
    if lines and report.status == Status.PASS:
        report.status, report.message = Status.ERROR, "; ".join(lines)


def carry(into: Report | Coverage, source: Report | Coverage) -> list[tuple[str, str]]:
    """Each name of a ``calls.CARRIED`` field of ``source`` that ``into`` lacks, added there once; the
    (field, name) pairs added."""
    added = []
    for attr, _ in CARRIED:
        have = getattr(into, attr)
        for name in getattr(source, attr):
            if name not in have:
                have.append(name)
                added.append((attr, name))
    return added


def carry_warnings(report: Report, source: Report | Coverage) -> None:
    """What user code did at other points (``Coverage``, a diagnosis example's report): each argument the
    gradients or the forward wrote into, and each global generator drawn from, added to ``report`` once with its
    warning."""
    words = dict(CARRIED)
    for attr, name in carry(report, source):
        report.warnings.extend(words[attr]([name]))
