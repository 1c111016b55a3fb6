"""constdb-server's configuration and command line: constdb.toml, flags, bad
input (one line on stderr, exit status 2), daemon mode, the kept node id,
signals and the start log line."""

from __future__ import annotations

import ctypes
import os
import re
import resource
import signal
import socket
import subprocess
import time

import pytest
import redis
from support.nodes import HOST, ConstDB, free_port, server_cmd, wait_for
from support.resp import Conn

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
    "node_id_2_64": ("node_id = 18446744073709551616\n", r"key 'node_id': expected an integer in 0\.\.9223372036854775807, got 18446744073709551616"),
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


# ---- issue 9: config ranges, protected configs, file names, RLIMIT_NOFILE, node_id file ------


def _err(key: str, reason: str) -> bytes:
    return f"-ERR CONFIG SET failed (possibly related to argument '{key}') - {reason}\r\n".encode()


def _get(c: Conn, name: str) -> bytes:
    return c.call("CONFIG", "GET", name)


def _bulk(v: str) -> bytes:
    return f"${len(v)}\r\n{v}\r\n".encode()


def _fd_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no Max open files line")


def test_maxclients_config_set_range_and_nothing_stored_on_failure(node):
    """Finding 10: CONFIG SET maxclients 4294967295 answered an internal error
    and still stored the value (and every later CONFIG SET failed the same
    way). One range check; nothing stored when a check or the apply fails."""
    n = node(name="maxc").start()
    with Conn(n.port) as c:
        before = _get(c, "maxclients")
        assert before.endswith(_bulk("10000"))
        # the top of the range: more descriptors than the OS allows, so
        # refused with Redis's text, and nothing stored
        rep = c.call("CONFIG", "SET", "maxclients", "4294967295")
        assert re.fullmatch(
            rb"-ERR CONFIG SET failed \(possibly related to argument 'maxclients'\) - The operating "
            rb"system is not able to handle the specified number of clients, try with \d+\r\n",
            rep,
        ), rep
        assert _get(c, "maxclients") == before
        # a failed pair stores neither value
        assert c.call("CONFIG", "SET", "hz", "20", "maxclients", "4294967295").startswith(
            b"-ERR CONFIG SET failed (possibly related to argument 'maxclients')"
        )
        assert _get(c, "hz").endswith(_bulk("10"))
        assert c.call("CONFIG", "SET", "hz", "20") == b"+OK\r\n"
        rng = "argument must be between 1 and 4294967295 inclusive"
        for bad, reason in (
            ("0", rng),
            ("-1", rng),
            ("4294967296", rng),
            ("9223372036854775807", rng),
            ("9223372036854775808", "argument couldn't be parsed into an integer"),
            ("18446744073709551616", "argument couldn't be parsed into an integer"),
            ("-0", "argument couldn't be parsed into an integer"),
            ("05", "argument couldn't be parsed into an integer"),
        ):
            assert c.call("CONFIG", "SET", "maxclients", bad) == _err("maxclients", reason), bad
            assert _get(c, "maxclients") == before
        # 64-bit sizes, as Redis answers them
        big = "argument must be between 1048576 and 9223372036854775807 inclusive"
        for bad, reason in (
            ("18446744073709551616", big),
            ("99999999999999999999999gb", big),
            ("-1", "argument must be a memory value"),
        ):
            assert c.call("CONFIG", "SET", "proto-max-bulk-len", bad) == _err(
                "proto-max-bulk-len", reason
            )
        # the bottom of the range works: one client, the next is refused
        assert c.call("CONFIG", "SET", "maxclients", "1") == b"+OK\r\n"
        with Conn(n.port) as extra:
            assert extra.read() == b"-ERR max number of clients reached\r\n"
        assert c.call("CONFIG", "SET", "maxclients", "10000") == b"+OK\r\n"
    assert n.stop() == 0
    assert "Traceback" not in n.log()


