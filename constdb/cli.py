"""constdb-server: arguments, config overrides, logging, daemon mode, signals."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sys
from typing import Optional

from constdb import __version__
from constdb.config import ConfigError, load
from constdb.logs import reopen_log, setup_logging


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line, as for a bad config file, and the same exit status
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = _Parser(
        prog="constdb-server",
        description="ConstDB: an active-active CRDT cache that speaks the Redis protocol.",
    )
    p.add_argument("config", nargs="?", help="path to constdb.toml (defaults apply without one)")
    p.add_argument("--port", type=int, help="TCP port (default 9001)")
    p.add_argument("--bind", dest="ip", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--node-id", type=int, help="this node's id (default: random, kept in work_dir)")
    p.add_argument("--node-alias", help="a readable name for this node")
    p.add_argument("--work-dir", help="directory for node_id, snapshots, pid and log files")
    p.add_argument("--log-level", help="OFF ERROR WARN INFO DEBUG TRACE")
    p.add_argument("--log", help="log file (default: standard error)")
    p.add_argument("--requirepass", help="password clients must AUTH with")
    p.add_argument("--cluster-secret", help="shared secret of the group's links")
    p.add_argument(
        "--daemon",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="detach and write a pid file in work_dir (--no-daemon: stay in the foreground)",
    )
    p.add_argument(
        "--gen-secret",
        action="store_true",
        help="print a random cluster_secret (256 bits, hex) and exit",
    )
    p.add_argument(
        "--test-config",
        action="store_true",
        help="check the config (file and flags) as a start would, print OK and exit 0,"
        " or print the one-line error and exit 1; binds no port, takes no lock",
    )
    p.add_argument("--version", action="version", version=f"constdb-server {__version__}")
    return p.parse_args(argv)


def fail(msg: str) -> int:
    print(f"constdb-server: {msg}", file=sys.stderr)
    return 2


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.gen_secret:
        import secrets

        print(secrets.token_hex(32))
        return 0
    overrides = {
        k: v
        for k, v in {
            "port": args.port,
            "ip": args.ip,
            "node_id": args.node_id,
            "node_alias": args.node_alias,
            "work_dir": args.work_dir,
            "log_level": args.log_level,
            "log": args.log,
            "requirepass": args.requirepass,
            "cluster_secret": args.cluster_secret,
            "daemon": args.daemon,
        }.items()
        if v is not None
    }
    if args.test_config:
        return test_config(args.config, overrides)
    try:
        cfg = load(args.config, overrides)
    except ConfigError as e:
        return fail(str(e))
    err = check_work_dir(cfg.work_dir)
    if err:
        return fail(f"{cfg.where('work_dir')}: key 'work_dir': {err}")
    log_path = cfg.log
    if cfg.daemon and not log_path:
        log_path = os.path.join(cfg.work_dir, "constdb.log")
    pidfile = os.path.join(cfg.work_dir, cfg.pidfile)
    if cfg.daemon:
        try:
            existed = os.path.exists(pidfile)
            with open(pidfile, "a"):
                pass
            if not existed:
                os.unlink(pidfile)
        except OSError as e:
            return fail(
                f"{cfg.where('pidfile')}: key 'pidfile': cannot write {pidfile!r}: {e.strerror}"
            )
    try:
        setup_logging(log_path, cfg.log_level)
    except OSError as e:
        return fail(f"{cfg.where('log')}: key 'log': cannot open {log_path!r}: {e.strerror}")

    import uvloop

    from constdb.server import App, bind, read_boot

    try:
        sock = bind(cfg.ip, cfg.port, cfg.tcp_backlog) if cfg.port else None
    except OSError as e:
        reason = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        key = "ip" if e.errno == errno.EADDRNOTAVAIL else "port"
        return fail(
            f"{cfg.where(key)}: key '{key}': cannot listen on {cfg.ip}:{cfg.port}: {reason}"
        )
    from constdb import tls

    tls_sock = None
    try:
        contexts = tls.Contexts(cfg)  # certificates and keys checked now
        if cfg.tls_port:
            tls_sock = bind(cfg.ip, cfg.tls_port, cfg.tcp_backlog)
    except (ConfigError, OSError) as e:
        if sock is not None:
            sock.close()
        if isinstance(e, ConfigError):
            return fail(str(e))
        reason = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        return fail(
            f"{cfg.where('tls_port')}: key 'tls_port': cannot listen on"
            f" {cfg.ip}:{cfg.tls_port}: {reason}"
        )
    from constdb.persistence import StartupError

    try:
        boot = read_boot(cfg)  # the lock, the snapshot, the node id
        app = App(cfg, boot.node_id, boot.origin, sock)
        app.tls, app.tls_sock = contexts, tls_sock
        app.load(boot)  # the snapshot's data and members; the lock taken
    except StartupError as e:
        for s in (sock, tls_sock):
            if s is not None:
                s.close()
        return fail(str(e))
    except (ConfigError, OSError, ValueError) as e:
        for s in (sock, tls_sock):
            if s is not None:
                s.close()
        return fail(f"{cfg.where('work_dir')}: {e}")
    if cfg.daemon:
        try:
            daemonize(pidfile)
        except OSError as e:
            app.persistence.release_lock()
            return fail(
                f"{cfg.where('pidfile')}: key 'pidfile': cannot write {pidfile!r}: {e.strerror}"
            )

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.request_shutdown, signal.Signals(sig).name)
    loop.add_signal_handler(signal.SIGHUP, reopen_log)  # logrotate's postrotate
    try:
        loop.run_until_complete(app.serve())
    except Exception as e:
        if app.serving:
            raise
        # the start failed before the node took a request: nothing to lose,
        # so the lock goes (a next start is not a crash recovery)
        app.persistence.release_lock()
        return fail(f"cannot start: {e}")
    finally:
        loop.close()
        if cfg.daemon:
            try:
                os.unlink(os.path.join(cfg.work_dir, cfg.pidfile))
            except OSError:
                pass
    return app.exit_code


def test_config(path: Optional[str], overrides: dict) -> int:
    """--test-config: what a start checks before it binds the port and takes
    work_dir's lock (both held by the node when it runs): every key's name,
    type and range, work_dir usable, the log file and pid file writable, the
    TLS certificates, keys and CA loadable. OK on standard output and 0, or the
    one-line error on standard error and 1."""
    try:
        cfg = load(path, overrides)
        problem = _writable_dir(cfg.work_dir)
        if problem:
            raise ConfigError(f"{cfg.where('work_dir')}: key 'work_dir': {problem}")
        log_path = cfg.log or (os.path.join(cfg.work_dir, "constdb.log") if cfg.daemon else "")
        for key, f in (("log", log_path), ("pidfile", os.path.join(cfg.work_dir, cfg.pidfile))):
            # the pid file's directory is work_dir, created at start
            problem = (
                _writable_file(f, key == "pidfile") if f and (key == "log" or cfg.daemon) else None
            )
            if problem:
                raise ConfigError(f"{cfg.where(key)}: key '{key}': {problem}")
        from constdb import tls

        tls.Contexts(cfg)
    except ConfigError as e:
        print(f"constdb-server: {e}", file=sys.stderr)
        return 1
    print("OK")
    return 0


def _writable_dir(path: str) -> Optional[str]:
    """Why path cannot be work_dir (without creating it), else None."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            return f"{path!r} is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path!r} is not a writable directory"
        return None
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path!r}: {parent!r} is not a writable directory"
    return None


def _writable_file(path: str, missing_ok: bool) -> Optional[str]:
    if os.path.isdir(path):
        return f"cannot open {path!r}: it is a directory"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else f"cannot open {path!r}: not writable"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return None if missing_ok else f"cannot create {path!r}: no directory {parent!r}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path!r}: {parent!r} is not writable"
    return None


def check_work_dir(path: str) -> Optional[str]:
    """Create work_dir if needed and prove it writable by writing in it; the
    reason it cannot be used, else None."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{path!r} is not a directory"
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return f"cannot create {path!r}: {e.strerror}"
    probe = os.path.join(path, f".constdb-probe-{os.getpid()}")
    try:
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        return f"{path!r} is not a writable directory: {e.strerror}"
    return None


def daemonize(pidfile: str) -> None:
    """Classic double fork; the pid file names the daemon."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.umask(0o022)
    with open(os.devnull, "rb") as dn:
        os.dup2(dn.fileno(), 0)
    with open(os.devnull, "ab") as dn:
        os.dup2(dn.fileno(), 1)
        os.dup2(dn.fileno(), 2)
    tmp = f"{pidfile}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, pidfile)  # whole or absent: a reader never sees it half written


if __name__ == "__main__":
    raise SystemExit(main())
