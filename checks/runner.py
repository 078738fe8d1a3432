"""One run of ``verigrad check``: every target loaded, and every derivation checked, in worker processes.

Two phases, so that nothing is checked before every target is known to load and every option to fit:
``plan`` loads each file target once in a worker (learning its derivations' names, refusing a replay
spec that does not fit them); ``check_planned`` then checks each derivation in a worker of its own, up to
``Settings.jobs`` side by side (one per core by default), and keeps the reports in the planned order. The
built-ins are verigrad's code: their names and dims are read here, but they are checked in workers too.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from verigrad.analytic import NAMES, builtin
from verigrad.checks.loader import target_problem
from verigrad.checks.report import Report, Status, deferred_interrupt
from verigrad.checks.search import check_replay
from verigrad.checks.workers import DEFINED, LOAD_ERROR, RAISED, REPORT, USAGE, Job, Outcome, Stopped, context, run_job

Replay = tuple[dict[str, int], int]


@dataclass
class Plan:
    """What phase one found: the derivations to check, and what stops others (one line each)."""

    checks: list[tuple[str, int, str]] = field(default_factory=list)  # (target, position among its kept ones, name)
    load_errors: list[tuple[str, str]] = field(default_factory=list)  # (target, line)
    usage: str | None = None  # a replay spec that does not fit: the run must not start


@dataclass(frozen=True)
class Settings:
    """What every job of a run shares."""

    only: tuple[str, ...] | None
    replay: Replay | None
    timeout: float | None
    memory: int | None
    options: dict[str, Any]  # check()'s keyword arguments
    jobs: int = 1  # derivations checked side by side, each in its worker

    def job(self, target: str, index: int | None = None, expect: str | None = None) -> Job:
        return Job(
            target=target,
            only=self.only,
            index=index,
            expect=expect,
            replay=self.replay,
            options=self.options,
            cwd=os.getcwd(),
            path=tuple(sys.path),
            memory=self.memory,
        )


def plan(targets: Sequence[str], settings: Settings) -> Plan:
    """Phase one: the names each target defines (``--only`` applied), load errors, a misfitting replay spec."""
    found = Plan()
    for target in targets or NAMES:
        names = _names(target, settings, found)
        kept = [n for n in names if settings.only is None or n in settings.only]
        found.checks.extend((target, k, name) for k, name in enumerate(kept))
        if found.usage:
            break
    known = {name for _, _, name in found.checks}
    for name in settings.only or ():
        if name not in known and not found.usage:
            found.load_errors.append(("--only", f"--only {name!r}: no such derivation among the targets"))
    return found


def _names(target: str, settings: Settings, found: Plan) -> list[str]:
    problem = target_problem(target)
    if problem:
        found.load_errors.append((target, problem))
        return []
    if target in NAMES:
        if settings.replay is not None:
            try:
                check_replay(builtin(target), settings.replay[0])
            except ValueError as e:
                found.usage = str(e)
        return [target]
    outcome = run_job(settings.job(target), settings.timeout)
    if (m := outcome.first(USAGE)) is not None:
        found.usage = m[1]
    elif (m := outcome.first(LOAD_ERROR)) is not None:
        found.load_errors.append((target, m[1]))
    elif (m := outcome.first(RAISED)) is not None:
        found.load_errors.append((target, f"{target}: raised on import: {m[1]}"))
    elif outcome.problem is not None:
        found.load_errors.append((target, f"{target}: loading it {outcome.problem}"))
    else:
        return list(outcome.first(DEFINED)[1])
    return []


def cores() -> int:
    """The cores this process may run on (its affinity, as ``taskset`` or a container's cpuset leaves it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_planned(found: Plan, settings: Settings, done: list[Report], progress: Callable[..., None] | None = None) -> None:
    """Phase two: each planned derivation checked in a worker of its own, ``settings.jobs`` at a time, each job
    watched by a thread here; the reports appended to ``done`` in the planned order once all are in.

    Ctrl-C (KeyboardInterrupt in the main thread, SIGTERM included) starts no other job and stops the running
    ones, their workers' groups killed, before it goes on up; ``done`` then holds the reports of the jobs that
    finished, in the planned order."""
    seed = settings.options.get("seed")
    stop, lock = threading.Event(), threading.Lock()

    def heard(*args: Any) -> None:
        with lock:
            progress(*args)

    def one(target: str, index: int, name: str) -> Report | None:
        try:
            outcome = run_job(settings.job(target, index, name), settings.timeout, progress and heard, stop)
        except Stopped:
            return None
        return report_of(outcome, name, target, seed)

    context()  # the fork server dies with the thread that starts it: this one, not a pool's
    pool = ThreadPoolExecutor(max(1, min(settings.jobs, len(found.checks))), thread_name_prefix="verigrad check")
    futures = []
    try:
        for planned in found.checks:
            futures.append(pool.submit(one, *planned))
        for future in as_completed(futures):
            future.result()  # a harness bug in a job's thread ends the run here, as it would in turn
    finally:
        stop.set()  # a no-op when all are done
        with deferred_interrupt() as deferred:  # a second Ctrl-C does not leave the jobs' threads behind
            pool.shutdown(wait=True, cancel_futures=True)
        done.extend(r for f in futures if not f.cancelled() and f.exception() is None and (r := f.result()) is not None)
    if deferred.received:
        raise KeyboardInterrupt


def report_of(outcome: Outcome, name: str, target: str, seed: int | None) -> Report:
    """The report a check job sent, or an error report saying in one line why there is none."""
    if (m := outcome.first(REPORT)) is not None:
        return Report.from_plain(m[1])
    if (m := outcome.first(RAISED)) is not None:
        line = f"user code raised {m[1]}, which ends a check (not an Exception)"
    elif (m := outcome.first(LOAD_ERROR) or outcome.first(USAGE)) is not None:
        line = m[1]
    else:
        line = outcome.problem or "the worker ended without a report"
    return Report(name=name, status=Status.ERROR, message=line, target=target, seed=seed)
