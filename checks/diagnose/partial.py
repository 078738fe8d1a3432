"""Partial errors: right on some entries, wrong on others, and the pattern of the wrong ones.

The wrong entries (|a − r| > τ + MATCH_RTOL·|r| on a live entry) are matched, on every example, against
the most specific pattern that fits: a declared kink switch (``derivation.kinks``: wrong exactly where
switch i is ≤ 0, or > 0, projected onto the gradient's axes by their dims), the same rows, columns or
entries, a pattern the wrong entries stay inside of, whole rows or columns, or none ("scattered").
A switch pattern is also tested at other sizes and, when the counterexample is tiny, on further
examples at its sizes (MIN_PATTERN_ENTRIES), so that a pattern a few entries fit by chance is not claimed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.diagnose.evidence import (
    Case,
    Example,
    examples,
    on_examples,
    other_sizes,
    relation_holds,
    snap,
    wrong_entries,
)
from verigrad.checks.report import Diagnosis, Kind
from verigrad.checks.search.points import draw_point
from verigrad.checks.verdict import evaluate
from verigrad.checks.verdict.thresholds import MATCH_SLACK, MAX_LISTED, MIN_PATTERN_ENTRIES, MORE_SEED_OFFSET
from verigrad.reference import np_xp


def _index_names(symbols: Sequence[Any], taken: Sequence[str] = ()) -> list[str]:
    names: list[str] = []
    for k, d in enumerate(symbols):
        base = d.lower() if isinstance(d, str) else f"i{k}"
        name, j = base, 2
        while name in names or name in taken:
            name, j = f"{base}{j}", j + 1
        names.append(name)
    return names


def _switch_symbols(derivation: Derivation) -> list[tuple[str | None, ...]]:
    """The symbolic dim of each axis of each declared kink switch, read off a point where the dims differ."""
    sizes = other_sizes(derivation, {})
    by_size: dict[int, list[str]] = {}
    for d, v in sizes.items():
        by_size.setdefault(v, []).append(d)
    try:
        shapes = [np.shape(s) for s in derivation.kinks(np_xp, **draw_point(derivation, sizes, 0).params)]
    except Exception:  # user code (the kinks; draw_point evaluates them too); without switches the other patterns still apply
        return []
    return [tuple(by_size[n][0] if len(by_size.get(n, ())) == 1 else None for n in shape) for shape in shapes]


def _switches(derivation: Derivation, exs: list[Example]) -> list[list[np.ndarray]] | None:
    """The declared kink switches at each example's point, in float64; None if the kinks function fails."""
    try:
        return [[np.asarray(s, dtype=np.float64) for s in derivation.kinks(np_xp, **ex.point.params)] for ex in exs]
    except Exception:  # user code (the switches it returns are converted here too)
        return None


def _mapping(g_syms: Sequence[Any], g_shape: tuple[int, ...], s_syms: Sequence[Any], s_shape: tuple[int, ...]) -> dict[int, int]:
    """Gradient axis → switch axis over the same dim (by name where known, else by size)."""
    mapping: dict[int, int] = {}
    for k, gs in enumerate(g_syms):
        for ax, ss in enumerate(s_syms):
            if ax in mapping.values() or s_shape[ax] != g_shape[k]:
                continue
            if isinstance(gs, str) and ss is not None and ss != gs:
                continue
            mapping[k] = ax
            break
    return mapping


