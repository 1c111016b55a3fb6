"""Production pieces with the real tools: sharding through nutcracker (two
groups across two regions, deploy/nutcracker's generated configs) and the
metrics prometheus-redis-exporter scrapes from a two-node group."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from support.nodes import (
    HOST,
    free_port,
    make_node,
    meet,
    proxied_pair,
    wait_converged,
    wait_for,
    wait_linked,
)
from support.resp import Conn, encode
from support.tools import Exporter, Nutcracker, gen_nutcracker, metric

pytestmark = pytest.mark.timeout(240)


def proxy_client(p: Nutcracker) -> redis.Redis:
    # what redis-py needs behind nutcracker: RESP2 (no HELLO) and no
    # CLIENT SETINFO on connect (driver_info=None); nutcracker refuses both
    return redis.Redis(host=HOST, port=p.port, protocol=2, driver_info=None, socket_timeout=10)


@pytest.fixture
def sharded(node, tmp_path):
    """Two groups (g1, g2) of two nodes, one node of each in regions r1 and
    r2, and one nutcracker per region from gen_nutcracker.py."""
    nodes = {
        (g, r): make_node(node, f"{g}{r}", save="") for g in ("g1", "g2") for r in ("r1", "r2")
    }
    for g in ("g1", "g2"):
        meet(nodes[g, "r2"], nodes[g, "r1"])
        wait_linked([nodes[g, "r1"], nodes[g, "r2"]])
    listen = {r: free_port() for r in ("r1", "r2")}
    layout = tmp_path / "layout.toml"
    lines = []
    for r in ("r1", "r2"):
        lines.append(f"[regions.{r}]")
        lines += [f'{g} = "{HOST}:{nodes[g, r].port}"' for g in ("g1", "g2")]
    lines.append("[listen_by_region]")
    lines += [f'{r} = "{HOST}:{listen[r]}"' for r in ("r1", "r2")]
    layout.write_text("\n".join(lines) + "\n")
    confs = gen_nutcracker(str(layout), str(tmp_path / "nc"))
    proxies = {r: Nutcracker(confs[r], listen[r], str(tmp_path / "nc")) for r in ("r1", "r2")}
    try:
        for p in proxies.values():
            p.start()
        yield nodes, proxies
    finally:
        for p in proxies.values():
            p.stop()


def test_generated_configs_map_keys_by_group_name(tmp_path):
    """Every region's file has the same pool options and names its servers
    after their groups (the key -> group map does not depend on addresses)."""
    layout = tmp_path / "l.toml"
    layout.write_text(
        '[regions.eu]\ng1 = "10.0.0.1:9001"\ng2 = "10.0.0.2:9001"\n'
        '[regions.us]\ng2 = "10.1.0.2:7000"\ng1 = "10.1.0.1:7000"\n'
    )
    confs = gen_nutcracker(str(layout), str(tmp_path / "out"))
    texts = {r: open(p).read() for r, p in confs.items()}
    assert "   - 10.0.0.1:9001:1 g1\n   - 10.0.0.2:9001:1 g2\n" in texts["eu"]
    assert "   - 10.1.0.1:7000:1 g1\n   - 10.1.0.2:7000:1 g2\n" in texts["us"]

    def options(t: str) -> list[str]:
        return [x for x in t.splitlines() if x.startswith("  ") and not x.startswith("   -")]

    assert options(texts["eu"]) == options(texts["us"])
    assert "  distribution: ketama" in texts["eu"] and "  auto_eject_hosts: false" in texts["eu"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[regions.eu]\ng1 = "a:1"\n[regions.us]\ng2 = "b:1"\n')
    with pytest.raises(subprocess.CalledProcessError) as e:
        gen_nutcracker(str(bad), str(tmp_path / "out2"))
    assert "has groups ['g2'], another region has ['g1']" in e.value.stderr


def test_sharded_regions_through_nutcracker(sharded):
    nodes, proxies = sharded
    p1, p2 = proxy_client(proxies["r1"]), proxy_client(proxies["r2"])
    keys = [f"user:{i}" for i in range(200)]
    pipe = p1.pipeline(transaction=False)
    for i, k in enumerate(keys):
        pipe.set(k, f"v{i}")
    pipe.execute()
    p1.incr("ctr", 5)
    p1.lpush("list", "a", "b")
    p1.sadd("set", "x", "y")
    p1.hset("hash", "f", "1")
    p1.zadd("zset", {"m": 2.5})
    p1.expire("user:0", 1000)

    # keys spread over both groups, and every key is in exactly one group
    in_g1 = {k for k in keys if nodes["g1", "r1"].client().exists(k)}
    in_g2 = {k for k in keys if nodes["g2", "r1"].client().exists(k)}
    assert in_g1 and in_g2 and not in_g1 & in_g2 and in_g1 | in_g2 == set(keys)
    assert 40 <= len(in_g1) <= 160, len(in_g1)

    # region 2's proxy reads what region 1's wrote, once replication caught up
    for g in ("g1", "g2"):
        wait_converged([nodes[g, "r1"], nodes[g, "r2"]])
    assert p2.mget(keys) == [f"v{i}".encode() for i in range(200)]
    assert p2.get("ctr") == b"5" and p2.lrange("list", 0, -1) == [b"b", b"a"]
    assert p2.smembers("set") == {b"x", b"y"} and p2.hget("hash", "f") == b"1"
    assert p2.zscore("zset", "m") == 2.5 and 990 < p2.ttl("user:0") <= 1000
    # the same group in both regions: region 2's g1 node holds region 1's g1 keys
    assert {k for k in keys if nodes["g1", "r2"].client().exists(k)} == in_g1
    # concurrent increments in both regions add up
    p2.incr("ctr", 2)
    p1.incr("ctr", 3)
    wait_for(lambda: p1.get("ctr") == p2.get("ctr") == b"10", 15, what="counter converged")


def test_failed_group_member(sharded):
    """auto_eject_hosts false: while g1's member in r1 is down, r1's proxy
    answers an error for g1's keys (never sends them to g2), serves g2's;
    r2 serves both; after the member restarts, r1 sees what r2 wrote."""
    nodes, proxies = sharded
    p1, p2 = proxy_client(proxies["r1"]), proxy_client(proxies["r2"])
    keys = [f"k{i}" for i in range(60)]
    for k in keys:
        p1.set(k, "old")
    g1_keys = [k for k in keys if nodes["g1", "r1"].client().exists(k)]
    g2_keys = [k for k in keys if k not in g1_keys]
    assert g1_keys and g2_keys
    wait_converged([nodes["g1", "r1"], nodes["g1", "r2"]])

    down = nodes["g1", "r1"]
    down.stop()
    for k in g1_keys[:5]:
        with pytest.raises(redis.ResponseError, match="Connection refused"):
            p1.get(k)
        with pytest.raises(redis.ResponseError, match="Connection refused"):
            p1.set(k, "lost")
    assert [p1.get(k) for k in g2_keys] == [b"old"] * len(g2_keys)
    # nothing of g1 went to g2
    assert not any(nodes["g2", "r1"].client().exists(k) for k in g1_keys)
    for k in g1_keys:
        p2.set(k, "new")
    assert [p2.get(k) for k in g1_keys] == [b"new"] * len(g1_keys)

    down.start()
    wait_linked([nodes["g1", "r1"], nodes["g1", "r2"]])
    wait_for(
        lambda: [p1.get(k) for k in g1_keys] == [b"new"] * len(g1_keys),
        20,
        what="region 1 serving g1 again with region 2's writes",
    )


# what nutcracker 0.5.0 does with each command: forwards it (by the first
# key), or closes the connection (README "Sharding with nutcracker")
REFUSED = [
    ("MULTI",),
    ("WATCH", "a"),
    ("SUBSCRIBE", "ch"),
    ("PUBLISH", "ch", "x"),
    ("HELLO", "3"),
    ("CLIENT", "SETINFO", "LIB-NAME", "x"),
    ("CLIENT", "SETNAME", "x"),
    ("SELECT", "0"),
    ("INFO",),
    ("CONFIG", "GET", "port"),
    ("KEYS", "*"),
    ("SCAN", "0"),
    ("DBSIZE",),
    ("RANDOMKEY",),
    ("RENAME", "a", "b"),
    ("FLUSHALL",),
    ("WAIT", "1", "0"),
    ("MEET", "127.0.0.1:1"),
    ("NODES",),
    ("MVSET", "m", "v"),
    ("MVGET", "m"),
    ("DESC", "a"),
    ("CRDT.DIGEST",),
    ("SINTERCARD", "1", "a"),
    ("TIME",),
    ("ECHO", "x"),
]
FORWARDED = [
    (("SET", "a", "1"), True),
    (("GET", "a"), b"1"),
    (("MSET", "a", "1", "b", "2", "c", "3"), True),
    (("MGET", "a", "b", "c"), [b"1", b"2", b"3"]),
    (("EXISTS", "a", "b", "zz"), 2),
    (("TOUCH", "a", "b"), 2),
    (("INCRBY", "n", "4"), 4),
    (("EXPIRE", "a", "100"), True),
    (("GETEX", "b", "PERSIST"), b"2"),
    (("SADD", "{t}s1", "x", "y"), 2),
    (("SADD", "{t}s2", "y"), 1),
    (("SINTER", "{t}s1", "{t}s2"), {b"y"}),
    (("SUNIONSTORE", "{t}d", "{t}s1", "{t}s2"), 2),
    (("DEL", "a", "b", "c", "{t}d"), 4),
    (("PING",), True),
]


def test_which_commands_pass_nutcracker(sharded):
    _, proxies = sharded
    p1 = proxy_client(proxies["r1"])
    for cmd, want in FORWARDED:
        assert p1.execute_command(*cmd) == want, cmd
    for cmd in REFUSED:
        # nutcracker closes the connection, no reply
        with socket.create_connection((HOST, proxies["r1"].port), timeout=10) as s:
            s.sendall(encode(*cmd))
            assert s.recv(100) == b"", cmd
    # a default redis-py 8 client (HELLO, CLIENT SETINFO on connect) cannot connect
    c = redis.Redis(host=HOST, port=proxies["r1"].port, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        c.get("a")


# ---------------------------------------------------------------- exporter --


def test_latencystats_like_redis(constdb_server, redis_server):
    """INFO latencystats: Redis 7's line per command called since RESETSTAT,
    percentiles 50, 99 and 99.9 in microseconds, ordered, and reset by
    CONFIG RESETSTAT."""
    seen = []
    for port in (constdb_server.port, redis_server.port):
        with Conn(port) as w:
            w.call("CONFIG", "RESETSTAT")
            for i in range(200):
                w.call("SET", f"k{i}", "v")
            w.call("GET", "k1")
            rows = info_rows(w.call("INFO", "latencystats"))
            m = re.fullmatch(
                r"p50=([\d.]+),p99=([\d.]+),p99\.9=([\d.]+)", rows["latency_percentiles_usec_set"]
            )
            assert m, rows
            p50, p99, p999 = map(float, m.groups())
            assert 0 < p50 <= p99 <= p999 < 1_000_000
            assert "latency_percentiles_usec_get" in rows
            seen.append(set(rows))
            w.call("CONFIG", "RESETSTAT")
            assert "latency_percentiles_usec_set" not in info_rows(w.call("INFO", "latencystats"))
    assert seen[0] == seen[1]


def info_rows(reply) -> dict[str, str]:
    """A raw INFO reply (a bulk string) as field -> value."""
    lines = reply.decode().split("\r\n")[1:]
    return dict(x.split(":", 1) for x in lines if ":" in x and not x.startswith("#"))


def test_exporter_standard_and_group_metrics(node, tmp_path):
    # the default save schedule: a stop saves a final snapshot, so a restart
    # resumes by partial sync
    a, b, pa, pb = proxied_pair(node, peer_timeout=60)
    ca, cb = a.client(), b.client()
    for i in range(100):
        ca.set(f"k{i}", "v")
    for i in range(3):
        ca.set(f"t{i}", "v", ex=1000)
    for i in range(10):
        ca.get(f"k{i}")
    for i in range(4):
        ca.get(f"missing{i}")
    ca.incr("ctr")
    ca.delete("k99")
    ca.save()
    wait_converged([a, b])
    exp = Exporter(a.port, str(tmp_path)).start()
    try:
        info = ca.info("all")

        def acked() -> dict:
            # the peer acknowledges every record a moment after convergence
            s = exp.scrape()
            off = metric(
                s,
                "redis_connected_slave_offset_bytes",
                slave_ip=HOST,
                slave_port=str(pb.port),
                slave_state="online",
            )
            return s if off == s["redis_master_repl_offset"] else {}

        m = wait_for(acked, 10, what="the peer's offset at the node's")
        assert m["redis_up"] == 1
        assert 0 <= m["redis_uptime_in_seconds"] <= info["uptime_in_seconds"] + 5
        assert m["redis_connected_clients"] >= 2  # this client and the exporter
        # used_memory is ConstDB's own count (startup share, data set, backlog,
        # buffers), not the RSS: INFO's figure as the exporter saw it
        assert 1 << 20 < m["redis_memory_used_bytes"] < m["redis_memory_used_rss_bytes"]
        assert m["redis_memory_used_rss_bytes"] > 10_000_000
        assert m["redis_commands_processed_total"] >= 120
        assert metric(m, "redis_commands_total", cmd="set") == 103
        assert metric(m, "redis_commands_total", cmd="get") == 14
        assert metric(m, "redis_commands_duration_seconds_total", cmd="set") > 0
        # per-command latency percentiles (INFO latencystats) with their count
        assert metric(m, "redis_latency_percentiles_usec_count", cmd="set") == 103
        p50 = metric(m, "redis_latency_percentiles_usec", cmd="set", quantile="50")
        p99 = metric(m, "redis_latency_percentiles_usec", cmd="set", quantile="99")
        assert 0 < p50 <= p99 < 1_000_000
        assert metric(m, "redis_db_keys", db="db0") == 103  # k0..k98, t0..t2, ctr
        assert metric(m, "redis_db_keys_expiring", db="db0") == 3
        assert m["redis_keyspace_hits_total"] >= 10
        assert m["redis_keyspace_misses_total"] >= 4
        assert m["redis_expired_keys_total"] == 0
        assert m["redis_evicted_keys_total"] == 0
        assert m["redis_rdb_last_save_timestamp_seconds"] == info["rdb_last_save_time"]
        assert m["redis_rdb_last_bgsave_status"] == 1
        assert m["redis_rdb_changes_since_last_save"] == 0
        # replication: the peer as a replica line, the group's own gauges
        assert m["redis_connected_slaves"] == 1
        off = metric(
            m,
            "redis_connected_slave_offset_bytes",
            slave_ip=HOST,
            slave_port=str(pb.port),
            slave_state="online",
        )
        assert off == m["redis_master_repl_offset"] > 100
        assert m["redis_cluster_peers_known"] == 1
        assert m["redis_cluster_peers_connected"] == 1
        assert m["redis_cluster_peers_down"] == 0
        assert m["redis_cluster_full_syncs"] >= 1
        assert m["redis_cluster_peer_lag_records_max"] == 0
        assert m["redis_cluster_backlog_bytes"] > 1000
        assert m["redis_cluster_backlog_records"] > 100
        assert m["redis_cluster_pending_tombstones"] >= 1  # k99's
        assert m["redis_cluster_stable_point_age_ms"] >= 0

        # a silent link (frozen proxies): lag in records and seconds grows
        pa.freeze()
        pb.freeze()
        before = m["redis_master_repl_offset"]

        def lagging() -> bool:
            ca.set("during", "x")
            s = exp.scrape()
            lag = metric(
                s,
                "redis_connected_slave_lag_seconds",
                slave_ip=HOST,
                slave_port=str(pb.port),
                slave_state="online",
            )
            return (
                s["redis_cluster_peer_lag_records_max"] >= 5
                and s["redis_cluster_peer_lag_ms_max"] >= 300
                and lag is not None
                and lag >= 0.3
                and s["redis_master_repl_offset"] >= before + 5
            )

        wait_for(lagging, 30, 0.1, what="lag seen by the exporter")
        pa.heal()
        pb.heal()
        wait_for(
            lambda: exp.scrape()["redis_cluster_peer_lag_records_max"] == 0,
            20,
            what="lag back to 0",
        )

        # the peer down: no replica line, counted as down
        b.stop()
        wait_for(lambda: exp.scrape()["redis_cluster_peers_down"] == 1, 20, what="peer down")
        s = exp.scrape()
        assert s["redis_connected_slaves"] == 0 and s["redis_cluster_peers_connected"] == 0
        # back: linked again by a partial sync, no full one (b's heartbeats
        # had moved a's VV of b past b's last record: its clock covers them)
        full, partial = s["redis_cluster_full_syncs"], s["redis_cluster_partial_syncs"]
        ca.set("while-down", "y")
        b.start()
        wait_linked([a, b])
        s = exp.scrape()
        assert s["redis_cluster_peers_connected"] == 1
        assert s["redis_cluster_partial_syncs"] > partial
        assert s["redis_cluster_full_syncs"] == full
        assert cb.info("replication")["cluster_full_syncs"] == 0
        wait_converged([a, b])
        assert cb.get("during") == b"x" and cb.get("while-down") == b"y"

        # an expiry, counted by whichever node notices it first (the other
        # applies its DEL)
        ca.set("gone", "v", px=50)
        wait_for(lambda: ca.pttl("gone") == -2 and cb.pttl("gone") == -2, 10, what="expired")
        expired = ca.info("stats")["expired_keys"]
        assert exp.scrape()["redis_expired_keys_total"] == expired
        # (both may, when each notices before the other's DEL arrives)
        assert 1 <= expired + cb.info("stats")["expired_keys"] <= 2
    finally:
        exp.stop()
        pa.close()
        pb.close()
