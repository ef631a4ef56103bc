"""Generate the Cython side of the op table in csrc/fastad_ops.h.

The C header is the single source of truth for every scalar primitive.  This script
reads its rows (FAD_UNARY_OPS and FAD_BINARY_OPS) and writes two files:

- fastad/_op_codes.pxi: the list of the rows' op codes (FAD_SIN, FAD_ADD,
  FAD_ADD_C1, ...), which fastad/_core.pxd includes: the one place the header is
  declared to Cython;
- fastad/_ops.pxi: one Python-level math function per primitive (fd.sin, ...) and
  OP_INFO, the table that tests walk.  No declarations: fastad/_tape.pyx, which
  includes it, cimports the op codes from fastad._core.

setup.py runs it before cythonizing, so the generated files are never committed.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADER = os.path.join(ROOT, "csrc", "fastad_ops.h")
OUTPUT = os.path.join(ROOT, "fastad", "_ops.pxi")
CODES = os.path.join(ROOT, "fastad", "_op_codes.pxi")
PARTIALS = os.path.join(ROOT, "fastad", "_partials.pxi")


def _split_args(text):
    """Split a macro argument list at top-level commas."""
    args, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        cur.append(ch)
    args.append("".join(cur).strip())
    return args


def _rows(source, table):
    """Return the argument lists of every X(...) row of `#define table(X)`."""
    start = source.index("#define %s(X)" % table)
    body = []
    for line in source[start:].splitlines()[1:]:
        stripped = line.rstrip()
        body.append(stripped.rstrip("\\"))
        if not stripped.endswith("\\"):
            break
    text = " ".join(body)
    rows, i = [], 0
    while True:
        m = re.compile(r"\bX\(").search(text, i)
        if not m:
            break
        depth, j = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        rows.append(_split_args(text[m.end():j - 1]))
        i = j
    return rows


def read_table(header=HEADER):
    with open(header) as f:
        source = f.read()
    unary = [(r[0], r[1].strip('"'), float(r[5]), float(r[6]))
             for r in _rows(source, "FAD_UNARY_OPS")]
    binary = [(r[0], r[1].strip('"'), (float(r[8]), float(r[9])),
               (float(r[10]), float(r[11])))
              for r in _rows(source, "FAD_BINARY_OPS")]
    for r in _rows(source, "FAD_UNARY_OPS"):
        if len(r) != 7:
            raise SystemExit("unary row %s has %d fields, expected 7" % (r[0], len(r)))
    for r in _rows(source, "FAD_BINARY_OPS"):
        if len(r) != 12:
            raise SystemExit("binary row %s has %d fields, expected 12" % (r[0], len(r)))
    return unary, binary


# For the docstrings of the generated functions: the reference each one behaves
# like, where it is not numpy.<name>, and the conventions at points where the
# derivative is not defined (JAX's).  The C header holds code, not prose.
LIKE = {"erf": "scipy.special.erf", "erfc": "scipy.special.erfc",
        "sigmoid": "scipy.special.expit", "relu": "numpy.maximum(x, 0)",
        "softplus": "numpy.logaddexp(0, x), without overflow"}
# The special-function rows: fd.special.<name> (like scipy.special.<name>), not fd.*
SPECIAL = ("gammaln", "digamma", "gamma", "gammasgn", "erfinv", "erfcx", "ndtr",
           "log_ndtr", "ndtri", "logit", "entr", "i0", "i0e", "i1", "i1e", "polygamma",
           "xlogy", "xlog1py")
LIKE.update({name: "scipy.special.%s" % name for name in SPECIAL})
AT_KINKS_SPECIAL = {
    "i0e": "The derivative at 0 is 0.",
    "polygamma": "n must be a non-negative integer (rounded; its derivative is 0).",
    "xlogy": "0 where x == 0 (y not nan), with the y-derivative 0 there.",
    "xlog1py": "0 where x == 0 (y not nan), with the y-derivative 0 there."}
AT_KINKS = {"abs": "The derivative at 0 is 0.", "relu": "The derivative at 0 is 0.",
            "sqrt": "The derivative at 0 is inf.",
            "sign": "The derivative is 0.", "floor": "The derivative is 0.",
            "ceil": "The derivative is 0.",
            "maximum": "At ties the gradient is split evenly between x and y.",
            "minimum": "At ties the gradient is split evenly between x and y."}
AT_KINKS.update(AT_KINKS_SPECIAL)


def docstring(py, arity):
    """The docstring of the generated function fd.<py>."""
    like = LIKE.get(py, "numpy.%s" % py)
    args = "x (a float, array, Var or Dual)" if arity == 1 else \
        "x and y (floats, arrays, Vars or Duals; broadcast)"
    text = ["Elementwise %s of %s, like %s." % (py, args, like), "",
            "    Floats and arrays give floats and arrays; Vars are recorded on their",
            "    tape; Duals carry their tangent."]
    if py in AT_KINKS:
        text.append("    " + AT_KINKS[py])
    return '    """%s\n    """' % "\n".join(text)


def render_codes(unary, binary):
    """The op codes the header's enum fad_op generates from the rows, for _core.pxd."""
    out = ["# Generated by tools/gen_ops.py from csrc/fastad_ops.h. Do not edit.",
           "# Included by fastad/_core.pxd only; cimport the codes from fastad._core.", ""]
    out.append('cdef extern from "fastad_ops.h" nogil:')
    out.append("    enum:")
    for name, *_ in unary:
        out.append("        FAD_%s" % name)
    for name, *_ in binary:
        out.append("        FAD_%s" % name)
        out.append("        FAD_%s_C1" % name)
        out.append("        FAD_%s_C0" % name)
    out.append("")
    return "\n".join(out)


