"""Data inputs, hyperparameters and seeded forwards (issue #12.1, #12.2, #12.7): declared on the derivation,
searched and shrunk with the sizes, in the counterexample, the replay and every report."""

from __future__ import annotations

import html
import json
import shlex

import numpy as np
import pytest
from hypothesis import given, settings

from verigrad import Derivation, DerivationError, Status, booleans, check, fixed, integers, one_hot
from verigrad.analytic import builtins
from verigrad.checks.report import RunReport
from verigrad.checks.report.html import render_html
from verigrad.checks.report.junit import render_junit
from verigrad.checks.report.markdown import render_markdown
from verigrad.checks.report.terminal import render
from verigrad.checks.search import parse_replay
from verigrad.checks.search.database import known_failures
from verigrad.checks.search.inputs import bind_spec
from verigrad.checks.search.points import sizes_strategy

SEARCH = {"seed": 3, "database": False}


def replayed(derivation: Derivation, command: str):
    """The check a report's replay command runs, taken from the command line itself (as a shell splits it)."""
    words = shlex.split(command)
    return check(derivation, replay=parse_replay(words[words.index("--replay") + 1]), database=False)


# --- a 1-D convolution with stride and padding as hyperparameters ------------------------------------------------


def _pad(xp, x, pad):
    if pad == 0:
        return x
    z = xp.zeros((x.shape[0], pad), dtype=x.dtype)
    return xp.concat([z, x, z], axis=1)


def conv_forward(xp, x, w, stride, pad):
    k, h_out = w.shape[0], (x.shape[1] + 2 * pad - w.shape[0]) // stride + 1
    xt = _pad(xp, x, pad)
    return sum(w[j] * xt[:, j : j + stride * (h_out - 1) + 1 : stride] for j in range(k))


def conv_gradients(x, w, stride, pad, grad_output, *, crop=None, accumulate=True):
    G, k = grad_output, w.shape[0]
    xt = np.pad(x, ((0, 0), (pad, pad)))
    dxt, dw = np.zeros_like(xt), np.zeros_like(w)
    for j in range(k):
        window = slice(j, j + stride * (G.shape[1] - 1) + 1, stride)
        dw[j] = np.sum(G * xt[:, window])
        if accumulate:
            dxt[:, window] += G * w[j]
        else:  # assignment: right only while the windows do not overlap (stride >= K)
            dxt[:, window] = np.where(G * w[j] != 0, G * w[j], dxt[:, window])
    dx = dxt[:, pad : pad + x.shape[1]] if crop is None else crop(dxt, pad)
    return {"x": dx, "w": dw}


def conv(name, gradients, hyper, w_shape=("K",)):
    return Derivation(
        name=name,
        shapes={"x": ("N", "H"), "w": w_shape},
        hyper=hyper,
        output=("N", "(H+2*pad-K)//stride+1") if w_shape == ("K",) else ("N", "(H+2*pad-2)//stride+1"),
        dims={"N": (1, 2), "H": (1, 6), **({"K": (1, 3)} if w_shape == ("K",) else {})},
        forward=conv_forward,
        gradients=gradients,
    )


def test_a_right_convolution_passes_over_every_configuration():
    seen = set()

    def gradients(x, w, stride, pad, grad_output):
        seen.add((stride, pad))
        return conv_gradients(x, w, stride, pad, grad_output)

    report = check(conv("conv1d", gradients, {"stride": [1, 2], "pad": [0, 1]}), **SEARCH)
    assert report.status == Status.PASS, report.message
    assert seen == {(1, 0), (1, 1), (2, 0), (2, 1)}  # every configuration searched


