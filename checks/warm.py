"""Imported once by the workers' fork server (``workers.PRELOAD``): what every check pays once per process.

A process's first check pays for lazy imports (torch's functional transforms, the search's strategies) and
for hypothesis reading the constants of every local module it sees. Done here once, in the fork server,
every worker forked from it starts warm. Nothing runs when the module is imported anywhere else: the
scratch folder the fork server gets from its parent (``SCRATCH_VARIABLE``) is the sign.
"""

from __future__ import annotations

import os

import hypothesis.configuration

from verigrad.analytic import builtin
from verigrad.checks.search import check

#: The environment variable through which the parent hands the fork server its scratch folder.
SCRATCH_VARIABLE = "VERIGRAD_WORKER_SCRATCH"


def warm(scratch: str) -> None:
    """One tiny check of a built-in, with hypothesis's caches in ``scratch`` (not the user's tree)."""
    hypothesis.configuration.set_hypothesis_home_dir(scratch)
    check(builtin("relu_regression"), examples=1, seed=0, database=False)


if os.environ.get(SCRATCH_VARIABLE):
    warm(os.environ[SCRATCH_VARIABLE])
