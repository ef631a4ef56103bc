"""Central differences, the reference gradient of the array tests (one copy for
test_arrays, test_numpy_dispatch and test_linalg)."""
import numpy as np


def num_grad(f, x, h=1e-6):
    """Central differences of scalar f at array x."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def solve_triangular_ref(a, b, **kw):
    """scipy.linalg.solve_triangular, over leading batch axes of a too (SciPy
    before 1.15 takes one square matrix only)."""
    import scipy.linalg as sl
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2:
        return sl.solve_triangular(a, b, **kw)
    vec = b.ndim == 1 or b.ndim == a.ndim - 1
    bb = b[..., None] if vec else b
    batch = np.broadcast_shapes(a.shape[:-2], bb.shape[:-2])
    A = np.broadcast_to(a, batch + a.shape[-2:])
    B = np.broadcast_to(bb, batch + bb.shape[-2:])
    out = np.empty(batch + B.shape[-2:])
    for i in np.ndindex(*batch):
        out[i] = sl.solve_triangular(A[i], B[i], **kw)
    return out[..., 0] if vec else out