def test_a_backward_wrong_only_at_pad_0_is_caught_there():
    # dxt[:, pad:-pad] is the usual slip: at pad 0 it is empty.
    bad = lambda x, w, stride, pad, grad_output: conv_gradients(x, w, stride, pad, grad_output, crop=lambda d, p: d[:, p:-p])
    d = conv("conv1d_crop", bad, {"stride": [1, 2], "pad": [1, 0]})
    report = check(d, **SEARCH)
    assert report.status == Status.FAIL
    assert report.hyper["pad"] == 0 and report.counterexample["hyper"]["pad"] == 0
    assert report.hyper["stride"] == 1  # shrunk toward the first value of its grid
    assert "pad=0" in report.replay
    again = replayed(d, report.replay)
    assert again.status == Status.FAIL and again.hyper == report.hyper and again.shapes == report.shapes


def test_a_backward_wrong_only_with_overlapping_windows_is_caught_at_stride_1():
    bad = lambda x, w, stride, pad, grad_output: conv_gradients(x, w, stride, pad, grad_output, accumulate=False)
    d = conv("conv1d_assign", bad, {"stride": [2, 1], "pad": [0]}, w_shape=(2,))
    report = check(d, **SEARCH)
    assert report.status == Status.FAIL
    assert report.hyper == {"stride": 1, "pad": 0}
    assert "stride=1, pad=0" in render(RunReport([report]))


def test_configurations_that_allow_no_sizes_are_never_drawn():
    d = Derivation(
        name="shrink_by_pad",
        shapes={"x": ("N", "H")},
        hyper={"cut": [0, 5, 100]},  # H - 2*cut >= 1 needs H >= 11 at cut 5: never within 1..8; 100 neither
        output=("N", "H-2*cut"),
        forward=lambda xp, x, cut: x[:, cut : x.shape[1] - cut],
        gradients=lambda x, cut, grad_output: {"x": np.pad(grad_output, ((0, 0), (cut, cut)))},
    )
    assert [c["cut"] for c in d.hyper_configs] == [0]
    assert check(d, **SEARCH).status == Status.PASS


# --- a key of a dict hyperparameter in a dim: the course's conv_param -------------------------------------------


def conv_param_derivation(name, gradients=conv_gradients, grid=None, output=None):
    grid = grid or [{"stride": 1, "pad": 1}, {"stride": 2, "pad": 0}, {"stride": 1, "pad": 0}]
    return Derivation(
        name=name,
        shapes={"x": ("N", "H"), "w": ("K",)},
        hyper={"conv_param": grid},
        output=output or ("N", "(H+2*conv_param['pad']-K)//conv_param[\"stride\"]+1"),
        dims={"N": (1, 2), "H": (1, 6), "K": (1, 3)},
        forward=lambda xp, x, w, conv_param: conv_forward(xp, x, w, conv_param["stride"], conv_param["pad"]),
        gradients=lambda x, w, conv_param, grad_output: gradients(x, w, conv_param["stride"], conv_param["pad"], grad_output),
    )


def test_a_key_of_a_dict_hyperparameter_sizes_the_output():
    d = conv_param_derivation("conv_param")
    assert d.symbols == ("N", "H", "K")
    assert d.hyper_dims == ("conv_param['pad']", "conv_param['stride']")  # either quote: one name
    assert {(c["conv_param['pad']"], c["conv_param['stride']"]) for c in d.hyper_configs} == {(1, 1), (0, 2), (0, 1)}
    report = check(d, **SEARCH)
    assert report.status == Status.PASS, report.message


def test_a_key_of_a_dict_hyperparameter_is_searched_shrunk_and_replayed():
    bad = lambda x, w, stride, pad, grad_output: conv_gradients(x, w, stride, pad, grad_output, crop=lambda d, p: d[:, p:-p])
    d = conv_param_derivation("conv_param_crop", bad)
    report = check(d, **SEARCH)
    assert report.status == Status.FAIL
    assert report.hyper["conv_param"]["pad"] == 0
    again = replayed(d, report.replay)
    assert again.status == Status.FAIL and again.hyper == report.hyper and again.shapes == report.shapes


