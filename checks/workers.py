"""User code runs in worker processes, never in the process that owns verdicts, reports and the exit code.

Each job — loading a target to learn its derivations, or checking one derivation — runs in a fresh
process forked from a ``forkserver`` that has numpy, torch, hypothesis and verigrad imported (so a
worker starts in milliseconds, not seconds). A fresh process per derivation is what keeps global state
from leaking from one derivation into the next: the working directory, torch's grad mode and default
dtype, the random generators, numpy's error state and threads started by user code all end with the
worker.

The parent watches each worker:

- a hard wall-clock limit per job (``timeout`` plus ``GRACE``): past it the worker is killed, whatever
  the user code does with signals or exceptions, and the neighbours go on;
- a memory limit on the worker (``RLIMIT_AS``: its address space at start plus
  ``limits.memory_limit()``), so an allocation beyond it raises MemoryError inside the user code;
- an exit, a crash or a signal before the job's answer arrives (``sys.exit``, ``os._exit``, a
  segfault, SIGKILL from the kernel) is one line for that job.

Only plain data crosses back (``plain_data``: numbers, strings, lists, dicts, arrays of numbers), and the
parent reads it refusing every global but numpy's array reconstruction (``read_message``): nothing of the
user's, not even a name taken from the user's StrEnum, is imported or rebuilt in the parent.

No process of the user's outlives its job or the run. A worker is not daemonic (user code may start
processes of its own) and leads a session of its own; at the end of each job the parent kills that whole
process group, so a helper the user's code started neither runs on nor holds the run's output open. A
worker is killed when the fork server dies, and the fork server when the parent dies, whatever killed it
(Linux's parent-death signal). A worker ignores SIGINT: Ctrl-C (and SIGTERM, checks/cli.py) is the
parent's, which stops the worker and ends the run. Jobs may run side by side, each watched by a thread of the
parent (checks/runner.py): the thread that watches a job stops it when the run's ``stop`` event is set, since
only the main thread hears Ctrl-C, and kills its group as any job's end does.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import io
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import hypothesis.configuration

from verigrad.checks.report import plain_data
from verigrad.checks.warm import SCRATCH_VARIABLE

#: Modules the fork server imports once, so that a worker starts without importing them again.
PRELOAD = ["numpy", "torch", "hypothesis", "verigrad", "verigrad.checks.workers", "verigrad.checks.warm"]
#: Seconds a worker gets beyond the derivation's time limit before it is killed: the check's own timer
#: fires at the limit and writes a report; the kill is for code that swallows or blocks that timer.
GRACE = 5.0
#: Seconds between the parent's looks at a worker that has not answered yet.
POLL = 0.05
#: Seconds a worker that answered may take to exit before it is killed (a thread of the user's keeps it up).
EXIT_WAIT = 2.0

# Kinds of the messages a worker sends (the first element of each tuple).
DEFINED, LOAD_ERROR, USAGE, PROGRESS, REPORT, RAISED = "names", "load_error", "usage", "progress", "report", "raised"

#: The only globals a worker's message may name: what pickle needs to rebuild a numpy array (numpy 1 and 2).
MESSAGE_GLOBALS = frozenset(
    {("numpy", "dtype"), ("numpy", "ndarray")}
    | {(f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")}
    | {(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")}
)
#: The environment variable through which the parent hands the fork server its own pid.
PARENT_VARIABLE = "VERIGRAD_WORKER_PARENT"
#: ``prctl``'s option that asks for a signal when the parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: The process that imported this module. In a worker, the fork server, which preloads it: the worker's parent.
LOADED_BY = os.getpid()


class _Plain(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in MESSAGE_GLOBALS:
            raise pickle.UnpicklingError(f"a worker's message may not name {module}.{name}")
        return super().find_class(module, name)


def read_message(data: bytes) -> Any:
    """A worker's message, read refusing every global outside ``MESSAGE_GLOBALS`` (pickle.UnpicklingError)."""
    return _Plain(io.BytesIO(data)).load()


def _die_with_parent(parent: int | None) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing); exit now if ``parent``,
    the process expected to be the parent, is already gone (None: not known)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):  # no prctl: not Linux
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