def render(unary, binary):
    out = ["# Generated by tools/gen_ops.py from csrc/fastad_ops.h. Do not edit.",
           "# Included by fastad/_tape.pyx, which cimports the op codes from fastad._core.",
           ""]
    out.append("# (code, python name, arity, test domain per argument)")
    out.append("OP_INFO = (")
    for name, py, lo, hi in unary:
        out.append("    (FAD_%s, %r, 1, ((%r, %r),))," % (name, py, lo, hi))
    for name, py, da, dbm in binary:
        out.append("    (FAD_%s, %r, 2, (%r, %r))," % (name, py, da, dbm))
    out.append(")")
    out.append("")
    out.append("# rows that are fd.special.<name>, not fd.<name>")
    out.append("SPECIAL_ROWS = %r" % (tuple(SPECIAL),))
    out.append("")
    for name, py, *_ in unary:
        out.append("def %s(x):" % py)
        out.append(docstring(py, 1))
        out.append("    return _apply1(FAD_%s, x)" % name)
        out.append("")
    for name, py, *_ in binary:
        out.append("def %s(x, y):" % py)
        out.append(docstring(py, 2))
        out.append("    return _apply2(FAD_%s, x, y)" % name)
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------
# Recordable partials (docs/design/nesting.md, 1.1)
#
# Each row's first-partial columns (D1; DA and DB) are C expressions in the table's
# own operations.  They are parsed here and written to fastad/_partials.pxi as
# Cython functions that *record* the partial on a tape, one op-table slot per
# operation, so that a reverse sweep can itself be recorded (create_graph=True) and
# differentiated again, to any order.  A value `PV` is a slot (s >= 0) or a constant
# (s == -1, value c); the helpers pv_un / pv_bin (fastad/_tape.pyx) fold constants
# with fad_eval and push slots otherwise, so every value rounds like the C column.

# C names in the partial columns -> the row (python name) that computes them.
C_FUNCTIONS = {"fabs": "abs", "pow": "power", "asin": "arcsin", "acos": "arccos",
               "atan": "arctan", "atan2": "arctan2", "fad_sign": "sign",
               "fad_digamma": "digamma", "fad_polygamma": "polygamma",
               "fad_erfcx": "erfcx", "fad_i0": "i0", "fad_i1": "i1", "fad_i0e": "i0e",
               "fad_i1e": "i1e"}
C_OPERATORS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}

