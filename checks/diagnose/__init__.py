"""What kind of mistake a failing gradient shows: an ordered table of kinds, one module per family."""

from verigrad.checks.diagnose.table import diagnose

__all__ = ["diagnose"]
