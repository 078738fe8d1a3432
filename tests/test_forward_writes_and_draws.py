"""Real code as it is written (issue 22 items 3 and 4): a forward that writes into its input is judged on
copies with a warning in every report, and code that draws from a global random generator (a textbook
Dropout's ``np.random.rand``) is seeded from the point's seed before every call, checked as it is and noted."""

from __future__ import annotations

import json
import random
import shlex

import numpy as np
import torch

from verigrad import Derivation, check, integers
from verigrad.checks.report import FAIL, PASS, RunReport, render
from verigrad.checks.report.html import render_html
from verigrad.checks.report.junit import render_junit
from verigrad.checks.report.markdown import render_markdown
from verigrad.checks.search import draw_point, parse_replay
from verigrad.checks.verdict import evaluate, evaluate_group
from verigrad.checks.verdict.calls import forward_mutation_warnings, global_draw_notes
from verigrad.checks.verdict.stacked import screen
from verigrad.reference import NUMPY_GLOBAL, RANDOM, TORCH_GLOBAL, BatchedObjective, forward_value

SEARCH = {"seed": 5, "database": False, "examples": 4}


def in_every_view(report, text: str, needle: str) -> None:
    """The warning ``text`` is in the JSON report, and its words ``needle`` in the terminal, Markdown, JUnit and
    HTML reports (each escapes its own characters)."""
    run = RunReport([report], seed=5)
    for view in (render(run), render_markdown(run), render_junit(run), render_html(run)):
        assert needle in view
    assert text in json.loads(json.dumps(run.to_dict()))["derivations"][0]["warnings"]


# --- a forward that writes into its input ---------------------------------------------------------------------


