"""pytest plugin: the ``Derivation`` objects a collected test module defines become test items.

Registered through the ``pytest11`` entry point, so installing verigrad is enough. A module-level
derivation in ``test_mine.py`` becomes the item ``test_mine.py::verigrad[<name>]``; it fails with the
terminal report's failure text (diagnosis, worst entry, replay command), not a traceback.

Collected: every derivation the imported module holds at top level (bound by an assignment, ``def``/``class``,
or through ``globals()``), read off the module object pytest imported. Not collected: derivations it imports
(by name, or with ``*``), verigrad's built-ins, modules with ``__verigrad__ = False``, and everything when the
ini option ``verigrad_collect = false`` (or ``-p no:verigrad``).

The ``--verigrad-*`` report files list every collected derivation item by node id with its true status,
written once by the process that sees every item's test report (the controller under pytest-xdist): an item
whose check raised, whose xdist worker crashed or that never ran is an error, a skipped item is a skip entry,
a module that failed to collect is an error entry (see ``plugin_records``).

Derivation items are checked side by side, as ``verigrad check`` checks derivations: when pytest reaches a
derivation item, the checks of the derivation items that follow it in a row (the next ones pytest will run)
start too, up to ``--verigrad-jobs`` at a time (default: the cores this process may run on), each in its own
worker; each item still reports its own check's outcome when pytest runs it, in pytest's order. An item with a
``skip``/``skipif`` mark ends the row (it is checked only if pytest runs it). Under pytest-xdist each xdist
worker checks only the items it is given, one at a time: xdist already spreads the items over processes, and
a check started ahead there could be one another worker runs. Ctrl-C stops every running check, its worker's
process group killed, before pytest goes on with its interrupt; the checks not yet reached are never started.

Loading the plugin imports verigrad (``verigrad/__init__.py`` makes real imports) but not torch, which the
reference layer imports when a check first needs it (``reference/_torch.py``): a pytest run in an
environment where verigrad is installed, in a project without derivations, never imports torch.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pickle
import secrets
import shlex
import sys
import threading
import warnings
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from verigrad.analytic import NAMES, Derivation, builtin
from verigrad.checks import options
from verigrad.checks.assertion import failure_text
from verigrad.checks.limits import DEFAULT_TIMEOUT, memory_limit
from verigrad.checks.plugin_records import COLLECT_ERROR, ITEM_PREFIX, PAYLOAD, Entry, Records, collect_error_line
from verigrad.checks.report import (
    SKIP,
    Report,
    RunReport,
    deferred_interrupt,
    numpy_only_line,
    report_path_problem,
    summary_line,
    warnings_of,
    write_each,
)
from verigrad.checks.runner import cores, report_of
from verigrad.checks.search import VALUES_PER_SIZE
from verigrad.checks.workers import Job, context, run_job

#: Seed of the search when the CI environment variable is set and no --verigrad-seed is given:
#: the same examples on every CI run, so a red build is never a lucky draw.
CI_SEED = 0
#: Marker put on every derivation item (select with ``-m verigrad``, skip with ``-m "not verigrad"``).
MARKER = "verigrad"
#: Module-level variable that, set to False, keeps a test module's derivations from being collected.
OPT_OUT = "__verigrad__"
#: Key of the controller → worker hand-over in xdist's ``workerinput``.
_WIRE = "verigrad"
#: The report options, as ``--verigrad-<kind>``.
_KINDS = ("json", "junit", "html", "markdown")
_OPTION = "--verigrad-"


@dataclass
class _Session:
    """What the plugin knows for one pytest run (on the controller and on each xdist worker)."""

    seed: int
    seed_source: str  # "--verigrad-seed" | "CI" | "random"
    examples: int | None
    timeout: float | None
    database: bool
    records: Records = field(default_factory=Records)  # where the report files are written: every item's entry
    run: RunReport | None = None  # what the report files say, once the session is over
    written: list[str] = field(default_factory=list)  # the report files written
    ahead: _Ahead | None = None  # the checks of the items in a row, started when pytest reaches the first


_STATE = pytest.StashKey[_Session]()


def _option(name: str, convert):
    def parse(text: str):
        try:
            return convert(text)
        except ValueError as e:
            raise pytest.UsageError(f"{name}: {e}") from None

    return parse


_seed, _positive = _option("--verigrad-seed", options.seed), _option("--verigrad-examples", options.positive)
_jobs = _option("--verigrad-jobs", options.positive)
_seconds = _option("--verigrad-timeout", options.seconds)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("verigrad", "verigrad: module-level Derivation objects in test modules")
    group.addoption("--verigrad-json", metavar="PATH", help="write the JSON report of every derivation item here")
    group.addoption("--verigrad-junit", metavar="PATH", help="write verigrad's JUnit XML report (one testcase per gradient) here")
    group.addoption("--verigrad-html", metavar="PATH", help="write verigrad's HTML report (with heatmaps) here")
    group.addoption("--verigrad-markdown", metavar="PATH", help="write verigrad's Markdown report here")
    group.addoption("--verigrad-examples", metavar="N", help=f"random sizes tried per derivation, {VALUES_PER_SIZE} value draws at each (default 30)")
    group.addoption("--verigrad-seed", metavar="N", help="seed of the search (default: fixed under CI, else random; printed)")
    group.addoption(
        "--verigrad-no-database",
        action="store_true",
        default=False,
        help="do not read or write the example database (.hypothesis/verigrad) of known failures",
    )
    group.addoption("--verigrad-timeout", metavar="SECONDS", help=f"time limit per derivation (default {DEFAULT_TIMEOUT:g}; 0 for none)")
    group.addoption(
        "--verigrad-jobs", metavar="N", help="derivation items checked side by side, each in its own worker (default: the cores available)"
    )
    parser.addini("verigrad_collect", "collect module-level Derivation objects of test modules as items", type="bool", default=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a derivation checked by verigrad (collected from a test module)")
    wired = getattr(config, "workerinput", {}).get(_WIRE)
    if wired is not None:  # an xdist worker: use the controller's seed, so every worker searches alike
        seed, source = wired["seed"], wired["seed_source"]
    elif config.getoption("verigrad_seed") is not None:
        seed, source = _seed(config.getoption("verigrad_seed")), "--verigrad-seed"
    elif os.environ.get("CI"):
        seed, source = CI_SEED, "CI"
    else:
        seed, source = secrets.randbits(32), "random"
    examples = config.getoption("verigrad_examples")
    timeout = config.getoption("verigrad_timeout")
    timeout = DEFAULT_TIMEOUT if timeout is None else _seconds(timeout)
    try:
        memory_limit()
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    jobs = config.getoption("verigrad_jobs")
    jobs = 1 if wired is not None else cores() if jobs is None else _jobs(jobs)  # an xdist worker: one at a time
    config.stash[_STATE] = _Session(
        ahead=_Ahead(jobs),
        seed=seed,
        seed_source=source,
        examples=None if examples is None else _positive(examples),
        timeout=timeout or None,
        # Under CI the example database would make one run depend on the last: off, as in the ci profile;
        # and a seed the user named must give the same run every time.
        database=source == "random" and not os.environ.get("CI") and not config.getoption("verigrad_no_database"),
    )
    if wired is None:  # this process writes the report files: their paths checked now, and every item's entry kept
        targets = [a for a in config.args if os.path.isfile(a)]
        problem = report_path_problem(_report_paths(config), targets, prefix=_OPTION)
        if problem:
            raise pytest.UsageError(problem)
        config.pluginmanager.register(config.stash[_STATE].records, "verigrad-records")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the run's seed to a worker."""
    state = node.config.stash[_STATE]
    node.workerinput[_WIRE] = {"seed": state.seed, "seed_source": state.seed_source}


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getini("verigrad_collect"):
        return "verigrad: collection off (verigrad_collect = false)"
    state = config.stash[_STATE]
    return f"verigrad: seed {state.seed} ({state.seed_source}; rerun with --verigrad-seed {state.seed})"


