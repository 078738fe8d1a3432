"""Sizes written as expressions of other sizes: ``"H-2"``, ``"4*H"``, ``"G*Cg"``, ``"(H+2*P-K)//S+1"``.

An expression is parsed with ``ast`` and only these nodes are kept: names, non-negative int constants,
``+ - * //``, unary minus, parentheses, and a string key of a name (``conv_param['pad']``, a key of a dict
hyperparameter, which stands in the expression as one name: ``key_name``). Nothing the user writes is ever evaluated by Python; the tree
is walked here. The names in an expression are *free* dims, searched like any other; an expression dim
is computed from them.

Every size must be >= 1, so the ranges of the free dims are narrowed where an expression forbids some
values (for ``H-2``, H >= 3), by interval arithmetic: a value is dropped when no choice of the other dims
in their ranges could make the expression >= 1. What interval arithmetic cannot rule out (``H-K``: H > K)
is checked point by point (``SizeSpace.valid``) and a draw that breaks it is redrawn.
"""

from __future__ import annotations

import ast
import functools
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Steps a range end is moved inward by one value at a time while narrowing (beyond it, the rest of a
#: huge range is left to the point-by-point check): enough for every range a check can afford to draw.
NARROW_STEPS = 4096
#: Assignments of the free dims tried, smallest first, to show that some sizes make every dim >= 1.
WITNESS_TRIES = 20000
#: Rounds of narrowing: each round narrows every free dim once, given the others' ranges so far.
NARROW_ROUNDS = 8

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//"}
Interval = tuple[float, float]
_FULL: Interval = (-math.inf, math.inf)


class DimExpressionError(ValueError):
    """A dim's text is neither a name nor an allowed expression; the message says what is not allowed."""


@dataclass(frozen=True)
class Expr:
    """A parsed dim expression: ``op`` is ``name``, ``int``, ``neg`` or one of ``+ - * //``."""

    op: str
    args: tuple

    @property
    def names(self) -> tuple[str, ...]:
        """The names used, in order of first appearance."""
        if self.op == "name":
            return (self.args[0],)
        if self.op == "int":
            return ()
        return tuple(dict.fromkeys(n for a in self.args for n in a.names))

    def value(self, sizes: Mapping[str, int]) -> int | None:
        """The expression at ``sizes`` (every name given); None where it divides by 0."""
        if self.op == "name":
            return int(sizes[self.args[0]])
        if self.op == "int":
            return self.args[0]
        vals = [a.value(sizes) for a in self.args]
        if any(v is None for v in vals):
            return None
        if self.op == "neg":
            return -vals[0]
        a, b = vals
        if self.op == "//":
            return None if b == 0 else a // b
        return a + b if self.op == "+" else a - b if self.op == "-" else a * b

    def bounds(self, box: Mapping[str, Interval]) -> Interval:
        """Lowest and highest value over ``box`` ({name: (lo, hi)}), possibly wider than the truth."""
        if self.op == "name":
            return box[self.args[0]]
        if self.op == "int":
            return (self.args[0], self.args[0])
        parts = [a.bounds(box) for a in self.args]
        if self.op == "neg":
            return (-parts[0][1], -parts[0][0])
        (alo, ahi), (blo, bhi) = parts
        if self.op == "+":
            return (alo + blo, ahi + bhi)
        if self.op == "-":
            return (alo - bhi, ahi - blo)
        if not all(map(math.isfinite, (alo, ahi, blo, bhi))) or (self.op == "//" and blo <= 0 <= bhi):
            return _FULL
        # a*b and a//b (b of one sign) are monotone in each argument: the extremes are at the corners.
        corners = [a * b if self.op == "*" else a // b for a in (alo, ahi) for b in (blo, bhi)]
        return (min(corners), max(corners))


def key_name(base: str, key: str) -> str:
    """The one name a key of a dict hyperparameter has in an expression, however it was quoted: ``conv_param['pad']``."""
    return f"{base}[{key!r}]"


def split_key(name: str) -> tuple[str, str] | None:
    """``(base, key)`` of a name made by ``key_name``; None for a plain name."""
    if name.isidentifier():
        return None
    base, _, rest = name.partition("[")
    return base, ast.literal_eval(rest[:-1])


def hyper_base(name: str) -> str:
    """The hyperparameter a name in a dim stands for: the name itself, or the dict whose key it is."""
    keyed = split_key(name)
    return name if keyed is None else keyed[0]


def hyper_value(name: str, values: Mapping[str, Any]) -> Any:
    """The value of ``name`` (a plain name, or ``base['key']``) under one value per hyperparameter."""
    keyed = split_key(name)
    return values[name] if keyed is None else values[keyed[0]][keyed[1]]


def _build(node: ast.AST, text: str) -> Expr:
    if isinstance(node, ast.Name):
        return Expr("name", (node.id,))
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        key = node.slice.value if isinstance(node.slice, ast.Constant) else None
        if type(key) is str:
            return Expr("name", (key_name(node.value.id, key),))
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Expr("int", (node.value,))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return Expr("neg", (_build(node.operand, text),))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return Expr(_OPS[type(node.op)], (_build(node.left, text), _build(node.right, text)))
    what = ast.get_source_segment(text, node) or type(node).__name__
    raise DimExpressionError(f"{what!r} is not allowed (a dim is a name, an int, or names, ints and keys"
                             " of a dict hyperparameter (conv_param['pad']) with + - * // and parentheses)")


@functools.lru_cache(maxsize=1024)
def parse_dim(text: str) -> Expr:
    """The expression ``text`` (a bare name too); DimExpressionError saying what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise DimExpressionError("is not a valid expression") from None
    return _build(tree.body, text.strip())


def dim_value(dim: str | int, sizes: Mapping[str, int]) -> int | None:
    """The size of one dim (an int, a name or an expression) at ``sizes``; None where undefined (// 0)."""
    if isinstance(dim, int):
        return dim
    if dim.isidentifier():
        return int(sizes[dim])
    return parse_dim(dim).value(sizes)


@dataclass(frozen=True)
class SizeSpace:
    """The free dims, their ranges narrowed so that expressions can be >= 1, and the expression dims."""

    free: tuple[str, ...]
    ranges: Mapping[str, tuple[int, int]]
    expressions: Mapping[str, Expr]
    #: Lowest and highest value of each int hyperparameter the expressions name (not drawn here: an
    #: example's configuration gives them; ``valid`` then needs them among the sizes).
    hyper: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def values(self, sizes: Mapping[str, int]) -> dict[str, int | None]:
        """Every expression dim at ``sizes`` of the free dims (None where it divides by 0)."""
        return {text: e.value(sizes) for text, e in self.expressions.items()}

    def valid(self, sizes: Mapping[str, int]) -> bool:
        """Whether every expression dim is defined and >= 1 at ``sizes``."""
        return all(v is not None and v >= 1 for v in self.values(sizes).values())

    @property
    def exact(self) -> bool:
        """Whether every size in the narrowed ranges is valid, so a draw never needs redrawing."""
        box = {d: (float(lo), float(hi)) for d, (lo, hi) in {**self.ranges, **self.hyper}.items()}
        return all(e.bounds(box)[0] >= 1 for e in self.expressions.values())

    def near(self, sizes: Mapping[str, int]) -> dict[str, int]:
        """``sizes`` if valid, else the first valid sizes found changing as few of the last free dims as
        possible (each tries its given size first, then its range upward); ``sizes`` if none is found."""
        if self.valid(sizes):
            return dict(sizes)
        axes = [[sizes[d], *(v for v in range(lo, hi + 1) if v != sizes[d])] for d, (lo, hi) in self.ranges.items()]
        trials = itertools.islice(itertools.product(*axes), WITNESS_TRIES)
        found = next((t for t in trials if self.valid(dict(zip(self.free, t, strict=True)))), None)
        return dict(sizes) if found is None else dict(zip(self.free, found, strict=True))

    def upper(self, dim: str | int, top: Mapping[str, int]) -> float:
        """A bound on ``dim`` over all sizes of the free dims from 1 to ``top`` (for memory estimates)."""
        if isinstance(dim, int):
            return float(dim)
        if dim.isidentifier():
            return float(top[dim])
        box = {**{d: (1.0, float(top[d])) for d in self.free}, **{h: (float(lo), float(hi)) for h, (lo, hi) in self.hyper.items()}}
        hi = parse_dim(dim).bounds(box)[1]
        return max(1.0, hi)


def _feasible(exprs: Sequence[Expr], box: dict[str, Interval], dim: str, v: int) -> bool:
    trial = {**box, dim: (float(v), float(v))}
    return all(e.bounds(trial)[1] >= 1 for e in exprs)


def _narrow_one(exprs: Sequence[Expr], box: dict[str, Interval], dim: str) -> tuple[int, int] | None:
    """``dim``'s range without the end values no choice of the others could make valid; None if none is left."""
    lo, hi = int(box[dim][0]), int(box[dim][1])
    steps = 0
    while lo <= hi and steps < NARROW_STEPS and not _feasible(exprs, box, dim, lo):
        lo, steps = lo + 1, steps + 1
    steps = 0
    while lo <= hi and steps < NARROW_STEPS and not _feasible(exprs, box, dim, hi):
        hi, steps = hi - 1, steps + 1
    return (lo, hi) if lo <= hi else None


def _witness(space: SizeSpace) -> bool:
    """Whether some sizes within the ranges are valid (tried smallest first, at most WITNESS_TRIES)."""
    axes = [range(lo, hi + 1) for lo, hi in space.ranges.values()]
    trials = itertools.islice(itertools.product(*axes), WITNESS_TRIES)
    return any(space.valid(dict(zip(space.free, t, strict=True))) for t in trials)


def size_space(dims: Iterable[str | int], ranges: Mapping[str, tuple[int, int]], hyper: Mapping[str, tuple[int, int]] | None = None) -> SizeSpace:
    """The SizeSpace of the dims a derivation writes, with ``ranges`` for every free dim; ``hyper``: the
    lowest and highest value of each int hyperparameter the dims name (they narrow the ranges as any
    name would, and are not free dims).

    DimExpressionError (one line naming the expression) if no sizes within the ranges make every dim >= 1
    (with ``hyper``, only where no values in their bounds could: each configuration is checked on its own).
    """
    hyper = dict(hyper or {})
    free: dict[str, None] = {}
    exprs: dict[str, Expr] = {}
    for d in dims:
        if isinstance(d, int):
            continue
        if d.isidentifier():
            if d not in hyper:
                free.setdefault(d, None)
            continue
        e = parse_dim(d)
        exprs.setdefault(d, e)
        for n in e.names:
            if n not in hyper:
                free.setdefault(n, None)
    box = {d: (float(ranges[d][0]), float(ranges[d][1])) for d in free}
    box.update({h: (float(lo), float(hi)) for h, (lo, hi) in hyper.items()})
    for _ in range(NARROW_ROUNDS):
        before = dict(box)
        for d in free:
            using = [e for e in exprs.values() if d in e.names]
            narrowed = _narrow_one(using, box, d) if using else (int(box[d][0]), int(box[d][1]))
            if narrowed is None:
                texts = ", ".join(repr(t) for t, e in exprs.items() if d in e.names)
                lo, hi = ranges[d]
                raise DimExpressionError(f"no {d} in {lo}..{hi} makes {texts} >= 1 (with the other dims in their ranges)")
            box[d] = (float(narrowed[0]), float(narrowed[1]))
        if box == before:
            break
    space = SizeSpace(tuple(free), {d: (int(box[d][0]), int(box[d][1])) for d in free}, exprs, hyper)
    if exprs and not hyper and not space.exact and not _witness(space):
        texts = ", ".join(map(repr, exprs))
        raise DimExpressionError(f"no sizes within the dim ranges make every one of {texts} >= 1 (tried the {WITNESS_TRIES} smallest)")
    return space


#: Largest size the solver of ``solve_sizes`` looks for (by bisection; 2**40 entries is beyond any array).
SOLVE_MAX = 2**40


def _solve_one(e: Expr, dim: str, known: Mapping[str, int], n: int) -> int | None:
    """The smallest size of ``dim`` at which ``e`` (whose other names are ``known``) is ``n``, or None."""
    at = lambda v: e.value({**known, dim: v})
    lo, hi = 1, SOLVE_MAX
    while lo < hi:  # smallest v with e(v) >= n, if e grows with dim
        mid = (lo + hi) // 2
        val = at(mid)
        if val is not None and val >= n:
            hi = mid
        else:
            lo = mid + 1
    if at(lo) == n:
        return lo
    return next((v for v in range(1, NARROW_STEPS + 1) if at(v) == n), None)


def solve_sizes(observed: Sequence[tuple[str, int]], sizes: dict[str, int]) -> None:
    """Add to ``sizes`` the free dims that only appear inside expressions, from the observed sizes
    ``(expression, n)`` of arrays: an expression with one unknown name is solved for it, until none is left."""
    progress = True
    while progress:
        progress = False
        for text, n in observed:
            e = parse_dim(text)
            unknown = [d for d in e.names if d not in sizes]
            if len(unknown) == 1:
                v = _solve_one(e, unknown[0], sizes, n)
                if v is not None:
                    sizes[unknown[0]] = v
                    progress = True
