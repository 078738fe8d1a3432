"""Weights in a dict, a list or a tuple (a pytree): a MOOC's ``rnn_cell_forward(xt, a_prev, parameters)`` with
``parameters = {"Wax": ..., ...}`` and a backward returning ``{"dxt": ..., "dWax": ...}``, checked as written.
Every leaf is drawn, differentiated, reported by its path (``parameters["Wax"]``), shrunk and replayed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from verigrad import Derivation, RunReport, check, draw_point, positive
from verigrad.analytic import DerivationError
from verigrad.checks.cli import main
from verigrad.checks.report import render
from verigrad.checks.report.junit import render_junit

RNN_SOURCE = '''
import numpy as np
from verigrad import Derivation


def softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)


def rnn_cell_forward(xt, a_prev, parameters):
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    Wya = parameters["Wya"]
    ba = parameters["ba"]
    by = parameters["by"]
    a_next = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)
    yt_pred = softmax(np.dot(Wya, a_next) + by)
    cache = (a_next, a_prev, xt, parameters)
    return a_next, yt_pred, cache


def rnn_cell_backward(da_next, cache):
    (a_next, a_prev, xt, parameters) = cache
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    dtanh = (1 - a_next ** 2) * da_next
    dxt = np.dot(Wax.T, dtanh)
    dWax = np.dot(dtanh, xt.T)
    da_prev = np.dot(Waa.T, dtanh)
    dWaa = np.dot(dtanh, a_prev.T)
    dba = np.sum(dtanh, axis=1, keepdims=True)
    gradients = {"dxt": dxt, "da_prev": da_prev, "dWax": dWax, "dWaa": dWaa, "dba": dba}
    return gradients


rnn_cell = Derivation.from_forward_backward(
    "rnn_cell", rnn_cell_forward, rnn_cell_backward,
    shapes={"xt": ("n_x", "m"), "a_prev": ("n_a", "m"),
            "parameters": {"Wax": ("n_a", "n_x"), "Waa": ("n_a", "n_a"), "Wya": ("n_y", "n_a"),
                           "ba": ("n_a", 1), "by": ("n_y", 1)}},
    outputs=2, differentiated=(0,),
    check=["xt", "a_prev", ("parameters", "Wax"), ("parameters", "Waa"), ("parameters", "ba")],
)
'''

RNN_SHAPES = {"xt": ("n_x", "m"), "a_prev": ("n_a", "m"),
              "parameters": {"Wax": ("n_a", "n_x"), "Waa": ("n_a", "n_a"), "Wya": ("n_y", "n_a"), "ba": ("n_a", 1), "by": ("n_y", 1)}}

#: One planted wrong line each, and the leaf it must be named at. Without the .T the backward raises wherever
#: n_x != m, so every gradient of that call fails with it; the others fail at that leaf alone.
PLANTED = {
    "dWax without tanh'": ("dWax = np.dot(dtanh, xt.T)", "dWax = np.dot(da_next, xt.T)", 'parameters["Wax"]'),
    "dba without the sum": ("dba = np.sum(dtanh, axis=1, keepdims=True)", "dba = dtanh", 'parameters["ba"]'),
    "dWax without .T": ("dWax = np.dot(dtanh, xt.T)", "dWax = np.dot(dtanh, xt)", 'parameters["Wax"]'),
}
RAISES = {"dWax without .T"}


def _scope(source: str) -> dict:
    scope: dict = {"__name__": "moocrnn"}
    exec(compile(source, "<moocrnn>", "exec"), scope)
    return scope


def _load(source: str, name: str = "rnn_cell") -> Derivation:
    return _scope(source)[name]


def _rnn(planted: str | None = None) -> Derivation:
    source = RNN_SOURCE
    if planted is not None:
        right, wrong, _ = PLANTED[planted]
        source = source.replace(right, wrong)
    return _load(source)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_mooc_rnn_cell_with_a_parameters_dict_passes(seed):
    report = check(_rnn(), examples=6, seed=seed, database=False)
    assert report.status == "pass", report.message
    names = [g.param for g in report.gradients]
    assert names == ["xt", "a_prev", 'parameters["Wax"]', 'parameters["Waa"]', 'parameters["ba"]']


@pytest.mark.parametrize("planted", list(PLANTED))
def test_a_planted_wrong_line_fails_naming_the_leaf(planted):
    report = check(_rnn(planted), examples=10, seed=0, database=False)
    leaf = PLANTED[planted][2]
    failing = {g.param for g in report.gradients if g.status == "fail"}
    assert report.status == "fail", report.message
    assert leaf in failing, [(g.param, g.status, g.message) for g in report.gradients]
    if planted not in RAISES:
        assert failing == {leaf}, failing


def test_the_reports_show_the_leaf_names_and_the_replay_reproduces_the_failure():
    d = _rnn("dba without the sum")
    report = check(d, examples=10, seed=0, database=False)
    run = RunReport([report], seed=0)
    doc = json.loads(json.dumps(run.to_dict()))
    params = [g["param"] for g in doc["derivations"][0]["gradients"]]
    assert 'parameters["ba"]' in params
    assert 'parameters["ba"]' in render(run)
    cases = [c.get("name") for c in ET.fromstring(render_junit(run)).iter("testcase")]
    assert any('parameters["ba"]' in (c or "") for c in cases), cases
    g = next(g for g in report.gradients if g.param == 'parameters["ba"]')
    again = check(d, replay=(g.counterexample["shapes"], g.counterexample["seed"]))
    assert again.status == "fail"
    assert next(h for h in again.gradients if h.param == 'parameters["ba"]').status == "fail"


def test_the_cli_replay_command_of_a_leaf_reproduces_it(tmp_path, capsys):
    path = tmp_path / "moocrnn.py"
    path.write_text(RNN_SOURCE.replace(*PLANTED["dba without the sum"][:2]))
    out = tmp_path / "r.json"
    assert main(["check", str(path), "--seed", "0", "--examples", "10", "--no-database", "--no-color", "--json", str(out)]) == 1
    doc = json.loads(out.read_text())
    g = next(g for g in doc["derivations"][0]["gradients"] if g["param"] == 'parameters["ba"]')
    assert g["status"] == "fail"
    argv = g["counterexample"]["replay"].split()
    spec = argv[argv.index("--replay") + 1]
    capsys.readouterr()
    assert main(["check", str(path), "--only", "rnn_cell", "--replay", spec, "--no-color"]) == 1
    assert 'parameters["ba"]' in capsys.readouterr().out


def test_check_at_takes_the_nested_structure():
    rng = np.random.default_rng(0)
    n_x, n_a, n_y, m = 3, 4, 2, 5
    parameters = {"Wax": rng.standard_normal((n_a, n_x)), "Waa": rng.standard_normal((n_a, n_a)),
                  "Wya": rng.standard_normal((n_y, n_a)), "ba": rng.standard_normal((n_a, 1)), "by": rng.standard_normal((n_y, 1))}
    at = {"xt": rng.standard_normal((n_x, m)), "a_prev": rng.standard_normal((n_a, m)), "parameters": parameters}
    report = check(_rnn(), at=at)
    assert report.status == "pass", report.message
    assert report.shapes == {"n_x": n_x, "m": m, "n_a": n_a, "n_y": n_y}
    wrong = check(_rnn("dWax without tanh'"), at=at)
    assert [g.param for g in wrong.gradients if g.status == "fail"] == ['parameters["Wax"]']


def test_check_at_refuses_a_structure_other_than_declared():
    at = {"xt": np.ones((2, 2)), "a_prev": np.ones((2, 2)), "parameters": {"Wax": np.ones((2, 2))}}
    report = check(_rnn(), at=at)
    assert report.status == "error"
    assert "parameters" in report.message and "Waa" in report.message


def rnn_torch_forward(xp, xt, a_prev, parameters):
    """The same cell against torch: autograd, the third witness, differentiates every leaf of the dict."""
    return xp.tanh(parameters["Waa"] @ a_prev + parameters["Wax"] @ xt + parameters["ba"])


def test_with_a_torch_forward_every_leaf_is_differentiated_by_autograd_too():
    scope = _scope(RNN_SOURCE)
    three = Derivation.from_forward_backward(
        "rnn_cell3", scope["rnn_cell_forward"], scope["rnn_cell_backward"], shapes=RNN_SHAPES, outputs=2, differentiated=(0,),
        torch_forward=rnn_torch_forward, check=["xt", "a_prev", ("parameters", "Waa")],
    )
    report = check(three, examples=4, seed=0, database=False)
    assert report.status == "pass", report.message
    assert report.autograd_available
    assert [g.param for g in report.gradients] == ["xt", "a_prev", 'parameters["Waa"]']


RNN_SEQUENCE = RNN_SOURCE + """