@pytest.mark.parametrize(
    ("output", "grid", "needle"),
    [
        pytest.param("H-conv_param['padd']", None, "dim conv_param['padd']: hyperparameter 'conv_param' has no key 'padd'", id="no-key"),
        pytest.param("H-conv_param['pad']", [{"pad": 1}, 2], "whose value 2 is not a dict", id="not-a-dict"),
        pytest.param("H-conv_param['pad']", [{"pad": 0.5}], "a key used in a dim must hold an int", id="not-an-int"),
        pytest.param("H-conv_param[0]", None, "'conv_param[0]' is not allowed", id="int-key"),
        pytest.param("H-conv_param[pad]", None, "'conv_param[pad]' is not allowed", id="name-key"),
    ],
)
def test_a_bad_key_in_a_dim_is_one_line_when_built(output, grid, needle):
    with pytest.raises(DerivationError) as info:
        conv_param_derivation("bad_key", grid=grid, output=("N", output))
    text = str(info.value)
    assert text.startswith("derivation 'bad_key':") and needle in text and "\n" not in text


def test_a_key_of_something_not_a_hyperparameter_is_refused():
    with pytest.raises(DerivationError, match="dim p\\['a'\\] takes a key of 'p', which is not a hyperparameter"):
        Derivation(name="stray", shapes={"x": ("p['a']",)}, forward=lambda xp, x: xp.sum(x), gradients=lambda x: {"x": np.ones_like(x)})


# --- integer labels, masks, one-hot rows, fixed arrays ------------------------------------------------------------


def _log_softmax(xp, Z):
    m = xp.max(Z, axis=1, keepdims=True)
    return Z - m - xp.log(xp.sum(xp.exp(Z - m), axis=1, keepdims=True))


def labels_forward(xp, Z, y):
    return -xp.sum(xp.take_along_axis(_log_softmax(xp, Z), xp.reshape(y, (-1, 1)), axis=1)) / Z.shape[0]


def labels_derivation(name, first_class_only=False, seen=None):
    def gradients(Z, y):
        if seen is not None:
            seen.append(tuple(y.tolist()))
        p = np.exp(_log_softmax(np, Z))
        if first_class_only:  # the label ignored: right only where every label is 0
            p[:, 0] -= 1.0
        else:
            p[np.arange(Z.shape[0]), y] -= 1.0
        return {"Z": p / Z.shape[0]}

    return Derivation(name=name, shapes={"Z": ("N", "C")}, data={"y": integers(0, "C", shape=("N",))}, forward=labels_forward, gradients=gradients)


def test_integer_labels_vary_and_stay_in_range():
    seen: list[tuple[int, ...]] = []
    report = check(labels_derivation("labels", seen=seen), **SEARCH)
    assert report.status == Status.PASS
    assert len(set(seen)) > 5 and any(v > 0 for y in seen for v in y)


def test_integer_labels_shrink_to_the_smallest_wrong_one():
    d = labels_derivation("labels_ignored", first_class_only=True)
    report = check(d, **SEARCH)
    assert report.status == Status.FAIL
    assert report.shapes == {"N": 1, "C": 2}
    assert report.data["y"].tolist() == [1]  # label 0 is right; 1 is the smallest wrong one
    assert report.counterexample["data"] == {"y": [1]}
    assert "y=[1]" in report.replay
    again = replayed(d, report.replay)
    assert again.status == Status.FAIL and again.data["y"].tolist() == [1]


def test_labels_at_a_given_point():
    d = labels_derivation("labels_at")
    Z = np.random.default_rng(0).standard_normal((3, 4))
    assert check(d, at={"Z": Z, "y": np.array([3, 0, 2])}).status == Status.PASS
    assert check(labels_derivation("labels_at_bad", first_class_only=True), at={"Z": Z, "y": np.array([3, 0, 2])}).status == Status.FAIL
    refused = check(d, at={"Z": Z, "y": np.array([0.5, 0.0, 2.0])})
    assert refused.status == Status.ERROR and "integer array" in refused.message


