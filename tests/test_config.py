"""constdb-server's configuration and command line: constdb.toml, flags, bad
input (one line on stderr, exit status 2), daemon mode, the kept node id,
signals and the start log line."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest
import redis
from support.nodes import HOST, ConstDB, free_port, server_cmd, wait_for

from constdb import __version__
from constdb.config import SPEC, load, render_toml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the original ConstDB's default.toml (github.com/tancehao/ConstDB), verbatim
ORIGINAL_DEFAULT_TOML = """\
# wether this server runs in daemon mode.
daemon = true

# A unsigned 64-bit integer specifying the id of this server.
# It's one of the key points in solving conflicts among replicas.
# It's the administrator's responsibility to ensure its uniqueness.
node_id = 1

# An alias of this server.
node_alias = "node9001"

# The ip address and port this server will listen for.
ip = "127.0.0.1"
port = 9001

# Name of the file into which the logs will be written.
log = "/home/myname/constdb/logs.out"

# Log's level. Valid options are ERROR|INFO|WARN|DEBUG|TRACE|OFF
log_level = "ERROR"

# The working directory
work_dir = "/home/myname/constdb"

# Size of the backlog of the tcp listener.
tcp_backlog = 1024

# Capacity in bytes of the replication backlog.
repl_backlog_limit = 104857600

# Seconds after which a server should ping all of it's replicas.
replica_heartbeat_frequency = 4

# Amount of commands of a single client that can be executed without interrupted by other clients.
max_exec_per_round = 16

# The frequency the server runs its periodic tasks.
hz = 100
"""


def run(*args: str, cwd: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        server_cmd() + list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def one_line_error(p: subprocess.CompletedProcess) -> str:
    """The single stderr line of a refused start."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().split("\n")
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("constdb-server: ")
    return lines[0]


# ---- constdb.toml ------------------------------------------------------------------------


def test_constdb_toml_is_generated_from_spec():
    with open(os.path.join(REPO, "constdb.toml")) as f:
        text = f.read()
    assert text == render_toml(), "regenerate constdb.toml from constdb.config.render_toml()"
    for key in SPEC:
        assert f"\n{key.name} = " in text
        assert f"# {key.doc}\n{key.name} = " in text


def test_constdb_toml_loads_to_the_defaults():
    cfg = load(os.path.join(REPO, "constdb.toml"))
    plain = load(None)
    for key in SPEC:
        assert cfg.get(key.name) == plain.get(key.name) == key.default, key.name


def test_defaults():
    cfg = load(None)
    assert cfg.port == 9001 and cfg.ip == "127.0.0.1" and cfg.work_dir == "."
    assert cfg.where("port") == "defaults"


def test_original_constdb_keys_are_accepted(tmp_path):
    p = tmp_path / "default.toml"
    p.write_text(ORIGINAL_DEFAULT_TOML)
    cfg = load(str(p))
    assert cfg.daemon is True and cfg.node_id == 1 and cfg.node_alias == "node9001"
    assert cfg.hz == 100 and cfg.replica_heartbeat_frequency == 4.0
    assert cfg.where("hz") == str(p)
    for extra in ("threads = 4", "replica_gossip_frequency = 15"):
        p.write_text(extra + "\n")
        load(str(p))


# ---- starting ---------------------------------------------------------------------------