def rnn_forward(x, a0, parameters):
    caches = []
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wya"].shape
    a = np.zeros((n_a, m, T_x))
    y_pred = np.zeros((n_y, m, T_x))
    a_next = a0
    for t in range(T_x):
        a_next, yt_pred, cache = rnn_cell_forward(x[:, :, t], a_next, parameters)
        a[:, :, t] = a_next
        y_pred[:, :, t] = yt_pred
        caches.append(cache)
    caches = (caches, x)
    return a, y_pred, caches


def rnn_backward(da, caches):
    (caches, x) = caches
    (a1, a0, x1, parameters) = caches[0]
    n_a, m, T_x = da.shape
    n_x, m = x1.shape
    dx = np.zeros((n_x, m, T_x))
    dWax = np.zeros((n_a, n_x))
    dWaa = np.zeros((n_a, n_a))
    dba = np.zeros((n_a, 1))
    da_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        gradients = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
        dxt, da_prevt, dWaxt, dWaat, dbat = (gradients["dxt"], gradients["da_prev"], gradients["dWax"],
                                             gradients["dWaa"], gradients["dba"])
        dx[:, :, t] = dxt
        dWax += dWaxt
        dWaa += dWaat
        dba += dbat
    da0 = da_prevt
    return {"dx": dx, "da0": da0, "dWax": dWax, "dWaa": dWaa, "dba": dba}