def masked(name, ignore_mask=False):
    return Derivation(
        name=name,
        shapes={"X": ("N", "D")},
        data={"mask": booleans(("N", "D"))},
        forward=lambda xp, X, mask: xp.sum(xp.where(xp.asarray(mask), X * X, 0.0 * X)),
        gradients=lambda X, mask: {"X": 2 * X if ignore_mask else 2 * X * mask},
    )


def test_a_boolean_mask():
    assert check(masked("mask"), **SEARCH).status == Status.PASS
    report = check(masked("mask_ignored", ignore_mask=True), **SEARCH)
    assert report.status == Status.FAIL
    assert report.data["mask"].dtype == bool and not report.data["mask"].all()
    assert report.shapes == {"N": 1, "D": 1} and report.data["mask"].tolist() == [[False]]


def test_one_hot_targets():
    def forward(xp, Z, t):
        return -xp.sum(t * _log_softmax(xp, Z)) / Z.shape[0]

    def gradients(Z, t, wrong=False):
        p = np.exp(_log_softmax(np, Z))
        return {"Z": (p - (0 * t if wrong else t)) / Z.shape[0]}

    d = Derivation(name="one_hot", shapes={"Z": ("N", "C")}, data={"t": one_hot(("N", "C"))}, forward=forward, gradients=gradients)
    assert check(d, **SEARCH).status == Status.PASS
    wrong = lambda Z, t: gradients(Z, t, True)
    bad = Derivation(name="one_hot_bad", shapes={"Z": ("N", "C")}, data={"t": one_hot(("N", "C"))}, forward=forward, gradients=wrong)
    report = check(bad, **SEARCH)
    assert report.status == Status.FAIL
    t = report.data["t"]
    assert t.dtype == np.float64 and (t.sum(axis=-1) == 1).all() and set(np.unique(t)) <= {0.0, 1.0}


def test_a_fixed_array_is_passed_as_is_and_copied():
    M = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0]])

    def forward(xp, x, M):
        return xp.sum((x @ xp.asarray(M, dtype=x.dtype)) ** 2)

    def gradients(x, M):
        out = {"x": 2 * (x @ M) @ M.T}
        M[:] = 0  # a copy: the next call still gets the array as given
        return out

    d = Derivation(name="fixed", shapes={"x": ("N", 3)}, data={"M": fixed(M)}, forward=forward, gradients=gradients)
    assert check(d, **SEARCH).status == Status.PASS
    bad = Derivation(name="fixed_bad", shapes={"x": ("N", 3)}, data={"M": fixed(M)}, forward=forward, gradients=lambda x, M: {"x": 2 * (x @ M)})
    report = check(bad, **SEARCH)
    assert report.status == Status.FAIL and "M" not in report.data  # a fixed array is not part of the point


# --- seeded random forwards ---------------------------------------------------------------------------------------


def _keep(shape, p, seed):
    return (np.random.default_rng(seed).random(shape) >= p) / (1 - p)


def dropout(name, gradients):
    return Derivation(
        name=name,
        shapes={"X": ("N", "D")},
        hyper={"p": [0.5, 0.25]},
        seed=True,
        output=("N", "D"),
        forward=lambda xp, X, p, seed: X * xp.asarray(_keep(tuple(X.shape), p, seed), dtype=X.dtype),
        gradients=gradients,
    )


def test_seeded_dropout_right_passes_and_the_seed_reaches_both_functions():
    seeds = []

    def gradients(X, p, seed, grad_output):
        seeds.append(seed)
        return {"X": grad_output * _keep(X.shape, p, seed)}

    assert check(dropout("dropout", gradients), **SEARCH).status == Status.PASS
    assert len(set(seeds)) > 5  # a seed per example