@functools.cache
def scratch_folder() -> str:
    """This run's scratch folder for the workers' hypothesis caches, removed when the run ends."""
    folder = tempfile.mkdtemp(prefix="verigrad-workers-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


@dataclass(frozen=True)
class Job:
    """What one worker does: load ``target`` and, with ``index`` set, check the selected derivation there."""

    target: str  # a built-in name or a .py file, as the user wrote it
    only: tuple[str, ...] | None = None  # names to keep, in the target's order (None: all)
    index: int | None = None  # position among the kept derivations to check (None: load only)
    expect: str | None = None  # the name loading found at ``index``: a target that loads differently is refused
    replay: tuple[dict[str, int], int] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of check()
    cwd: str = ""
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))  # the caller's, not the fork server's
    path: tuple[str, ...] = ()  # the parent's sys.path, so the target imports what it would import there
    memory: int | None = None  # bytes the worker may add to its address space
    scratch: str = field(default_factory=scratch_folder)  # where hypothesis keeps its caches of the user's modules
    # A test module's derivation (the pytest plugin): the module's file and name, and the variable bound to it.
    file: str | None = None
    module: str | None = None
    binding: str | None = None


class Stopped(Exception):
    """The run stopped a job before its answer (its ``stop`` event was set); its worker and group are gone."""


@dataclass
class Outcome:
    """What a job came back with: the messages it sent, and, when it did not finish, why (one line)."""

    messages: list[tuple[Any, ...]]
    problem: str | None = None

    def first(self, kind: str) -> tuple[Any, ...] | None:
        return next((m for m in self.messages if m[0] == kind), None)


@functools.cache
def context() -> Any:
    """The forkserver context; its server started here, warmed (checks/warm.py) with the scratch folder. The
    server dies with the thread that starts it (the parent-death signal follows the thread): the main thread."""
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD)
    os.environ[SCRATCH_VARIABLE], os.environ[PARENT_VARIABLE] = scratch_folder(), str(os.getpid())
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        del os.environ[SCRATCH_VARIABLE], os.environ[PARENT_VARIABLE]
    return forkserver


def run_job(job: Job, timeout: float | None, progress: Callable[..., None] | None = None, stop: threading.Event | None = None) -> Outcome:
    """Run ``job`` in a fresh worker; return once it answered, died or ran out of time, or raise Stopped once ``stop``
    is set (from the thread that heard Ctrl-C, while this one watches the job)."""
    receive, send = context().Pipe(duplex=False)
    worker = context().Process(target=_work, args=(job, send), name=f"verigrad {job.target}")
    outcome = Outcome(messages=[])
    wait = 0.0  # unless the worker answered in time, it is killed at once
    worker.start()
    try:  # at once: the worker is not daemonic, and a worker left running would keep the run from exiting
        send.close()
        deadline = None if timeout is None else time.monotonic() + timeout + GRACE
        ended = _watch(worker, receive, deadline, outcome.messages, progress, stop)
        if ended == _TIMED_OUT:
            outcome.problem = f"timed out: did not finish within its time limit of {timeout:g} s (its worker was stopped at {timeout + GRACE:g} s)"
        elif ended == _STOPPED:
            raise Stopped(job.target)
        else:
            wait = EXIT_WAIT
    except pickle.UnpicklingError as e:  # a bug of the worker's side: still nothing of it is rebuilt here
        outcome.problem = f"its worker sent a message that is not plain data ({e})"
    finally:  # a normal end, Ctrl-C, a stop or a harness bug: no worker outlives its job
        receive.close()
        code = _stop(worker, wait)
    if outcome.problem is None and not _answered(outcome.messages, job):
        outcome.problem = _death(code)
    return outcome


def _answered(messages: list[tuple[Any, ...]], job: Job) -> bool:
    kinds = {m[0] for m in messages}
    if kinds & {LOAD_ERROR, USAGE, RAISED}:
        return True
    return REPORT in kinds if job.index is not None or job.binding is not None else DEFINED in kinds


# How the watch of a job ended.
_ENDED, _TIMED_OUT, _STOPPED = "ended", "timed out", "stopped"


