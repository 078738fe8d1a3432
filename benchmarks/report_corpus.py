"""The report corpus: what a change to the verdict path must leave as it was.

Checks, through the public API, in one process:

* each built-in by ``--searches`` searches of ``--examples`` examples (seeds 0, 1, ...), and one in
  projection mode (seed 0);
* each derivation of the mutant corpus (tests/mutants) by a search of ``--mutant-examples`` examples (seed
  1234, as tests/test_diagnose.py).

and writes one line of JSON per report with what must not move: status, message kind, per gradient the
status, blame, problem, diagnosis kind, worst index, mismatch count, the slip's line and finding, the
counterexample's sizes and seed.
Figures (errors, thresholds, durations) are left out: they may move within rounding.

    python benchmarks/report_corpus.py --out before.jsonl
    ... change ...
    python benchmarks/report_corpus.py --out after.jsonl && diff before.jsonl after.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.mutants

from verigrad import Derivation, check
from verigrad.analytic import NAMES, builtin


def fingerprint(where: str, report) -> dict:
    """What a report says, without its figures."""
    return {
        "where": where,
        "name": report.name,
        "status": str(report.status),
        "shapes": {k: v for k, v in sorted((report.shapes or {}).items())},
        "seed": report.point_seed,
        "gradients": [
            {
                "param": g.param,
                "status": str(g.status),
                "blame": None if g.blame is None else str(g.blame),
                "problem": None if g.problem is None else str(g.problem),
                "kind": None if g.diagnosis is None else str(g.diagnosis.kind),
                "worst": None if g.worst_index is None else list(g.worst_index),
                "mismatches": g.mismatches,
                "nondifferentiable": len(g.nondifferentiable or []),
                "slip": None if g.slip is None else [g.slip.line, g.slip.finding],
            }
            for g in report.gradients
        ],
    }


def builtins(searches: int, examples: int):
    for name in NAMES:
        d = builtin(name)
        for seed in range(searches):
            yield f"builtin {name} search {seed}", check(d, examples=examples, seed=seed, database=False)
        yield f"builtin {name} projection", check(d, examples=examples, seed=0, database=False, mode="projection")


def mutants(examples: int):
    import tests.mutants

    for m in pkgutil.iter_modules(tests.mutants.__path__):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"tests.mutants.{m.name}")
        for key, d in vars(mod).items():
            if isinstance(d, Derivation) and not key.startswith("_"):
                yield f"mutant {m.name}.{key}", check(d, examples=examples, seed=1234, database=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--searches", type=int, default=3)
    ap.add_argument("--examples", type=int, default=3)
    ap.add_argument("--mutant-examples", type=int, default=20)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    n = 0
    with open(args.out, "w", encoding="utf-8") as fh:
        for where, report in [*builtins(args.searches, args.examples), *mutants(args.mutant_examples)]:
            fh.write(json.dumps(fingerprint(where, report), sort_keys=True) + "\n")
            n += 1
    print(f"{n} reports in {time.perf_counter() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
