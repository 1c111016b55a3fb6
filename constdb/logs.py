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
