"""The ``verigrad`` command.

Exit codes:
  0  every derivation checked agrees with both references
  1  at least one derivation's gradient is wrong
  2  usage error, or a target could not be loaded (nothing wrong was found in what did load)
  3  a derivation could not be checked (its forward raised, is not deterministic, ...), none failed
  130 interrupted (Ctrl-C); the summary of what was checked so far is printed and reports are written
  143 terminated (SIGTERM, as a cancelled CI job is): handled as Ctrl-C is, with this code

A usage error (2) includes a report path that cannot be used (checked before anything is loaded: the same file
twice, a directory, a file being checked, something that is not a regular file, a folder that cannot be written)
and a requested report that could not be written: the other reports are still written, and the exit code is 2
unless a failure (1) or Ctrl-C (130) says more. Ctrl-C while the reports are written is deferred until they are
all written, then the run exits 130. SIGTERM takes Ctrl-C's path (``_sigterm_as_ctrl_c``): the same reports, and
143 wherever Ctrl-C gives 130. A target that could not be loaded is in every report, status error. A closed
or broken standard output (``| head -1``, ``>&-``) changes neither the reports nor the exit code.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from verigrad.checks import options
from verigrad.checks.limits import DEFAULT_TIMEOUT, memory_limit
from verigrad.checks.report import (
    KINDS,
    Mode,
    Progress,
    RunReport,
    Status,
    load_failure_report,
    print_run,
    report_path_problem,
    say,
    stdout_to_devnull,
    write_each,
)
from verigrad.checks.report.annotations import FORMATS, github_annotations
from verigrad.checks.runner import Plan, Settings, check_planned, cores, plan
from verigrad.checks.search import MODES, VALUES_PER_SIZE, parse_replay

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        say(f"verigrad: {message}")
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
    c.add_argument(
        "--jobs",
        type=_positive,
        metavar="N",
        help="derivations checked side by side, each in its own worker (default: the cores this process may use)",
    )
    c.add_argument("--device", default="cpu", metavar="DEVICE", help="where the autograd reference runs: cpu (default), cuda, cuda:N")
    c.add_argument("--include-kinks", action="store_true", help="do not keep random points away from declared kinks")
    c.add_argument("--no-database", action="store_true", help="do not read or write hypothesis's example database")
    c.add_argument(
        "--annotations",
        choices=FORMATS,
        help="also print one CI annotation per failing gradient at the gradients' file and line (github: workflow commands)",
    )
    col = c.add_mutually_exclusive_group()
    col.add_argument("--color", dest="color", action="store_true", default=None, help="force coloured output")
    col.add_argument("--no-color", dest="color", action="store_false", help="no colours")
    sub.add_parser("list", help="list the built-in derivations")
    return p


def exit_code(run: RunReport, load_errors: Sequence[str], unwritten: Sequence[str] = ()) -> int:
    """The exit code of a run (see the module docstring); ``unwritten``: requested reports that could not be written."""
    if run.interrupted:
        return EXIT_INTERRUPTED
    if any(r.status == Status.FAIL for r in run.reports):
        return EXIT_FAIL
    if load_errors or unwritten:
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


def _settings(args: argparse.Namespace, replay: tuple[dict[str, int], int] | None, seed: int, memory: int) -> Settings:
    timeout = args.timeout or None
    options = {
        "examples": args.examples,
        "seed": seed,
        "include_kinks": args.include_kinks,
        # The seed is the run's own unless --seed named it: then the run must be reproducible.
        "database": not args.no_database and args.seed is None,
        "timeout": timeout,
        "device": args.device,
        "mode": args.mode,
    }
    only = tuple(args.only) if args.only else None
    return Settings(only=only, replay=replay, timeout=timeout, memory=memory, options=options, jobs=args.jobs or cores())


def _check_all(found: Plan, settings: Settings, seed: int) -> RunReport:
    """Check every planned derivation, each in its worker, side by side; Ctrl-C ends the run with what was checked
    so far (the derivations whose checks finished, in the planned order)."""
    run = RunReport(reports=[], seed=seed)
    progress = Progress(sys.stderr)
    try:
        check_planned(found, settings, run.reports, progress.update)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        progress.close()
    return run


def _run_check(args: argparse.Namespace) -> int:
    if sys.stdout is None:  # started with standard output closed: keep descriptor 1 from becoming a report's file
        stdout_to_devnull()
    paths = {kind: getattr(args, kind) for kind in KINDS}
    path_problem = report_path_problem(paths, args.targets)
    if path_problem:
        say(f"verigrad: {path_problem}")
        return EXIT_USAGE
    replay = None
    if args.replay:
        try:
            replay = parse_replay(args.replay)
        except ValueError as e:
            say(f"verigrad: {e}")
            return EXIT_USAGE
    device_problem = _device_problem(args.device)
    if device_problem:
        say(f"verigrad: --device {args.device}: {device_problem}")
        return EXIT_USAGE
    try:
        memory = memory_limit()
    except ValueError as e:
        say(f"verigrad: {e}")
        return EXIT_USAGE
    seed = args.seed
    if seed is None:
        # Under CI the gate is derandomized: the same examples every run, no flaky verdict.
        seed = 0 if os.environ.get("CI") else secrets.randbits(32)
    settings = _settings(args, replay, seed, memory)
    try:
        found = plan(args.targets, settings)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if found.usage:
        say(f"verigrad: {found.usage}")
        return EXIT_USAGE
    load_errors = [line for _, line in found.load_errors]
    for line in load_errors:
        say(f"verigrad: {line}")
    if not found.checks and not load_errors:
        say("verigrad: nothing to check")
        return EXIT_USAGE
    run = _check_all(found, settings, seed)
    run.reports.extend(load_failure_report(target, line) for target, line in found.load_errors)
    # The reports first, Ctrl-C deferred meanwhile; then the summary, which a closed stdout or Ctrl-C may cut short.
    written = write_each(run, paths)
    for line in written.problems:
        say(f"verigrad: {line}")
    interrupted = written.interrupted
    try:
        print_run(run, sys.stdout, color=args.color)
        for line in github_annotations(run) if args.annotations else ():
            say(line, sys.stdout)
        sys.stdout.flush()
    except OSError:  # BrokenPipeError and the like: nobody reads the summary, the run's outcome is unchanged
        stdout_to_devnull()
    except KeyboardInterrupt:
        interrupted = True
    return EXIT_INTERRUPTED if interrupted else exit_code(run, load_errors, written.problems)


def _listing(d) -> str:
    """A built-in's line of ``verigrad list``: its shapes, then its data, hyperparameter grids and seed."""
    parts = [", ".join(f"{p}:({', '.join(map(str, s))})" for p, s in d.shapes.items())]
    parts += [f"data {n}: {spec.describe()}" for n, spec in d.data.items()]
    parts += [f"hyper {n}: {list(grid)}" for n, grid in d.hyper.items()]
    if d.seed:
        parts.append("seeded")
    return "; ".join(parts)


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[list[int]]:
    """Inside the block SIGTERM does what SIGINT does at that moment (raise KeyboardInterrupt, or be noted while
    the reports are written), and is listed in the list yielded. Main thread only, as signal handlers are."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def as_ctrl_c(signum: int, frame: object) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):  # SIGINT ignored (a background job): SIGTERM still ends the run
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    previous = signal.signal(signal.SIGTERM, as_ctrl_c)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_terminable(args: argparse.Namespace) -> int:
    with _sigterm_as_ctrl_c() as terminated:
        code = _run_check(args)
    return EXIT_TERMINATED if terminated and code == EXIT_INTERRUPTED else code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        from verigrad.analytic import builtins

        for d in builtins():
            say(f"{d.name:28} {_listing(d)}", sys.stdout)
        return EXIT_PASS
    if args.command != "check":
        build_parser().print_help()
        return EXIT_USAGE
    return _run_terminable(args)


if __name__ == "__main__":
    sys.exit(main())
