"""Per-sample gradients of a logistic-regression loss, on a Dask cluster.

The loss of one sample (features a, label y in {-1, +1}) at weights w is

    loss(w; a, y) = log(1 + exp(-y w.a))

Written with z = y a (the label folded into the row) it is log1p(exp(-w.z)).  We
trace it once, then replay it for every row of a data set on a cluster:

- the gradient with respect to each sample's features (how the loss of that sample
  moves with its inputs), with w a dynamic parameter sent once to every worker:
  tf.grad_batch(Z, w, client=client);
- the gradient with respect to the weights for each sample (what per-sample
  gradient clipping or influence estimates need): the row holds (w, z), and the
  first columns of its gradient are d loss / d w.

Both are checked against their closed forms.  The cluster is a LocalCluster of
process workers unless --scheduler names a running one (for example one started by
dask-jobqueue on Slurm; see docs/distributed.md):

    python examples/per_sample_gradients.py                     # 200 000 rows
    python examples/per_sample_gradients.py --rows 1000000 --workers 2
    python examples/per_sample_gradients.py --scheduler tcp://10.0.0.5:8786
"""
import argparse
import sys
import time

import numpy as np

import fastad as fd


def loss(z, w):
    """log(1 + exp(-w.z)) of one row z, as a sum of scalar products: a tape of
    scalar operations, which replays without the GIL."""
    s = z[0] * w[0]
    for j in range(1, len(w)):
        s = s + z[j] * w[j]
    return fd.log1p(fd.exp(-s))


def loss_of_weights_and_row(wz):
    """The same loss of one row (w, z): differentiating it gives d loss / d w too."""
    d = len(wz) // 2
    return loss(wz[d:], wz[:d])


def make_data(rows, features, seed):
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(features)
    A = rng.standard_normal((rows, features))
    y = np.where(A @ w_true + 0.5 * rng.standard_normal(rows) > 0, 1.0, -1.0)
    return A * y[:, None], 0.5 * w_true


def sigmoid(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def start_client(args):
    from dask.distributed import Client, LocalCluster
    if args.scheduler:
        return Client(args.scheduler, timeout="10s"), None
    cluster = LocalCluster(processes=True, n_workers=args.workers,
                           threads_per_worker=args.threads_per_worker,
                           dashboard_address=":0")
    return Client(cluster), cluster


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads-per-worker", type=int, default=1)
    p.add_argument("--scheduler", help="address of a running Dask scheduler")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print

    Z, w = make_data(args.rows, args.features, args.seed)
    d = args.features
    tf = fd.trace(loss, np.zeros(d), w)
    tw = fd.trace(loss_of_weights_and_row, np.zeros(2 * d))
    say("%s\n%d rows of %d features" % (tf, args.rows, d))

    client, cluster = start_client(args)
    try:
        say("cluster: %d workers, %d threads" % (
            len(client.scheduler_info()["workers"]),
            sum(w_["nthreads"] for w_ in client.scheduler_info()["workers"].values())))
        t = time.perf_counter()
        losses = tf.value_batch(Z, w, client=client)
        G_z = tf.grad_batch(Z, w, client=client)
        t_z = time.perf_counter() - t
        t = time.perf_counter()
        WZ = np.hstack([np.broadcast_to(w, Z.shape), Z])
        G_w = tw.grad_batch(WZ, client=client)[:, :d]
        t_w = time.perf_counter() - t
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    # closed forms: with s = -sigmoid(-w.z), d/dz = s w and d/dw = s z
    s = -sigmoid(-(Z @ w))
    err_z = float(np.max(np.abs(G_z - s[:, None] * w)))
    err_w = float(np.max(np.abs(G_w - s[:, None] * Z)))
    err_l = float(np.max(np.abs(losses - np.log1p(np.exp(-(Z @ w))))))
    say("mean loss %.6f; per-sample gradients w.r.t. the features in %.2f s, "
        "w.r.t. the weights in %.2f s" % (losses.mean(), t_z, t_w))
    say("largest difference from the closed forms: loss %.1e, d/dz %.1e, d/dw %.1e"
        % (err_l, err_z, err_w))
    norms = np.linalg.norm(G_w, axis=1)
    say("per-sample weight-gradient norms: median %.4f, 99th percentile %.4f, max %.4f"
        % (np.median(norms), np.percentile(norms, 99), norms.max()))
    return {"losses": losses, "grad_features": G_z, "grad_weights": G_w,
            "errors": (err_l, err_z, err_w)}


if __name__ == "__main__":
    main(sys.argv[1:])
