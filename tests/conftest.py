from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import support.profiles  # noqa: E402,F401  (loads the Hypothesis profile before collection)
from support.nodes import ConstDB, RedisServer  # noqa: E402
from support.resp import Conn  # noqa: E402


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


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def raw_pair(request, r, rr, constdb_server, redis_server):
    """(constdb, redis) raw connections in RESP2 and in RESP3, both servers
    flushed (r and rr flush them); see support.differential."""
    a = Conn(constdb_server.port, request.param)
    b = Conn(redis_server.port, request.param)
    yield a, b
    a.close()
    b.close()


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