def test_maxclients_past_the_fd_limit_in_the_file_is_lowered_at_start(node, tmp_path):
    """Finding 10, the file: maxclients = 4294967295 gave a traceback at start.
    Now it is lowered to what the descriptor limit allows, as Redis does."""
    conf = tmp_path / "m.toml"
    conf.write_text("maxclients = 4294967295\n")
    n = node(name="maxfile", config=str(conf)).start()
    limit = _fd_limit(n.pid)
    with Conn(n.port) as c:
        assert _get(c, "maxclients").endswith(_bulk(str(limit - 32)))
    assert n.stop() == 0
    log = n.log()
    assert "Traceback" not in log
    assert (
        "You requested maxclients of 4294967295 requiring at least 4294967327 max file descriptors."
        in log
    )
    assert f"maxclients has been reduced to {limit - 32} to compensate for low ulimit." in log


MAXCLIENTS_FILES = {
    "maxclients_zero": ("maxclients = 0\n", "0"),
    "maxclients_negative": ("maxclients = -1\n", "-1"),
    "maxclients_past_max": ("maxclients = 4294967296\n", "4294967296"),
    "maxclients_2_63": ("maxclients = 9223372036854775807\n", "9223372036854775807"),
    "maxclients_string_2_64": ('maxclients = "18446744073709551616"\n', "'18446744073709551616'"),
}


@pytest.mark.parametrize("name", sorted(MAXCLIENTS_FILES))
def test_maxclients_range_in_the_file(tmp_path, name):
    content, got = MAXCLIENTS_FILES[name]
    conf = tmp_path / "c.toml"
    conf.write_text(content)
    line = one_line_error(run(str(conf), "--work-dir", str(tmp_path / "wd")))
    assert line == (
        f"constdb-server: {conf}: key 'maxclients': expected an integer in 1..4294967295, got {got}"
    )


def test_protected_configs_refused_by_default(node):
    """Finding 11: dbfilename (and dir) are protected configs, as in Redis 7.0."""
    n = node(name="prot").start()
    with Conn(n.port) as c:
        assert _get(c, "enable-protected-configs").endswith(_bulk("no"))
        for name, value in (("dbfilename", "node_id"), ("dbfilename", "x.cdb"), ("dir", "/tmp")):
            assert c.call("CONFIG", "SET", name, value) == _err(name, "can't set protected config")
        assert c.call("CONFIG", "SET", "enable-protected-configs", "yes") == _err(
            "enable-protected-configs", "can't set immutable config"
        )
        assert _get(c, "dbfilename").endswith(_bulk("dump.cdb"))


def test_dbfilename_cannot_name_the_nodes_own_files(node, tmp_path):
    """Finding 11: CONFIG SET dbfilename node_id then SAVE overwrote the node id
    file; a name with a NUL byte was accepted, then SIGTERM crashed and left
    the lock file. With protected configs enabled the names are checked."""
    wd = tmp_path / "own"
    n = node("--log", str(wd / "x.log"), name="own")
    conf = wd / "p.toml"
    conf.write_text('enable_protected_configs = "yes"\n')
    n.config = str(conf)
    n.start()
    node_id_text = (wd / "node_id").read_text()
    with Conn(n.port) as c:
        path_err = "dbfilename can't be a path, just a filename"
        for bad, reason in (
            ("a/b", path_err),
            ("a\\b", path_err),
            ("../x.cdb", path_err),
            ("/tmp/x.cdb", path_err),
            ("a\x00b", "dbfilename can't contain a NUL byte"),
            ("", "dbfilename can't be empty"),
            (".", "dbfilename can't be . or .."),
            ("..", "dbfilename can't be . or .."),
            ("node_id", "dbfilename can't be the node id file"),
            ("constdb.running", "dbfilename can't be the lock file"),
            ("constdb.pid", "dbfilename can't be the pid file"),
            ("x.log", "dbfilename can't be the log file"),
            ("p.toml", "dbfilename can't be the config file"),
        ):
            assert c.call("CONFIG", "SET", "dbfilename", bad) == _err("dbfilename", reason), bad
            assert _get(c, "dbfilename").endswith(_bulk("dump.cdb"))
        assert c.call("CONFIG", "SET", "dbfilename", "other.cdb") == b"+OK\r\n"
        assert c.call("SET", "k", "v") == b"+OK\r\n"
        assert c.call("SAVE") == b"+OK\r\n"
    assert (wd / "other.cdb").exists()
    assert (wd / "node_id").read_text() == node_id_text
    assert n.stop() == 0
    assert not (wd / "constdb.running").exists()
    assert "Traceback" not in n.log()


