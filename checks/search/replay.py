"""Replay specs: ``N=2,D=3,seed=7`` names one point exactly (its sizes, and the seed its values are drawn from)."""

from __future__ import annotations

import ast
import shlex
from collections.abc import Mapping
from typing import Any

import numpy as np

from verigrad.analytic import Derivation, builtin, literal_text
from verigrad.checks.search.inputs import check_spec


def _literal(value: Any) -> str:
    """A hyperparameter's value or a data array as a Python literal (arrays as nested lists)."""
    array = isinstance(value, np.ndarray)
    text = literal_text(value.tolist() if array else value)
    if text is None:
        raise ValueError(f"{value!r} cannot be written in a replay spec")
    return text.replace(" ", "") if array else text  # an array holds numbers or bools only: no spaces needed


def replay_spec(sizes: Mapping[str, Any], seed: int) -> str:
    """The spec of the point drawn at ``sizes`` from ``seed``: what ``--replay`` takes. ``sizes`` may be an
    example's spec (checks/search/inputs.py): hyperparameters, data and the forward seed are written as
    Python literals (``stride=1,mode='train',y=[2,0],forward_seed=5``)."""
    parts = [f"{k}={v}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={_literal(v)}" for k, v in sizes.items()]
    return ",".join([*parts, f"seed={seed}"])


def _parts(spec: str) -> list[str]:
    """``spec`` split at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(spec):
        if quote:
            quote = "" if c == quote and spec[i - 1] != "\\" else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    return [*parts, spec[start:]]


def _value(key: str, value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"--replay: {key} must be an integer (or, for a hyperparameter or a data input, a Python literal), got {value!r}") from None


def parse_replay(spec: str) -> tuple[dict[str, Any], int]:
    """``N=2,D=3,seed=7`` → ({"N": 2, "D": 3}, 7); ValueError with the offending part. Hyperparameters and
    data are read as Python literals (``mode='train'``, ``y=[2,0]``), never evaluated as code."""
    sizes: dict[str, Any] = {}
    seed = None
    for part in _parts(spec):
        key, sep, value = part.strip().partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--replay: expected DIM=SIZE or seed=N, got {part.strip()!r}")
        number = _value(key, value)
        if key in sizes or (key == "seed" and seed is not None):
            raise ValueError(f"--replay: {key} is given twice")
        if key == "seed":
            if not isinstance(number, int) or isinstance(number, bool):
                raise ValueError(f"--replay: seed must be an integer, got {value!r}")
            seed = number
        else:
            sizes[key] = number
    if seed is None:
        raise ValueError("--replay: missing seed=N")
    return sizes, seed


def check_replay(derivation: Derivation, sizes: Mapping[str, Any]) -> None:
    """ValueError (one line, naming the derivation) unless ``sizes`` gives exactly the derivation's free dims
    (and its hyperparameters, data and forward seed), at which every expression dim is >= 1."""
    if derivation.has_inputs:
        check_spec(derivation, sizes)
        return
    missing = [d for d in derivation.symbols if d not in sizes]
    unknown = [d for d in sizes if d not in derivation.symbols]
    if missing or unknown:
        problem = f"no size for {', '.join(missing)}" if missing else f"unknown dim(s) {', '.join(unknown)}"
        dims = ", ".join(derivation.symbols) or "none"
        raise ValueError(f"--replay: {problem} for derivation {derivation.name!r} (its dims: {dims})")
    for k, v in sizes.items():
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"--replay: size of {k} must be an integer for derivation {derivation.name!r}")
        if v < 1:
            raise ValueError(f"--replay: size of {k} must be >= 1, got {v}")
    if not derivation.valid_sizes(sizes):
        bad = [f"{e}={v}" for e, v in derivation.all_sizes(sizes).items() if e in derivation.expressions and v < 1]
        raise ValueError(f"--replay: these sizes make {', '.join(bad)} for derivation {derivation.name!r}; every size must be >= 1")


def _ansi_c(text: str) -> str:
    """``text`` in bash's ``$'...'`` quoting, every unprintable character escaped (an undecodable byte as itself)."""
    out = []
    for c in text:
        o = ord(c)
        if c in "\\'":
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif 0xDC80 <= o <= 0xDCFF:  # a byte the file system's encoding could not decode (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        else:
            out.append(f"\\x{o:02x}" if o < 0x80 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return "$'" + "".join(out) + "'"


def _quoted(text: str) -> str:
    """``text`` as one shell word; with unprintable characters in ``$'...'`` quoting, so it pastes as one line."""
    return shlex.quote(text) if text.isprintable() else _ansi_c(text)


def _path_word(text: str) -> str:
    """A path as one shell word that no command line parser takes for an option (a leading ``-`` made ``./-``)."""
    return _quoted(f"./{text}" if text.startswith("-") else text)


def replay_command(
    derivation: Derivation,
    target: str | None,
    sizes: Mapping[str, Any],
    seed: int,
    *,
    mode: str = "auto",
    include_kinks: bool = False,
    device: str = "cpu",
) -> str:
    """The command line that re-checks exactly this point (a built-in is named; a file is ``<file.py>`` if unknown),
    with every option that changes the verdict there: ``--mode``, ``--include-kinks`` (the point drawn), ``--device``."""
    if target is None:
        try:
            target = derivation.name if builtin(derivation.name) is derivation else None
        except KeyError:
            target = None
    where = _path_word(target) if target else "<file.py>"
    # --only=NAME: a name beginning with "-" would otherwise be read as an option.
    name = derivation.name
    pick = "" if target == name else f" --only={_quoted(name)}" if name.startswith("-") else f" --only {_quoted(name)}"
    verdict = "" if mode == "auto" else f" --mode {_quoted(mode)}"
    verdict += " --include-kinks" if include_kinks else ""
    verdict += "" if device == "cpu" else f" --device {_quoted(device)}"
    return f"verigrad check {where}{pick}{verdict} --replay {_spec_word(replay_spec(sizes, seed))}"


def _spec_word(spec: str) -> str:
    """A replay spec as one shell word: in double quotes when it holds single quotes (a string
    hyperparameter) and nothing a shell expands inside double quotes, else as ``_quoted`` makes it."""
    if "'" in spec and spec.isprintable() and not any(c in spec for c in '"$`\\!'):
        return f'"{spec}"'
    return _quoted(spec)