rnn = Derivation.from_forward_backward(
    "rnn", rnn_forward, rnn_backward,
    shapes={"x": ("n_x", "m", "T_x"), "a0": ("n_a", "m"),
            "parameters": {"Wax": ("n_a", "n_x"), "Waa": ("n_a", "n_a"), "Wya": ("n_y", "n_a"),
                           "ba": ("n_a", 1), "by": ("n_y", 1)}},
    outputs=2, differentiated=(0,), dims={"T_x": (1, 4)},
    check=["x", "a0", ("parameters", "Wax"), ("parameters", "Waa"), ("parameters", "ba")],
)
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_the_mooc_rnn_over_a_sequence_passes(seed):
    report = check(_load(RNN_SEQUENCE, "rnn"), examples=5, seed=seed, database=False)
    assert report.status == "pass", report.message


def test_the_mooc_rnn_over_a_sequence_without_the_carried_gradient_fails_at_the_earlier_steps():
    wrong = RNN_SEQUENCE.replace("rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])", "rnn_cell_backward(da[:, :, t], caches[t])")
    report = check(_load(wrong, "rnn"), examples=8, seed=0, database=False)
    assert report.status == "fail"
    assert {g.param for g in report.gradients if g.status == "fail"} >= {"x", 'parameters["Waa"]'}


# --- an LSTM cell: (a_next, c_next, yt_pred, cache), the prediction not differentiated ------------------------


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    Wf, bf, Wi, bi = parameters["Wf"], parameters["bf"], parameters["Wi"], parameters["bi"]
    Wc, bc, Wo, bo = parameters["Wc"], parameters["bc"], parameters["Wo"], parameters["bo"]
    Wy, by = parameters["Wy"], parameters["by"]
    concat = np.concatenate((a_prev, xt), axis=0)
    ft = _sigmoid(np.dot(Wf, concat) + bf)
    it = _sigmoid(np.dot(Wi, concat) + bi)
    cct = np.tanh(np.dot(Wc, concat) + bc)
    c_next = ft * c_prev + it * cct
    ot = _sigmoid(np.dot(Wo, concat) + bo)
    a_next = ot * np.tanh(c_next)
    yt_pred = _softmax(np.dot(Wy, a_next) + by)
    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    return a_next, c_next, yt_pred, cache