def softmax_loss_in_place(x, y):
    """A 2022 course solution's softmax loss: the max subtracted from x itself."""
    logits = x
    logits -= np.max(logits, axis=1, keepdims=True)
    p = np.exp(logits)
    p /= np.sum(p, axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.sum(np.log(p[np.arange(n), y])) / n
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def softmax_loss_in_place_no_mean(x, y):
    loss, dx = softmax_loss_in_place(x, y)
    return loss, dx * x.shape[0]


def softmax(name, loss):
    return Derivation.from_loss(name, loss, shapes={"x": ("N", "C")}, data={"y": integers(0, "C", shape=("N",))})


def test_a_course_softmax_loss_that_writes_into_x_is_judged_with_a_warning_in_every_report():
    report = check(softmax("softmax_in_place", softmax_loss_in_place), **SEARCH)
    assert report.status == PASS, report.message
    assert report.forward_modified_in_place == ["x"] and report.to_dict()["forward_modified_in_place"] == ["x"]
    in_every_view(report, forward_mutation_warnings(["x"])[0], "forward modified its input x in place")
    wrong = check(softmax("softmax_in_place_no_mean", softmax_loss_in_place_no_mean), **SEARCH)
    assert wrong.status == FAIL and wrong.forward_modified_in_place == ["x"]


def scaled_square(xp, X, w):
    w *= 2.0  # into the parameter the differences do not perturb: every row of a batched call shares it
    return xp.sum((X @ w) ** 2)


def scaled_square_gradients(X, w):
    r = X @ (2 * w)
    return {"X": 2 * np.outer(r, 2 * w), "w": 4 * X.T @ r}


def test_every_finite_difference_evaluation_sees_the_intended_point():
    d = Derivation(name="scaled_square", shapes={"X": ("N", "D"), "w": ("D",)}, forward=scaled_square, gradients=scaled_square_gradients)
    p = draw_point(d, {"N": 2, "D": 3}, 0).params
    ev = BatchedObjective(d, p)
    flat = np.arange(p["X"].size)
    values = p["X"].reshape(-1) + 1e-3
    first, again = ev.at_entries("X", flat, values)[0], ev.at_entries("X", flat, values)[0]
    for k, v in enumerate(values):
        moved = p["X"].copy()
        moved.reshape(-1)[k] = v
        assert first[k] == again[k] and abs(first[k] - forward_value(d, {"X": moved, "w": p["w"]})) <= 1e-12
    assert check(d, **SEARCH).status == PASS


def test_the_stacked_path_gives_a_writing_forward_the_single_checks_reports():
    scalar = Derivation(name="into_x", shapes={"X": ("N", "D")}, forward=lambda xp, X: xp.sum(_halve(X) ** 2),
                        gradients=lambda X: {"X": X / 2})
    points = [draw_point(scalar, {"N": 2, "D": 3}, s) for s in range(3)]
    together = list(evaluate_group(scalar, points))
    alone = [evaluate(scalar, p) for p in points]
    assert [r.status for r in together] == [r.status for r in alone] == [PASS] * 3
    assert [r.warnings for r in together] == [r.warnings for r in alone]
    assert all(r.forward_modified_in_place == ["X"] for r in together)


def _halve(X):
    X *= 0.5
    return X


# --- randomness from a global generator ---------------------------------------------------------------------


class Dropout:
    """A deep-learning textbook's dropout layer: the mask drawn from NumPy's global generator and kept."""

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


class DropoutFreshMask(Dropout):
    def backward(self, dout):  # a mask of its own: wrong wherever the two masks differ
        return dout * (np.random.rand(*dout.shape) > self.dropout_ratio)


def test_a_textbook_dropout_on_the_global_generator_is_checked_as_it_is_and_noted():
    report = check(Derivation.from_layer("dropout", Dropout, shapes={"x": ("N", "D")}), **SEARCH)
    assert report.status == PASS, report.message
    assert report.global_generators == [NUMPY_GLOBAL] and report.to_dict()["global_generators"] == [NUMPY_GLOBAL]
    in_every_view(report, global_draw_notes([NUMPY_GLOBAL])[0], "global generator (np.random): it was seeded from the point")


def test_a_wrong_backward_on_the_global_generator_fails_and_its_replay_reproduces_it():
    d = Derivation.from_layer("dropout_fresh", DropoutFreshMask, shapes={"x": ("N", "D")}, dims={"N": (2, 3), "D": (2, 4)})
    report = check(d, **SEARCH)
    assert report.status == FAIL and report.global_generators == [NUMPY_GLOBAL]
    words = shlex.split(report.replay)
    again = check(d, replay=parse_replay(words[words.index("--replay") + 1]), database=False)
    assert again.status == FAIL
    assert again.failures[0].max_abs_err == report.failures[0].max_abs_err
    assert again.failures[0].worst_index == report.failures[0].worst_index


def test_each_point_draws_from_its_own_seed_the_same_at_every_call():
    seen: list[tuple] = []

    def forward(xp, x):
        mask = np.random.rand(*x.shape) > 0.5
        seen.append(tuple(mask.ravel()))
        return np.sum(x * mask * x)

    def gradients(x):
        return {"x": 2 * x * (np.random.rand(*x.shape) > 0.5)}

    d = Derivation(name="masked_square", shapes={"x": ("D",)}, forward=forward, gradients=gradients, namespaces=("numpy",), dims={"D": (6, 6)})
    masks = []
    for seed in (1, 2):
        point = draw_point(d, {"D": 6}, seed)
        seen.clear()
        report = evaluate(d, point)
        assert report.status == PASS, report.message
        assert report.global_generators == [NUMPY_GLOBAL]
        masks.append(seen[0])
        assert set(seen) == {seen[0]}  # every evaluation at the point: one mask
    assert masks[0] != masks[1]  # another point, another seed


def test_python_random_and_torch_generators_are_seeded_and_named():
    def py_forward(xp, x):
        return xp.sum(x * x) * (1.0 + random.random())

    def py_gradients(x):
        return {"x": 2 * x * (1.0 + random.random())}

    report = check(Derivation(name="py_random", shapes={"x": ("D",)}, forward=py_forward, gradients=py_gradients), **SEARCH)
    assert report.status == PASS and report.global_generators == [RANDOM], report.message

    def torch_forward(xp, x):
        return torch.sum(x * x * (torch.rand(x.shape, dtype=x.dtype) > 0.5))

    def torch_gradients(x):
        return {"x": 2 * x * (torch.rand(x.shape, dtype=torch.float64) > 0.5).numpy()}

    d = Derivation(name="torch_random", shapes={"x": ("D",)}, forward=torch_forward, gradients=torch_gradients, namespaces=("torch",))
    report = check(d, **SEARCH)
    assert report.status == PASS and report.global_generators == [TORCH_GLOBAL], report.message


def test_code_that_draws_nothing_gets_no_note():
    report = check(Derivation(name="square", shapes={"x": ("D",)}, forward=lambda xp, x: xp.sum(x * x), gradients=lambda x: {"x": 2 * x}), **SEARCH)
    assert report.status == PASS and report.global_generators == [] and not report.warnings


def test_code_that_draws_nothing_is_still_checked_as_a_stack_at_a_seed_never_seen():
    d = Derivation(name="square_stacked", shapes={"x": ("D",)}, forward=lambda xp, x: xp.sum(x * x), gradients=lambda x: {"x": 2 * x})
    for seed in (3_141_592_653, 2_718_281_828):  # seeds no other check used: their first draws are not known yet
        assert isinstance(screen(d, draw_point(d, {"D": 3}, seed)), tuple)



def test_a_check_in_the_callers_process_leaves_its_global_generators_as_they_were():
    """The checks seed np.random, random and torch at every point; the caller's own streams go on undisturbed."""
    import random

    import torch

    from verigrad import check

    def dropout_forward(xp, X):
        mask = np.random.rand(*X.shape) > 0.5
        return xp.sum((X * xp.asarray(mask, dtype=xp.float64)) ** 2)

    d = Derivation(name="global_dropout", shapes={"X": ("N", "D")}, forward=dropout_forward, namespaces=("numpy",),
                   gradients=lambda X: {"X": 2 * X * (np.random.rand(*X.shape) > 0.5)})
    np.random.seed(7), random.seed(7), torch.manual_seed(7)
    expected = (np.random.rand(), random.random(), float(torch.rand(())))
    np.random.seed(7), random.seed(7), torch.manual_seed(7)
    check(d, examples=2, seed=0, database=False)
    assert (np.random.rand(), random.random(), float(torch.rand(()))) == expected
