"""Points and draws, the hypothesis search, replay, and the example database."""

from verigrad.checks.search.points import draw_point, draw_points, infer_sizes
from verigrad.checks.search.replay import check_replay, parse_replay
from verigrad.checks.search.search import MODES, VALUES_PER_SIZE, check

__all__ = ["MODES", "VALUES_PER_SIZE", "check", "check_replay", "draw_point", "draw_points", "infer_sizes", "parse_replay"]
