"""The ``verigrad`` command.

Exit codes:
  0  every derivation checked agrees with both references
  1  at least one derivation's gradient is wrong
  2  usage error, or a target could not be loaded (nothing wrong was found in what did load)
  3  a derivation could not be checked (its forward raised, is not deterministic, ...), none failed
  130 interrupted (Ctrl-C); the summary of what was checked so far is printed and reports are written
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence

from verigrad.checks import options
from verigrad.checks.limits import DEFAULT_TIMEOUT, memory_limit
from verigrad.checks.loader import Target, resolve_targets
from verigrad.checks.report import Mode, Progress, RunReport, Status, print_run, write_reports
from verigrad.checks.search import MODES, VALUES_PER_SIZE, check, check_replay, parse_replay

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        print(f"verigrad: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _checked(convert):
    def parse(text: str):
        try:
            return convert(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


_positive, _seed, _seconds = _checked(options.positive), _checked(options.seed), _checked(options.seconds)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="verigrad", description="Check hand-derived gradients against autograd and finite differences.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    c = sub.add_parser("check", help="check derivations (default: every built-in)")
    c.add_argument("targets", nargs="*", metavar="TARGET", help="a built-in name or a .py file defining Derivation objects")
    c.add_argument("--json", metavar="PATH", help="write the JSON report here")
    c.add_argument("--markdown", metavar="PATH", help="write a Markdown report (for a pull-request comment)")
    c.add_argument("--junit", metavar="PATH", help="write a JUnit XML report (one testcase per derivation and gradient)")
    c.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with heatmaps")
    c.add_argument(
        "--examples", type=_positive, metavar="N", help=f"random sizes tried per derivation, {VALUES_PER_SIZE} value draws at each (default 30)"
    )
    c.add_argument("--seed", type=_seed, metavar="N", help="seed of the search (default: random and printed; 0 when CI is set)")
    c.add_argument("--replay", metavar="SPEC", help="check exactly one point, e.g. N=2,D=3,M=1,seed=1234")
    c.add_argument("--only", metavar="NAME", action="append", help="check only the derivation(s) with this name")
    c.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        default=DEFAULT_TIMEOUT,
        help=f"time limit per derivation (default {DEFAULT_TIMEOUT:g}; 0 for none)",
    )
    c.add_argument(
        "--mode",
        choices=MODES,
        default=Mode.AUTO,
        help="exhaustive: every entry by finite differences; projection: random directions (large inputs); auto: by size (default)",
    )
    c.add_argument("--device", default="cpu", metavar="DEVICE", help="where the autograd reference runs: cpu (default), cuda, cuda:N")
    c.add_argument("--include-kinks", action="store_true", help="do not keep random points away from declared kinks")
    c.add_argument("--no-database", action="store_true", help="do not read or write hypothesis's example database")
    col = c.add_mutually_exclusive_group()
    col.add_argument("--color", dest="color", action="store_true", default=None, help="force coloured output")
    col.add_argument("--no-color", dest="color", action="store_false", help="no colours")
    sub.add_parser("list", help="list the built-in derivations")
    return p


def exit_code(run: RunReport, load_errors: Sequence[str]) -> int:
    if run.interrupted:
        return EXIT_INTERRUPTED
    if any(r.status == Status.FAIL for r in run.reports):
        return EXIT_FAIL
    if load_errors:
        return EXIT_USAGE
    if any(r.status == Status.ERROR for r in run.reports):
        return EXIT_ERROR
    return EXIT_PASS


def _device_problem(device: str) -> str | None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        return " ".join(str(e).split())
    if dev.type == "cpu":
        return None
    if dev.type != "cuda":
        return f"unsupported device type {dev.type!r}; use cpu or cuda"
    if not torch.cuda.is_available():
        return "no CUDA device is available on this machine (torch.cuda.is_available() is False)"
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        return f"only {torch.cuda.device_count()} CUDA device(s) present"
    return None


def _selected(args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    """The targets to check and the one-line load errors (each printed), ``--only`` applied."""
    targets, load_errors = resolve_targets(args.targets)
    for line in load_errors:
        print(f"verigrad: {line}", file=sys.stderr)
    if args.only:
        known = {t.derivation.name for t in targets}
        for name in args.only:
            if name not in known:
                print(f"verigrad: --only {name!r}: no such derivation among the targets", file=sys.stderr)
                load_errors.append(name)
        targets = [t for t in targets if t.derivation.name in args.only]
    return targets, load_errors


def _check_all(targets: list[Target], args: argparse.Namespace, replay: tuple[dict[str, int], int] | None, seed: int) -> RunReport:
    """Check every target in turn; Ctrl-C ends the run with what was checked so far."""
    run = RunReport(reports=[], seed=seed)
    progress = Progress(sys.stderr)
    try:
        for t in targets:
            run.reports.append(
                check(
                    t.derivation,
                    examples=args.examples,
                    seed=seed,
                    include_kinks=args.include_kinks,
                    replay=replay,
                    target=t.label,
                    # The seed is the run's own unless --seed named it: then the run must be reproducible.
                    database=not args.no_database and args.seed is None,
                    progress=progress.update,
                    timeout=args.timeout or None,
                    device=args.device,
                    mode=args.mode,
                )
            )
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        progress.close()
    return run


def _run_check(args: argparse.Namespace) -> int:
    replay = None
    if args.replay:
        try:
            replay = parse_replay(args.replay)
        except ValueError as e:
            print(f"verigrad: {e}", file=sys.stderr)
            return EXIT_USAGE
    device_problem = _device_problem(args.device)
    if device_problem:
        print(f"verigrad: --device {args.device}: {device_problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        memory_limit()
    except ValueError as e:
        print(f"verigrad: {e}", file=sys.stderr)
        return EXIT_USAGE
    targets, load_errors = _selected(args)
    if not targets and not load_errors:
        print("verigrad: nothing to check", file=sys.stderr)
        return EXIT_USAGE
    try:
        for t in targets if replay else ():
            check_replay(t.derivation, replay[0])
    except ValueError as e:
        print(f"verigrad: {e}", file=sys.stderr)
        return EXIT_USAGE
    seed = args.seed
    if seed is None:
        # Under CI the gate is derandomized: the same examples every run, no flaky verdict.
        seed = 0 if os.environ.get("CI") else secrets.randbits(32)
    run = _check_all(targets, args, replay, seed)
    print_run(run, sys.stdout, color=args.color)
    write_reports(run, json=args.json, markdown=args.markdown, junit=args.junit, html=args.html)
    return exit_code(run, load_errors)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        from verigrad.analytic import builtins

        for d in builtins():
            shapes = ", ".join(f"{p}:({', '.join(map(str, s))})" for p, s in d.shapes.items())
            print(f"{d.name:28} {shapes}")
        return EXIT_PASS
    if args.command != "check":
        build_parser().print_help()
        return EXIT_USAGE
    return _run_check(args)


if __name__ == "__main__":
    sys.exit(main())
