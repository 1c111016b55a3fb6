"""Build the Cython extensions of constdb._core.

Everything else (metadata, entry points) lives in pyproject.toml. Set
CONSTDB_DEBUG=1 to build with line tracing and annotated HTML (cython -a),
CONSTDB_CHECKED=1 to build with bounds, wraparound and initialized-memoryview
checks on (CI runs the fast tests on such a build: an out-of-range index
raises IndexError instead of reading past a buffer).
"""

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CONSTDB_DEBUG") == "1"
CHECKED = os.environ.get("CONSTDB_CHECKED") == "1"

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
if CHECKED:
    directives.update({"boundscheck": True, "wraparound": True, "initializedcheck": True})

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

# cythonize regenerates a .c file only when its .pyx is newer: after a switch
# of CONSTDB_DEBUG or CONSTDB_CHECKED every module must be regenerated
MODE = repr((sorted(directives.items()), macros))
STAMP = os.path.join("build", "cython-mode")
try:
    with open(STAMP) as f:
        force = f.read() != MODE
except OSError:
    force = True

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=DEBUG,
        nthreads=int(os.environ.get("CONSTDB_BUILD_JOBS", "0")) or None,
        force=force,
    ),
)
if not _only:  # a partial build leaves other modules in the old mode
    os.makedirs("build", exist_ok=True)
    with open(STAMP, "w") as f:
        f.write(MODE)
