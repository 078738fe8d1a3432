"""Speed and sensitivity: verigrad (exhaustive, projection) vs torch.autograd.gradcheck (slow, fast_mode).

Run on demand, not in the test suite::

    python benchmarks/speed.py            # full: includes torch slow gradcheck at the seed's sizes (minutes)
    python benchmarks/speed.py --quick    # skips it; verigrad's exhaustive time there is extrapolated

Every method sees the same functions and inputs: the seed network f = ‖max(X W1, 0) W2 − Y‖²_F
(analytic/two_layer_relu.py) with standard-normal values. torch checks the *hand-written* gradient:
it is wrapped in a ``torch.autograd.Function`` whose backward returns it, so gradcheck compares it with
its own finite differences. Planted errors move one entry of ∂f/∂W1 by a fraction of max|∂f/∂W1|.
On a shared machine wall times move with the load; the table records the load average, and small
shapes interleave the methods example by example so that all of them see the same load.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import verigrad.analytic.two_layer_relu as relu  # noqa: E402
from verigrad.analytic import builtin  # noqa: E402
from verigrad.checks.search import (  # noqa: E402
    VALUES_PER_SIZE,
    draw_point,
)
from verigrad.checks.verdict import (  # noqa: E402
    choose_mode,
    evaluate,
    evaluate_group,
    evaluate_projection,
)
from verigrad.reference import BatchedObjective, forward_value, torch_xp  # noqa: E402

RELU = builtin("two_layer_relu")
SEED_SIZES = {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}
PLANTS = (1e-6, 1e-2, 1e-1)  # fractions of max|∂f/∂W1|
PLANTED_AT = (0, 0)
ORDER = ("X", "W1", "W2", "Y")


# --- the functions under test --------------------------------------------------------------------
def planted(fraction: float, point) -> tuple:
    """A derivation whose ∂f/∂W1 is off by ``fraction`` · max|∂f/∂W1| at PLANTED_AT (exact if 0)."""
    if fraction == 0:
        return RELU
    delta = fraction * float(np.max(np.abs(relu.gradients(**point.params)["W1"])))

    def gradients(X, W1, W2, Y):
        g = relu.gradients(X, W1, W2, Y)
        g["W1"] = g["W1"].copy()
        g["W1"][PLANTED_AT] += delta
        return g

    return dataclasses.replace(RELU, name=f"two_layer_relu_planted_{fraction:g}", gradients=gradients)


class Counter:
    forwards = 0


def as_torch_function(derivation):
    """The forward as a torch.autograd.Function whose backward is the hand-written gradient."""

    class Hand(torch.autograd.Function):
        @staticmethod
        def forward(ctx, X, W1, W2, Y):
            Counter.forwards += 1
            ctx.save_for_backward(X, W1, W2, Y)
            return relu.forward(torch_xp, X, W1, W2, Y)

        @staticmethod
        def backward(ctx, grad_output):
            values = {k: t.detach().numpy() for k, t in zip(ORDER, ctx.saved_tensors, strict=True)}
            g = derivation.gradients(**values)
            return tuple(grad_output * torch.from_numpy(np.asarray(g[k], dtype=np.float64)) for k in ORDER)

    return Hand.apply


class FastModeFailed(Exception):
    """fast_mode reached its verdict (fail); torch would now recompute slow mode to write its message."""


def _stop_at_message(*args, **kwargs):
    raise FastModeFailed


def run_gradcheck(derivation, point, fast: bool, stop_at_verdict: bool = False) -> tuple[bool, int]:
    """(passed, forward evaluations) of torch.autograd.gradcheck on the hand-written gradient.

    ``stop_at_verdict``: when fast_mode fails, stop at the verdict instead of letting torch recompute
    the full slow-mode Jacobian for its error message (which costs about a slow gradcheck).
    """
    fn = as_torch_function(derivation)
    inputs = tuple(torch.tensor(point.params[k], dtype=torch.float64, requires_grad=True) for k in ORDER)
    Counter.forwards = 0
    module = sys.modules["torch.autograd.gradcheck"]
    real = module._run_slow_mode_and_get_error
    if stop_at_verdict:
        module._run_slow_mode_and_get_error = _stop_at_message
    try:
        ok = bool(torch.autograd.gradcheck(fn, inputs, fast_mode=fast))
    except (RuntimeError, FastModeFailed):  # GradcheckError is a RuntimeError: the check failed
        ok = False
    finally:
        module._run_slow_mode_and_get_error = real
    return ok, Counter.forwards


def run_verigrad(derivation, point, mode: str) -> tuple[bool, int, object]:
    mode = choose_mode(derivation, point) if mode == "auto" else mode
    rep = evaluate(derivation, point) if mode == "exhaustive" else evaluate_projection(derivation, point)
    return rep.passed, rep.evaluations, rep


def named_index(rep) -> str:
    g = next((g for g in rep.gradients if g.param == "W1"), None)
    if g is None or g.status == "pass":
        return "—"
    return f"W1{g.worst_index}"


# --- subprocess helpers (own peak memory, and a time limit for the slow torch runs) ---------------
def _child(target, args, queue):
    t0 = time.perf_counter()
    out = target(*args)
    queue.put((out, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def in_child(target, args, timeout: float | None):
    """(result, seconds, peak RSS bytes) of target(*args) in a fresh process; None result on timeout."""
    ctx = mp.get_context("spawn")  # fork after torch has started its thread pools can hang the child
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    t0 = time.perf_counter()
    proc.start()
    try:
        out = queue.get(timeout=timeout)
    except Exception:
        proc.terminate()
        proc.join()
        return None, time.perf_counter() - t0, None
    proc.join()
    return out


def gradcheck_case(fraction, fast, stop_at_verdict=False):
    point = draw_point(RELU, SEED_SIZES, 0)
    return run_gradcheck(planted(fraction, point), point, fast, stop_at_verdict)


def exhaustive_case(fraction):
    point = draw_point(RELU, SEED_SIZES, 0)
    rep = evaluate(planted(fraction, point), point)
    return rep.passed, rep.evaluations, named_index(rep)


def rejudge_planted(fractions):
    """One exhaustive run; the planted variants are judged on the same three witnesses.

    Finite differences never read the analytic gradient (only autograd decides which entries are
    refined), so judging a planted gradient against the same FD result is exactly what ``evaluate``
    would conclude for it.
    """
    import verigrad.checks.verdict.point as compare
    from verigrad.reference import autograd_gradients

    captured = []
    real = compare.finite_differences

    def recording(*a, **k):
        captured.append(real(*a, **k))
        return captured[-1]

    compare.finite_differences = recording
    point = draw_point(RELU, SEED_SIZES, 0)
    t0 = time.perf_counter()
    base = evaluate(RELU, point)
    seconds = time.perf_counter() - t0
    fd = captured[0]
    auto = autograd_gradients(RELU, point.params)
    sigma = compare.autograd_noise(RELU, point, np.random.default_rng(0))
    total_dims = sum(point.sizes.values())
    verdicts = {}
    for f in fractions:
        g = compare._judge("W1", planted(f, point).gradients(**point.params)["W1"], auto["W1"], fd.gradients["W1"], sigma["W1"], total_dims)
        verdicts[f] = (g.status == "pass", f"W1{g.worst_index}" if g.status != "pass" else "—")
    return base.passed, base.evaluations, seconds, verdicts


def sampled_exhaustive(chunks: int = 3):
    """Seconds per batched evaluation for each parameter (a few chunks), to extrapolate 2P in quick mode."""
    point = draw_point(RELU, SEED_SIZES, 0)
    ev = BatchedObjective(RELU, point.params)
    per = {}
    for name in RELU.check:
        x = point.params[name].reshape(-1)
        n = min(x.size, chunks * ev.chunk_size(name))
        flat = np.arange(n)
        ev.at_entries(name, flat[: ev.chunk_size(name)], x[: ev.chunk_size(name)])  # warm
        t0 = time.perf_counter()
        ev.at_entries(name, flat, x[:n] * (1 + 1e-6))
        per[name] = ((time.perf_counter() - t0) / n, x.size)
    return per


# --- the runs ------------------------------------------------------------------------------------
def planted_everywhere(fraction: float):
    """``planted`` with the shift computed from each call's own gradient: one derivation for a whole group."""
    if fraction == 0:
        return RELU

    def gradients(X, W1, W2, Y):
        g = relu.gradients(X, W1, W2, Y)
        g["W1"] = g["W1"].copy()
        g["W1"][PLANTED_AT] += fraction * float(np.max(np.abs(g["W1"])))
        return g

    return dataclasses.replace(RELU, name=f"two_layer_relu_planted_{fraction:g}", gradients=gradients)