def lstm_cell_backward(da_next, dc_next, cache):
    (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) = cache
    n_a = a_next.shape[0]
    dot = da_next * np.tanh(c_next) * ot * (1 - ot)
    dc = dc_next + da_next * ot * (1 - np.tanh(c_next) ** 2)
    dcct = dc * it * (1 - cct ** 2)
    dit = dc * cct * it * (1 - it)
    dft = dc * c_prev * ft * (1 - ft)
    concat = np.concatenate((a_prev, xt), axis=0)
    dconcat = (np.dot(parameters["Wf"].T, dft) + np.dot(parameters["Wi"].T, dit)
               + np.dot(parameters["Wc"].T, dcct) + np.dot(parameters["Wo"].T, dot))
    return {"dxt": dconcat[n_a:], "da_prev": dconcat[:n_a], "dc_prev": dc * ft,
            "dWf": np.dot(dft, concat.T), "dWi": np.dot(dit, concat.T), "dWc": np.dot(dcct, concat.T), "dWo": np.dot(dot, concat.T),
            "dbf": np.sum(dft, axis=1, keepdims=True), "dbi": np.sum(dit, axis=1, keepdims=True),
            "dbc": np.sum(dcct, axis=1, keepdims=True), "dbo": np.sum(dot, axis=1, keepdims=True)}


def lstm_cell_backward_wrong_forget(da_next, dc_next, cache):
    grads = lstm_cell_backward(da_next, dc_next, cache)
    ft = cache[4]
    grads["dc_prev"] = dc_next * ft  # the path through a_next forgotten
    return grads