def test_dropout_whose_mask_ignores_the_seed_fails_and_replays():
    d = dropout("dropout_unseeded", lambda X, p, seed, grad_output: {"X": grad_output * _keep(X.shape, p, 12345)})
    report = check(d, **SEARCH)
    assert report.status == Status.FAIL
    assert report.forward_seed is not None and report.counterexample["forward_seed"] == report.forward_seed
    assert f"forward_seed={report.forward_seed}" in report.replay
    again = replayed(d, report.replay)
    assert again.status == Status.FAIL and again.forward_seed == report.forward_seed and again.hyper == report.hyper


# --- the reports and the replay -----------------------------------------------------------------------------------


def moded(name):
    def gradients(x, mode, conv_param, grad_output):
        scale = 1.0 if mode == "train" else 0.5 * conv_param["scale"]  # wrong in test mode: 0.5 too small
        return {"x": grad_output * scale}

    def forward(xp, x, mode, conv_param):
        return x * (1.0 if mode == "train" else conv_param["scale"])

    return Derivation(
        name=name,
        shapes={"x": ("N",)},
        hyper={"mode": ["train", "test"], "conv_param": [{"scale": 2.0, "name": "it's a, b"}]},
        output=("N",),
        forward=forward,
        gradients=gradients,
    )


def test_strings_and_dicts_round_trip_through_the_replay_and_every_report():
    d = moded("moded")
    report = check(d, **SEARCH)
    assert report.status == Status.FAIL and report.hyper["mode"] == "test"
    again = replayed(d, report.replay)
    assert again.status == Status.FAIL and again.hyper == report.hyper
    run = RunReport([report], seed=3)
    said = "mode='test', conv_param={'scale': 2.0, 'name': \"it's a, b\"}"
    for text in (render(run), render_markdown(run), render_junit(run), render_html(run)):
        assert said in html.unescape(text).replace("\\", ""), text  # each view's escaping undone
    doc = json.loads(json.dumps(run.to_dict()))["derivations"][0]
    assert doc["hyper"] == {"mode": "test", "conv_param": {"scale": 2.0, "name": "it's a, b"}}
    assert doc["counterexample"]["hyper"]["mode"] == "test"


def test_data_read_as_small_arrays_in_the_reports():
    report = check(labels_derivation("labels_shown", first_class_only=True), **SEARCH)
    text = render(RunReport([report]))
    assert "y=[1]" in text
    assert json.loads(json.dumps(report.to_dict()))["data"] == {"y": [1]}


def test_a_replay_spec_that_does_not_fit_is_one_line():
    d = conv("conv1d_spec", conv_gradients, {"stride": [1, 2], "pad": [0, 1]})
    for spec, needle in [
        ("N=1,H=3,K=2,stride=3,pad=0,seed=1", "not in the grid"),
        ("N=1,H=3,K=2,stride=1,seed=1", "no value for pad"),
        ("N=1,H=3,K=2,stride=1,pad=0,mode='x',seed=1", "unknown name(s) mode"),
    ]:
        report = check(d, replay=parse_replay(spec), database=False)
        assert report.status == Status.ERROR and needle in report.message and "\n" not in report.message


# --- declarations -------------------------------------------------------------------------------------------------


def _f(xp, x, y=None):
    return xp.sum(x)


BAD = [
    ({"data": {"y": integers(0, "Q", shape=("N",))}}, "bound names dim 'Q'"),
    ({"hyper": {"stride": []}}, "empty grid"),
    ({"hyper": {"stride": 1}}, "must be a list of values"),
    ({"data": {"x": booleans(("N",))}}, "also a parameter"),
    ({"hyper": {"alpha": [1.0]}}, "forward cannot take the argument(s) alpha"),
    ({"ranges": {"y": {0, 1}}}, "declare it as data="),
    ({"ranges": {"x": (0, 1, int)}}, "declare it as data="),
    ({"data": {"y": integers(2, 2)}}, "is empty"),
    ({"data": {"y": booleans(("N",), p=1.5)}}, "p must be a number in [0, 1]"),
    ({"data": {"y": fixed([[1, 2], [3]])}}, "fixed() needs a numeric or bool array"),
    ({"data": {"y": (0, 3)}}, "must be integers(...)"),
    ({"seed": "yes"}, "seed must be True"),
    ({"hyper": {"mode": ["a"]}, "output": ("N-mode",)}, "values must be ints"),
    ({"hyper": {"k": [20]}, "output": ("N-k",)}, "makes 'N-k' >= 1"),
    ({"hyper": {"k": [1, 20]}, "output": ("N-k", "k-N")}, "no values of k"),
    ({"data": {"seed": booleans(("N",))}}, "data name 'seed'"),
    ({"hyper": {"y": [1]}, "data": {"y": booleans(("N",))}}, "also a hyperparameter"),
]