# --- collection ---------------------------------------------------------------------------------


def _bound_here(path: Path) -> tuple[dict[str, int], set[str], list[str]]:
    """Names a module binds itself at top level (assignment, def, class), with their 1-based line; the names
    it binds by importing; and the modules it imports ``*`` from (``..pkg.mod`` for a relative one).

    Imports are not bindings of the module's own: a derivation imported into a test module is
    collected where it is defined, if that is a test module, and not again here.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return {}, set(), []
    names: dict[str, int] = {}
    imported: set[str] = set()
    starred: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for s in statements:
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.setdefault(s.name, s.lineno)
            elif isinstance(s, ast.Assign | ast.AnnAssign | ast.AugAssign):
                for target in s.targets if isinstance(s, ast.Assign) else [s.target]:
                    for name in _target_names(target):
                        names.setdefault(name, s.lineno)
            elif isinstance(s, ast.Import | ast.ImportFrom):
                imported.update((a.asname or a.name).partition(".")[0] for a in s.names)
                if isinstance(s, ast.ImportFrom) and any(a.name == "*" for a in s.names):
                    starred.append("." * s.level + (s.module or ""))
            elif isinstance(s, ast.If | ast.For | ast.While | ast.With | ast.Try | ast.TryStar):
                # Bindings under a module-level if/for/with/try still belong to the module.
                visit(getattr(s, "body", []) + getattr(s, "orelse", []) + getattr(s, "finalbody", []))
                for handler in getattr(s, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names, imported, starred


def _imported_ids(module: ModuleType, imported: set[str], starred: list[str]) -> set[int]:
    """The derivations ``module`` holds by importing them: under an imported name, or from a module it
    imports ``*`` from (read off that module, which the import has already run)."""
    held = vars(module)
    found = {id(held[n]) for n in imported if isinstance(held.get(n), Derivation)}
    for name in starred:
        try:
            source = sys.modules.get(importlib.util.resolve_name(name, module.__package__))
        except (ImportError, ValueError):  # a relative import outside a package: the import itself failed
            source = None
        if source is not None:
            found.update(id(v) for v in vars(source).values() if isinstance(v, Derivation))
    return found


def _target_names(target: ast.expr) -> list[str]:
    """Names an assignment target binds: ``a``, ``a, (b, *c)`` — not ``a.x`` or ``a[0]``, which bind nothing."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, ast.Tuple | ast.List):
        return [n for t in target.elts for n in _target_names(t)]
    return []