def _lstm(backward):
    gate = ("n_a", "n_a+n_x")
    shapes = {"xt": ("n_x", "m"), "a_prev": ("n_a", "m"), "c_prev": ("n_a", "m"),
              "parameters": {"Wf": gate, "bf": ("n_a", 1), "Wi": gate, "bi": ("n_a", 1), "Wc": gate, "bc": ("n_a", 1),
                             "Wo": gate, "bo": ("n_a", 1), "Wy": ("n_y", "n_a"), "by": ("n_y", 1)}}
    checked = ["xt", "a_prev", "c_prev", *(("parameters", k) for k in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo"))]
    return Derivation.from_forward_backward("lstm_cell", lstm_cell_forward, backward, shapes=shapes, outputs=3,
                                            differentiated=(0, 1), check=checked, dims={"n_a": (1, 4), "n_x": (1, 4)})


@pytest.mark.parametrize("seed", [0, 1])
def test_an_lstm_cell_with_its_prediction_not_differentiated_passes(seed):
    report = check(_lstm(lstm_cell_backward), examples=5, seed=seed, database=False)
    assert report.status == "pass", report.message
    assert 'parameters["Wf"]' in [g.param for g in report.gradients]


def test_a_wrong_lstm_cell_fails_at_the_state_it_gets_wrong():
    report = check(_lstm(lstm_cell_backward_wrong_forget), examples=8, seed=0, database=False)
    assert report.status == "fail"
    assert [g.param for g in report.gradients if g.status == "fail"] == ["c_prev"]


def test_differentiated_must_name_outputs_the_forward_returns():
    with pytest.raises(DerivationError, match=r"lstm_cell.*differentiated") as info:
        Derivation.from_forward_backward("lstm_cell", lstm_cell_forward, lstm_cell_backward, shapes={"xt": ("n_x", "m")},
                                         outputs=3, differentiated=(0, 3))
    assert len(str(info.value).splitlines()) == 1


# --- a list of weights, plain Derivation, gradients in the same structure ------------------------------------


def mlp_forward(xp, X, weights):
    h = xp.tanh(X @ weights[0])
    return xp.sum((h @ weights[1]) ** 2)


def mlp_gradients(X, weights):
    W1, W2 = weights
    h = np.tanh(X @ W1)
    dout = 2 * (h @ W2)
    dh = dout @ W2.T * (1 - h ** 2)
    return {"X": dh @ W1.T, "weights": [X.T @ dh, h.T @ dout]}


def mlp_gradients_wrong(X, weights):
    out = mlp_gradients(X, weights)
    out["weights"][1] = out["weights"][1] / 2  # the factor 2 of the square forgotten
    return out


def _mlp(gradients):
    return Derivation("mlp", shapes={"X": ("N", "D"), "weights": [("D", "H"), ("H", "C")]}, forward=mlp_forward, gradients=gradients)


def test_a_list_of_weights_passes_and_a_wrong_one_is_named_by_its_index():
    report = check(_mlp(mlp_gradients), examples=5, seed=0, database=False)
    assert report.status == "pass", report.message
    assert [g.param for g in report.gradients] == ["X", "weights[0]", "weights[1]"]
    wrong = check(_mlp(mlp_gradients_wrong), examples=8, seed=0, database=False)
    assert [g.param for g in wrong.gradients if g.status == "fail"] == ["weights[1]"]
    assert next(g for g in wrong.gradients if g.param == "weights[1]").diagnosis.kind == "scale"


def test_gradients_may_come_back_under_an_explicit_map():
    def grads(X, weights):
        out = mlp_gradients(X, weights)
        return {"dX": out["X"], "first": out["weights"][0], "second": out["weights"][1]}

    d = Derivation("mlp_map", shapes={"X": ("N", "D"), "weights": (("D", "H"), ("H", "C"))}, forward=mlp_forward,
                   gradients=grads, grad_names={"first": ("weights", 0), "second": "weights[1]"})
    report = check(d, examples=4, seed=0, database=False)
    assert report.status == "pass", report.message


def mlp_relu_forward(xp, X, weights):
    h = X @ weights[0]
    return xp.sum(((h * (h > 0)) @ weights[1]) ** 2)


def mlp_relu_gradients(X, weights):
    h = X @ weights[0]
    a = np.maximum(h, 0)
    dout = 2 * (a @ weights[1])
    dh = dout @ weights[1].T * (h > 0)
    return {"dX": dh @ weights[0].T, "dweights": (X.T @ dh, a.T @ dout)}


def test_kinks_ranges_and_draws_take_the_structure_and_its_paths():
    d = Derivation("mlp_relu", shapes={"X": ("N", "D"), "weights": (("D", "H"), ("H", "C"))}, forward=mlp_relu_forward,
                   gradients=mlp_relu_gradients, kinks=lambda xp, X, weights: [X @ weights[0]],
                   ranges={"weights": (0.5, 1.0)}, draws={("X",): positive()})
    assert d.params == ("X", "weights[0]", "weights[1]")
    assert set(d.ranges) == {"weights[0]", "weights[1]"} and set(d.draws) == {"X"}
    point = draw_point(d, {"N": 3, "D": 2, "H": 4, "C": 2}, 7)
    assert all(0.5 <= point.params[w].min() and point.params[w].max() <= 1.0 for w in ("weights[0]", "weights[1]"))
    report = check(d, examples=5, seed=0, database=False)
    assert report.status == "pass", report.message


class TwoLayerNet:
    """A textbook layer: its weights in ``self.params``, the backward leaving their gradients in ``self.grads``."""

    def __init__(self):
        self.params, self.grads = None, None

    def forward(self, x):
        self.x, self.h = x, np.tanh(x @ self.params["W1"] + self.params["b1"])
        return self.h @ self.params["W2"]

    def backward(self, dout):
        dh = dout @ self.params["W2"].T * (1 - self.h ** 2)
        self.grads = {"W1": self.x.T @ dh, "b1": dh.sum(axis=0), "W2": self.h.T @ dout}
        return dh @ self.params["W1"].T


class TwoLayerNetNoBatchSum(TwoLayerNet):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b1"] = (dout @ self.params["W2"].T * (1 - self.h ** 2))[0]  # one row, not the sum over the batch
        return dx


def _net(layer):
    return Derivation.from_layer("two_layer_net", layer, shapes={"x": ("N", "D"), "params": {"W1": ("D", "H"), "b1": ("H",), "W2": ("H", "C")}},
                                 grads={"params": "grads"})


def test_a_layer_with_its_weights_in_a_dict_attribute():
    assert check(_net(TwoLayerNet), examples=5, seed=0, database=False).status == "pass"
    wrong = check(_net(TwoLayerNetNoBatchSum), examples=8, seed=0, database=False)
    assert [g.param for g in wrong.gradients if g.status == "fail"] == ['params["b1"]']


def nested_forward(xp, x, net):
    h = xp.tanh(x @ net["hidden"]["W"] + net["hidden"]["b"])
    return xp.sum((h @ net["out"]["W"] + net["out"]["b"]) ** 2)


def nested_gradients(x, net):
    h = np.tanh(x @ net["hidden"]["W"] + net["hidden"]["b"])
    dy = 2 * (h @ net["out"]["W"] + net["out"]["b"])
    dz = dy @ net["out"]["W"].T * (1 - h ** 2)
    return {"x": dz @ net["hidden"]["W"].T,
            "net": {"hidden": {"W": x.T @ dz, "b": dz.sum(axis=0)}, "out": {"W": h.T @ dy, "b": dy.sum(axis=0)}}}


def test_nested_dicts_are_named_by_their_whole_path_and_a_shared_last_key_has_no_rule_name():
    shapes = {"x": ("N", "D"), "net": {"hidden": {"W": ("D", "H"), "b": ("H",)}, "out": {"W": ("H", "C"), "b": ("C",)}}}
    d = Derivation("nested", shapes=shapes, forward=nested_forward, gradients=nested_gradients)
    assert d.params == ("x", 'net["hidden"]["W"]', 'net["hidden"]["b"]', 'net["out"]["W"]', 'net["out"]["b"]')
    assert "dW" not in d.tree.aliases and d.tree.aliases["dx"] == ("x",)
    assert check(d, examples=4, seed=0, database=False).status == "pass"


def test_inside_a_returned_structure_keys_may_follow_the_rule_others_are_ignored_and_left_out_ones_are_missing():
    shapes = {"x": ("N", "D"), "net": {"hidden": {"W": ("D", "H"), "b": ("H",)}, "out": {"W": ("H", "C"), "b": ("C",)}}}

    def grads(x, net):
        g = nested_gradients(x, net)
        hidden, out = g["net"]["hidden"], g["net"]["out"]
        return {"dx": g["x"], "net": {"hidden": {"dW": hidden["W"], "db": hidden["b"], "dz": 0}, "out": {"W": out["W"]}}}

    d = Derivation("nested_rule", shapes=shapes, forward=nested_forward, gradients=grads, check=["x", ("net", "hidden"), ("net", "out", "W")])
    assert d.check == ("x", 'net["hidden"]["W"]', 'net["hidden"]["b"]', 'net["out"]["W"]')
    assert check(d, examples=4, seed=0, database=False).status == "pass"
    everything = Derivation("nested_rule_all", shapes=shapes, forward=nested_forward, gradients=grads)
    report = check(everything, examples=2, seed=0, database=False)
    assert [g.param for g in report.gradients if g.status == "fail"] == ['net["out"]["b"]']
    assert next(g for g in report.gradients if g.param == 'net["out"]["b"]').problem == "missing"


DEEP_SOURCE = """
import numpy as np
from verigrad import Derivation, integers


def linear_activation_forward(A_prev, W, b, activation):
    Z = W.dot(A_prev) + b
    A = 1 / (1 + np.exp(-Z)) if activation == "sigmoid" else np.maximum(0, Z)
    return A, ((A_prev, W, b), Z)


def L_model_forward(X, parameters):
    caches = []
    A = X
    L = len(parameters) // 2
    for l in range(1, L):
        A, cache = linear_activation_forward(A, parameters["W" + str(l)], parameters["b" + str(l)], "relu")
        caches.append(cache)
    AL, cache = linear_activation_forward(A, parameters["W" + str(L)], parameters["b" + str(L)], "sigmoid")
    caches.append(cache)
    return AL, caches


def compute_cost(AL, Y):
    m = Y.shape[1]
    cost = (-1 / m) * np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL))
    return np.squeeze(cost)


def linear_activation_backward(dA, cache, activation):
    (A_prev, W, b), Z = cache
    if activation == "relu":
        dZ = np.array(dA, copy=True)
        dZ[Z <= 0] = 0
    else:
        s = 1 / (1 + np.exp(-Z))
        dZ = dA * s * (1 - s)
    m = A_prev.shape[1]
    dW = 1 / m * np.dot(dZ, A_prev.T)
    db = 1 / m * np.sum(dZ, axis=1, keepdims=True)
    dA_prev = np.dot(W.T, dZ)
    return dA_prev, dW, db


def L_model_backward(AL, Y, caches):
    grads = {}
    L = len(caches)
    Y = Y.reshape(AL.shape)
    dAL = - (np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    grads["dA" + str(L - 1)], grads["dW" + str(L)], grads["db" + str(L)] = linear_activation_backward(dAL, caches[L - 1], "sigmoid")
    for l in reversed(range(L - 1)):
        dA_prev_temp, dW_temp, db_temp = linear_activation_backward(grads["dA" + str(l + 1)], caches[l], "relu")
        grads["dA" + str(l)] = dA_prev_temp
        grads["dW" + str(l + 1)] = dW_temp
        grads["db" + str(l + 1)] = db_temp
    return grads


def cost(xp, X, parameters, Y):
    AL, _ = L_model_forward(X, parameters)
    return compute_cost(AL, Y)


def cost_gradients(X, parameters, Y):
    AL, caches = L_model_forward(X, parameters)
    return L_model_backward(AL, Y, caches)


deep = Derivation(
    "L_model", forward=cost, gradients=cost_gradients, namespaces=("numpy",),
    shapes={"X": ("n_x", "m"), "parameters": {"W1": ("n_h", "n_x"), "b1": ("n_h", 1), "W2": (1, "n_h"), "b2": (1, 1)}},
    data={"Y": integers(0, 2, shape=(1, "m"))}, check=["parameters"],
    kinks=lambda xp, X, parameters, Y: [parameters["W1"] @ X + parameters["b1"]],
)
"""


#: Run seed 1 reaches a point where 1 − AL is 2e-6 (AL = σ(z), label 0): log(1 − AL) rounds by ~1e-11 at the
#: differences' steps, which a jitter of a few ulps of z does not resolve (ε_f read 5e-15, the complex step was refused
#: and ∂f/∂W1 false-alarmed); ε_f read along a line at the steps' scale (reference/_fd.py::line_noise) does.
@pytest.mark.parametrize("seed", [0, 1])
def test_the_mooc_deep_network_gradients_dict_is_read_by_the_rule(seed):
    report = check(_load(DEEP_SOURCE, "deep"), examples=5, seed=seed, database=False)
    assert report.status == "pass", report.message
    assert [g.param for g in report.gradients] == [f'parameters["{k}"]' for k in ("W1", "b1", "W2", "b2")]


def test_the_mooc_deep_networks_dA0_mapped_to_X_is_m_times_the_costs_gradient():
    """The course's dAL differentiates the summed loss and puts 1/m into dW and db alone, so its dA0 is m × ∂cost/∂X."""
    scope = _scope(DEEP_SOURCE)
    d = scope["deep"]
    mapped = Derivation("L_model_dA0", forward=scope["cost"], gradients=scope["cost_gradients"], namespaces=("numpy",),
                        shapes={"X": ("n_x", "m"), "parameters": {"W1": ("n_h", "n_x"), "b1": ("n_h", 1), "W2": (1, "n_h"), "b2": (1, 1)}},
                        data=d.data, kinks=d.kinks.__wrapped__, grad_names={"dA0": "X"}, check=["X"])
    g = check(mapped, examples=6, seed=0, database=False).gradients[0]
    assert (g.param, g.status, g.diagnosis.kind, g.diagnosis.details.get("scale_form")) == ("X", "fail", "scale", "m")


def test_the_mooc_deep_network_without_the_mean_in_db_fails_at_both_biases():
    wrong = DEEP_SOURCE.replace("db = 1 / m * np.sum(dZ, axis=1, keepdims=True)", "db = np.sum(dZ, axis=1, keepdims=True)")
    report = check(_load(wrong, "deep"), examples=5, seed=0, database=False)
    failing = {g.param: g for g in report.gradients if g.status == "fail"}
    assert set(failing) == {'parameters["b1"]', 'parameters["b2"]'}, list(failing)
    assert all((g.diagnosis.kind, g.diagnosis.details.get("scale_form")) == ("scale", "m") for g in failing.values())


# --- refusals: one line naming the derivation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"shapes": {"X": ("N", "D"), "weights": {}}}, "weights"),
        ({"shapes": {"X": ("N", "D"), "weights": {"W1": ("D", "H"), 2: ("H", "C")}}}, "weights"),
        ({"shapes": {"X": ("N", "D"), "weights": [("D", "H"), 3.5]}}, "weights[1]"),
        ({"shapes": {"X": ("N", "D"), "weights": ["D", ("D", "H")]}}, "mixes dims and shapes"),
        ({"shapes": {"X": ("N", "D"), "weights": [("D", "H"), ("H", "C")]}, "grad_names": {"dW3": ("weights", 2)}}, "dW3"),
        ({"shapes": {"X": ("N", "D"), "weights": [("D", "H"), ("H", "C")]}, "check": [("weights", 5)]}, "weights[5]"),
        ({"shapes": {"X": ("N", "D"), "weights": [("D", "H"), ("H", "C")]}, "check": [("weights", -1)]}, "weights[-1]"),
    ],
)
def test_a_mismatched_structure_is_refused_in_one_line_naming_the_derivation(kwargs, words):
    with pytest.raises(DerivationError) as info:
        Derivation("mlp_bad", forward=mlp_forward, gradients=mlp_gradients, **kwargs)
    text = str(info.value)
    assert text.startswith("derivation 'mlp_bad':") and words in text and len(text.splitlines()) == 1, text


