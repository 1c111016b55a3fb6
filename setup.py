"""Build the Cython extensions of constdb._core.

Everything else (metadata, entry points) lives in pyproject.toml. Set
CONSTDB_DEBUG=1 to build with line tracing and annotated HTML (cython -a).
"""

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CONSTDB_DEBUG") == "1"

directives = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": False,
}
macros = []
if DEBUG:
    directives.update({"linetrace": True, "boundscheck": True})
    macros.append(("CYTHON_TRACE", "1"))

extensions = [
    Extension(
        "constdb._core." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=["-O2", "-Wno-unused-function", "-Wno-unreachable-code"],
        define_macros=macros,
    )
    for path in sorted(glob.glob("constdb/_core/*.pyx"))
]
# CONSTDB_MODULES=keyspace,snapshot builds only those (development)
_only = {m for m in os.environ.get("CONSTDB_MODULES", "").split(",") if m}
if _only:
    extensions = [e for e in extensions if e.name.rsplit(".", 1)[1] in _only]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=DEBUG,
        nthreads=int(os.environ.get("CONSTDB_BUILD_JOBS", "0")) or None,
    ),
)
