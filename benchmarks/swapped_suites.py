"""A package's own test files run twice: as written (``torch.autograd.gradcheck``) and with the gradcheck import
swapped to verigrad's, as a user switching would do it. Prints, per file, how many tests pass each way, and the
wall time of each run.

    pip install entmax==1.3          # its wheel ships its tests
    python benchmarks/swapped_suites.py entmax

or, for test files kept elsewhere (a clone of a package's repository):

    python benchmarks/swapped_suites.py --files path/to/tests/test_*.py [--with path/to/tests/helper.py]

Only the import lines change: ``from torch.autograd import gradcheck[, gradgradcheck][, other names]`` keeps the
other names from torch and takes gradcheck and gradgradcheck from verigrad; ``torch.autograd.gradcheck(`` and
``torch.autograd.gradgradcheck(`` calls are redirected the same way. The copies are written to a temporary folder
with the modules given by ``--with`` (and a conftest.py beside the files), run with pytest in a child process each,
and removed. Before each test torch's and NumPy's generators are seeded from ``--seed`` and the test's id, so both
runs draw the same inputs; another ``--seed`` draws others.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWAPPED = ("gradcheck", "gradgradcheck")
IMPORT = re.compile(r"^from torch\.autograd import (.+)$", re.M)
CALL = re.compile(r"\btorch\.autograd\.(gradcheck|gradgradcheck)\(")


def swapped(source: str) -> str:
    """``source`` with gradcheck and gradgradcheck taken from verigrad, every other name as it was."""

    def one(match: re.Match[str]) -> str:
        names = [n.strip() for n in match.group(1).strip("()").split(",") if n.strip()]
        ours = [n for n in names if n.split(" as ")[0].strip() in SWAPPED]
        if not ours:
            return match.group(0)
        theirs = [n for n in names if n not in ours]
        lines = [f"from torch.autograd import {', '.join(theirs)}"] if theirs else []
        return "\n".join([*lines, f"from verigrad import {', '.join(ours)}"])

    source = IMPORT.sub(one, source)
    if CALL.search(source):
        source = CALL.sub(lambda m: f"verigrad.{m.group(1)}(", source)
        source = "import verigrad\n" + source
    return source


def package_tests(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"swapped_suites: package {package!r} is not installed")
    root = Path(spec.origin).parent
    return sorted(p for p in root.rglob("test_*.py") if "gradcheck" in p.read_text(errors="replace"))


#: A plugin beside the copies: before each test, torch's and NumPy's global generators are seeded from the run's seed
#: and the test's id, so that both runs draw the same inputs for the same test (torch's default seed differs per
#: process).
SEEDING = """import zlib, numpy, pytest, torch
@pytest.fixture(autouse=True)
def _same_draws(request):
    seed = zlib.crc32(request.node.nodeid.encode()) ^ {seed}
    torch.manual_seed(seed)
    numpy.random.seed(seed % 2**32)
"""


def run(folder: Path, seed: int) -> tuple[dict[str, tuple[int, int]], float, list[str]]:
    """{file: (passed, failed)} of pytest over ``folder``, the wall time, and the tests that failed."""
    (folder / "_same_draws.py").write_text(SEEDING.format(seed=seed))
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "_same_draws", "-W", "ignore::UserWarning", str(folder)],
        check=False,  # failing tests are what is counted
        capture_output=True,
        text=True,
        cwd=folder,
    )
    seconds = time.perf_counter() - start
    counts: dict[str, list[int]] = {}
    failed = []
    for line in out.stdout.splitlines():
        m = re.match(r"^(PASSED|FAILED|ERROR) (\S+)", line)
        if m:
            c = counts.setdefault(Path(m.group(2).split("::")[0]).name, [0, 0])
            c[0 if m.group(1) == "PASSED" else 1] += 1
            if m.group(1) != "PASSED":
                failed.append(m.group(2).split("::", 1)[-1])
    return {k: (v[0], v[1]) for k, v in counts.items()}, seconds, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", nargs="?", help="an installed package whose own test files call gradcheck")
    ap.add_argument("--files", nargs="*", default=[], help="test files kept elsewhere")
    ap.add_argument("--seed", type=int, default=0, help="the draws' seed: the same for both runs, another per run")
    ap.add_argument("--with", dest="helpers", nargs="*", default=[], help="modules the test files import, copied beside them")
    args = ap.parse_args(argv)
    files = [Path(f) for f in args.files] + (package_tests(args.package) if args.package else [])
    if not files:
        ap.error("give a package or --files")
    with tempfile.TemporaryDirectory(prefix="verigrad-swapped-") as tmp:
        results = {}
        for kind in ("torch", "verigrad"):
            folder = Path(tmp) / ("as_written" if kind == "torch" else "swapped")  # never a folder named like a package
            folder.mkdir()
            for f in files:
                text = f.read_text()
                (folder / f.name).write_text(text if kind == "torch" else swapped(text))
            for helper in [*(Path(h) for h in args.helpers), *{c for f in files for c in f.parent.glob("conftest.py")}]:
                shutil.copy(helper, folder / helper.name)
            results[kind] = run(folder, args.seed)
    print(f"{'test file':<32} {'torch.autograd: passed/failed':>30} {'verigrad: passed/failed':>26}")
    for f in files:
        t = results["torch"][0].get(f.name, (0, 0))
        v = results["verigrad"][0].get(f.name, (0, 0))
        print(f"{f.name:<32} {f'{t[0]}/{t[1]}':>30} {f'{v[0]}/{v[1]}':>26}")
    print(f"{'wall time (s)':<32} {results['torch'][1]:>30.1f} {results['verigrad'][1]:>26.1f}")
    for kind, who in (("torch", "torch.autograd's"), ("verigrad", "verigrad's")):
        if results[kind][2]:
            print(f"failed with {who}: {', '.join(results[kind][2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