# The helpers of csrc/fastad_numerics.h that partial columns call, written in the
# table's operations branch for branch like the C function: (parameters, cases).
# A case is (conditions, expression); conditions (all must hold) are comparisons of
# a parameter with a parameter or a number, evaluated on values and recorded as
# guards on the tape (fd.trace re-records when a replay falls on another branch);
# None is the final case.  tests/test_nesting_table.py checks each against fad_eval.
HELPERS = {
    "fad_sigmoid": (("x",), [(None, "sigmoid(x)")]),
    "fad_dsigmoid": (("x",), [(None, "sigmoid(x) * sigmoid(-x)")]),
    "fad_dtanh": (("x", "r"), [
        ((("x", ">", -1.0), ("x", "<", 1.0)), "1.0 - r * r"),
        (None, "4.0 * exp(-2.0 * fabs(x)) / ((1.0 + exp(-2.0 * fabs(x)))"
               " * (1.0 + exp(-2.0 * fabs(x))))")]),
    "fad_dabs": (("x",), [(None, "sign(x)")]),
    "fad_step": (("x",), [(None, "sign(relu(x))")]),
    "fad_dmax_a": (("a", "b"), [((("a", ">", "b"),), "1.0"),
                                ((("a", "==", "b"),), "0.5"), (None, "0.0")]),
    "fad_dmin_a": (("a", "b"), [((("a", "<", "b"),), "1.0"),
                                ((("a", "==", "b"),), "0.5"), (None, "0.0")]),
    # y * x**(y-1) also at y == 0 (value 0): its derivative in y there is 1/x
    "fad_pow_dx": (("x", "y"), [((("x", "==", 0.0), ("y", "==", 0.0)), "0.0"),
                                (None, "y * pow(x, y - 1.0)")]),
    "fad_pow_dy": (("x", "r"), [((("x", "==", 0.0),), "0.0"), (None, "r * log(x)")]),
    "fad_hypot_d": (("a", "b", "r"), [
        ((("r", "==", 0.0),), "0.0"),
        ((("r", "<", 2.2250738585072014e-308),),
         "(a * %r) / hypot(a * %r, b * %r)" % ((2.0 ** 600,) * 3)),
        (None, "a / r")]),
    # x / y, 0 at x == 0 (xlogy's d/dy); recorded as x / y there too while y != 0
    # (value 0 either way), so its derivative in x stays 1/y
    "fad_xdivy": (("x", "y"), [((("x", "==", 0.0), ("y", "==", 0.0)), "0.0"),
                               (None, "x / y")]),
    # i1' = i0 - i1 / x, 0.5 at x == 0; recorded there as i0 - (i1(x) / x's series
    # 1/2 + x^2/16 + x^4/384): value 0.5, and the derivatives of i1' to the fifth
    # order at 0 (a constant there lost them: the third derivative of i0 at 0 was 0)
    "fad_di1": (("x", "r"), [((("x", "==", 0.0),),
                              "fad_i0(x) - (0.5 + x * x * (0.0625 + x * x / 384.0))"),
                             (None, "fad_i0(x) - r / x")]),
    "fad_di1e": (("x", "r"), [((("x", "==", 0.0),), "0.5"),
                              (None, "fad_i0e(x) - fad_sign(x) * r - r / x")]),
}
C_CONSTANTS = ("FAD_LN2", "FAD_LN10", "FAD_2_SQRTPI", "FAD_SQRTPI_2", "FAD_SQRT2PI",
               "FAD_1_SQRT2PI", "FAD_SQRT_2_PI", "FAD_SQRT1_2")

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)|"
                    r"([A-Za-z_]\w*)|(.))")


