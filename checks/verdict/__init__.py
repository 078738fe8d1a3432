"""The one judge: thresholds with their reasons, and the three-way verdict per entry for the points checked.

``evaluate`` checks one point (every entry by finite differences), ``evaluate_group`` several points of one
size together, ``evaluate_projection`` one large point by directional differences; ``choose_mode`` picks.
Each judges with ``judge_stack`` (a single point is a stack of one), τ_ex from ``exact_tolerance``.
"""

from verigrad.checks.verdict import thresholds
from verigrad.checks.verdict.judge import demand, exact_tolerance, judge_point, judge_stack, judged
from verigrad.checks.verdict.noise import autograd_noise
from verigrad.checks.verdict.point import evaluate, inner_length
from verigrad.checks.verdict.projection import CROSSOVER_ENTRIES, DEFAULT_BUDGET, choose_mode, evaluate_projection
from verigrad.checks.verdict.stacked import evaluate_group

__all__ = [
    "CROSSOVER_ENTRIES",
    "DEFAULT_BUDGET",
    "autograd_noise",
    "choose_mode",
    "demand",
    "evaluate",
    "evaluate_group",
    "evaluate_projection",
    "exact_tolerance",
    "inner_length",
    "judge_point",
    "judge_stack",
    "judged",
    "thresholds",
]
