"""One run of ``verigrad check``: every target loaded, and every derivation checked, in worker processes.

Two phases, so that nothing is checked before every target is known to load and every option to fit:
``plan`` loads each file target once in a worker (learning its derivations' names, refusing a replay
spec that does not fit them); ``check_planned`` then checks each derivation in a worker of its own. The
built-ins are verigrad's code: their names and dims are read here, but they are checked in workers too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from verigrad.analytic import NAMES, builtin
from verigrad.checks.loader import target_problem
from verigrad.checks.report import Report, Status
from verigrad.checks.search import check_replay
from verigrad.checks.workers import DEFINED, LOAD_ERROR, RAISED, REPORT, USAGE, Job, Outcome, run_job

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


def check_planned(found: Plan, settings: Settings, done: list[Report], progress: Callable[..., None] | None = None) -> None:
    """Phase two: each planned derivation checked in its own worker, its report appended to ``done`` as it comes."""
    for target, index, name in found.checks:
        outcome = run_job(settings.job(target, index, name), settings.timeout, progress)
        done.append(report_of(outcome, name, target, settings.options.get("seed")))


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
