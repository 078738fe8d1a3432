"""What the pytest plugin's report files say: one entry per derivation item, by node id, whatever happened to it.

The entries are kept where the files are written (the controller under pytest-xdist, else the one pytest
process), from the test reports pytest hands there for every item (``pytest_runtest_logreport``):

- each phase of a derivation item carries the item's Report on its test report (``PAYLOAD``, a pickle, so it
  crosses xdist's wire with the arrays the HTML heatmaps need): at setup an error standing for a check that
  has not finished, then the check's Report (or an error naming what escaped the check), and after a failed
  teardown that Report turned into an error;
- a failed test report without one is xdist's report of a worker that crashed while running the item: an error;
- a collected item with no report at the end never ran to its end (``-x``, Ctrl-C, ``pytest.exit``, a worker
  lost for good): an error, never a gap;
- a failed collection (a syntax error in a test module) is an error entry named after what failed to collect;
- a skipped item was not checked, on purpose: a ``skip`` entry with pytest's reason (neither a pass nor a failure).

Entries are kept apart by node id, and each carries its node id (and the variable bound to its derivation), so
two derivations of the same name (in one module or two) are two entries that the report files tell apart.
``Entry`` makes an item's entry phase by phase where the item runs; ``Records`` keeps them where the files are
written.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from verigrad.checks.report import ERROR, SKIP, Report, RunReport

#: Attribute of a derivation item's TestReport holding ``pickle.dumps(Report)``.
PAYLOAD = "verigrad_report"
#: Attribute of a failed CollectReport holding the one-line reason (set where the exception is at hand).
COLLECT_ERROR = "verigrad_collect_error"
#: A derivation item's name is ``ITEM_PREFIX + <name> + "]"``: how the controller of an xdist run tells the
#: derivation items among the node ids its workers collected.
ITEM_PREFIX = "verigrad["

#: Messages of the entries standing for a check that did not end with a verdict.
UNFINISHED = "not checked: its check did not finish (the session was interrupted or the process running it ended)"
NEVER_RAN = "not checked: the pytest session ended before this derivation ran"
NOT_COLLECTED = "could not be collected; pytest's output shows why"


def one_line(e: BaseException) -> str:
    """``TypeName: first line of the message`` — what an error entry says about an exception."""
    text = " ".join(str(e).strip().splitlines()[:1]).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def collect_error_line(e: BaseException) -> str:
    """The one line for a collection error: the exception that made pytest's collector fail, when it has one."""
    cause = e.__cause__ if isinstance(e, pytest.Collector.CollectError) and e.__cause__ is not None else e
    return f"could not be collected: {one_line(cause)}"


def error_like(report: Report, message: str) -> Report:
    """``report`` (its gradients kept) as an error saying ``message``."""
    return dataclasses.replace(report, status=ERROR, message=message)


def is_item_id(nodeid: str) -> bool:
    """Whether a node id has the shape of a derivation item's (``path::verigrad[name]``)."""
    last = nodeid.rpartition("::")[2]
    return "::" in nodeid and last.startswith(ITEM_PREFIX) and last.endswith("]")


def _from_id(nodeid: str) -> tuple[str, str]:
    """(name, target) of a derivation item known only by its node id: the name as the id shows it, the file."""
    path, _, last = nodeid.rpartition("::")
    return last[len(ITEM_PREFIX) : -1], path


@dataclass
class Entry:
    """A derivation item's entry in the report files, phase by phase (in the process that runs the item)."""

    name: str
    node_id: str | None = None
    binding: str | None = None  # the module-level variable bound to the derivation
    checked: Report | None = None  # what the check returned, once it has
    recorded: Report | None = None  # the entry after the latest phase

    def after(self, when: str, outcome: str, raised: BaseException | None, target: str) -> Report:
        """The entry after phase ``when`` ended with ``outcome`` (``raised``: what the phase raised, if it did),
        with the item's node id and binding.

        From setup on there is one: until the check returns, the error standing for a check that did not finish.
        """
        if when == "setup" or self.recorded is None:
            self.checked = None
            self.recorded = Report(name=self.name, status=ERROR, message=UNFINISHED, target=target)
        self._advance(when, outcome, raised, target)
        self.recorded = dataclasses.replace(self.recorded, node_id=self.node_id, binding=self.binding)
        return self.recorded

    def _advance(self, when: str, outcome: str, raised: BaseException | None, target: str) -> None:
        reason = "failed" if raised is None else one_line(raised)
        failed = outcome == "failed"
        if outcome == "skipped":
            said = " ".join(str(raised or "").split()) or "skipped"
            self.recorded = Report(name=self.name, status=SKIP, message=said, target=target)
        elif self.recorded.status == SKIP:
            pass  # skipped at setup: its teardown changes nothing
        elif when == "call" and self.checked is None:
            self.recorded = error_like(self.recorded, f"the check raised {reason}") if failed else self.recorded
        elif when == "call":
            passed_then_failed = failed and self.checked.passed  # e.g. -W error turned its warning into a failure
            self.recorded = error_like(self.checked, f"a passing check then raised {reason}") if passed_then_failed else self.checked
        elif failed:
            self.recorded = error_like(self.recorded, f"{when} failed: {reason}")


