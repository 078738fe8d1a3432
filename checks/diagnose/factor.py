"""Constant factors: analytic = c × reference on every example (sign_flip for c = −1, scale otherwise).

A scale factor is named by the simplest form of the sizes it equals (2, 1/2, 1/N, N·D, 2/(N·D), √D, 1/√D,
N−1, N/(N−1), ...: a product of dims first, then a square root or a dim ± 1);
a form that uses dims must equal the factor fitted at other sizes as well, or the factor is said to
change with the sizes in no simple way. Two fits are no mistake of a formula and say so as ``unknown``:
c = 0 (the gradient is 0 where the reference is not) and c = 1 (right within MATCH_SLACK × τ, not within τ).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.checks.diagnose.evidence import CONSTANTS, IDENTITY, Case, fit, on_examples
from verigrad.checks.report import Diagnosis, Kind
from verigrad.checks.verdict.thresholds import MATCH_SLACK, SNAP_RTOL

#: Forms of a size-dependent factor: (numerator constant, denominator constant); each combined with up
#: to two dims split between numerator and denominator (N, 1/N, N·D, 1/(N·D), D/N, 2/N, ...).
FORM_CONSTANTS = ((1, 1), (2, 1), (1, 2))
#: Functions of one dim a factor is also named by (√D of scaled attention, N − 1 of an unbiased variance),
#: alone, inverted, or over/under a plain dim (N/(N − 1)): (text, value) per dim n.
TERMS = (("√{d}", np.sqrt), ("({d}−1)", lambda n: n - 1.0), ("({d}+1)", lambda n: n + 1.0))


@dataclass(frozen=True)
class Form:
    """A candidate form of a factor: kn · Π num / (kd · Π den), each factor a dim or a function of one (TERMS)."""

    complexity: int  # forms are tried simplest first
    text: str
    kn: float = 1
    kd: float = 1
    num: tuple[tuple[str, Any], ...] = ()  # (dim, function of its size or None: the size itself)
    den: tuple[tuple[str, Any], ...] = ()

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d for d, _ in self.num + self.den))

    def value(self, sizes: dict[str, int]) -> float:
        term = lambda d, fn: float(sizes[d]) if fn is None else float(fn(sizes[d]))
        top = self.kn * float(np.prod([term(d, fn) for d, fn in self.num]))
        bottom = self.kd * float(np.prod([term(d, fn) for d, fn in self.den]))
        return top / bottom if bottom != 0 else float("nan")


def _text(kn: float, kd: float, num: Sequence[str], den: Sequence[str]) -> str:
    top = "·".join(([str(kn)] if kn != 1 else []) + list(num)) or "1"
    bottom = "·".join(([str(kd)] if kd != 1 else []) + list(den))
    return top if not bottom else f"{top}/({bottom})" if "·" in bottom else f"{top}/{bottom}"


def forms(symbols: Sequence[str]) -> list[Form]:
    """Candidate forms of a factor, simplest first."""
    out = [Form(0, _frac_text(k), kn=k) for k in CONSTANTS]
    groups = [()] + [(d,) for d in symbols] + list(itertools.combinations(symbols, 2))
    for num, den in itertools.product(groups, groups):
        if not (num or den) or set(num) & set(den) or len(num) + len(den) > 2:
            continue
        for kn, kd in FORM_CONSTANTS:
            out.append(Form(len(num) + len(den) + (kn != 1 or kd != 1), _text(kn, kd, num, den), kn, kd,
                            tuple((d, None) for d in num), tuple((d, None) for d in den)))
    for d, (pattern, fn) in itertools.product(symbols, TERMS):
        t = pattern.format(d=d)
        bare = t.strip("()")  # alone, N − 1 needs no brackets
        out += [Form(3, bare, num=((d, fn),)), Form(3, f"1/{t}", den=((d, fn),))]
        for kn, kd in FORM_CONSTANTS[1:]:
            out.append(Form(4, _text(kn, kd, [t], []), kn, kd, num=((d, fn),)))
            out.append(Form(4, _text(kn, kd, [], [t]), kn, kd, den=((d, fn),)))
        for e in (e for e in symbols if e != d or fn is not np.sqrt):  # N/(N − 1), (N − 1)/N, √D/N, ... (not D/√D = √D)
            out += [Form(4, f"{e}/{t}", num=((e, None),), den=((d, fn),)), Form(4, f"{t}/{e}", num=((d, fn),), den=((e, None),))]
    return sorted(out, key=lambda f: f.complexity)


def _frac_text(k: float) -> str:
    return f"{k:g}" if k >= 1 else f"1/{round(1 / k)}"


def scale_form(case: Case, c: float) -> dict[str, Any]:
    """Name |c| as a simple form of the sizes; a form using dims must also fit at other sizes."""
    sizes, elsewhere = case.exs[0].point.sizes, case.elsewhere
    fits = lambda value, target: abs(target - value) <= SNAP_RTOL * abs(value)
    cands = [f for f in forms(case.derivation.symbols) if fits(f.value(sizes), abs(c))]
    if not cands:
        return {}
    checked = None
    if any(f.dims for f in cands) and elsewhere.examples():
        c2 = fit(elsewhere.examples(), IDENTITY)
        if c2 is not None:
            cands = [f for f in cands if fits(f.value(elsewhere.sizes), abs(c2))]
            checked = elsewhere.sizes
    if not cands:
        return {"scale_form": None, "scale_form_note": "the factor changes with the sizes in no simple way"}
    best = cands[0]
    sign = "−" if c < 0 else ""
    at = f" (={sign}{best.value(sizes):.6g} at {', '.join(f'{d}={sizes[d]}' for d in best.dims)})" if best.dims else ""
    return {"scale_form": sign + best.text, "scale_form_text": f"{sign}{best.text}{at}", "scale_form_checked_at": checked}


# --- entries of the table -------------------------------------------------------------------------------


def sign_flip(case: Case) -> Diagnosis | None:
    """analytic = −1 × reference."""
    if case.factor != -1:
        return None
    m = len(case.exs)
    return Diagnosis(Kind.SIGN_FLIP, f"∂f/∂{case.param} has the sign flipped: analytic = −1 × reference {on_examples(m, m)}",
                     {"scale_factor": -1.0}, m, names_param=True)


def zero(case: Case) -> Diagnosis | None:
    """analytic = 0 × reference: no factor, a gradient that is 0 (unknown, reason "zero")."""
    if case.factor != 0:
        return None
    m = len(case.exs)
    sentence = f"∂f/∂{case.param} is 0 everywhere while the reference is not, {on_examples(m, m)}"
    return Diagnosis(Kind.UNKNOWN, sentence, {"reason": "zero"}, m, names_param=True)


def precision(case: Case) -> Diagnosis | None:
    """analytic = 1 × reference within MATCH_SLACK × τ but not within τ (unknown, reason "precision")."""
    if case.factor != 1:
        return None
    m = len(case.exs)
    sentence = (f"∂f/∂{case.param} matches the reference to within {MATCH_SLACK:g} × the threshold but not within it: "
                "a loss of precision, not a wrong formula")
    return Diagnosis(Kind.UNKNOWN, sentence, {"reason": "precision"}, m, names_param=True)


def scale(case: Case) -> Diagnosis | None:
    """analytic = c × reference for one constant c ∉ {−1, 0, 1}, named by a form of the sizes when one fits."""
    c = case.factor
    if c is None or c in (-1, 0, 1):
        return None
    if case.elsewhere.refutes(lambda other: fit(other, IDENTITY) is not None):
        return None  # a factor at these sizes only (a window wrapping onto itself at T = 1, say): no constant factor
    m = len(case.exs)
    form = scale_form(case, c)
    named = f", factor {form['scale_form_text']}" if form.get("scale_form_text") else ""
    sentence = f"∂f/∂{case.param} is off by a constant factor: analytic = {c:.6g} × reference{named}, {on_examples(m, m)}"
    return Diagnosis(Kind.SCALE, sentence, {"scale_factor": c, **form}, m, names_param=True)
