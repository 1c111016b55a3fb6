#!/usr/bin/env python3
"""Write one nutcracker (twemproxy) config per region for ConstDB groups
sharded by key.

The layout file (TOML) names every group's member in every region:

    listen = "127.0.0.1:22121"     # where each region's proxy listens
    [regions.eu]
    g1 = "10.0.1.1:9001"
    g2 = "10.0.1.2:9001"
    [regions.us]
    g1 = "10.1.1.1:9001"
    g2 = "10.1.1.2:9001"

    python3 deploy/nutcracker/gen_nutcracker.py layout.toml --out /etc/nutcracker

writes nutcracker-eu.yml and nutcracker-us.yml. Every region's proxy lists
that region's member of every group, each server named after its group
(`host:port:1 g1`): with ketama, nutcracker places a named server on its
continuum by the name, so a key maps to the same group in every region
whatever the addresses. The hash, distribution and failure settings are
the same in every file. docs/deploy.md ("Sharding with nutcracker") explains
the choices.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

# The same in every region. auto_eject_hosts stays false: ejecting a group's
# member would move its keys to another group (whose nodes never hear of
# them again once the member is back); a region whose member is down answers
# errors for that group's keys instead, and clients use another region.
POOL = {
    "hash": "murmur",
    "distribution": "ketama",
    # keys that share the part in braces share a group ({user42}:cart,
    # {user42}:seen): multi-key commands on them are right
    "hash_tag": '"{}"',
    "redis": "true",
    "auto_eject_hosts": "false",
    "server_retry_timeout": 2000,
    "server_failure_limit": 1,
    "timeout": 2000,
    "preconnect": "true",
    "server_connections": 1,
}
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def render(pool: str, listen: str, servers: list[tuple[str, str]], extra: dict) -> str:
    opts = dict(POOL)
    opts.update(extra)
    lines = [f"{pool}:", f"  listen: {listen}"]
    lines += [f"  {k}: {v}" for k, v in opts.items()]
    lines.append("  servers:")
    lines += [f"   - {addr}:1 {name}" for name, addr in servers]
    return "\n".join(lines) + "\n"


def build(layout: dict) -> dict[str, str]:
    """region -> config text; ValueError on an inconsistent layout."""
    regions = layout.get("regions") or {}
    if not regions:
        raise ValueError("no [regions.NAME] table")
    listen = layout.get("listen", "127.0.0.1:22121")
    pool = layout.get("pool", "constdb")
    extra = layout.get("options", {})
    groups = None
    out = {}
    for region, members in regions.items():
        names = sorted(members)
        if groups is None:
            groups = names
        elif names != groups:
            raise ValueError(f"region {region!r} has groups {names}, another region has {groups}")
        for g in names:
            if not NAME.match(g):
                raise ValueError(f"group name {g!r}: use letters, digits, '_', '-', '.'")
            if members[g].count(":") < 1:
                raise ValueError(f"region {region!r} group {g!r}: {members[g]!r} is not host:port")
        listen_r = layout.get("listen_by_region", {}).get(region, listen)
        out[region] = render(pool, listen_r, [(g, members[g]) for g in names], extra)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("layout", help="the layout file (TOML)")
    p.add_argument("--out", default=".", help="directory for nutcracker-REGION.yml")
    a = p.parse_args(argv)
    with open(a.layout, "rb") as f:
        layout = tomllib.load(f)
    try:
        configs = build(layout)
    except ValueError as e:
        print(f"{a.layout}: {e}", file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    for region, text in configs.items():
        path = os.path.join(a.out, f"nutcracker-{region}.yml")
        with open(path, "w") as f:
            f.write(text)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