def _is_builtin(derivation: Derivation) -> bool:
    """One of verigrad's own built-ins, imported into a test module (the CLI checks those; not collected)."""
    return derivation.name in NAMES and builtin(derivation.name) is derivation


def _item_name(derivation: Derivation, bound_as: str, taken: set[str]) -> str:
    """``verigrad[<name>]``, with what would break a node id (``::``, control characters) made harmless.

    A second derivation of the same name in the module is ``verigrad[<name>@<variable>]`` (then ``#2``, …):
    each item has its own node id, so neither hides the other in the reports.
    """
    name = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in derivation.name).replace("::", ":_:")
    item = f"{ITEM_PREFIX}{name}]"
    k = 1
    while item in taken:
        k += 1
        item = f"{ITEM_PREFIX}{name}@{bound_as}]" if k == 2 else f"{ITEM_PREFIX}{name}@{bound_as}#{k - 1}]"
    taken.add(item)
    return item


_BOUND = pytest.StashKey[dict[str, int]]()
_SEEN = pytest.StashKey[set[int]]()
_TAKEN = pytest.StashKey[set[str]]()


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> DerivationItem | None:
    """Every derivation the imported module holds at top level — bound by an assignment or through
    ``globals()`` — except imported ones, verigrad's built-ins, and a second name for one already collected."""
    if not isinstance(obj, Derivation) or not isinstance(collector, pytest.Module):
        return None
    if not collector.config.getini("verigrad_collect") or getattr(collector.obj, OPT_OUT, True) is False:
        return None
    if _BOUND not in collector.stash:
        bound, imported, starred = _bound_here(collector.path)
        collector.stash[_BOUND] = bound
        # An alias of an imported derivation (``again = imported_one``) is not the module's own either.
        collector.stash[_SEEN] = _imported_ids(collector.obj, imported, starred)
        collector.stash[_TAKEN] = set()
    if _is_builtin(obj) or id(obj) in collector.stash[_SEEN]:
        return None
    collector.stash[_SEEN].add(id(obj))
    item_name = _item_name(obj, name, collector.stash[_TAKEN])
    line = collector.stash[_BOUND].get(name, 1)  # a name bound through globals() has no line of its own: the module's first
    item = DerivationItem.from_parent(collector, name=item_name, derivation=obj, line=line - 1, binding=name)
    item.add_marker(MARKER)
    return item


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every derivation item this process collected (none on an xdist controller, which collects nothing)."""
    records = session.config.stash[_STATE].records
    for item in session.items:
        if isinstance(item, DerivationItem):
            records.expect(item.nodeid, item.derivation.name, item.target(), item.binding)


def pytest_exception_interact(node: pytest.Item | pytest.Collector, call: pytest.CallInfo[Any], report: Any) -> None:
    """A collection error: its one line rides on the report, to the process that writes the report files."""
    if isinstance(report, pytest.CollectReport) and call.excinfo is not None:
        setattr(report, COLLECT_ERROR, collect_error_line(call.excinfo.value))


# --- the item -----------------------------------------------------------------------------------


class _Ahead:
    """The checks of derivation items started before pytest runs them (module docstring), each watched by a thread
    of the pool; ``stop`` ends them all."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.stop = threading.Event()
        self.pool: ThreadPoolExecutor | None = None
        self.started: dict[str, Future[Report]] = {}
        self.position: dict[str, int] = {}

    def report(self, item: DerivationItem) -> Report:
        """``item``'s check, started now with those that follow it in a row; KeyboardInterrupt stops them all."""
        if self.pool is None:
            context()  # the fork server dies with the thread that starts it: this one, not a pool's
            self.pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="verigrad check")
            self.position = {it.nodeid: k for k, it in enumerate(item.session.items)}
        for nxt in self._row(item):
            if nxt.nodeid not in self.started:
                self.started[nxt.nodeid] = self.pool.submit(self._check, nxt._job(), nxt)
        try:
            return self.started.pop(item.nodeid).result()
        except KeyboardInterrupt:
            self.close()
            raise

    def _row(self, item: DerivationItem) -> list[DerivationItem]:
        items, k = item.session.items, self.position.get(item.nodeid)
        if k is None or items[k] is not item:  # not among the collected items as they were: this one alone
            return [item]
        row = [item]
        for nxt in items[k + 1 : k + self.jobs]:
            if not isinstance(nxt, DerivationItem) or any(nxt.iter_markers("skip")) or any(nxt.iter_markers("skipif")):
                break
            row.append(nxt)
        return row

    def _check(self, job: Job, item: DerivationItem) -> Report:
        """In a thread of the pool; raises Stopped once ``stop`` is set (nothing of the check is kept then)."""
        state = item.config.stash[_STATE]
        return report_of(run_job(job, state.timeout, stop=self.stop), item.derivation.name, item.target(), state.seed)

    def close(self) -> None:
        """Stop the checks still running (their workers killed); start no other."""
        self.stop.set()
        if self.pool is not None:
            with deferred_interrupt():  # a second Ctrl-C does not leave the checks' threads behind
                self.pool.shutdown(wait=True, cancel_futures=True)


