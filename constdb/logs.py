"""The node's logger ("constdb"): levels OFF ERROR WARN INFO DEBUG TRACE (the
original ConstDB's names), one line a record, to a file or standard error."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("constdb")

TRACE = 5
logging.addLevelName(TRACE, "TRACE")
LEVELS = {
    "OFF": logging.CRITICAL + 10,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": TRACE,
}


def set_log_level(level: str) -> None:
    log.setLevel(LEVELS[level.upper()])


def setup_logging(path: str, level: str) -> None:
    """Log to path (standard error if empty) at level; OSError if it cannot be opened."""
    handler: logging.Handler
    if path:
        handler = logging.FileHandler(path)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(process)d %(asctime)s.%(msecs)03d %(levelname)s %(message)s", "%d %b %Y %H:%M:%S"
        )
    )
    log.handlers[:] = [handler]
    log.propagate = False
    set_log_level(level)


def reopen_log() -> bool:
    """SIGHUP: close and reopen the log file (logrotate has renamed it), so new
    lines go to a new file at the configured path. False when logging to
    standard error or the file cannot be opened (then the old file is kept)."""
    reopened = False
    for h in log.handlers:
        if not isinstance(h, logging.FileHandler):
            continue
        h.acquire()
        try:
            try:
                stream = h._open()
            except OSError as e:
                log.error("cannot reopen the log file %r: %s", h.baseFilename, e.strerror)
                continue
            old, h.stream = h.stream, stream
            if old is not None:
                old.close()
            reopened = True
        finally:
            h.release()
    if reopened:
        log.info("log file reopened (SIGHUP)")
    return reopened
