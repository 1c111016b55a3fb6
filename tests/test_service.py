"""Running as a service: `--test-config`, SIGHUP reopening the log file
(logrotate), systemd's readiness notification (Type=notify), and the files
under deploy/ (the unit, logrotate) naming options that exist."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

from support.nodes import ConstDB, free_port, server_cmd, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        server_cmd() + list(args), capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_test_config_ok_and_errors(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(f'port = {free_port()}\nwork_dir = "{tmp_path / "w"}"\nlog_level = "DEBUG"\n')
    r = run("--test-config", str(good), cwd=str(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (0, "OK\n", "")
    assert not (tmp_path / "w").exists()  # checked, not created

    bad = tmp_path / "bad.toml"
    bad.write_text("port = 70000\n")
    r = run("--test-config", str(bad), cwd=str(tmp_path))
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("constdb-server: ") and "'port'" in r.stderr

    # a flag is checked as a start checks it
    r = run("--test-config", str(good), "--log-level", "LOUD", cwd=str(tmp_path))
    assert r.returncode == 1 and "log_level" in r.stderr and len(r.stderr.splitlines()) == 1

    # files the start would open: a missing TLS certificate, a log in no directory
    tls = tmp_path / "tls.toml"
    tls.write_text(
        f'tls_port = {free_port()}\ntls_cert_file = "{tmp_path / "no.crt"}"\n'
        f'tls_key_file = "{tmp_path / "no.key"}"\ntls_ca_cert_file = "{tmp_path / "ca.crt"}"\n'
    )
    r = run("--test-config", str(tls), cwd=str(tmp_path))
    assert r.returncode == 1 and "tls_" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run(
        "--test-config", str(good), "--log", str(tmp_path / "nodir" / "x.log"), cwd=str(tmp_path)
    )
    assert r.returncode == 1 and "key 'log'" in r.stderr

    # a port in use by a running node is fine: --test-config binds nothing
    n = ConstDB(str(tmp_path / "running")).start()
    try:
        r = run("--test-config", "--port", str(n.port), cwd=str(tmp_path))
        assert (r.returncode, r.stdout) == (0, "OK\n")
    finally:
        n.stop()


def test_sighup_reopens_the_log_file(tmp_path):
    log = tmp_path / "constdb.log"
    n = ConstDB(str(tmp_path / "n"), args=("--log", str(log))).start()
    try:
        wait_for(lambda: "started" in log.read_text(), 10, what="start line in the log")
        rotated = tmp_path / "constdb.log.1"
        os.rename(log, rotated)
        os.kill(n.pid, signal.SIGHUP)
        wait_for(lambda: log.exists() and "reopened" in log.read_text(), 10, what="new log file")
        n.client().save()  # logs a line
        wait_for(lambda: "DB saved on disk" in log.read_text(), 10, what="a line in the new file")
        assert "DB saved on disk" not in rotated.read_text()
        assert "started" in rotated.read_text() and "started" not in log.read_text()
        assert n.alive() and n.client().ping()
    finally:
        assert n.stop() == 0


def test_systemd_notify_ready_and_stopping(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(30)
    n = ConstDB(str(tmp_path / "n"))
    os.environ["NOTIFY_SOCKET"] = path
    try:
        n.start(wait=False)
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        msg = s.recv(4096).decode()
        assert "READY=1" in msg.splitlines() and f"MAINPID={n.pid}" in msg.splitlines()
        assert n.ping()  # ready means serving
        os.kill(n.pid, signal.SIGTERM)
        assert "STOPPING=1" in s.recv(4096).decode().splitlines()
        assert n.stop() == 0
    finally:
        n.stop()
        s.close()


def test_deploy_files_name_real_options():
    unit = open(os.path.join(REPO, "deploy", "systemd", "constdb@.service")).read()
    assert "Type=notify" in unit and "Restart=on-failure" in unit and "LimitNOFILE=" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    assert "--no-daemon" in exec_start
    exec_pre = re.search(r"^ExecStartPre=(.*)$", unit, re.M).group(1).split()
    assert "--test-config" in exec_pre
    rot = open(os.path.join(REPO, "deploy", "logrotate", "constdb")).read()
    assert "--signal=SIGHUP" in rot
