"""examples/per_sample_gradients.py runs (small) on its own LocalCluster and its
per-sample gradients match the closed forms of the logistic loss."""
import importlib.util
import pathlib

import numpy as np

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / \
    "per_sample_gradients.py"


def test_per_sample_gradients_example(capsys):
    spec = importlib.util.spec_from_file_location("example_per_sample", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--rows", "3000", "--features", "5", "--workers", "2"])
    assert out["grad_features"].shape == (3000, 5)
    assert out["grad_weights"].shape == (3000, 5)
    assert max(out["errors"]) < 1e-12
    # the weight gradients differ from sample to sample (not one broadcast row)
    assert np.ptp(out["grad_weights"][:, 0]) > 0.1
    printed = capsys.readouterr().out
    assert "cluster: 2 workers, 2 threads" in printed
    assert "largest difference from the closed forms" in printed