def parse_expression(text):
    """A C expression as a tree: ("num", text) | ("name", n) | ("neg", e) |
    ("op", sym, l, r) | ("call", fname, [args])."""
    toks = []
    for num, name, sym in _TOKEN.findall(text):
        if num:
            toks.append(("num", num))
        elif name:
            toks.append(("name", name))
        elif sym.strip():
            toks.append(("sym", sym))
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take(sym=None):
        t = peek()
        if sym is not None and t != ("sym", sym):
            raise SystemExit("cannot parse partial %r: expected %r at token %d"
                             % (text, sym, pos[0]))
        pos[0] += 1
        return t

    def expr():
        node = term()
        while peek() in (("sym", "+"), ("sym", "-")):
            node = ("op", take()[1], node, term())
        return node

    def term():
        node = unary()
        while peek() in (("sym", "*"), ("sym", "/")):
            node = ("op", take()[1], node, unary())
        return node

    def unary():
        if peek() == ("sym", "-"):
            take()
            return ("neg", unary())
        return primary()

    def primary():
        kind, val = take()
        if kind == "num":
            return ("num", val)
        if kind == "name":
            if peek() == ("sym", "("):
                take("(")
                args = [expr()]
                while peek() == ("sym", ","):
                    take(",")
                    args.append(expr())
                take(")")
                return ("call", val, args)
            return ("name", val)
        if (kind, val) == ("sym", "("):
            node = expr()
            take(")")
            return node
        raise SystemExit("cannot parse partial %r" % text)

    node = expr()
    if pos[0] != len(toks):
        raise SystemExit("cannot parse partial %r: trailing tokens" % text)
    return node


class _Emitter:
    """Cython statements computing one partial as a PV, from a parsed expression."""

    def __init__(self, ops, indent="    "):
        self.ops = ops            # python name -> (FAD code name, arity)
        self.lines = []
        self.count = 0
        self.indent = indent
        self.memo = {}

    def tmp(self):
        self.count += 1
        return "v%d" % self.count

    def emit(self, line):
        self.lines.append(self.indent + line)

    def value(self, node, env):
        key = (repr(node), tuple(sorted(env.items())))
        if key in self.memo:
            return self.memo[key]
        out = self._value(node, env)
        self.memo[key] = out
        return out

    def _value(self, node, env):
        kind = node[0]
        if kind == "num":
            v = self.tmp()
            self.emit("%s = pv_c(%s)" % (v, node[1]))
            return v
        if kind == "name":
            if node[1] in env:
                return env[node[1]]
            if node[1] in C_CONSTANTS:
                v = self.tmp()
                self.emit("%s = pv_c(%s)" % (v, node[1]))
                return v
            raise SystemExit("partial uses unknown name %r" % node[1])
        if kind == "neg":
            x = self.value(node[1], env)
            v = self.tmp()
            self.emit("%s = pv_un(t, FAD_NEG, %s)" % (v, x))
            return v
        if kind == "op":
            code = self.ops[C_OPERATORS[node[1]]][0]
            x, y = self.value(node[2], env), self.value(node[3], env)
            v = self.tmp()
            self.emit("%s = pv_bin(t, %s, %s, %s)" % (v, code, x, y))
            return v
        name, args = node[1], node[2]
        if name in HELPERS:
            return self.helper(name, [self.value(a, env) for a in args])
        py = C_FUNCTIONS.get(name, name)
        if py not in self.ops:
            raise SystemExit("partial calls %r, which is neither a row of the op table "
                             "nor a helper with a recordable form (HELPERS in "
                             "tools/gen_ops.py)" % name)
        code, arity = self.ops[py]
        if arity != len(args):
            raise SystemExit("partial calls %s with %d arguments" % (name, len(args)))
        xs = [self.value(a, env) for a in args]
        v = self.tmp()
        if arity == 1:
            self.emit("%s = pv_un(t, %s, %s)" % (v, code, xs[0]))
        else:
            self.emit("%s = pv_bin(t, %s, %s, %s)" % (v, code, xs[0], xs[1]))
        return v

    def helper(self, name, argvals):
        params, cases = HELPERS[name]
        if len(params) != len(argvals):
            raise SystemExit("%s takes %d arguments" % (name, len(params)))
        env = dict(zip(params, argvals))
        out = self.tmp()
        self.emit("%s = pv_c(0.0)" % out)
        saved_indent, saved_memo = self.indent, self.memo
        first = True
        for conds, text in cases:
            self.memo = dict(saved_memo)    # a branch's temporaries stay in it
            if conds is None:
                if not first:
                    self.indent = saved_indent
                    self.emit("else:")
                    self.indent = saved_indent + "    "
            else:
                tests = []
                for lhs, cmp, rhs in conds:
                    rv = env[rhs] if isinstance(rhs, str) else "pv_c(%r)" % rhs
                    tests.append("pv_cmp(t, %s, %s, %s, %r)"
                                 % (env[lhs], cmp_code(cmp), rv, name))
                self.indent = saved_indent
                # every comparison of a case runs (no short-circuit): each records
                # its guard, so a replay on another branch is always caught
                self.emit("%s (%s) == %d:" % ("if" if first else "elif",
                                               " + ".join(tests), len(tests)))
                self.indent = saved_indent + "    "
            first = False
            res = self.value(parse_expression(text), env)
            self.emit("%s = %s" % (out, res))
        self.indent, self.memo = saved_indent, saved_memo
        return out


