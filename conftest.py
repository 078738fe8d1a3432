"""Hypothesis profiles for the test suite, chosen by VERIGRAD_PROFILE (default: ``ci`` under CI, else ``dev``).

* ``dev``      quick and random: local digging finds new examples each run.
* ``ci``       derandomized: the same examples every run, no flaky gate.
* ``thorough`` many random examples, for a deliberate search.
"""

import os

from hypothesis import HealthCheck, settings

_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("ci", max_examples=25, derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("VERIGRAD_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
