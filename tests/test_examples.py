"""The examples run (short versions) and produce what they promise."""
import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location("example_" + name, EXAMPLES / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_digits_quick_run_learns(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    digits = load("digits")
    out = tmp_path / "curves.png"
    result = digits.main(["--quick", "--quiet", "--out", str(out)])
    hist = result["history"]
    assert len(hist["loss"]) == 2 and len(hist["test_acc"]) == 2
    assert hist["loss"][1] < hist["loss"][0] < np.log(10)      # below chance level
    assert result["test_acc"] > 0.8                            # chance is 0.1
    assert result["n_test"] == 450 and result["n_train"] == 1347
    assert is_png(out)
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "wall time" in printed


def test_digits_gradient_is_backprop(tmp_path):
    # The network's gradient from the tape agrees with finite differences on a few
    # weights (a check that the example trains on the true gradient).
    pytest.importorskip("sklearn")
    import fastad as fd
    digits = load("digits")
    X_train, _, y_train, _ = digits.load_data(0)
    params = digits.init_params(np.random.default_rng(0), [64, 8, 10])
    X, y = X_train[:16], y_train[:16]
    g = fd.grad(digits.loss_fn)(params, X, y)
    h = 1e-6
    for key, idx in [("W0", (10, 3)), ("b0", (5,)), ("W1", (2, 7)), ("b1", (9,))]:
        plus = {k: v.copy() for k, v in params.items()}
        minus = {k: v.copy() for k, v in params.items()}
        plus[key][idx] += h
        minus[key][idx] -= h
        fdiff = (digits.loss_fn(plus, X, y) - digits.loss_fn(minus, X, y)) / (2 * h)
        assert g[key][idx] == pytest.approx(fdiff, rel=1e-5, abs=1e-9)


def test_rosenbrock_example(tmp_path):
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    rosen = load("rosenbrock")
    results = rosen.run_all(tol=1e-2, max_steps=3000, verbose=False)
    assert results["momentum 0.9, lr 1e-3"]["error"] < 1e-2
    assert results["fd.minimize L-BFGS-B"]["error"] < 1e-6
    for name, r in results.items():
        assert r["path"].shape[1] == 2
        np.testing.assert_array_equal(r["path"][0], rosen.START)
    out = tmp_path / "paths.png"
    rosen.plot(results, str(out))
    assert is_png(out)
