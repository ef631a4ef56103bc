"""Build the Cython extensions.  Everything else is in pyproject.toml.

FASTAD_DEBUG=1 turns on bounds checking and Cython's annotated HTML;
FASTAD_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.
"""
import os
import subprocess
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

JOBS = os.cpu_count() or 1

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = ["_tape", "_dual", "_second", "_replay", "_arrays", "_sparsity", "_coloring"]

# The Python side of the op table is generated from csrc/fastad_ops.h.
subprocess.check_call([sys.executable, os.path.join(HERE, "tools", "gen_ops.py")])

debug = os.environ.get("FASTAD_DEBUG") == "1"
sanitize = os.environ.get("FASTAD_SANITIZE") == "1"

compile_args = ["-O3" if not sanitize else "-O1", "-fno-math-errno"]
link_args = []
if sanitize:
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    compile_args += flags
    link_args += flags

extensions = [
    Extension(
        "fastad." + name,
        ["fastad/%s.pyx" % name],
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in MODULES
]

class ParallelBuildExt(build_ext):
    """Compile the extensions side by side, one job per core.

    pip's build backend gives no way to pass ``-j``; without this the five modules
    compile one after another (4 minutes on 2 cores).  ``FASTAD_BUILD_JOBS`` or an
    explicit ``build_ext -j N`` overrides the default.
    """

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = int(os.environ.get("FASTAD_BUILD_JOBS", JOBS))

    def build_extensions(self):
        # MSVC (the Windows wheels) optimises with /O2 by default and knows neither
        # -O3 nor -fno-math-errno: it would print a warning per flag and file
        if self.compiler.compiler_type == "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = []
                ext.extra_link_args = []
        super().build_extensions()


setup(
    cmdclass={"build_ext": ParallelBuildExt},
    ext_modules=cythonize(
        extensions,
        nthreads=int(os.environ.get("FASTAD_BUILD_JOBS", JOBS)),
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "cdivision": True,
            "embedsignature": True,
            "initializedcheck": debug,
        },
        annotate=debug,
    ),
)
