"""False alarms and missed errors: verigrad vs torch.autograd.gradcheck on the same draws.

Run on demand (not part of the test suite)::

    python benchmarks/verdicts.py            # full measurement, writes docs/verdicts.md (≈15 min on 2 cores)
    python benchmarks/verdicts.py --quick    # a few draws per regime, small sizes, prints only

Every regime checks the built-in ``two_layer_relu`` (f = ‖max(X W1, 0) W2 − Y‖²_F). torch's gradcheck
gets the *same* hand-derived gradient, wrapped in a ``torch.autograd.Function`` whose backward calls it,
and runs with its defaults (eps 1e-6, atol 1e-5, rtol 1e-3), in slow mode and in fast_mode.

* A **false alarm** is a verdict other than "pass" on a correct derivation. In the near-kink regime,
  verigrad must also list every entry whose step crosses a planted kink as nondifferentiable.
* A **missed error** is a planted single-entry error that is not caught; verigrad must also locate it
  (worst_index is the planted entry) and blame the derivation ("analytic").
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verigrad.analytic import Derivation, builtin  # noqa: E402
from verigrad.checks.report import (  # noqa: E402
    PASS,
    Point,
)
from verigrad.checks.search import infer_sizes  # noqa: E402
from verigrad.checks.verdict import evaluate  # noqa: E402
from verigrad.reference import objective, steps_for, torch_namespace  # noqa: E402

BASE = builtin("two_layer_relu")
#: The same forward and gradients with no declared switch: kinks must be found by finite differences alone.
UNDECLARED = Derivation(name="two_layer_relu_undeclared", shapes=BASE.shapes, forward=BASE.forward, gradients=BASE.gradients)
SMALL = {"N": 16, "D_in": 100, "H": 50, "D_out": 10}
LARGE = {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}
#: Distance of a planted kink from 0, in pre-activation units.
KINK_DISTANCE = 1e-9
PLANTED = {"float64": 1e-6, "float32": 1e-3}

Gradients = Callable[..., dict[str, np.ndarray]]


# --- draws ---------------------------------------------------------------------------------------
def draw(sizes: dict[str, int], seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {name: BASE.shape_of(name, sizes) for name in BASE.params}
    return {name: scale * rng.standard_normal(shape) for name, shape in shapes.items()}


def plant_kinks(params: dict[str, np.ndarray], seed: int, count: int = 3) -> list[tuple[int, int]]:
    """Move columns of W1 so that ``count`` pre-activations h[n, j] lie within KINK_DISTANCE of 0."""
    rng = np.random.default_rng(seed + 10_000)
    X, W1 = params["X"], params["W1"]
    rows = rng.choice(X.shape[0], size=min(count, X.shape[0]), replace=False)
    cols = rng.choice(W1.shape[1], size=len(rows), replace=False)
    for n, j in zip(rows, cols, strict=True):
        target = rng.uniform(-KINK_DISTANCE, KINK_DISTANCE)
        W1[:, j] += (target - X[n] @ W1[:, j]) * X[n] / (X[n] @ X[n])
    return [(int(n), int(j)) for n, j in zip(rows, cols, strict=True)]


def kink_entries(params: dict[str, np.ndarray], kinks: list[tuple[int, int]]) -> dict[str, set[tuple[int, int]]]:
    """Entries whose quarter step still crosses a planted kink by a clear margin: they must be reported."""
    X, W1 = params["X"], params["W1"]
    hx, hw = steps_for(X), steps_for(W1)
    out: dict[str, set[tuple[int, int]]] = {"X": set(), "W1": set()}
    for n, j in kinks:
        dist = abs(float(X[n] @ W1[:, j]))
        for i in range(X.shape[1]):
            if dist < hx[n, i] * abs(W1[i, j]) / 10:
                out["X"].add((n, i))
            if dist < hw[i, j] * abs(X[n, i]) / 10:
                out["W1"].add((i, j))
    return out


def as_float32(grads: Gradients) -> Gradients:
    return lambda **p: {k: np.asarray(v).astype(np.float32) for k, v in grads(**p).items()}


def planted(grads: Gradients, param: str, index: int, relative: float, sign: float) -> Gradients:
    """``grads`` with one entry of ∂f/∂param off by relative × max|∂f/∂param|."""

    def wrong(**p):
        out = dict(grads(**p))
        g = np.array(out[param], copy=True)
        g.reshape(-1)[index] += sign * relative * float(np.max(np.abs(g)))
        out[param] = g
        return out

    return wrong


# --- the two checkers ----------------------------------------------------------------------------
@dataclass
class Verdict:
    passed: bool
    seconds: float
    report: object = None


def run_verigrad(derivation: Derivation, grads: Gradients, params: dict[str, np.ndarray]) -> Verdict:
    d = Derivation(name=derivation.name, shapes=derivation.shapes, forward=derivation.forward, gradients=grads, kinks=derivation.kinks)
    point = Point(sizes=infer_sizes(d, params), params={k: v.copy() for k, v in params.items()})
    t = time.perf_counter()
    rep = evaluate(d, point)
    return Verdict(rep.status == PASS, time.perf_counter() - t, rep)


def run_gradcheck(grads: Gradients, params: dict[str, np.ndarray], *, fast: bool, only: tuple[str, ...] | None = None) -> Verdict:
    """torch.autograd.gradcheck (defaults) of a Function whose backward is the hand-derived gradient."""
    names = list(BASE.params)

    class HandDerived(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            return objective(BASE, torch_namespace(), dict(zip(names, tensors, strict=True)))

        @staticmethod
        def backward(ctx, grad_out):
            tensors = ctx.saved_tensors
            g = grads(**{n: t.detach().numpy() for n, t in zip(names, tensors, strict=True)})
            return tuple(
                grad_out * torch.from_numpy(np.asarray(g[n], dtype=np.float64)) if need else None
                for n, need in zip(names, ctx.needs_input_grad, strict=True)
            )

    inputs = tuple(torch.tensor(params[n], dtype=torch.float64, requires_grad=only is None or n in only) for n in names)
    t = time.perf_counter()
    try:
        ok = bool(torch.autograd.gradcheck(HandDerived.apply, inputs, raise_exception=False, fast_mode=fast))
    except Exception:  # gradcheck raises for some failures even with raise_exception=False
        ok = False
    return Verdict(ok, time.perf_counter() - t)


# --- regimes -------------------------------------------------------------------------------------
@dataclass
class Row:
    kind: str  # "false alarms" | "missed errors"
    regime: str
    draws: int = 0
    ours: int = 0
    slow: int | None = 0
    fast: int = 0
    ours_s: float = 0.0
    slow_s: float = 0.0
    fast_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        def rate(n):
            return "—" if n is None else f"{n}/{self.draws}"

        slow = rate(self.slow) + ("" if self.slow is None else f" ({self.slow_s / max(self.draws, 1):.1f} s)")
        return [
            self.kind,
            self.regime,
            f"{rate(self.ours)} ({self.ours_s / max(self.draws, 1):.1f} s)",
            slow,
            f"{rate(self.fast)} ({self.fast_s / max(self.draws, 1):.2f} s)",
            "; ".join(self.notes),
        ]


def false_alarms(regime: str, sizes, seeds, *, scale=1.0, kinks=False, float32=False, slow_only=None, derivation=BASE) -> Row:
    row = Row("false alarms", regime)
    grads = as_float32(BASE.gradients) if float32 else BASE.gradients
    unreported = 0
    for seed in seeds:
        params = draw(sizes, seed, scale)
        planted_kinks = plant_kinks(params, seed) if kinks else []
        ours = run_verigrad(derivation, grads, params)
        slow = run_gradcheck(grads, params, fast=False, only=slow_only)
        fast = run_gradcheck(grads, params, fast=True)
        row.draws += 1
        row.ours += not ours.passed
        row.slow += not slow.passed
        row.fast += not fast.passed
        row.ours_s += ours.seconds
        row.slow_s += slow.seconds
        row.fast_s += fast.seconds
        if not ours.passed:
            row.notes.append(f"seed {seed}: {ours.report.message}")
        if kinks:
            must = kink_entries(params, planted_kinks)
            got = {g.param: set(g.nondifferentiable) for g in ours.report.gradients}
            unreported += sum(len(must[p] - got.get(p, set())) for p in must)
    if kinks:
        row.notes.append(f"kink entries not reported nondifferentiable: {unreported}")
        row.ours += 0
    if slow_only:
        row.notes.append(f"torch slow mode on ∂f/∂{', '.join(slow_only)} only")
    return row


def missed_errors(regime: str, sizes, seeds, *, dtype: str, params_to_plant=None, slow=True) -> Row:
    row = Row("missed errors", regime, slow=0 if slow else None)
    rel = PLANTED[dtype]
    for seed in seeds:
        params = draw(sizes, seed)
        rng = np.random.default_rng(seed + 20_000)
        choices = params_to_plant or BASE.params
        param = str(choices[int(rng.integers(len(choices)))])
        g_true = BASE.gradients(**params)[param]
        index = int(rng.integers(g_true.size))
        sign = float(rng.choice([-1.0, 1.0]))
        base = as_float32(BASE.gradients) if dtype == "float32" else BASE.gradients
        grads = planted(base, param, index, rel, sign)
        ours = run_verigrad(BASE, grads, params)
        want = tuple(int(i) for i in np.unravel_index(index, g_true.shape))
        g = next(x for x in ours.report.gradients if x.param == param)
        caught = not ours.passed and g.status != PASS and g.worst_index == want and g.blame == "analytic"
        row.draws += 1
        row.ours += not caught
        row.ours_s += ours.seconds
        if not caught:
            row.notes.append(f"seed {seed}: ∂f/∂{param}{list(want)} status {g.status}, worst {g.worst_index}, blame {g.blame}")
        if slow:
            s = run_gradcheck(grads, params, fast=False)
            row.slow += s.passed
            row.slow_s += s.seconds
        f = run_gradcheck(grads, params, fast=True)
        row.fast += f.passed
        row.fast_s += f.seconds
    return row


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = f"Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}"
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; {versions}"


def table(rows: list[Row], quick: bool, seconds: float, part: str = "all") -> str:
    head = ["", "regime", "verigrad", "torch gradcheck (slow)", "torch gradcheck (fast_mode)", "notes"]
    lines = [
        "# Verdicts: verigrad vs torch.autograd.gradcheck",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python benchmarks/verdicts.py{' --quick' if quick else ''}"
        f"{'' if part == 'all' else f' --part {part}'}` "
        f"in {seconds / 60:.1f} min on: {machine()}; load average at the end {os.getloadavg()[0]:.1f}",
        "(seconds are wall time and grow with other work on the machine).",
        "",
        "Derivation: the built-in `two_layer_relu`, f = ‖max(X W1, 0) W2 − Y‖²_F, standard-normal values unless noted.",
        "Each cell: count over draws (mean seconds per draw). Both checkers judge the same hand-derived gradient",
        "at the same draws; torch runs with its defaults (eps 1e-6, atol 1e-5, rtol 1e-3).",
        "A missed error counts for verigrad unless it fails, at the planted index, with blame `analytic`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    if part != "small" and not quick:
        lines += ["", *LARGE_NOTE]
    if part == "small" and not quick:
        lines += ["", "The large network's rows (N=64, D_in=1000, H=100, D_out=10; `--part large`) are not in this run."]
    if part != "large":
        lines += ["", *SMALL_NOTE]
    lines += ["", "Thresholds and their derivation: [tolerances.md](tolerances.md).", ""]
    return "\n".join(lines)


#: How to read two of the rows; part of every written table.
LARGE_NOTE = [
    "At N=64, D_in=1000, H=100, D_out=10 verigrad ran in exhaustive mode: every one of the 165,640",
    "entries by finite differences (the projection mode gives the same verdict in about 40 forwards; see",
    "benchmarks/results.md). torch's slow mode was run on ∂f/∂X only, as in ../shared/ANCHORS.md.",
]
SMALL_NOTE = [
    'In the N=16 float64 row, the draws where torch\'s slow mode "caught" the planted error are draws where',
    "it also fails the correct gradient.",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few draws per regime, no large network")
    ap.add_argument("--out", default=None, help="write the Markdown table here (default: docs/verdicts.md, none with --quick)")
    ap.add_argument("--seed", type=int, default=0, help="first draw's seed")
    ap.add_argument("--part", choices=["all", "large", "small"], default="all", help="run only the large network's rows, or all others")
    args = ap.parse_args(argv)
    quick = args.quick
    many, few = (3, 2) if quick else (30, 10)
    small = {"N": 6, "D_in": 20, "H": 10, "D_out": 4} if quick else SMALL
    s0 = args.seed
    label = ", ".join(f"{k}={v}" for k, v in small.items())
    started = time.perf_counter()
    plans: list[Callable[[], Row]] = []
    if not quick and args.part != "small":
        plans += [
            lambda: false_alarms("N=64, D_in=1000, H=100, D_out=10 (f≈1e7)", LARGE, [s0], slow_only=("X",)),
            lambda: missed_errors(
                "1e-6·max(abs g) in ∂f/∂W1, float64, N=64, D_in=1000, H=100, D_out=10",
                LARGE,
                [s0 + 1],
                dtype="float64",
                params_to_plant=("W1",),
                slow=False,
            ),
        ]
    plans += (
        []
        if args.part == "large"
        else [
            lambda: false_alarms(f"{label}", small, range(s0, s0 + many)),
            lambda: false_alarms(f"{label}, values ×1e-6", small, range(s0, s0 + few), scale=1e-6),
            lambda: false_alarms(f"{label}, values ×1e4", small, range(s0, s0 + few), scale=1e4),
            lambda: false_alarms(f"{label}, 3 pre-activations within 1e-9 of 0, kinks declared", small, range(s0, s0 + few), kinks=True),
            lambda: false_alarms(
                f"{label}, 3 pre-activations within 1e-9 of 0, no kinks declared", small, range(s0, s0 + few), kinks=True, derivation=UNDECLARED
            ),
            lambda: false_alarms(f"{label}, gradients returned in float32", small, range(s0, s0 + few), float32=True),
            lambda: missed_errors(f"1e-6·max(abs g) in a float64 gradient, {label}", small, range(s0, s0 + many), dtype="float64"),
            lambda: missed_errors(f"1e-3·max(abs g) in a float32 gradient, {label}", small, range(s0, s0 + few), dtype="float32"),
        ]
    )
    rows = []
    for plan in plans:
        row = plan()
        rows.append(row)
        print(" | ".join(row.cells()), flush=True)
    text = table(rows, quick, time.perf_counter() - started, args.part)
    print()
    print(text)
    out = args.out or (None if quick else str(ROOT / "docs" / "verdicts.md"))
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