class DerivationWarning(UserWarning):
    """Something a passing derivation's check noticed (shown in pytest's warnings summary)."""


class DerivationFailed(Exception):
    """A derivation did not pass; carries its Report for ``repr_failure``."""

    def __init__(self, report: Report) -> None:
        super().__init__(report.message or report.status)
        self.report = report


class DerivationItem(pytest.Item):
    """One module-level Derivation, checked like ``verigrad check <test file> --only <name>``."""

    def __init__(self, *, derivation: Derivation, line: int = 0, binding: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.derivation = derivation
        self.binding = binding  # the module-level variable bound to it: how a worker finds it again
        self.line = line
        self.entry = Entry(derivation.name, self.nodeid, binding)  # its entry in the report files, phase by phase

    def target(self) -> str:
        """The test file as the replay command should name it: relative to where pytest was started."""
        here = self.config.invocation_params.dir
        try:
            return os.path.relpath(self.path, here)
        except ValueError:  # another drive (Windows)
            return str(self.path)

    def _check(self) -> Report:
        """The check itself, in a worker process (user code never runs in pytest's own), maybe started already, and
        nothing else: recording, warnings and the failure stay in ``runtest``."""
        return self.config.stash[_STATE].ahead.report(self)

    def _job(self) -> Job:
        """The check of this item as a worker's job: like ``verigrad check <test file> --only <name>``."""
        state = self.config.stash[_STATE]
        return Job(
            target=self.target(),
            options={"examples": state.examples, "seed": state.seed, "database": state.database, "timeout": state.timeout},
            cwd=os.getcwd(),
            path=tuple(sys.path),
            memory=memory_limit(),
            file=str(self.path),
            module=self.getparent(pytest.Module).obj.__name__,
            binding=self.binding,
        )

    def runtest(self) -> None:
        report = self.entry.checked = self._check()
        if not report.passed:
            raise DerivationFailed(report)
        for param, text in warnings_of(report):
            about = self.derivation.name if param is None else f"{self.derivation.name} ∂f/∂{param}"
            warnings.warn(DerivationWarning(f"{about}: {text}"), stacklevel=1)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if not isinstance(excinfo.value, DerivationFailed):  # the harness itself broke: show where
            return str(super().repr_failure(excinfo, style=style))
        state = self.config.stash[_STATE]
        # The options that make the search what it was: the seed, and the number of examples when it was given.
        budget = "" if state.examples is None else f" --verigrad-examples {state.examples}"
        rerun = f"rerun: pytest {shlex.quote(self.nodeid)} --verigrad-seed {state.seed}{budget}"
        return failure_text(excinfo.value.report) + "\n  " + rerun

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.line, f"verigrad {self.derivation.name}"


# --- reports ---------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A derivation item's test report carries its entry (after a passing teardown: unchanged, not sent again)."""
    rep = yield
    if isinstance(item, DerivationItem) and not (rep.when == "teardown" and rep.passed):
        raised = call.excinfo.value if call.excinfo is not None else None
        # Pickled whole, arrays included, so an xdist controller's HTML heatmaps are those of a local run.
        setattr(rep, PAYLOAD, pickle.dumps(item.entry.after(rep.when, rep.outcome, raised, item.target())))
    return rep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is not None and state.ahead is not None:  # checks started ahead of an item pytest did not reach
        state.ahead.close()
    if state is None or hasattr(config, "workeroutput"):  # an xdist worker: the controller writes the files
        return
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    state.run = state.records.run(state.seed, interrupted=interrupted, collect_only=config.option.collectonly)
    if exitstatus == pytest.ExitCode.OK and not all(r.passed or r.status == SKIP for r in state.run.reports):
        # pytest itself was told all is well (``pytest.exit(returncode=0)`` from user code): the reports were not.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    paths = _report_paths(config)
    if not paths:
        return
    state.written = []
    for kind, path in paths.items():  # each on its own: one that cannot be written does not stop the others
        written = write_each(state.run, {kind: path}, prefix=_OPTION)
        for line in written.problems:  # one line each; the exit status says the reports are not all there
            _say(config, f"verigrad: {line}")
        if written.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        if not written.problems:
            state.written.append(path)
        if written.interrupted:  # Ctrl-C waited until the reports were written
            session.exitstatus = pytest.ExitCode.INTERRUPTED


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line, file=sys.stderr)


def _report_paths(config: pytest.Config) -> dict[str, str]:
    return {k: p for k in _KINDS if (p := config.getoption(f"verigrad_{k}"))}


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.run is None or not state.run.reports:
        return
    tail = f"; reports: {', '.join(state.written)}" if state.written else ""
    terminalreporter.write_line(f"verigrad: {summary_line(state.run)} (seed {state.seed}){tail}")
    if (numpy := numpy_only_line(state.run)) is not None:
        terminalreporter.write_line(f"verigrad: {numpy}")
