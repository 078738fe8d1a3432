"""Hypothesis profiles for the test suite, chosen by VERIGRAD_PROFILE (default: ``ci`` under CI, else ``dev``).

* ``dev``      quick and random: local digging finds new examples each run.
* ``ci``       derandomized: the same examples every run, no flaky gate.
* ``thorough`` many random examples, for a deliberate search.

The Ctrl-C tests send SIGINT to the test process and to the processes it starts. A shell without job
control starts a background command (``cmd &``, ``nohup``) with SIGINT ignored, and every process it
starts inherits that: Python then installs no KeyboardInterrupt handler, and verigrad rightly leaves an
ignored SIGINT ignored. The suite runs with SIGINT as an interactive shell gives it, whoever started it.
"""

import os
import signal

from hypothesis import HealthCheck, settings

_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("ci", max_examples=25, derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("VERIGRAD_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # before xdist starts its workers: they inherit the default
    signal.signal(signal.SIGINT, signal.default_int_handler)