@dataclass
class _Expected:
    position: int
    name: str
    target: str
    binding: str | None = None


@dataclass(eq=False)  # a plugin object: compared and hashed by identity
class Records:
    """Every derivation item's entry in this run's report files, kept by node id."""

    expected: dict[str, _Expected] = field(default_factory=dict)  # collected items, in collection order
    results: dict[str, Report] = field(default_factory=dict)  # the latest entry of each item that has one
    foreign: set[str] = field(default_factory=set)  # ids shaped like ours whose reports carry no payload
    collect_errors: dict[str, Report] = field(default_factory=dict)

    def expect(self, nodeid: str, name: str, target: str, binding: str | None = None) -> None:
        """A collected derivation item (in collection order)."""
        if nodeid not in self.expected:
            self.expected[nodeid] = _Expected(len(self.expected), name, target, binding)

    # The hooks below: Records is registered as a plugin where the report files are written.

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        """xdist controller: what a worker collected (the same on every worker, which xdist checks)."""
        for nodeid in ids:
            if is_item_id(nodeid):
                self.expect(nodeid, *_from_id(nodeid))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A collection report: a failed one is an error entry named after the module (or whatever failed)."""
        if not report.failed:
            return
        where = report.nodeid or str(report.fspath)
        message = getattr(report, COLLECT_ERROR, None) or NOT_COLLECTED
        self.collect_errors[where] = Report(name=where, status=ERROR, message=message, target=where.partition("::")[0], node_id=report.nodeid or None)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """One phase's test report of any item (only derivation items are kept)."""
        nodeid = report.nodeid
        payload = getattr(report, PAYLOAD, None)
        if payload is not None:
            # Our own item's report, from this process or one of its xdist workers: the pickle is trusted.
            self.results[nodeid] = pickle.loads(payload)
        elif report.failed and (nodeid in self.results or (nodeid in self.expected and nodeid not in self.foreign)):
            # No payload on a derivation item's failed report: xdist's own, for a worker that crashed running it.
            said = report.longrepr.strip().partition("\n")[0] if isinstance(report.longrepr, str) else ""
            said = said or "pytest reported a failure and no verdict"
            self.results[nodeid] = error_like(self._known(nodeid), f"not checked: {said}")
        elif report.when == "setup" and nodeid not in self.results:
            self.foreign.add(nodeid)  # an ordinary test whose id merely looks like a derivation item's

    def _known(self, nodeid: str) -> Report:
        if nodeid in self.results:
            return self.results[nodeid]
        name, target = _from_id(nodeid) if nodeid not in self.expected else (self.expected[nodeid].name, self.expected[nodeid].target)
        binding = self.expected[nodeid].binding if nodeid in self.expected else None
        return Report(name=name, status=ERROR, target=target, node_id=nodeid, binding=binding)

    def run(self, seed: int | None, *, interrupted: bool, collect_only: bool = False) -> RunReport:
        """The run's report: collection errors, then every derivation item in collection order."""
        reports = list(self.collect_errors.values())
        ids = [n for n in self.expected if n not in self.foreign]
        ids += [n for n in self.results if n not in self.expected]
        for nodeid in ids:
            if nodeid in self.results:
                reports.append(self.results[nodeid])
            elif not collect_only:
                reports.append(error_like(self._known(nodeid), NEVER_RAN))
        return RunReport(reports=reports, seed=seed, interrupted=interrupted)