def cmp_code(cmp):
    return {"<": 0, "<=": 1, "==": 2, "!=": 3, ">": 4, ">=": 5}[cmp]


def read_partials(header=HEADER):
    """(unary rows as (NAME, D1), binary rows as (NAME, DA, DB)) of the header."""
    with open(header) as f:
        source = f.read()
    unary = [(r[0], r[3]) for r in _rows(source, "FAD_UNARY_OPS")]
    binary = [(r[0], r[3], r[4]) for r in _rows(source, "FAD_BINARY_OPS")]
    return unary, binary


def render_partials(unary, binary):
    """fastad/_partials.pxi: the recordable first partials of every row."""
    ops = {}
    table_u, table_b = read_table()
    for name, py, *_ in table_u:
        ops[py] = ("FAD_%s" % name, 1)
    for name, py, *_ in table_b:
        ops[py] = ("FAD_%s" % name, 2)
    out = ["# Generated by tools/gen_ops.py from csrc/fastad_ops.h. Do not edit.",
           "# Included by fastad/_tape.pyx: the recordable form of each row's first",
           "# partials (docs/design/nesting.md, 1.1).  A function gets the operands as",
           "# PVs (a slot, or a constant for the constant forms) and the result slot r.",
           "# (The constants FAD_LN2, ... are declared in fastad/_core.pxd.)",
           ""]
    funcs = []

    def function(fname, text):
        em = _Emitter(ops)
        res = em.value(parse_expression(text), {"a": "a", "b": "b", "r": "r"})
        out.append("cdef PV %s(Tape t, PV a, PV b, PV r) except *:" % fname)
        out.append("    # %s" % " ".join(text.split()))
        if em.count:
            out.append("    cdef PV " + ", ".join("v%d" % k for k in range(1, em.count + 1)))
        out.extend(em.lines)
        out.append("    return %s" % res)
        out.append("")

    for name, d1 in unary:
        function("_pd_%s" % name, d1)
        funcs.append(("FAD_%s" % name, "_pd_%s" % name, None))
    for name, da, db in binary:
        function("_pd_%s_a" % name, da)
        function("_pd_%s_b" % name, db)
        funcs.append(("FAD_%s" % name, "_pd_%s_a" % name, "_pd_%s_b" % name))
        # x op c: the variable is a, its partial DA; c op x: the variable is b, DB
        funcs.append(("FAD_%s_C1" % name, "_pd_%s_a" % name, None))
        funcs.append(("FAD_%s_C0" % name, "_pd_%s_b" % name, None))
    out.append("cdef partial_fn _PD_A[FAD_NUM_SCALAR_OPS]")
    out.append("cdef partial_fn _PD_B[FAD_NUM_SCALAR_OPS]")
    out.append("")
    out.append("cdef void _init_partials() noexcept:")
    out.append("    cdef int k")
    out.append("    for k in range(FAD_NUM_SCALAR_OPS):")
    out.append("        _PD_A[k] = NULL")
    out.append("        _PD_B[k] = NULL")
    for code, fa, fb in funcs:
        out.append("    _PD_A[%s] = %s" % (code, fa))
        if fb:
            out.append("    _PD_B[%s] = %s" % (code, fb))
    out.append("")
    out.append("_init_partials()")
    out.append("")
    return "\n".join(out)


def _write(path, text):
    old = None
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if old != text:  # leave the mtime alone when nothing changed: no needless rebuild
        with open(path, "w") as f:
            f.write(text)


def main(argv=None):
    unary, binary = read_table()
    _write(CODES, render_codes(unary, binary))
    _write(OUTPUT, render(unary, binary))
    _write(PARTIALS, render_partials(*read_partials()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
