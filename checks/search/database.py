"""The example database: a failure found on one run is the first example tried on the next.

Known failures live in hypothesis's ``DirectoryBasedExampleDatabase`` under ``.hypothesis/verigrad``,
one key per derivation: the bytes of its identity (the target it was loaded from, its name, and
where its forward and gradients are defined, a lambda by its line and column), so two derivations — also
two of one name in different files, or two written with lambdas in one file — never share an entry. An entry is the counterexample's replay spec
(``N=1,D=2,seed=7``, checks/search/replay.py): sizes and a point seed, from which the point is
drawn again exactly (with its hyperparameters, data and forward seed where the derivation has them:
an entry whose values the derivation's grids or data no longer allow is deleted). The search hands
the entries to hypothesis as explicit examples, tried before any generated one; an entry that passes now is deleted, a new shrunk failure is saved.

hypothesis's own database is left off in the search: it keys entries by the test function's source,
and it turns itself off whenever a seed is applied, while a run here always has a seed (drawn and
printed when none is given) that must replay the run when no database entry is involved.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from verigrad.analytic import Derivation, configure
from verigrad.checks.search.inputs import check_spec
from verigrad.checks.search.points import SEED_MAX
from verigrad.checks.search.replay import parse_replay, replay_spec

#: Where known failures are kept, relative to the working directory (as hypothesis keeps ``.hypothesis``).
DATABASE_DIR = os.path.join(".hypothesis", "verigrad")

#: A known failure: its sizes (for a derivation with hyperparameters, data or a seed, the example's spec:
#: checks/search/inputs.py) and its point seed.
Entry = tuple[dict[str, Any], int]


def wanted(database: bool | None, seed: int | None) -> bool:
    """Whether a check reads and writes the database.

    ``False``: never. ``None`` (the default): only when no seed was given, so that a seeded run is
    reproducible. ``True``: also with a seed — for a caller that drew the seed itself and printed it.
    Never under ``CI``: a derandomized gate must not depend on the last run.
    """
    if database is False or os.environ.get("CI"):
        return False
    return database is True or seed is None


def _where(fn: Any) -> str:
    """Where ``fn`` is written: module, qualified name and file; for a lambda also its line and column, since
    every lambda of a module has the same qualified name."""
    code = getattr(fn, "__code__", None)
    module = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    where = f"{module}.{name}@{os.path.abspath(code.co_filename) if code is not None else ''}"
    if code is not None and name.endswith("<lambda>"):
        # The first instruction with a column (the one before it, RESUME, has column 0 on every line).
        line, column = next(((p[0], p[2]) for p in code.co_positions() if p[2]), (code.co_firstlineno, 0))
        where += f":{line}:{column}"
    return where


def derivation_key(derivation: Derivation, target: str | None) -> bytes:
    """The database key of ``derivation`` checked from ``target``: distinct for distinct derivations."""
    parts = ["verigrad", target or "", derivation.name, _where(derivation.forward), _where(derivation.gradients)]
    return "\0".join(parts).encode()


@dataclass(frozen=True)
class KnownFailures:
    """The saved counterexamples of one derivation."""

    db: ExampleDatabase
    key: bytes
    derivation: Derivation

    def _valid(self, sizes: dict[str, Any], seed: int) -> bool:
        d = self.derivation
        if not 0 <= seed <= SEED_MAX:
            return False
        if d.has_inputs:  # a spec: sizes, hyperparameters, data, forward seed (checks/search/inputs.py)
            try:
                check_spec(d, sizes)
            except ValueError:
                return False
            config = configure(d, {h: sizes[h] for h in d.hyper})
            return all(lo <= sizes[s] <= hi for s in d.symbols for lo, hi in [config.dim_range(s)])
        if list(sizes) != list(d.symbols) or not all(isinstance(v, int) for v in sizes.values()):
            return False
        return all(lo <= sizes[s] <= hi for s in d.symbols for lo, hi in [d.dim_range(s)]) and d.valid_sizes(sizes)

    def entries(self) -> list[Entry]:
        """Saved counterexamples, smallest first; unreadable ones and those the derivation's dims no longer
        allow are deleted."""
        out = []
        for value in self.db.fetch(self.key):
            try:
                sizes, seed = parse_replay(value.decode())
            except (UnicodeDecodeError, ValueError):
                sizes, seed = {}, -1
            if self._valid(sizes, seed):
                out.append((sizes, seed))
            else:
                self.db.delete(self.key, value)
        dims = self.derivation.symbols
        return sorted(out, key=lambda e: (sum(e[0][d] for d in dims), [e[0][d] for d in dims], e[1], replay_spec(*e)))

    def save(self, sizes: dict[str, Any], seed: int) -> None:
        self.db.save(self.key, replay_spec(sizes, seed).encode())

    def forget(self, sizes: dict[str, Any], seed: int) -> None:
        self.db.delete(self.key, replay_spec(sizes, seed).encode())


def known_failures(derivation: Derivation, target: str | None) -> KnownFailures:
    """The known failures of ``derivation`` checked from ``target``, in the database at DATABASE_DIR (read when called)."""
    return KnownFailures(DirectoryBasedExampleDatabase(DATABASE_DIR), derivation_key(derivation, target), derivation)