def _project(cond: np.ndarray, mapping: dict[int, int], g_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient entries whose mapped switch entries satisfy ``cond`` for some value of the unmapped axes."""
    rest = tuple(ax for ax in range(cond.ndim) if ax not in mapping.values())
    red = cond.any(axis=rest) if rest else cond
    kept = sorted(mapping.values())
    red = red.transpose([kept.index(mapping[k]) for k in sorted(mapping)])
    return np.broadcast_to(red.reshape([g_shape[k] if k in mapping else 1 for k in range(len(g_shape))]), g_shape)


def _switch_patterns(derivation: Derivation, param: str, exs: list[Example]) -> Iterator[tuple[str, str, list[np.ndarray]]]:
    """(pattern, text, predicted mask per example) for each declared switch, side and axis alignment."""
    if derivation.kinks is None:
        return
    g_syms = derivation.shapes[param]
    g_names = _index_names(g_syms)
    switches = _switches(derivation, exs)
    if switches is None:
        return
    for i, s_syms in enumerate(_switch_symbols(derivation)):
        if any(i >= len(sw) or sw[i].ndim != len(s_syms) for sw in switches):
            break
        s_shape = switches[0][i].shape
        mappings = [_mapping(g_syms, ex.r.shape, s_syms, sw[i].shape) for ex, sw in zip(exs, switches, strict=True)]
        mapping = mappings[0]
        if not mapping or any(m != mapping for m in mappings):
            continue
        own = _index_names([s_syms[ax] or f"j{ax}" for ax in range(len(s_shape))], taken=g_names)
        back = {ax: k for k, ax in mapping.items()}
        s_names = [g_names[back[ax]] if ax in back else own[ax] for ax in range(len(s_shape))]
        reduced = [s_names[ax] for ax in range(len(s_shape)) if ax not in back]
        elementwise = not reduced and len(mapping) == len(g_syms)
        for op, cond in (("≤", lambda s: s <= 0), (">", lambda s: s > 0)):
            where = f"kinks()[{i}][{', '.join(s_names)}] {op} 0" + (f" for some {', '.join(reduced)}" if reduced else "")
            text = f"where {where}" if elementwise else f"at the entries [{', '.join(g_names)}] where {where}"
            yield f"kinks()[{i}] {op} 0", text, [_project(cond(sw[i]), mapping, ex.r.shape) for ex, sw in zip(exs, switches, strict=True)]


def _more(derivation: Derivation, param: str, exs: list[Example]) -> list[Example]:
    """Further examples at the counterexample's sizes until MIN_PATTERN_ENTRIES entries are covered."""
    per = max(int(exs[0].r.size), 1)
    need = -(-MIN_PATTERN_ENTRIES // per) - len(exs)
    base = (exs[0].point.seed or 0) + MORE_SEED_OFFSET
    out = []
    for k in range(max(need, 0)):
        point = draw_point(derivation, exs[0].point.sizes, (base + k) % 2**32)
        out += [ex for ex in examples(derivation, param, [(point, evaluate(derivation, point))]) if ex.a is not None and ex.a.shape == ex.r.shape]
    return out


def _slices(w: np.ndarray, live: np.ndarray, axis: int) -> tuple[int, ...] | None:
    """Indices along ``axis`` whose slices are wholly wrong, if every slice is wholly wrong or wholly right."""
    other = tuple(i for i in range(w.ndim) if i != axis)
    some, whole = w.any(axis=other), (w | ~live).all(axis=other)
    return None if np.any(some & ~whole) else tuple(int(i) for i in np.flatnonzero(some))


def _slice_word(shape: tuple[int, ...], k: int) -> str:
    return {0: "rows", 1: "columns"}.get(k, f"slices along axis {k}") if len(shape) == 2 else f"slices along axis {k}"


def _same_slices(exs: list[Example], wrong: list[np.ndarray], other: list[Example]) -> tuple[str, str] | None:
    """The same rows, columns (or slices) wholly wrong on every example. Where a slice is a single entry
    at these sizes (a row of a one-row array), the example at other sizes decides."""
    shape = exs[0].r.shape
    axes = [k for k in range(len(shape)) if len(shape) >= 2 and int(np.prod(shape)) // shape[k] > 1]
    thin = [k for k in range(len(shape)) if len(shape) >= 2 and shape[k] > 1 and int(np.prod(shape)) // shape[k] == 1]
    for k in axes + thin:
        sl = [_slices(w, ex.live, k) for w, ex in zip(wrong, exs, strict=True)]
        if not all(s is not None and s == sl[0] for s in sl):
            continue
        if k in thin:
            if not other or int(np.prod(other[0].r.shape)) // other[0].r.shape[k] == 1 or _slices(wrong_entries(other[0]), other[0].live, k) != sl[0]:
                continue
        word = _slice_word(shape, k)
        return f"{word} {list(sl[0])}", f"wrong in the same {word} {list(sl[0])} on every example"
    return None


def _whole_slices(exs: list[Example], wrong: list[np.ndarray]) -> tuple[str, str] | None:
    """Whole rows or columns wrong on every example, which ones changing with the values."""
    shape = exs[0].r.shape
    for k in [k for k in range(len(shape)) if len(shape) >= 2 and int(np.prod(shape)) // shape[k] > 1]:
        if all(_slices(w, ex.live, k) is not None for w, ex in zip(wrong, exs, strict=True)):
            word = _slice_word(shape, k)
            return f"whole {word}", f"wrong in whole {word}, which ones changing with the values"
    return None


def _pattern(case: Case, wrong: list[np.ndarray]) -> tuple[str, str, int]:
    """The most specific pattern the wrong entries follow on every example: (pattern, text, support)."""
    derivation, exs, n = case.derivation, case.exs, len(case.exs)
    # A switch pattern must also hold at the other sizes: on one-entry gradients a few examples fit one by chance.
    other = [ex for ex in case.elsewhere.examples() if ex.a is not None and ex.a.shape == ex.r.shape]
    every = exs + other + _more(derivation, case.param, exs) if derivation.kinks is not None else exs + other
    every_wrong = wrong + [wrong_entries(ex) for ex in every[len(exs):]]
    patterns = list(_switch_patterns(derivation, case.param, every))
    for key, text, preds in patterns:
        if all(np.array_equal(w, p & ex.live) for w, p, ex in zip(every_wrong, preds, every, strict=True)):
            return key, f"wrong exactly {text}, right elsewhere", n
    found = _same_slices(exs, wrong, other)
    if found:
        return (*found, n)
    if all(np.array_equal(w, wrong[0]) for w in wrong):
        listed = [list(map(int, ix)) for ix in np.argwhere(wrong[0])[:MAX_LISTED]]
        return f"entries {listed}", f"wrong at the same entries {listed} on every example", n
    for key, text, preds in patterns:
        inside = all(not np.any(w & ~p) for w, p in zip(every_wrong, preds, strict=True))
        excludes = any(np.any(ex.live & ~p) for p, ex in zip(preds, every, strict=True))
        if inside and excludes:
            return f"only {key}", f"wrong only {text} (right wherever that does not hold)", n
    found = _whole_slices(exs, wrong)
    if found:
        return (*found, n)
    # No pattern predicts the examples: only one that is itself partly wrong (some entries right, some wrong) supports the claim.
    support = sum(bool(np.any(ex.live & ~w)) and bool(np.any(w)) for w, ex in zip(wrong, exs, strict=True))
    return "scattered", "wrong entries follow no row, column or kink pattern", support


def _there(exs: list[Example], wrong: list[np.ndarray]) -> str:
    """What the wrong entries have in common, if anything simple."""
    a = np.concatenate([ex.a[w] for ex, w in zip(exs, wrong, strict=True)])
    r = np.concatenate([ex.r[w] for ex, w in zip(exs, wrong, strict=True)])
    tau = MATCH_SLACK * np.concatenate([ex.tau[w] for ex, w in zip(exs, wrong, strict=True)])
    if np.all(np.abs(r) <= tau):
        return "; there the reference is 0 and the analytic is not"
    if np.all(np.abs(a) <= tau):
        return "; there the analytic is 0 and the reference is not"
    if float(r @ r) > float(tau @ tau):
        c = snap(float(a @ r) / float(r @ r))
        if relation_holds(a, r, tau, c):
            return f"; there analytic = {c:.6g} × reference"
    return ""


# --- the entry of the table -----------------------------------------------------------------------------


def partial(case: Case) -> Diagnosis | None:
    """Right on some entries, wrong on others (counted over every example), and the pattern of the wrong ones."""
    exs = case.exs
    wrong = [wrong_entries(ex) for ex in exs]
    n_wrong = sum(int(w.sum()) for w in wrong)
    n_live = sum(int(ex.live.sum()) for ex in exs)
    if n_wrong in (0, n_live):
        return None
    pattern, text, support = _pattern(case, wrong)
    k, n = int(wrong[0].sum()), int(exs[0].live.sum())
    there = _there(exs, wrong) if pattern != "scattered" else ""
    if k < n:
        pooled = f" ({n_wrong} of {n_live} over the {len(exs)} examples)" if len(exs) > 1 else ""
        what = f"is partly wrong: {k} of {n} entries disagree{pooled}"
    else:  # every entry of the counterexample is wrong: "partly" holds over the examples only
        what = (f"is wrong on every entry of the counterexample ({k} of {n}) and right on some entries of the other examples "
                f"({n_wrong} of {n_live} entries wrong over the {len(exs)} examples)")
    sentence = f"∂f/∂{case.param} {what}, {text}{there}; consistent {on_examples(support, len(exs))}"
    details = {"fraction_wrong": k / n if n else 0.0, "fraction_wrong_all": n_wrong / n_live, "pattern": pattern,
               "wrong_entries": [list(map(int, ix)) for ix in np.argwhere(wrong[0])[:MAX_LISTED]]}
    return Diagnosis(Kind.PARTIAL, sentence, details, support, names_param=True)
