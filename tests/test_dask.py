"""tf.grad_batch / tf.value_batch with client= (API.md section 15), on one
LocalCluster of 2 single-threaded process workers shared by the module.

Dask is in the test extra: this file is meant to run everywhere, not to skip.
"""
import os
import pickle
import threading
import time

import numpy as np
import psutil          # a dependency of distributed
import pytest

import dask.array as da
from distributed import Client, LocalCluster

import fastad as fd
from fastad import _distributed, _trace_file
from _child import run_child


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                           dashboard_address=":0")
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture
def many_chunks(monkeypatch):
    # small inputs still split into several chunks (one per task), so that row
    # order and the chunks' row offsets are exercised
    monkeypatch.setattr(_distributed, "_MIN_CHUNK_WORK", 1)


def _logistic(z, w):
    s = z[0] * w[0]
    for j in range(1, len(w)):
        s = s + z[j] * w[j]
    return fd.log1p(fd.exp(-s))


def _logistic_arrays(z, w):
    # the same loss through array records (fd.sum of an elementwise product):
    # records replay in Python, holding the GIL
    return fd.log1p(fd.exp(-fd.sum(z * w)))


W = np.linspace(-1.0, 1.0, 6)
TF = fd.trace(_logistic, np.zeros(6), W)


def _rows(m, n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((m, n))


# -- item 1: results equal to the local call, in row order ------------------------


def test_numpy_input_gives_the_local_gradients_as_numpy(client, many_chunks):
    X = _rows(5003)
    G = TF.grad_batch(X, client=client)
    assert type(G) is np.ndarray
    assert np.array_equal(G, TF.grad_batch(X))


def test_dynamic_parameters_follow_x_positionally(client, many_chunks):
    X = _rows(2001, seed=1)
    w2 = np.arange(6.0) - 2.5
    V = TF.value_batch(X, w2, client=client)
    assert np.array_equal(V, TF.value_batch(X, w2))
    assert not np.array_equal(V, TF.value_batch(X))       # w2 was used
    assert np.array_equal(TF.grad_batch(X, w2, client=client), TF.grad_batch(X, w2))


def test_dask_array_input_gives_a_lazy_dask_array(client):
    X = _rows(3000, seed=2)
    D = da.from_array(X, chunks=(700, 4))      # columns split too: rechunked to rows
    G = TF.grad_batch(D, client=client)
    V = TF.value_batch(D, client=client)
    assert isinstance(G, da.Array) and isinstance(V, da.Array)
    assert G.shape == X.shape and G.chunks[0] == D.chunks[0]
    assert V.shape == (3000,) and V.chunks[0] == D.chunks[0]
    g, v = da.compute(G, V)
    assert np.array_equal(g, TF.grad_batch(X))
    assert np.array_equal(v, TF.value_batch(X))


def test_array_output_and_scalar_input(client, many_chunks):
    tf = fd.trace(lambda x, c: fd.stack([x * c, fd.sin(x)]), 0.5, 2.0)
    x = np.linspace(-2, 2, 1001)
    V = tf.value_batch(x, 3.0, client=client)
    assert V.shape == (1001, 2) and np.array_equal(V, tf.value_batch(x, 3.0))
    Vd = tf.value_batch(da.from_array(x, chunks=300), 3.0, client=client)
    assert Vd.shape == (1001, 2) and np.array_equal(Vd.compute(), V)
    ts = fd.trace(lambda x: x * fd.exp(-x), 0.0)
    assert np.array_equal(ts.grad_batch(x, client=client), ts.grad_batch(x))


def test_float32_rows_give_float32_gradients_as_locally(client):
    X = _rows(500, seed=3).astype(np.float32)
    G = TF.grad_batch(X, client=client)
    assert G.dtype == np.float32 and np.array_equal(G, TF.grad_batch(X))
    Gd = TF.grad_batch(da.from_array(X, chunks=200), client=client)
    assert Gd.dtype == np.float32 and np.array_equal(Gd.compute(), G)


def test_empty_input(client):
    G = TF.grad_batch(np.zeros((0, 6)), client=client)
    assert G.shape == (0, 6)


def _cache_keys():
    return sorted(_distributed._local.cache) if hasattr(_distributed._local, "cache") \
        else []


def _loaded_has_no_function():
    return all(tf._f is None for tf in _distributed._local.cache.values())


def test_the_trace_is_sent_as_data_and_parsed_once_per_worker(client, many_chunks):
    tf = fd.trace(lambda x: fd.sum(x ** 3), np.zeros(3))
    key = __import__("hashlib").sha1(_trace_file.dump_bytes(tf)).hexdigest()
    X = _rows(4000, n=3, seed=4)
    tf.grad_batch(X, client=client)
    tf.grad_batch(X, client=client)
    workers = list(client.scheduler_info()["workers"])
    for w in workers:   # one thread per worker: the task thread's cache
        keys = client.submit(_cache_keys, workers=[w], pure=False).result()
        assert keys.count(key) == 1
        assert client.submit(_loaded_has_no_function, workers=[w], pure=False).result()


def test_without_client_dask_is_not_imported():
    run_child("""
        import sys, numpy as np, fastad as fd
        tf = fd.trace(lambda x: fd.sum(x * x), np.zeros(2))
        assert tf.grad_batch(np.ones((3, 2))).tolist() == [[2.0, 2.0]] * 3
        assert "fastad._distributed" not in sys.modules
        assert not any(m == "dask" or m.startswith("distributed") for m in sys.modules)
    """, timeout=120)


def test_without_dask_client_raises_importerror_saying_how_to_install():
    run_child("""
        import sys
        sys.modules["dask"] = sys.modules["dask.array"] = None
        sys.modules["distributed"] = None
        import numpy as np, fastad as fd
        tf = fd.trace(lambda x: fd.sum(x * x), np.zeros(2))
        try:
            tf.grad_batch(np.ones((3, 2)), client=object())
        except ImportError as e:
            assert "pip install fastad[dask]" in str(e), e
        else:
            raise AssertionError("no ImportError")
    """, timeout=120)


# -- item 2: traces with array records, on process workers ------------------------


def test_array_record_traces_replay_on_process_workers(client, many_chunks):
    tf = fd.trace(_logistic_arrays, np.zeros(6), W)
    X = _rows(600, seed=5)
    G = tf.grad_batch(X, client=client)
    assert np.array_equal(G, tf.grad_batch(X))
    assert np.allclose(G, TF.grad_batch(X), rtol=1e-13, atol=1e-15)


# -- item 3: faults ------------------------------------------------------------------


def test_bad_arguments_fail_before_anything_is_sent(client):
    with pytest.raises(TypeError, match="client"):
        TF.grad_batch(_rows(3), client="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match=r"X must have shape \(m, 6\)"):
        TF.grad_batch(_rows(3, n=5), client=client)
    with pytest.raises(ValueError, match=r"X must have shape \(m, 6\)"):
        TF.grad_batch(da.zeros((10, 5), chunks=5), client=client)
    with pytest.raises(TypeError, match="parameter"):
        TF.grad_batch(_rows(3), W, W, client=client)
    with pytest.raises(ValueError, match="threads"):
        TF.grad_batch(_rows(3), client=client, threads=0)


def test_a_row_of_the_wrong_shape_is_named(client):
    rows = list(_rows(40, seed=6))
    rows[27] = rows[27][:4]
    with pytest.raises(ValueError, match=r"row 27 of X has shape \(4,\), expected \(6,\)"):
        TF.grad_batch(rows, client=client)
    rows[27] = np.zeros(6)
    assert np.array_equal(TF.grad_batch(rows, client=client),
                          TF.grad_batch(np.array(rows)))


def _guarded(x):
    return fd.sum(x * x) if x[0] > 0 else fd.sum(x)


def test_a_failed_guard_names_the_row_of_the_whole_x(client, many_chunks):
    tf = fd.trace(_guarded, np.ones(3))
    X = np.abs(_rows(3000, n=3, seed=7)) + 0.1
    X[2345, 0] = -1.0
    with pytest.raises(fd.TraceError, match="row 2345 of X"):
        tf.grad_batch(X, client=client)
    D = da.from_array(X, chunks=(1000, 3))
    with pytest.raises(fd.TraceError, match="row 2345 of X"):
        tf.grad_batch(D, client=client).compute()
    # retrace=True on a dask.array: the workers' copy has no f to re-record, and
    # a lazy result cannot come back to the client, so the row is named
    rt = fd.trace(_guarded, np.ones(3), retrace=True)
    with pytest.raises(fd.TraceError, match="row 2345 of X.*cannot be re-recorded"):
        rt.value_batch(D, client=client).compute()


def test_retrace_rows_on_another_path_are_recorded_by_the_client(client, many_chunks):
    # a NumPy X: the workers send such rows back, the client (which has f)
    # re-records them, and the result is the local call's
    X = np.abs(_rows(3000, n=3, seed=9)) + 0.1
    X[[5, 2345, 2999], 0] = -1.0
    rt = fd.trace(_guarded, np.ones(3), retrace=True)
    want_g = fd.trace(_guarded, np.ones(3), retrace=True).grad_batch(X)
    G = rt.grad_batch(X, client=client)
    assert np.array_equal(G, want_g)
    assert np.array_equal(G[2345], np.ones(3))          # the other branch: fd.sum(x)
    assert np.array_equal(rt.value_batch(X, client=client), rt.value_batch(X))
    # a loaded trace (no f) cannot re-record anywhere: the row is named
    loaded = pickle.loads(pickle.dumps(fd.trace(_guarded, np.ones(3), retrace=True)))
    # (three rows are on the other path; the chunk whose error reaches the client
    # first names its row)
    with pytest.raises(fd.TraceError, match="row (5|2345|2999) of X.*cannot be "
                                            "re-recorded"):
        loaded.grad_batch(X, client=client)


def test_a_client_that_cannot_reach_a_scheduler_fails_fast():
    # nothing listens on port 9 (discard): Dask's own OSError after its timeout;
    # the child's timeout makes a hang fail the test
    run_child("""
        from distributed import Client
        try:
            Client("tcp://127.0.0.1:9", timeout="2s")
        except OSError as e:
            assert "Timed out" in str(e) or "connect" in str(e), e
        else:
            raise AssertionError("connected to nothing")
    """, timeout=60)


def test_a_closed_client_fails_fast(client):
    # a second client of the module's cluster, closed (an in-process cluster of its
    # own would look this machine's address up by routing to a public one, which
    # fails offline: the wheel test runs without a network)
    c = Client(client.scheduler.address)
    c.close()
    with pytest.raises(_distributed.closed_client_error(), match="tf.grad_batch"):
        TF.grad_batch(_rows(4), client=c)


def test_a_worker_killed_mid_map_still_gives_every_row(client, many_chunks):
    # array records make the replay slow enough (tens of us a row) to kill a
    # worker while tasks run; its scattered chunks are lost with it.  A map that
    # ends before the killer sees a busy worker (a fast machine or NumPy) is run
    # again on four times the rows, so the kill always happens
    tf = fd.trace(_logistic_arrays, np.zeros(6), W)
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(done):
        while not done.is_set() and not killed:
            for w, keys in client.processing().items():
                if keys and w in pids:
                    time.sleep(0.05)         # mid-task
                    if done.is_set():        # the map ended meanwhile: not a kill mid-map
                        return
                    psutil.Process(pids[w]).kill()   # SIGKILL; Windows too
                    killed.append(w)
                    return
            time.sleep(0.01)

    for rows in (40000, 160000, 640000):
        X = _rows(rows, seed=8)
        want = tf.grad_batch(X)
        done = threading.Event()
        t = threading.Thread(target=kill_a_busy_worker, args=(done,))
        t.start()
        try:
            G = tf.grad_batch(X, client=client)
        finally:
            done.set()
            t.join()
            _wait_for_a_new_worker(client, killed)
        if killed:
            break
    assert killed, "no worker was killed"
    assert np.array_equal(G, want)


def _wait_for_a_new_worker(client, killed):
    # the nanny restarts the killed worker under a new address; the module's
    # cluster is whole again once the old one is gone and two are registered
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ws = client.scheduler_info()["workers"]
        if len(ws) == 2 and not set(killed) & set(ws):
            return
        time.sleep(0.1)
    raise AssertionError("the cluster did not get its second worker back")