def small_shapes(sizes_count: int, rng_seed: int):
    """Examples drawn as the search draws them: random sizes (every dim 1–8), VALUES_PER_SIZE value
    draws at each. Every method checks every example; the methods take turns size by size, so
    that all of them see the same load. Only the correct derivation's runs are timed."""
    rng = random.Random(rng_seed)
    groups = []
    for i in range(sizes_count):
        sizes = {d: rng.randint(1, 8) for d in RELU.symbols}
        groups.append([draw_point(RELU, sizes, i * VALUES_PER_SIZE + j) for j in range(VALUES_PER_SIZE)])

    def per_point(check):
        return lambda d, group: [check(d, p) for p in group]

    methods = {
        f"verigrad exhaustive, {VALUES_PER_SIZE} points per size stacked (as the search)": lambda d, group: [
            (r.passed, r.evaluations) for r in evaluate_group(d, group)
        ],
        "verigrad exhaustive, one point at a time": per_point(lambda d, p: run_verigrad(d, p, "exhaustive")[:2]),
        "verigrad projection, one point at a time": per_point(lambda d, p: run_verigrad(d, p, "projection")[:2]),
        "torch gradcheck (slow)": per_point(lambda d, p: run_gradcheck(d, p, False)),
        "torch gradcheck fast_mode": per_point(lambda d, p: run_gradcheck(d, p, True)),
    }
    for m in methods.values():  # warm up every path
        m(RELU, groups[0])
    stats = {m: {"seconds": 0.0, "evals": 0, "false_alarms": 0, **{f: 0 for f in PLANTS}} for m in methods}
    variants = {0.0: RELU, **{f: planted_everywhere(f) for f in PLANTS}}
    for group in groups:
        for frac, d in variants.items():
            for name, m in methods.items():
                t0 = time.perf_counter()
                results = m(d, group)
                took = time.perf_counter() - t0
                failed = sum(not ok for ok, _ in results)
                if frac == 0.0:
                    stats[name]["seconds"] += took
                    stats[name]["evals"] += sum(e for _, e in results)
                    stats[name]["false_alarms"] += failed
                else:
                    stats[name][frac] += failed
    return [p for g in groups for p in g], stats


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip torch slow gradcheck at the seed's sizes; extrapolate exhaustive time there")
    ap.add_argument("--sizes", type=int, default=10, help=f"random small sizes (dims 1..8), {VALUES_PER_SIZE} examples at each")
    ap.add_argument("--timeout", type=float, default=None, help="seconds one torch run at the seed's sizes may take")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    lines = [
        f"# verigrad speed benchmark — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"Machine: `{platform.platform()}`, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}; "
        f"mode: {'quick' if args.quick else 'full'}.",
        f"Load average at start: {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} (1/5/15 min).",
        "",
    ]

    # Small shapes.
    points, stats = small_shapes(args.sizes, 0)
    base = stats["torch gradcheck (slow)"]["seconds"]
    lines += [
        f"## Small shapes: {len(points)} random examples, every dim 1–8 (two_layer_relu)",
        "",
        f"{args.sizes} random sizes, {VALUES_PER_SIZE} value draws at each (as the search draws them); every method checks every example.",
        "",
        "| method | examples/s | × torch slow | forward evals/example | false alarms (correct) | caught 1e-6 | caught 1e-2 | caught 1e-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        eps = len(points) / s["seconds"]
        lines.append(
            f"| {name} | {eps:.1f} | {base / s['seconds']:.2f} | {s['evals'] / len(points):.0f} | {s['false_alarms']}/{len(points)} | "
            + " | ".join(f"{s[f]}/{len(points)}" for f in PLANTS)
            + " |"
        )
    print("\n".join(lines), flush=True)

    # The seed's sizes.
    point = draw_point(RELU, SEED_SIZES, 0)
    P = sum(point.params[n].size for n in RELU.check)
    reps = 40
    forward_value(RELU, point.params)
    t0 = time.perf_counter()
    for _ in range(reps):
        forward_value(RELU, point.params)
    per_forward = (time.perf_counter() - t0) / reps
    plain = 2 * P * per_forward
    rows = []
    for frac in (0.0, *PLANTS):
        d = planted(frac, point)
        t0 = time.perf_counter()
        ok, evals, rep = run_verigrad(d, point, "projection")
        rows.append(("verigrad projection", frac, time.perf_counter() - t0, evals, ok, named_index(rep), None))

    if args.quick:
        per, took, _ = in_child(sampled_exhaustive, (), None)
        est = sum(t * n * 2 for t, n in per.values())
        rows.append(("verigrad exhaustive (extrapolated from sampled chunks)", 0.0, est, 2 * P, None, "—", None))
    else:
        out, took, peak = in_child(rejudge_planted, (PLANTS,), None)
        passed, evals, seconds, verdicts = out
        rows.append(("verigrad exhaustive", 0.0, seconds, evals, passed, "—", peak))
        for f, (ok, ix) in verdicts.items():
            rows.append(("verigrad exhaustive (same witnesses, re-judged)", f, None, evals, ok, ix, None))

    for fast, stop in ((True, True), (True, False), (False, False)):
        if args.quick and not (fast and stop):
            continue
        label = "torch gradcheck (slow)"
        if fast:
            label = "torch gradcheck fast_mode" + (" (to its verdict)" if stop else " (with its failure message)")
        for frac in (0.0, *PLANTS):
            out = in_child(gradcheck_case, (frac, fast, stop), args.timeout)
            result, took, peak = out
            if result is None:
                rows.append((label, frac, took, None, None, "—", None))
            else:
                rows.append((label, frac, took, result[1], result[0], "no index", peak))

    load1 = os.getloadavg()
    lines += [
        "",
        f"## The seed's sizes: N=64, D_in=1000, H=100, D_out=10 ({P:,} checked entries)",
        "",
        f"Plain NumPy forward: {per_forward * 1e3:.2f} ms → 2P = {2 * P:,} black-box forwards ≈ {plain:.0f} s.",
        "",
        "| method | planted error (× max\\|g\\|) | seconds | forward evals | verdict | index named | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, frac, secs, evals, ok, ix, peak in rows:
        verdict = "—" if ok is None else ("pass" if ok else "FAIL")
        right = "" if ok is None else (" ✓" if (ok == (frac == 0.0)) else " ✗")
        lines.append(
            f"| {name} | {'none' if frac == 0 else f'{frac:g}'} | {'—' if secs is None else f'{secs:.2f}'} | "
            f"{'—' if evals is None else f'{evals:,}'} | {verdict}{right} | {ix} | {'—' if peak is None else f'{peak / 2**30:.2f} GB'} |"
        )
    lines += ["", f"Load average at end: {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}.", ""]
    text = "\n".join(lines)
    print("\n".join(lines[len(lines) - len(rows) - 8 :]))
    Path(args.out).write_text(text + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
