"""`python -m fastad`: a one-screen demonstration of reverse-mode AD.

It records a small function on a tape, prints the trace as a Wengert list, sweeps
it backwards for the gradient, checks that gradient against finite differences,
and times record + sweep per operation on a larger function.
"""
import math
import time

import numpy as np

import fastad as fd


def f(x, y):
    return fd.sin(x) * y + fd.exp(x / y)


def rosenbrock(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def _best_time(fn, reps=20):
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    x0, y0 = 0.5, 2.0
    print("fastad %s: automatic differentiation by recording a tape\n" % fd.__version__)
    print("1. Running f(x, y) = sin(x) * y + exp(x / y) on Vars records every")
    print("   elementary operation, in order, on a tape (a Wengert list):\n")
    with fd.Tape() as tape:
        x = tape.variable(x0)
        y = tape.variable(y0)
        z = f(x, y)
    for line in tape.wengert().splitlines():
        print("     " + line)

    print("\n2. The reverse sweep walks that list backwards once, multiplying local")
    print("   partial derivatives (the chain rule), and yields every partial at once:\n")
    gx, gy = tape.gradient(z, [x, y])
    print("     df/dx = %.15f    df/dy = %.15f" % (gx, gy))

    h = 1e-5
    fdx = (f(x0 + h, y0) - f(x0 - h, y0)) / (2 * h)
    fdy = (f(x0, y0 + h) - f(x0, y0 - h)) / (2 * h)
    print("\n3. Central finite differences (h = 1e-5) agree to about 10 digits; AD")
    print("   itself has no truncation error:\n")
    print("     df/dx = %.15f    df/dy = %.15f" % (fdx, fdy))
    print("     largest difference: %.1e" % max(abs(gx - fdx), abs(gy - fdy)))

    n = 1000
    xs = np.linspace(-1.2, 1.2, n)
    with fd.Tape() as big:
        rosenbrock(big.variable(xs))
    ops = len(big)
    vg = fd.value_and_grad(rosenbrock)
    t_ad = _best_time(lambda: vg(xs))
    plain_xs = xs.tolist()  # Python floats: list(xs) would hold np.float64
    t_plain = _best_time(lambda: rosenbrock(plain_xs))
    print("\n4. Cost: the Rosenbrock function, n = %d, a Python loop of %d operations:\n"
          % (n, ops))
    print("     value and gradient (record + sweep): %7.1f us, %5.1f ns per operation"
          % (t_ad * 1e6, t_ad / ops * 1e9))
    print("     value alone, on plain floats:        %7.1f us, %5.1f ns per operation"
          % (t_plain * 1e6, t_plain / ops * 1e9))
    print("     the gradient costs %.1fx the function itself (best of 20 runs)"
          % (t_ad / t_plain))


if __name__ == "__main__":
    main()