def test_gradients_in_another_structure_are_an_error_naming_it():
    def grads(X, weights):
        return {"X": mlp_gradients(X, weights)["X"], "weights": {"W1": weights[0], "W2": weights[1]}}

    report = check(_mlp(grads), examples=2, seed=0, database=False)
    assert report.status in ("fail", "error")
    said = " ".join(filter(None, [report.message, *(g.message or "" for g in report.gradients)]))
    assert "weights" in said and "list" in said, said


def test_a_forward_taking_an_undeclared_structure_is_refused():
    source = RNN_SOURCE.replace('"parameters": {', '"params": {')
    with pytest.raises(DerivationError, match=r"rnn_cell.*'parameters'"):
        _load(source)



def test_the_mooc_deep_network_at_a_saturated_output_is_judged_by_differences_not_the_rounded_complex_step():
    """At z = 23.4 with label 0 the forward's log(1 − AL) rounds 1 − AL = 6.6e-11 to ulps of 1: the complex step of W1
    is 1.8e-7 off, the course's backward 2e-10 (docs/tolerances.md §11). t is refused there, not trusted."""
    spec = {"n_x": 6, "m": 8, "n_h": 8, "Y": [[0] * 8]}
    report = check(_load(DEEP_SOURCE, "deep"), replay=(spec, 627))
    assert report.status == "pass", report.message
    w1 = report.gradients[0]
    assert w1.witness == "finite differences" and "not exact to rounding" in w1.witness_refused