def test_protected_configs_local_allows_loopback_clients(node, tmp_path):
    """enable_protected_configs = "local": a client on 127.0.0.1 may set
    dbfilename; dir stays fixed at start (immutable here)."""
    conf = tmp_path / "l.toml"
    conf.write_text('enable_protected_configs = "local"\n')
    n = node(name="local", config=str(conf)).start()
    with Conn(n.port) as c:
        assert _get(c, "enable-protected-configs").endswith(_bulk("local"))
        assert c.call("CONFIG", "SET", "dbfilename", "x.cdb") == b"+OK\r\n"
        assert _get(c, "dbfilename").endswith(_bulk("x.cdb"))
        assert c.call("CONFIG", "SET", "dir", "/tmp") == _err("dir", "can't set immutable config")
    assert n.stop() == 0


OWN_FILES = {
    "dbfilename_node_id": ('dbfilename = "node_id"\n', "dbfilename", "the node id file", "'node_id'"),
    "dbfilename_lock": ('dbfilename = "constdb.running"\n', "dbfilename", "the lock file", "'constdb.running'"),
    "dbfilename_pidfile": ('dbfilename = "constdb.pid"\n', "dbfilename", "the pid file", "'constdb.pid'"),
    "dbfilename_config": ('dbfilename = "c.toml"\n', "dbfilename", "the config file", "'c.toml'"),
    "pidfile_node_id": ('pidfile = "node_id"\n', "pidfile", "the node id file", "'node_id'"),
    "pidfile_dbfilename": ('pidfile = "dump.cdb"\n', "pidfile", "the snapshot file", "'dump.cdb'"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OWN_FILES))
def test_file_names_in_the_file_cannot_be_the_nodes_own(tmp_path, name):
    content, key, what, got = OWN_FILES[name]
    conf = tmp_path / "c.toml"
    conf.write_text(content)
    line = one_line_error(run(str(conf), "--work-dir", str(tmp_path)))
    assert line == (
        f"constdb-server: {conf}: key '{key}': expected a file other than {what}, got {got}"
    )


