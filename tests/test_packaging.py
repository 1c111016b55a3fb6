"""The project builds as a wheel with its compiled core and its console script,
and `python -m constdb` is the same program as `constdb-server`."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.timeout(1000)  # builds every extension; the pip call itself has 900 s
def test_pip_wheel_builds_the_extensions_and_the_console_script(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-w", str(tmp_path), "-q"],
        capture_output=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    wheels = glob.glob(str(tmp_path / "constdb-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "constdb-server = constdb.cli:main" in z.read(entry).decode()
    modules = {
        os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, "constdb", "_core", "*.pyx"))
    }
    built = {
        os.path.basename(n).split(".")[0]
        for n in names
        if n.startswith("constdb/_core/") and n.endswith(".so")
    }
    assert modules <= built, modules - built
    assert "constdb/replication/manager.py" in names
    assert "constdb/persistence.py" in names
    assert "constdb/commands/commands.toml" in names  # the command table
    assert "constdb/lua/prelude.lua" in names  # the scripting environment


def test_python_dash_m_constdb_is_the_server():
    out = subprocess.run(
        [sys.executable, "-m", "constdb", "--version"], capture_output=True, timeout=60
    )
    assert out.returncode == 0
    assert out.stdout.decode().startswith("constdb-server ")
