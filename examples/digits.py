"""Handwritten digits read by a small neural network trained with fastad.

A multilayer perceptron (64 pixels -> 64 tanh units -> 10 classes) is trained by
backpropagation: fd.value_and_grad runs the network on a minibatch while recording
a tape, and one reverse sweep over that tape gives the gradient of the
cross-entropy loss with respect to every weight.  fd.optim.Adam turns gradients
into updates.  The data is scikit-learn's bundled 8x8 digits (1797 images, no
download); a quarter of it is held out and never trained on.

    pip install -e ".[examples]"
    python examples/digits.py                # full run, writes digits_training.png
    python examples/digits.py --quick        # two epochs, for a smoke test

Prints the test accuracy and the wall time of training.
"""
import argparse
import sys
import time

import numpy as np

import fastad as fd


def init_params(rng, sizes):
    """Weights scaled by 1/sqrt(fan_in) (Glorot/LeCun style): tanh units start in
    their linear range, so gradients neither vanish nor explode at step 0."""
    params = {}
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        params["W%d" % i] = rng.normal(scale=1.0 / np.sqrt(m), size=(m, n))
        params["b%d" % i] = np.zeros(n)
    return params


def forward(params, X):
    """Logits of the network.  Works on Vars (training) and on plain arrays
    (evaluation): every fd function returns plain NumPy for plain NumPy input."""
    n_layers = len(params) // 2
    h = X
    for i in range(n_layers):
        h = fd.matmul(h, params["W%d" % i]) + params["b%d" % i]
        if i < n_layers - 1:
            h = fd.tanh(h)
    return h


def loss_fn(params, X, y):
    return fd.nn.cross_entropy(forward(params, X), y)


def accuracy(params, X, y):
    return float(np.mean(np.argmax(forward(params, X), axis=1) == y))


def load_data(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    X = X / 16.0                         # pixel intensities 0..16 -> 0..1
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)


def _progress(iterable, total, disable):
    """tqdm if it is installed, else a plain iterator (the epoch lines still print)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None, iterable
    bar = tqdm(iterable, total=total, disable=disable, unit="batch", leave=False)
    return bar, bar


def train(epochs=20, hidden=64, batch=32, lr=1e-2, seed=0, verbose=True):
    """Train and return a dict with the history and the final test accuracy."""
    X_train, X_test, y_train, y_test = load_data(seed)
    rng = np.random.default_rng(seed)
    params = init_params(rng, [X_train.shape[1], hidden, 10])
    opt = fd.optim.Adam(lr=lr)
    vg = fd.value_and_grad(loss_fn)
    history = {"loss": [], "train_acc": [], "test_acc": []}
    n = len(X_train)
    n_batches = (n + batch - 1) // batch
    start = time.perf_counter()
    for epoch in range(epochs):
        # Cosine learning-rate decay: large steps early, small ones to settle at the end.
        opt.lr = lr * 0.5 * (1.0 + np.cos(np.pi * epoch / epochs))
        order = rng.permutation(n)
        bar, batches = _progress(range(n_batches), n_batches, disable=not verbose)
        if bar is not None:
            bar.set_description("epoch %d/%d" % (epoch + 1, epochs))
        running = 0.0
        for k in batches:
            idx = order[k * batch:(k + 1) * batch]
            loss, g = vg(params, X_train[idx], y_train[idx])
            params = opt.step(params, g)
            running += (loss - running) / (k + 1)       # mean loss of the epoch so far
            if bar is not None:
                bar.set_postfix(loss="%.4f" % running, refresh=False)
        if bar is not None:
            bar.close()
        history["loss"].append(running)
        history["train_acc"].append(accuracy(params, X_train, y_train))
        history["test_acc"].append(accuracy(params, X_test, y_test))
        if verbose:
            print("epoch %3d  loss %.4f  train acc %.4f  test acc %.4f"
                  % (epoch + 1, running, history["train_acc"][-1], history["test_acc"][-1]))
    seconds = time.perf_counter() - start
    return {"params": params, "history": history, "seconds": seconds,
            "test_acc": history["test_acc"][-1], "n_train": n, "n_test": len(X_test)}


def plot(history, path):
    import matplotlib
    matplotlib.use("Agg")                # no display needed
    import matplotlib.pyplot as plt
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, history["loss"], "o-")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training cross-entropy (epoch mean)")
    ax1.set_yscale("log")
    ax2.plot(epochs, history["train_acc"], "o-", label="train")
    ax2.plot(epochs, history["test_acc"], "s-", label="held-out test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle("MLP 64-64-10 on scikit-learn digits, trained with fastad + Adam")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="two epochs (smoke test)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="digits_training.png", help="PNG of the curves "
                    "('' to skip)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    epochs = 2 if a.quick else a.epochs
    result = train(epochs=epochs, hidden=a.hidden, batch=a.batch, lr=a.lr, seed=a.seed,
                   verbose=not a.quiet)
    print("test accuracy %.4f on %d held-out images (trained on %d); "
          "training wall time %.2f s" % (result["test_acc"], result["n_test"],
                                         result["n_train"], result["seconds"]))
    if a.out:
        try:
            plot(result["history"], a.out)
            print("wrote", a.out)
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
