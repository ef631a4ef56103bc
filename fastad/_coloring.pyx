# Graph colorings for compressed derivative sweeps (C loops over CSR arrays).
#
#   column_coloring: Curtis-Powell-Reid: columns j, k of a Jacobian pattern share
#     a color only if no row has nonzeros in both (a distance-2 coloring of the
#     bipartite row/column graph).  Row coloring is the same on the transpose.
#   star_coloring: the symmetric pattern of a Hessian, as the adjacency graph
#     (off-diagonal nonzeros), colored so that the coloring is proper and every
#     path on four vertices uses at least three colors (Gebremedhin, Manne,
#     Pothen, SIAM Review 47(4), 2005, section 4 and its greedy Algorithm 4.1):
#     then every H[i, j] can be read directly from H @ seed (see fastad._sparse_plan).
#
# Both are greedy in the order given; the caller tries a few orders and keeps the
# coloring with fewest colors.
from libc.stdint cimport int64_t

import numpy as np


def column_coloring(const int64_t[::1] r_ptr, const int64_t[::1] r_idx,
                    const int64_t[::1] c_ptr, const int64_t[::1] c_idx,
                    const int64_t[::1] order):
    """Colors (int64, one per column) of the pattern given as CSR (r_ptr, r_idx:
    the columns of each row) and CSC (c_ptr, c_idx: the rows of each column),
    visiting the columns in `order`.  Returns (colors, number of colors)."""
    cdef Py_ssize_t n = c_ptr.shape[0] - 1, t, j, p, q, i, k, c, ncol = 0
    colors = np.full(n, -1, dtype=np.int64)
    cdef int64_t[::1] col = colors
    # forbid[c] == j + 1: color c is taken by a column sharing a row with j
    forb = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] fb = forb
    if order.shape[0] != n:
        raise ValueError("column_coloring: order must list every column once")
    with nogil:
        for t in range(n):
            j = order[t]
            for p in range(c_ptr[j], c_ptr[j + 1]):
                i = c_idx[p]
                for q in range(r_ptr[i], r_ptr[i + 1]):
                    k = r_idx[q]
                    if col[k] >= 0:
                        fb[col[k]] = j + 1
            c = 0
            while fb[c] == j + 1:
                c += 1
            col[j] = c
            if c + 1 > ncol:
                ncol = c + 1
    return colors, ncol


def star_coloring(const int64_t[::1] ptr, const int64_t[::1] idx,
                  const int64_t[::1] order):
    """A star coloring of the graph with adjacency lists (ptr, idx) (no self
    loops), visiting vertices in `order`.  Returns (colors, number of colors).

    Coloring v, a color is forbidden when it is
      - a neighbor w's color (proper coloring);
      - the color of a colored x two steps away through an uncolored neighbor w
        (so two neighbors of a vertex still uncolored never share a color: the
        path x-w-v cannot become the middle of a two-colored path later);
      - the color of x in a path v-w-x-y with w, x colored and color(y) ==
        color(w): v would make the path v-w-x-y two-colored."""
    cdef Py_ssize_t n = ptr.shape[0] - 1, t, v, p, q, s, w, x, y, c, ncol = 0
    colors = np.full(n, -1, dtype=np.int64)
    cdef int64_t[::1] col = colors
    forb = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] fb = forb
    if order.shape[0] != n:
        raise ValueError("star_coloring: order must list every vertex once")
    with nogil:
        for t in range(n):
            v = order[t]
            for p in range(ptr[v], ptr[v + 1]):
                w = idx[p]
                if col[w] >= 0:
                    fb[col[w]] = v + 1
                for q in range(ptr[w], ptr[w + 1]):
                    x = idx[q]
                    if x == v or col[x] < 0:
                        continue
                    if col[w] < 0:
                        fb[col[x]] = v + 1
                    else:
                        for s in range(ptr[x], ptr[x + 1]):
                            y = idx[s]
                            if y != w and col[y] == col[w]:
                                fb[col[x]] = v + 1
                                break
            c = 0
            while fb[c] == v + 1:
                c += 1
            col[v] = c
            if c + 1 > ncol:
                ncol = c + 1
    return colors, ncol
