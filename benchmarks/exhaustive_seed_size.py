"""Exhaustive mode at the seed's sizes against 2P plain NumPy forwards, timed in the same run.

Run: python benchmarks/exhaustive_seed_size.py (about 4 minutes on 2 cores).
"""

import resource
import time

import numpy as np

from verigrad import analytic
from verigrad.checks.report import Point
from verigrad.checks.verdict import evaluate
from verigrad.reference._objective import np_xp, objective

d = analytic.builtin("two_layer_relu")
rng = np.random.default_rng(0)
sizes = {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}
params = {k: rng.standard_normal(d.shape_of(k, sizes)) for k in d.params}
P = sum(v.size for v in params.values())
n = 200
t = time.perf_counter()
for _ in range(n):
    objective(d, np_xp, params)
per = (time.perf_counter() - t) / n
print(f"P={P}, plain numpy forward {per*1e3:.3f} ms -> 2P forwards {2*P*per:.1f} s", flush=True)
t = time.perf_counter()
r = evaluate(d, Point(sizes=sizes, params=params, seed=None))
el = time.perf_counter() - t
print(f"exhaustive evaluate: {el:.1f} s, status {r.status}, evaluations {r.evaluations}, ratio {el/(2*P*per):.2f}", flush=True)
print("peak RSS GB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20, flush=True)
