"""What kind of mistake a failing gradient shows: an ordered table of kinds, one module per family.

``table``: the entry point and the order; ``evidence``: the examples a diagnosis is made from and the
relation analytic = c · T(reference); ``factor`` (sign_flip, scale), ``layout`` (transpose,
shape_mismatch), ``batch_sum`` (missing_batch_sum), ``partial``, ``raised`` and ``unknown``: the kinds.
``slip`` (with ``slip_trace`` and ``slip_match``): the first wrong line of the derivation, found by tracing the
gradients function at the counterexample.
"""

from verigrad.checks.diagnose.slip import join as join_slips
from verigrad.checks.diagnose.slip import locate_slips
from verigrad.checks.diagnose.table import TABLE, Entry, diagnose

__all__ = ["TABLE", "Entry", "diagnose", "join_slips", "locate_slips"]
