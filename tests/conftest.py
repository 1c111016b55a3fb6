from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from procs import ConstDB, RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def constdb_server(tmp_path_factory):
    """One constdb-server for the session (tests flush it through `r`)."""
    srv = ConstDB(str(tmp_path_factory.mktemp("constdb"))).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server, the reference for differential tests."""
    srv = RedisServer(str(tmp_path_factory.mktemp("redis"))).start()
    yield srv
    srv.stop()


@pytest.fixture
def r(constdb_server):
    c = constdb_server.client()
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def rr(redis_server):
    c = redis_server.client()
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def node(tmp_path):
    """Factory of extra constdb-server processes, all stopped at the end."""
    started: list[ConstDB] = []

    def make(*args, name: str | None = None, **kw) -> ConstDB:
        d = tmp_path / (name or f"node{len(started)}")
        srv = ConstDB(str(d), args=args, **kw)
        started.append(srv)
        return srv

    yield make
    for s in started:
        s.stop()