@pytest.mark.parametrize(("extra", "needle"), BAD, ids=[n for _, n in BAD])
def test_a_bad_declaration_is_one_line_naming_the_derivation(extra, needle):
    kwargs = {"name": "bad_decl", "shapes": {"x": ("N",)}, "forward": _f, "gradients": lambda x, y=None: {"x": x * 0 + 1}}
    if "output" in extra:
        kwargs["gradients"] = lambda x, grad_output, mode=None, k=None: {"x": grad_output}
        kwargs["forward"] = lambda xp, x, mode=None, k=None: x
    with pytest.raises(DerivationError) as info:
        Derivation(**{**kwargs, **extra})
    message = str(info.value)
    assert needle in message and "'bad_decl'" in message and "\n" not in message, message


def _draws_plain_sizes(d: Derivation) -> None:
    @settings(max_examples=3, database=None)
    @given(sizes_strategy(d))
    def plain(sizes):
        assert set(sizes) == set(d.symbols) and all(isinstance(v, int) for v in sizes.values())

    plain()


def test_a_derivation_without_inputs_is_unchanged():
    for d in builtins():
        if d.data or d.hyper or d.seed:
            continue
        assert not d.has_inputs and d.bound is None
        sizes = {s: d.dim_range(s)[0] for s in d.symbols}
        bound, same = bind_spec(d, sizes)
        assert bound is d and same == sizes
        _draws_plain_sizes(d)


def test_a_failure_with_inputs_is_saved_and_tried_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    d = labels_derivation("labels_db", first_class_only=True)
    first = check(d, seed=3, database=True)
    (spec, _), *_ = known_failures(d, None).entries()
    assert spec["y"] == first.data["y"].tolist() and spec["N"] == first.shapes["N"]
    second = check(d, seed=4, database=True)
    assert second.status == Status.FAIL and second.examples == 1  # the saved one, tried first
    assert second.data["y"].tolist() == first.data["y"].tolist()


def test_the_data_follow_the_sizes_where_the_diagnosis_looks_elsewhere():
    d = labels_derivation("labels_elsewhere")
    bound, sizes = bind_spec(d, {"N": 2, "C": 3, "y": [2, 1]})
    assert sizes == {"N": 2, "C": 3}
    calls = []
    inner = bound.gradients.fn
    bound.gradients.fn = lambda Z, y: calls.append(y.copy()) or inner(Z, y)
    bound.gradients(Z=np.zeros((2, 3)))
    bound.gradients(Z=np.zeros((4, 2)))
    assert calls[0].tolist() == [2, 1]  # the example's own labels
    assert calls[1].shape == (4,) and calls[1].min() >= 0 and calls[1].max() < 2  # drawn at N=4, C=2


def test_draw_point_at_sizes_alone_takes_defaults():
    from verigrad import draw_point

    d = conv("conv1d_draw", conv_gradients, {"stride": [2, 1], "pad": [1, 0]})
    point = draw_point(d, {"N": 1, "H": 4, "K": 2}, 0)
    assert point.hyper == {"stride": 2, "pad": 1} and point.params["x"].shape == (1, 4)
    labelled = draw_point(labels_derivation("labels_draw"), {"N": 3, "C": 2}, 0)
    assert labelled.data["y"].shape == (3,) and set(labelled.data["y"].tolist()) <= {0, 1}
