"""Replay specs: ``N=2,D=3,seed=7`` names one point exactly (its sizes, and the seed its values are drawn from)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from verigrad.analytic import Derivation, builtin


def replay_spec(sizes: Mapping[str, int], seed: int) -> str:
    """The spec of the point drawn at ``sizes`` from ``seed``: what ``--replay`` takes."""
    return ",".join([*(f"{k}={v}" for k, v in sizes.items()), f"seed={seed}"])


def parse_replay(spec: str) -> tuple[dict[str, int], int]:
    """``N=2,D=3,seed=7`` → ({"N": 2, "D": 3}, 7); ValueError with the offending part."""
    sizes: dict[str, int] = {}
    seed = None
    for part in spec.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise ValueError(f"--replay: expected DIM=SIZE or seed=N, got {part.strip()!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"--replay: {key} must be an integer, got {value!r}") from None
        if key in sizes or (key == "seed" and seed is not None):
            raise ValueError(f"--replay: {key} is given twice")
        if key == "seed":
            seed = number
        elif number < 1:
            raise ValueError(f"--replay: size of {key} must be >= 1, got {number}")
        else:
            sizes[key] = number
    if seed is None:
        raise ValueError("--replay: missing seed=N")
    return sizes, seed


def check_replay(derivation: Derivation, sizes: Mapping[str, int]) -> None:
    """ValueError (one line, naming the derivation) unless ``sizes`` gives exactly the derivation's free dims,
    at which every expression dim is >= 1."""
    missing = [d for d in derivation.symbols if d not in sizes]
    unknown = [d for d in sizes if d not in derivation.symbols]
    if missing or unknown:
        problem = f"no size for {', '.join(missing)}" if missing else f"unknown dim(s) {', '.join(unknown)}"
        dims = ", ".join(derivation.symbols) or "none"
        raise ValueError(f"--replay: {problem} for derivation {derivation.name!r} (its dims: {dims})")
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


def replay_command(derivation: Derivation, target: str | None, sizes: Mapping[str, int], seed: int) -> str:
    """The command line that re-checks exactly this point (a built-in is named; a file is ``<file.py>`` if unknown)."""
    if target is None:
        try:
            target = derivation.name if builtin(derivation.name) is derivation else None
        except KeyError:
            target = None
    where = _path_word(target) if target else "<file.py>"
    # --only=NAME: a name beginning with "-" would otherwise be read as an option.
    name = derivation.name
    pick = "" if target == name else f" --only={_quoted(name)}" if name.startswith("-") else f" --only {_quoted(name)}"
    return f"verigrad check {where}{pick} --replay {replay_spec(sizes, seed)}"