def _watch(worker: Any, receive: Connection, deadline: float | None, messages: list, progress, stop) -> str:
    """Collect the worker's messages until its answer or its end (``_ENDED``), the deadline (``_TIMED_OUT``) or the
    run's stop (``_STOPPED``)."""
    while True:
        if stop is not None and stop.is_set():
            return _STOPPED
        wait = POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic()))
        if receive.poll(wait):
            try:
                message = read_message(receive.recv_bytes())
            except EOFError:  # the worker closed its end: it has exited (or is exiting)
                return _ENDED
            if message[0] == PROGRESS:
                if progress is not None:
                    progress(*message[1:])
                continue
            messages.append(message)
            if message[0] in (REPORT, LOAD_ERROR, USAGE, RAISED):
                return _ENDED
        elif deadline is not None and time.monotonic() >= deadline:
            return _TIMED_OUT
        elif not worker.is_alive() and not receive.poll(0):
            return _ENDED


def _stop(worker: Any, wait: float) -> int | None:
    """End the worker (killed if it lingers past ``wait`` seconds) and every process of its group (what the user's
    code started), and return its exit code."""
    worker.join(wait)
    try:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker leads its group (os.setsid in _work)
    except (ProcessLookupError, PermissionError):  # the group is empty: nothing of the job is left
        pass
    if worker.is_alive():
        worker.kill()
        worker.join()
    code = worker.exitcode
    worker.close()
    return code


def _death(code: int | None) -> str:
    """One line for a worker that ended without its answer."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker process was killed by {name} (user code crashed, or the system stopped it)"
    return f"user code ended the worker process (exit code {code}: sys.exit, os._exit or a crash) before the check finished"


# --- inside the worker ----------------------------------------------------------------------------


def _send(send: Connection, *message: Any) -> None:
    send.send_bytes(pickle.dumps(plain_data(message)))


def _work(job: Job, send: Connection) -> None:
    """The worker's whole life: set up, load, answer, and leave without running anything of the user's after."""
    os.setsid()  # a group of its own, which the parent kills with the job
    _die_with_parent(LOADED_BY if LOADED_BY != os.getpid() else None)  # None: this module was not preloaded
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(job.environ)
    if job.cwd:
        os.chdir(job.cwd)
    if job.path:
        sys.path[:] = list(job.path)
    if job.memory is not None:
        _limit_memory(job.memory)
    # hypothesis caches what it reads of the user's modules under its home folder: not in the user's tree
    # (the example database, .hypothesis/verigrad, has its own path and rules).
    hypothesis.configuration.set_hypothesis_home_dir(job.scratch)
    try:
        _answer(job, send)
    except BaseException as e:  # user code's SystemExit, GeneratorExit or own BaseException, escaping the check
        _send(send, RAISED, f"{type(e).__name__}: {' '.join(str(e).split()) or '(no message)'}")
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):  # the user's code closed or replaced the stream
                pass
        os._exit(0)  # no atexit handler or lingering thread of the user's runs after the answer


def _limit_memory(extra: int) -> None:
    with open("/proc/self/statm", encoding="ascii") as fh:
        size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = size + extra if hard == resource.RLIM_INFINITY else min(hard, size + extra)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _answer(job: Job, send: Connection) -> None:
    from verigrad.checks.loader import LoadError, load_binding, load_target
    from verigrad.checks.search import check, check_replay

    def checked(derivation) -> None:
        progress = lambda *a: _send(send, PROGRESS, *a)
        _send(send, REPORT, check(derivation, replay=job.replay, target=job.target, progress=progress, **job.options))

    try:
        if job.binding is not None:
            checked(load_binding(job.file, job.module, job.binding))
            return
        found = load_target(job.target)
    except LoadError as e:
        _send(send, LOAD_ERROR, str(e))
        return
    kept = [d for d in found if job.only is None or d.name in job.only]
    _send(send, DEFINED, [d.name for d in found])
    if job.replay is not None:
        try:
            for d in kept:
                check_replay(d, job.replay[0])
        except ValueError as e:
            _send(send, USAGE, str(e))
            return
    if job.index is None:
        return
    if job.index >= len(kept) or kept[job.index].name != job.expect:
        _send(send, LOAD_ERROR, f"{job.target}: defines other derivations each time it is loaded (expected {job.expect!r})")
        return
    checked(kept[job.index])


if os.environ.get(SCRATCH_VARIABLE) and os.environ.get(PARENT_VARIABLE):  # preloaded by the fork server
    _die_with_parent(int(os.environ[PARENT_VARIABLE]))
