"""tf.grad_batch / tf.value_batch with client=: the rows of X mapped over a Dask
cluster (API.md section 15).

The trace travels as the flat bytes of fastad/_trace_file.py (op codes, slots,
constants: data, never code), scattered once per call to every worker, and is
parsed once per worker thread (a small cache keyed by the scattered key).  Each
task replays one chunk of rows with the local batch replay (its threads, the GIL
released), so a task's result is exactly what the local call gives for its rows.

NumPy input: the rows are split into chunks, scattered, mapped, gathered in row
order.  Scattered data cannot be recomputed by Dask, so when a worker dies and
takes chunks with it, the lost chunks are scattered again from the client's copy
and their tasks resubmitted.  dask.array input: one task per row block, the
result a lazy dask.array of the same row chunks; Dask recomputes lost blocks from
the input's own graph.

This module imports nothing above fastad's errors: _trace hands it the trace's
bytes and the loader (fastad._trace.load_bytes, sent to workers as a reference
by name), so there is no import cycle.  Dask is imported only when used.
"""
import hashlib
import os
import threading
import time
from collections import OrderedDict

import numpy as np

from fastad import _trace_file
from fastad._errors import TraceError

# A NumPy X is cut into about this many chunks per Dask thread of the cluster
# (load balance, and less work lost with a killed worker) ...
_CHUNKS_PER_THREAD = 4
# ... but not into chunks of fewer rows x tape slots than this: below it the
# per-task cost of Dask (a few ms) is a visible share of the chunk's replay.
_MIN_CHUNK_WORK = 4_000_000
# Times a chunk is resubmitted after its worker died before the call gives up.
_MAX_RESUBMIT = 3
# Traces kept parsed per worker thread (each distinct trace or path is one).
_CACHE_SIZE = 8


def _dask():
    """(distributed, dask.array), or ImportError saying how to install them."""
    try:
        import dask.array as da
        import distributed
    except ImportError as e:
        raise ImportError("client= needs Dask and its distributed scheduler: "
                          "pip install fastad[dask]  (%s)" % e) from e
    return distributed, da


def is_dask_array(X):
    """True when X is a dask.array, without importing Dask for other inputs."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks")


def check_client(client, fname):
    distributed, _ = _dask()
    if not isinstance(client, distributed.Client):
        raise TypeError("%s: client must be a dask.distributed.Client, got %s"
                        % (fname, type(client).__name__))
    if client.status in ("closing", "closed"):
        # Dask's own error class (RuntimeError on a Dask too old to have it); its
        # scatter() would fail with an AttributeError
        raise closed_client_error()(
            "%s: the Dask client is %s (its scheduler went away, or the client was "
            "closed)" % (fname, client.status))


def batch(tf, X, params, want_grad, threads, fname, client, loader):
    """tf._batch's work on the cluster of `client`: (values, grads), NumPy arrays
    for a NumPy (or list of rows) X, a lazy dask.array for a dask.array X (the
    one that was asked for; the other is None)."""
    check_client(client, fname)
    n = tf._xspec.size
    scalar_x = tf._xspec.shapes == ((),) and tf._xspec.treedef.kind == "leaf"
    lazy = is_dask_array(X)
    if lazy:
        probe_x = np.zeros((0,) + tuple(X.shape[1:]), dtype=X.dtype)
    else:
        if isinstance(X, (list, tuple)):
            X = stack_rows(X, n, scalar_x, fname)
        elif not isinstance(X, np.ndarray):
            raise TypeError("%s: X must be a NumPy array, a dask.array or a list of "
                            "rows, got %s" % (fname, type(X).__name__))
        probe_x = X[:0]
    # a zero-row local call checks X's columns, the parameters, threads= and the
    # output exactly as the local call does, and gives the results' dtypes
    values0, grads0 = tf._batch(probe_x, params, want_grad, threads, fname)
    data = _trace_file.dump_bytes(tf)
    try:   # what each worker will do with the bytes, once here (under a ms)
        loader(data, "a Dask worker")
    except TraceError as e:
        raise TraceError("%s: this trace cannot be sent to a cluster: %s"
                         % (fname, e)) from None
    job = _Job(data, params, want_grad, threads, fname, loader)
    if lazy:
        out = map_dask(client, X, job, values0.shape[1:], values0.dtype,
                       None if grads0 is None else grads0.dtype)
        return (None, out) if want_grad else (out, None)
    if X.shape[0] == 0:
        return values0, grads0
    job.defer = tf.retrace and tf._f is not None
    values, grads, deferred = map_numpy(client, X, job, len(tf._tape))
    for i in deferred:      # rows on another path: re-recorded here, where f is
        v, g = tf._batch(X[i:i + 1], params, want_grad, 1, fname, row0=i)
        values[i] = v[0]
        if want_grad:
            grads[i] = g[0]
    return values, grads


def closed_client_error():
    distributed, _ = _dask()
    return getattr(distributed.client, "ClosedClientError", RuntimeError)


def stack_rows(X, n, scalar_x, fname):
    """A list or tuple of rows as one (m, n) array; ValueError naming the first row
    whose shape is not (n,) (before anything is sent to the cluster)."""
    want = () if scalar_x else (n,)
    rows = []
    for i, r in enumerate(X):
        a = np.asarray(r)
        if a.shape != want and not (scalar_x and a.shape == (1,)):
            raise ValueError("%s: row %d of X has shape %s, expected %s"
                             % (fname, i, a.shape, want))
        if a.dtype.kind not in "biuf":
            raise TypeError("%s: row %d of X must hold real numbers, got dtype %s"
                            % (fname, i, a.dtype))
        rows.append(a.reshape(-1))
    if not rows:
        return np.zeros((0, n))
    return np.stack(rows)


# -- the client side -------------------------------------------------------------


def _host_threads(client):
    """{host: Dask threads of all workers on it}: a task on that host may use
    cores // threads replay threads without oversubscribing the machine."""
    out = {}
    for w in client.scheduler_info().get("workers", {}).values():
        out[w["host"]] = out.get(w["host"], 0) + int(w["nthreads"])
    return out