BAD_NAMES = {
    "dbfilename_nul": ('dbfilename = "a\\u0000b"\n', "dbfilename", "a file name, not a path", "'a\\x00b'"),
    "dbfilename_slash": ('dbfilename = "a/b"\n', "dbfilename", "a file name, not a path", "'a/b'"),
    "dbfilename_backslash": ('dbfilename = "a\\\\b"\n', "dbfilename", "a file name, not a path", "'a\\\\b'"),
    "pidfile_nul": ('pidfile = "p\\u0000"\n', "pidfile", "a non-empty path without NUL bytes", "'p\\x00'"),
    "log_nul": ('log = "l\\u0000"\n', "log", "a path without NUL bytes", "'l\\x00'"),
    "work_dir_nul": ('work_dir = "w\\u0000"\n', "work_dir", "a non-empty path without NUL bytes", "'w\\x00'"),
    "protected_value": ('enable_protected_configs = "maybe"\n', "enable_protected_configs", "one of no, yes, local", "'maybe'"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_bad_file_names_in_the_file(tmp_path, name):
    content, key, expected, got = BAD_NAMES[name]
    conf = tmp_path / "c.toml"
    conf.write_text(content)
    line = one_line_error(run(str(conf), "--work-dir", str(tmp_path / "wd")))
    assert line == f"constdb-server: {conf}: key '{key}': expected {expected}, got {got}"


def _drop_fd_limit(soft: int, hard: int):
    """preexec_fn: a low RLIMIT_NOFILE the server cannot raise past hard
    (CAP_SYS_RESOURCE, if this process has it, is dropped for the child)."""

    def pre() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(
                24, 24, 0, 0, 0
            )  # PR_CAPBSET_DROP, CAP_SYS_RESOURCE
        except OSError:
            pass
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return pre


def _start_limited(n: ConstDB, soft: int, hard: int) -> ConstDB:
    with open(n.log_path, "ab") as logf:
        n.proc = subprocess.Popen(
            n.argv(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=n.work_dir,
            preexec_fn=_drop_fd_limit(soft, hard),
        )
    wait_for(lambda: n.alive() and n.ping(), 20, what="constdb with a low fd limit")
    return n


def test_fd_limit_lowers_maxclients_and_extra_clients_get_the_error(node):
    """Finding 13: with ulimit -n 256 and maxclients 10000, 159 of 400
    connections hung with no reply and nothing was logged. Now maxclients is
    lowered to the limit minus 32 at start (logged, as Redis does) and every
    client past it gets Redis's error."""
    n = _start_limited(node(name="fds"), 256, 256)
    log = n.log()
    assert "You requested maxclients of 10000 requiring at least 10032 max file descriptors." in log
    assert "Server can't set maximum open files to 10032 because of OS error: " in log
    assert (
        "Current maximum open files is 256. maxclients has been reduced to 224 to compensate "
        "for low ulimit. If you need higher maxclients increase 'ulimit -n'." in log
    )
    with Conn(n.port) as c:
        assert _get(c, "maxclients").endswith(_bulk("224"))
        assert c.call("CONFIG", "SET", "maxclients", "225") == _err(
            "maxclients",
            "The operating system is not able to handle the specified number of clients, try with 224",
        )
        assert _get(c, "maxclients").endswith(_bulk("224"))
    socks = []
    try:
        for _ in range(400):
            s = socket.create_connection((HOST, n.port), timeout=10)
            s.sendall(b"PING\r\n")
            socks.append(s)
        answers = []
        for s in socks:
            buf = b""
            while not buf.endswith(b"\r\n"):
                d = s.recv(100)
                if not d:
                    break
                buf += d
            answers.append(buf)
    finally:
        for s in socks:
            s.close()
    assert answers.count(b"+PONG\r\n") == 224
    assert answers.count(b"-ERR max number of clients reached\r\n") == 400 - 224

    def pong() -> bool:
        with Conn(n.port) as c:
            return c.call("PING") == b"+PONG\r\n"

    wait_for(pong, 10, what="a free client slot once the others closed")
    assert n.stop() == 0
    assert "Traceback" not in n.log()


def test_fd_limit_is_raised_toward_maxclients(node, tmp_path):
    """Finding 13: a soft limit below maxclients + 32 is raised (up to the hard
    limit) and the start says so, as Redis does."""
    conf = tmp_path / "f.toml"
    conf.write_text("maxclients = 1000\n")
    n = _start_limited(node(name="raise", config=str(conf)), 256, 4096)
    assert _fd_limit(n.pid) == 1032
    assert (
        "Increased maximum number of open files to 1032 (it was originally set to 256)." in n.log()
    )
    with Conn(n.port) as c:
        assert _get(c, "maxclients").endswith(_bulk("1000"))
        # CONFIG SET raises it too
        assert c.call("CONFIG", "SET", "maxclients", "2000") == b"+OK\r\n"
    assert _fd_limit(n.pid) == 2032
    assert n.stop() == 0


@pytest.mark.parametrize(
    "content",
    [
        "-5\n",
        "18446744073709551616\n",
        "9223372036854775808\n",
        "0\n",
        "garbage\n",
        "\n",
        "12 34\n",
    ],
    ids=["negative", "2_64", "2_63", "zero", "garbage", "empty", "two"],
)
def test_bad_node_id_file_is_a_one_line_error(tmp_path, content):
    """Finding 14: a node_id file holding -5 or 2^64 crashed the start with
    struct.error and left the lock; garbage with no snapshot silently took a
    new identity. Now: one line, exit status 2, no lock, the file untouched."""
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "node_id").write_text(content)
    line = one_line_error(run("--work-dir", str(wd), "--port", str(free_port())))
    assert line == (
        f"constdb-server: {wd / 'node_id'}: expected a node id in 1..9223372036854775807, "
        f"got {content.strip()!r} (fix the file, or remove it to give this node a new identity)"
    )
    assert not (wd / "constdb.running").exists()
    assert (wd / "node_id").read_text() == content
    # the edges that are node ids start
    for good in ("1", str(2**63 - 1)):
        (wd / "node_id").write_text(good + "\n")
        n = ConstDB(str(wd))
        try:
            n.start()
            with Conn(n.port) as c:
                assert f"node_id:{good}\r\n".encode() in c.call("INFO", "server")
        finally:
            assert n.stop() == 0
        assert not (wd / "constdb.running").exists()
