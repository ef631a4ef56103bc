"""Repeated blocks of a tape, which tf.compile() writes as C loops (fastad._compile).

A run (B, K, R) is R repetitions of a block of K slots from slot B on: slot
B + K*r + j has the same op code for every r, and each of its two argument slots
is c + s*r, with c and s fixed per (j, argument).  Executing the run's slots in
ascending order is then a loop over r whose body is the block, its argument
indices written as c + s*r: the same operations on the same operands in the same
order as one statement per slot, so the loop computes the same bits (and the
reverse sweep, r and j descending, is reverse_scalar's order too).

Finding runs is vectorised (a few NumPy passes per candidate block length), so a
10^6-slot tape is scanned in well under a second.  Candidate lengths come from
the distances between successive slots with the same op code: an op that occurs
once per loop iteration of the traced Python code recurs at exactly the block
length.  Every run found is checked against its definition before it is used.
"""
import bisect

import numpy as np

MIN_REPS = 4          # fewer repetitions stay straight-line code
MIN_SLOTS = 32        # so do shorter runs: a loop's set-up costs more than it saves
MAX_BLOCK = 1024      # longest block tried (the loop body is straight-line code)
TOP_DISTANCES = 6     # most frequent same-op distances tried as block lengths


def _candidates(op):
    """Block lengths worth trying, from the distances between same-op slots."""
    n = op.shape[0]
    if n < 2 * MIN_REPS:
        return []
    order = np.argsort(op, kind="stable")
    d = np.diff(order)[op[order[1:]] == op[order[:-1]]]
    d = d[d <= MAX_BLOCK]
    if d.size == 0:
        return []
    counts = np.bincount(d)
    counts[0] = 0
    # the most frequent distances, and those covering the most slots (an op once
    # per iteration recurs R - 1 times at the block length, while ops used several
    # times per iteration recur more often at shorter, irregular distances)
    by_count = np.argsort(counts, kind="stable")[::-1][:TOP_DISTANCES]
    by_cover = np.argsort(counts * np.arange(counts.shape[0]), kind="stable")[::-1]
    top = [int(k) for k in list(by_count) + list(by_cover[:TOP_DISTANCES])
           if counts[k] >= MIN_REPS - 1]
    # an op twice per iteration recurs at half the block length: try doubles too
    out = set(top) | {2 * k for k in top[:2] if 2 * k <= MAX_BLOCK}
    return sorted(out)


def _segments(mask):
    """(start, end) of the maximal runs of True in a boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist())


def is_run(op, a, b, B, K, R):
    """True when slots B .. B+K*R-1 are R repetitions of a K-slot block as defined
    above (and no argument b is the sentinel 0 in some repetitions only: the
    reverse sweep skips b == 0, and a loop body cannot)."""
    if R < 2 or K < 1 or B < 0 or B + K * R > op.shape[0]:
        return False
    o = op[B:B + K * R].reshape(R, K)
    if not (o == o[0]).all():
        return False
    for arr in (a, b):
        m = arr[B:B + K * R].reshape(R, K).astype(np.int64)
        step = m[1] - m[0]
        if not (m[1:] - m[:-1] == step).all():
            return False
    bz = b[B:B + K * R].reshape(R, K) == 0
    return bool((bz == bz[0]).all())


def find_runs(op, a, b, lo, hi):
    """Disjoint runs (B, K, R) within slots lo .. hi-1, in ascending B: the
    longest first, then the shortest block among equally long ones."""
    op = np.asarray(op[lo:hi])
    a = np.asarray(a[lo:hi], dtype=np.int64)
    b = np.asarray(b[lo:hi], dtype=np.int64)
    n = op.shape[0]
    found = []
    for K in _candidates(op):
        if n < K * MIN_REPS:
            continue
        m = n - 2 * K
        # slot i, i+K and i+2K: one op code, and both arguments in arithmetic steps
        ok = (op[:m] == op[K:K + m]) & (op[K:K + m] == op[2 * K:])
        for arr in (a, b):
            ok &= (arr[K:K + m] - arr[:m]) == (arr[2 * K:] - arr[K:K + m])
        for s, e in _segments(ok):
            R = (e - s) // K + 2
            if R < MIN_REPS or K * R < MIN_SLOTS:
                continue
            while R >= MIN_REPS and not is_run(op, a, b, s, K, R):
                R -= 1                       # cannot happen; kept as a safety net
            if R >= MIN_REPS:
                found.append((K * R, K, s, R))
    found.sort(key=lambda t: (-t[0], t[1], t[2]))
    starts, ends, chosen = [], [], []
    for cover, K, s, R in found:
        e = s + cover
        k = bisect.bisect_right(starts, s)
        if k > 0 and ends[k - 1] > s:
            continue
        if k < len(starts) and starts[k] < e:
            continue
        starts.insert(k, s)
        ends.insert(k, e)
        chosen.insert(k, (s + lo, K, R))
    return chosen