def _direct(client):
    """Whether chunks go straight between the client and the workers (Dask's own
    default routes them through the scheduler: every byte twice).  The client's
    direct_to_workers when set; otherwise only for a scheduler on this machine,
    whose workers the client can surely reach (a remote cluster's workers may be
    behind its scheduler, where a direct connection would wait for a timeout)."""
    if client.direct_to_workers is not None:
        return bool(client.direct_to_workers)
    addr = str(getattr(client.scheduler, "address", "") or "")
    host = addr.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or addr.startswith("inproc://")


def _scatter(client, data, broadcast=False, direct=None):
    """client.scatter(data), again when a worker it was sending to died meanwhile
    (Dask's CommClosedError, an OSError); a scheduler that cannot be reached still
    fails after a few tries.  hash=False: a content key shared by two calls can be
    released by the first while the second scatters it (Dask then reports "Could
    not find data")."""
    for attempt in range(_MAX_RESUBMIT + 1):
        try:
            return client.scatter(data, broadcast=broadcast, hash=False, direct=direct)
        except OSError:
            if attempt == _MAX_RESUBMIT or client.status != "running":
                raise
            time.sleep(0.1 * (attempt + 1))


def _broadcast(client, trace_bytes, params):
    """Futures of the trace's bytes and of the parameters' tuple, on every worker."""
    tfut, pfut = _scatter(client, [trace_bytes, tuple(params)], broadcast=True)
    return tfut, pfut