def test_no_arguments_serves_on_9001_in_cwd(tmp_path):
    """constdb-server alone: 127.0.0.1:9001, work_dir "." (another process may
    hold 9001 on a shared machine: then the refusal must name it)."""
    proc = subprocess.Popen(
        server_cmd(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        try:
            proc.wait(1.5)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is not None:
            err = proc.stderr.read()
            assert proc.returncode == 2, err
            assert "cannot listen on 127.0.0.1:9001: address already in use" in err
            return
        c = redis.Redis(host=HOST, port=9001, socket_timeout=5)
        wait_for(lambda: (tmp_path / "node_id").exists(), 10, what="node_id file")
        node_id = int((tmp_path / "node_id").read_text())
        wait_for(lambda: c.info("server")["node_id"] == node_id, 10, what="the server on 9001")
        assert c.config_get("dir")["dir"] == str(tmp_path)
        c.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_config_file_then_flags(tmp_path):
    port_file, port_flag = free_port(), free_port()
    conf = tmp_path / "my.toml"
    wd = tmp_path / "wd"
    conf.write_text(
        f'port = {port_file}\nnode_alias = "from-file"\nwork_dir = "{wd}"\n'
        'max_exec_per_round = 7\nlog_level = "DEBUG"\n'
    )
    proc = subprocess.Popen(
        server_cmd() + [str(conf), "--port", str(port_flag), "--node-alias", "from-flag"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        c = redis.Redis(host=HOST, port=port_flag, socket_timeout=5)
        wait_for(c.ping, 20, what="server on the flag's port")
        info = c.info("server")
        assert info["node_alias"] == "from-flag"
        assert info["config_file"] == str(conf)
        assert c.config_get("max-exec-per-round") == {"max-exec-per-round": "7"}
        assert c.config_get("log-level") == {"log-level": "DEBUG"}
        assert c.config_get("dir")["dir"] == str(wd)
        assert (wd / "node_id").exists()
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_original_default_toml_starts_a_server(tmp_path):
    """The original ConstDB's default.toml as it is (daemon = true, paths of
    its author's machine) starts with port, work_dir and log overridden."""
    conf = tmp_path / "default.toml"
    conf.write_text(ORIGINAL_DEFAULT_TOML)
    wd = tmp_path / "work"
    port = free_port()
    p = run(str(conf), "--port", str(port), "--work-dir", str(wd), "--log", str(tmp_path / "c.log"))
    assert p.returncode == 0, p.stderr  # the foreground process returns once detached
    pidfile = wd / "constdb.pid"
    pid = wait_for(lambda: _read_pid(pidfile), 10, what="the pid file")
    try:
        c = redis.Redis(host=HOST, port=port, socket_timeout=5)
        wait_for(c.ping, 10, what="the daemon")
        info = c.info("server")
        assert info["process_id"] == pid and info["node_id"] == 1
        assert info["node_alias"] == "node9001" and info["hz"] == 100
        c.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not _alive(pid), 15, what="the daemon to exit")
    assert not pidfile.exists()


def _read_pid(path) -> int:
    return int(path.read_text().strip()) if path.exists() else 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_daemon_flag(tmp_path):
    port = free_port()
    wd = tmp_path / "wd"
    p = run("--daemon", "--port", str(port), "--work-dir", str(wd))
    assert p.returncode == 0 and p.stderr == ""
    pidfile = wd / "constdb.pid"
    pid = wait_for(lambda: _read_pid(pidfile), 10, what="the pid file")
    try:
        assert pid != os.getpid() and _alive(pid)
        c = redis.Redis(host=HOST, port=port, socket_timeout=5)
        wait_for(c.ping, 10, what="the daemon")
        assert c.info("server")["process_id"] == pid
        c.close()
        # without --log the daemon logs into work_dir
        wait_for(lambda: "started" in (wd / "constdb.log").read_text(), 5, what="the log")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not _alive(pid), 15, what="the daemon to exit")
    assert not pidfile.exists()
    assert "stopped" in (wd / "constdb.log").read_text()


def test_no_daemon_flag_overrides_the_file(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("daemon = true\n")
    n = ConstDB(str(tmp_path / "wd"), config=str(conf), args=("--no-daemon",)).start()
    try:
        assert n.alive()
        assert not (tmp_path / "wd" / "constdb.pid").exists()
    finally:
        assert n.stop() == 0


def test_node_id_is_drawn_once_and_kept(node, tmp_path):
    n = node(name="keep").start()
    c = n.client()
    first = c.info("server")["node_id"]
    assert 0 < first < 2**63
    assert int((tmp_path / "keep" / "node_id").read_text()) == first
    c.close()
    n.restart()
    c = n.client()
    assert c.info("server")["node_id"] == first
    c.close()
    # --node-id overrides it (and is kept)
    n.stop()
    n.args = ["--node-id", "4242"]
    n.start()
    c = n.client()
    assert c.info("server")["node_id"] == 4242
    c.close()
    n.args = []
    n.restart()
    c = n.client()
    assert c.info("server")["node_id"] == 4242
    c.close()
    # another work_dir, another id
    other = node(name="other").start()
    c = other.client()
    assert c.info("server")["node_id"] not in (first, 4242)
    c.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(node, sig):
    n = node("--node-alias", "sig-node").start()
    c = n.client()
    c.set("k", "v")
    c.close()
    assert n.stop(sig) == 0
    log = n.log()
    name = signal.Signals(sig).name
    assert f"shutting down ({name})" in log
    assert "stopped" in log
    assert "Traceback" not in log


def test_start_log_line(node, tmp_path):
    n = node("--node-alias", "alpha", "--node-id", "777", name="logged").start()
    n.stop()
    line = [x for x in n.log().split("\n") if "started" in x][0]
    assert f"ConstDB {__version__}" in line
    assert "node_id=777" in line and "alias=alpha" in line
    assert f"address={HOST}:{n.port}" in line
    assert f"work_dir={tmp_path / 'logged'}" in line


def test_log_file_and_level_flags(node, tmp_path):
    logf = tmp_path / "x.log"
    n = node("--log", str(logf), "--log-level", "WARN").start()
    n.stop()
    text = logf.read_text()
    assert "started" not in text  # INFO lines are below WARN
    n2 = node("--log", str(logf), "--log-level", "info").start()
    n2.stop()
    assert "started" in logf.read_text()


# ---- refused starts: one line, exit status 2 -------------------------------------------

BAD_FILES = {
    "unknown_key": ("foo = 1\n", r"c\.toml: unknown key 'foo'"),
    "table": ("[server]\nport = 1\n", r"c\.toml: unknown table \[server\]"),
    "wrong_type_port": ('port = "x"\n', r"c\.toml: key 'port': expected an integer in 0\.\.65535, got 'x'"),
    "port_out_of_range": ("port = 70000\n", r"key 'port': expected an integer in 0\.\.65535, got 70000"),
    "port_zero": ("port = 0\n", r"key 'port': 0 \(no plain port\) needs a tls_port"),
    "port_float": ("port = 1.5\n", r"key 'port': expected an integer"),
    "hz_range": ("hz = 0\n", r"key 'hz': expected an integer in 1\.\.500, got 0"),
    "bool": ("daemon = 3\n", r"key 'daemon': expected true or false, got 3"),
    "level": ('log_level = "LOUD"\n', r"key 'log_level': expected one of OFF, ERROR, WARN, INFO, DEBUG, TRACE, got 'LOUD'"),
    "ip": ('ip = "not-an-ip"\n', r"key 'ip': expected an IPv4 or IPv6 address, got 'not-an-ip'"),
    "string": ("node_alias = 5\n", r"key 'node_alias': expected a string, got 5"),
    "size": ('repl_backlog_limit = "10xb"\n', r"key 'repl_backlog_limit': expected a size in bytes"),
    "size_small": ("repl_backlog_limit = 10\n", r"key 'repl_backlog_limit': expected a size in bytes .* in 1024\.\."),
    "float": ('replica_heartbeat_frequency = "often"\n', r"key 'replica_heartbeat_frequency': expected a number"),
    "save": ("save = [[1]]\n", r"key 'save': expected a list of \[seconds, changes\] pairs"),
    "node_id_negative": ("node_id = -1\n", r"key 'node_id': expected an integer in 0\.\.9223372036854775807, got -1"),
    "empty_work_dir": ('work_dir = ""\n', r"key 'work_dir': expected a non-empty path"),
    "invalid_toml": ("port = \n", r"c\.toml: invalid TOML: "),
    "invalid_toml_2": ("port = 1\nport = 2\n", r"c\.toml: invalid TOML: "),
    "not_utf8": (b"port = 1 # \xff\xfe\n", r"c\.toml: not a UTF-8 text file"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_config_file(tmp_path, name):
    content, expected = BAD_FILES[name]
    conf = tmp_path / "c.toml"
    if isinstance(content, bytes):
        conf.write_bytes(content)
    else:
        conf.write_text(content)
    line = one_line_error(run(str(conf), "--work-dir", str(tmp_path / "wd")))
    assert re.search(expected, line), line
    assert str(conf) in line


def test_unreadable_config_file(tmp_path):
    line = one_line_error(run(str(tmp_path / "missing.toml")))
    assert line.endswith("missing.toml: cannot read config file: No such file or directory")
    line = one_line_error(run(str(tmp_path)))
    assert line.endswith(f"{tmp_path}: cannot read config file: Is a directory")


BAD_FLAGS = {
    "port_not_int": (["--port", "abc"], r"argument --port: invalid int value: 'abc'"),
    "port_range": (["--port", "99999"], r"command line --port: key 'port': expected an integer in 0\.\.65535, got 99999"),
    "bind": (["--bind", "nope"], r"command line --bind: key 'ip': expected an IPv4 or IPv6 address"),
    "log_level": (["--log-level", "loud"], r"command line --log-level: key 'log_level': expected one of"),
    "node_id": (["--node-id", "-5"], r"command line --node-id: key 'node_id': expected an integer"),
    "unknown_flag": (["--bogus"], r"unrecognized arguments: --bogus"),
    "two_files": (["a.toml", "b.toml"], r"unrecognized arguments: b\.toml"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_FLAGS))
def test_bad_flags(tmp_path, name):
    args, expected = BAD_FLAGS[name]
    line = one_line_error(run(*args, "--work-dir", str(tmp_path / "wd"), cwd=str(tmp_path)))
    assert re.search(expected, line), line


def test_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen(1)
        port = s.getsockname()[1]
        line = one_line_error(run("--port", str(port), "--work-dir", str(tmp_path)))
        assert line == (
            f"constdb-server: command line --port: key 'port': cannot listen on "
            f"{HOST}:{port}: address already in use"
        )
        conf = tmp_path / "p.toml"
        conf.write_text(f"port = {port}\n")
        line = one_line_error(run(str(conf), "--work-dir", str(tmp_path)))
        assert line.startswith(f"constdb-server: {conf}: key 'port': cannot listen on")


def test_address_not_available(tmp_path):
    line = one_line_error(
        run("--bind", "192.0.2.1", "--port", str(free_port()), "--work-dir", str(tmp_path))
    )
    assert "command line --bind: key 'ip': cannot listen on 192.0.2.1:" in line


def test_unusable_work_dir(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    line = one_line_error(run("--work-dir", str(f / "sub"), "--port", str(free_port())))
    assert re.search(
        r"command line --work-dir: key 'work_dir': cannot create .*: Not a directory", line
    )
    line = one_line_error(run("--work-dir", str(f), "--port", str(free_port())))
    assert "key 'work_dir': " in line and "is not a directory" in line
    conf = tmp_path / "w.toml"
    conf.write_text('work_dir = "/proc/constdb-cannot-be-here"\n')
    line = one_line_error(run(str(conf), "--port", str(free_port())))
    assert line.startswith(f"constdb-server: {conf}: key 'work_dir': cannot create")


def test_unwritable_log_file(tmp_path):
    line = one_line_error(
        run("--log", str(tmp_path / "no" / "such" / "x.log"), "--work-dir", str(tmp_path))
    )
    assert "command line --log: key 'log': cannot open" in line


def test_startup_is_quick_to_refuse():
    t0 = time.monotonic()
    one_line_error(run("--port", "0"))
    assert time.monotonic() - t0 < 10
