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
    its demand and ``judged`` are upper bounds. Such gradients wait (``maybe``, ``pending``) and are measured only
    where the answer depends on them: "was it judged" is answered as σ measured at every point would answer it;
    the point shown is the one of largest bound, measured there (``most_demanding``)."""

    judged: set[str] = field(default_factory=set)
    nonzero: set[str] = field(default_factory=set)
    points: int = 0
    modified_in_place: list[str] = field(default_factory=list)  # the arguments the gradients wrote into, at some point
    forward_modified_in_place: list[str] = field(default_factory=list)  # ... and the forward
    global_generators: list[str] = field(default_factory=list)  # the global generators the code drew from
    #: Per parameter: ((demand, entries), order seen) of the most demanding judged pass so far, its report and its point.
    demanding: dict[str, tuple[tuple[float, int], int, GradientReport, Point | None]] = field(default_factory=dict)
    #: Per parameter: passes judged with σ = 0 that may be more demanding than ``demanding``'s, as it is kept.
    pending: dict[str, list[tuple[tuple[float, int], int, GradientReport, Point | None]]] = field(default_factory=dict)
    #: Per parameter not yet in ``judged``: gradients that judged it with σ = 0 (with σ, they may not).
    maybe: dict[str, list[GradientReport]] = field(default_factory=dict)
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
                if g.remeasure is None:
                    self.judged.add(g.param)
                    self.maybe.pop(g.param, None)
                else:  # some finite reference entry is not 0: what ``nonzero`` records where σ says it was not judged
                    self.maybe.setdefault(g.param, []).append(g)
                    self.nonzero.add(g.param)
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
            else:
                self.pending.setdefault(g.param, []).append((key, self.seen, g, point))

    def was_judged(self, param: str) -> bool:
        """Whether some point judged ∂f/∂``param``, σ measured where it was not and the answer turns on it."""
        for g in self.maybe.pop(param, []):
            if param in self.judged:
                break
            measured = g.remeasure()
            if measured is not None and judged(measured):
                self.judged.add(param)
        return param in self.judged

    def most_demanding(self, param: str) -> tuple[GradientReport, Point | None] | None:
        """The passing report of ∂f/∂``param`` at the judged point where its error came closest to its threshold,
        with that point; None when no point judged it passing. The ties go to the first seen.

        The point is chosen by the bound: a pass judged with σ = 0 ranks by its demand there (its error over the
        tighter τ_ex), a pass with σ measured by its own. σ is then measured at the point chosen, so the figures
        shown are those σ gives; where with σ it no longer judged the gradient, the next point in that order is
        taken. The one point measured, not every point that might rank above it, keeps σ to where a verdict needs it."""
        candidates = self.pending.pop(param, [])
        best = self.demanding.pop(param, None)
        if best is not None:
            candidates.append(best)
        for _, order, g, point in sorted(candidates, key=lambda c: (c[0], -c[1]), reverse=True):
            measured = g if g.remeasure is None else g.remeasure()
            if measured is None or measured.status != Status.PASS or not judged(measured):
                continue
            self.demanding[param] = ((demand(measured), measured.entries), order, measured, point)
            return measured, point
        return None

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
