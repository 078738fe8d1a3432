"""benchmarks/swapped_suites.py: a suite's gradcheck import swapped to verigrad's, the rest as written."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("swapped_suites", ROOT / "benchmarks" / "swapped_suites.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_gradcheck_and_gradgradcheck_change_where_they_come_from():
    s = _script()
    assert s.swapped("from torch.autograd import gradcheck, grad\n") == "from torch.autograd import grad\nfrom verigrad import gradcheck\n"
    assert s.swapped("from torch.autograd import gradgradcheck as ggc\n") == "from verigrad import gradgradcheck as ggc\n"
    assert s.swapped("from torch.autograd import Function\nx = 1\n") == "from torch.autograd import Function\nx = 1\n"
    out = s.swapped("import torch\nassert torch.autograd.gradcheck(f, (x,))\n")
    assert out.startswith("import verigrad\n") and "verigrad.gradcheck(f, (x,))" in out and "torch.autograd.gradcheck" not in out


SUITE = '''import torch
from torch.autograd import gradcheck


class Relu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x >= 0).to(g.dtype)


def test_at_a_tie():
    x = torch.tensor([0.0, 1.5, -2.0], dtype=torch.float64, requires_grad=True)
    assert gradcheck(Relu.apply, (x,))


def test_away_from_it():
    x = torch.tensor([0.5, 1.5, -2.0], dtype=torch.float64, requires_grad=True)
    assert gradcheck(Relu.apply, (x,))
'''


def test_a_suite_runs_both_ways_and_the_kink_torch_fails_passes_swapped(tmp_path, capsys):
    suite = tmp_path / "test_relu_suite.py"
    suite.write_text(SUITE)
    assert _script().main(["--files", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "test_relu_suite.py" in out
    row = next(line for line in out.splitlines() if line.startswith("test_relu_suite.py"))
    assert row.split()[1:] == ["1/1", "2/0"], out  # torch: the tie is a mismatch; verigrad: a kink
    assert "failed with torch.autograd's: test_at_a_tie" in out