def map_numpy(client, Xa, job, n_slots):
    """Replay the rows of the (m, n) array Xa on the cluster; (values, grads) in
    row order.  job: the _Job every task runs."""
    distributed, _ = _dask()
    m = Xa.shape[0]
    # first contact: a client whose scheduler is gone fails here with Dask's error
    tfut, pfut = _broadcast(client, job.trace_bytes, job.params)
    hosts = _host_threads(client)
    n_threads = max(1, sum(hosts.values()))
    n_chunks = max(1, min(_CHUNKS_PER_THREAD * n_threads,
                          (m * max(n_slots, 1)) // _MIN_CHUNK_WORK, m))
    bounds = [m * k // n_chunks for k in range(n_chunks + 1)]
    job = job.bound(hosts)

    direct = _direct(client)

    def submit(ks):
        # a task as soon as its chunk is there: the workers replay the first
        # chunks while the client still sends the others
        out = {}
        for k in ks:
            c = _scatter(client, [Xa[bounds[k]:bounds[k + 1]]], direct=direct)[0]
            out[client.submit(_run_chunk, job, tfut, pfut, c, bounds[k],
                              pure=False)] = k
        return out

    futures = submit(range(n_chunks))
    tries = [0] * n_chunks
    parts = [None] * n_chunks
    done = distributed.as_completed(list(futures))
    for fut in done:
        k = futures.pop(fut)
        try:
            parts[k] = client.gather(fut, direct=direct)
        except distributed.client.FutureCancelledError:
            # its scattered chunk (or the broadcast trace) died with a worker
            tries[k] += 1
            if tries[k] > _MAX_RESUBMIT:
                raise
            if tfut.status != "finished" or pfut.status != "finished":
                tfut, pfut = _broadcast(client, job.trace_bytes, job.params)
                job = job.bound(_host_threads(client))
            new = submit([k])
            futures.update(new)
            done.update(new)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    values = np.concatenate([p[0] for p in parts])
    grads = np.concatenate([p[1] for p in parts]) if job.want_grad else None
    deferred = [i for p in parts if p[2] for i in p[2]]
    return values, grads, deferred


def map_dask(client, X, job, out_shape, value_dtype, grad_dtype):
    """The lazy dask.array of gradients (job.want_grad) or values over the row
    blocks of the dask.array X (1-D for a scalar input, else 2-D)."""
    _, da = _dask()
    if X.ndim == 2:
        X = X.rechunk({1: -1})          # a task needs whole rows
    tfut, pfut = _broadcast(client, job.trace_bytes, job.params)
    job = job.bound(_host_threads(client))
    rows = X.chunks[0]
    if job.want_grad:
        chunks, dtype, nd = X.chunks, grad_dtype, X.ndim
    else:
        chunks = (rows,) + tuple((s,) for s in out_shape)
        dtype, nd = value_dtype, 1 + len(out_shape)
    kw = {}
    if nd < X.ndim:
        kw["drop_axis"] = list(range(nd, X.ndim))
    elif nd > X.ndim:
        kw["new_axis"] = list(range(X.ndim, nd))
    name = "fastad-%s-%s" % ("grad" if job.want_grad else "value",
                             da.core.tokenize(X, tfut.key, pfut.key))
    return da.map_blocks(_run_block, X, job, tfut, pfut, dtype=dtype, chunks=chunks,
                         name=name, meta=np.empty((0,) * nd, dtype=dtype), **kw)


# -- the worker side -------------------------------------------------------------


class _Job:
    """What every task of one call needs besides its rows and the broadcast data:
    plain values and the loader (pickled by reference: a module-level function)."""

    def __init__(self, trace_bytes, params, want_grad, threads, fname, loader):
        self.trace_bytes = trace_bytes     # client side only (not pickled):
        self.params = params               # the tasks get both as broadcast futures
        self.want_grad = want_grad
        self.threads = threads
        self.fname = fname
        self.loader = loader
        # NumPy path of a retrace=True trace: rows needing another path come back
        # to the client, which has f (the workers' copy cannot re-record)
        self.defer = False
        # the workers' cache key: the bytes' digest, so that a trace sent again by
        # a later call is not parsed again
        self.key = hashlib.sha1(trace_bytes).hexdigest() if trace_bytes else None
        self.hosts = {}

    def bound(self, hosts):
        j = _Job(None, self.params, self.want_grad, self.threads, self.fname,
                 self.loader)
        j.trace_bytes, j.key, j.hosts = self.trace_bytes, self.key, hosts
        j.defer = self.defer
        return j

    def __getstate__(self):
        return {"want_grad": self.want_grad, "threads": self.threads,
                "fname": self.fname, "loader": self.loader, "key": self.key,
                "hosts": self.hosts, "defer": self.defer}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.trace_bytes = self.params = None


_local = threading.local()


def _trace_on_worker(job, trace_bytes):
    """The worker thread's parsed trace for job.key (replays are not safe to share
    between threads: a tape with array records replays in its own buffers)."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = OrderedDict()
    tf = cache.get(job.key)
    if tf is None:
        tf = job.loader(trace_bytes, "a Dask worker")
        cache[job.key] = tf
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(job.key)
    return tf


def _threads_here(job):
    if job.threads is not None:
        return job.threads
    try:
        from distributed import get_worker
        host = get_worker().address.rsplit(":", 1)[0].split("://")[-1]
    except (ImportError, ValueError):
        host = None
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 1
    return max(1, ncpu // max(1, job.hosts.get(host, 1)))


def _run_chunk(job, trace_bytes, params, rows, row0):
    """(values, grads) of one chunk: the local batch replay; an error names the
    row's index in the whole X (row0 is the chunk's first row)."""
    tf = _trace_on_worker(job, trace_bytes)
    deferred = [] if job.defer else None
    values, grads = tf._batch(rows, params, job.want_grad, _threads_here(job),
                              job.fname, row0=row0, deferred=deferred)
    return values, grads, deferred


def _run_block(block, job, trace_bytes, params, block_info=None):
    row0 = 0
    if block_info:
        loc = block_info[0]["array-location"][0][0]
        row0 = int(loc) if loc == loc else 0      # NaN: unknown chunk sizes
    values, grads, _ = _run_chunk(job, trace_bytes, params, block, row0)
    return grads if job.want_grad else values
