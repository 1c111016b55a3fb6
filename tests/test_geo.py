"""Geo commands on the sorted-set type: replies compared byte for byte with
redis-server 7.0 in RESP2 and RESP3 (scores, coordinates, distances and
geohashes to the bit; the poles, the antimeridian, huge radii, COUNT ANY,
errors), random searches over random points, and the geohash arithmetic
checked in process against an independent decoding."""

from __future__ import annotations

import random

import pytest
from support.differential import run_all


def z(*parts):
    return [p if isinstance(p, bytes) else str(p).encode() for p in parts]


def c(line: str) -> list:
    return line.encode().split()


PLACES = [
    (13.361389, 38.115556, "Palermo"),
    (15.087269, 37.502669, "Catania"),
    (12.758489, 38.788135, "edge1"),
    (17.241510, 38.788135, "edge2"),
    (-122.27652, 37.805186, "oakland"),
    (-122.2469854, 37.8104049, "lakeshore"),
    (-122.2513321, 37.8065192, "broadway"),
    (179.9999, 0.5, "east_am"),
    (-179.9999, 0.5, "west_am"),
    (180, -10, "am180"),
    (-180, 10, "am-180"),
    (0, 85.05112878, "north_lim"),
    (0, -85.05112878, "south_lim"),
    (45, 85.05, "near_n"),
    (-135, -85.0, "near_s"),
    (0, 0, "origin"),
    (-0.0001, -0.0001, "sw_origin"),
]


def geoadd(key: str, places) -> list:
    args = ["GEOADD", key]
    for lon, lat, name in places:
        args += [repr(lon), repr(lat), name]
    return z(*args)


SETUP = [
    geoadd("g", PLACES),
    c(
        "ZADD odd -1 neg 1e20 big 1.5 frac inf pinf -inf ninf 9007199254740993 past53"
        " 18446744073709551616 two64 4503599627370496 bit52"
    ),
    c("SET str v"),
]

TARGETED = [
    c("ZRANGE g 0 -1 WITHSCORES"),
    z("GEOPOS", "g", *[p[2] for p in PLACES], "nope"),
    z("GEOHASH", "g", *[p[2] for p in PLACES], "nope"),
    c("GEOPOS odd neg big frac pinf ninf past53 two64 bit52"),
    c("GEOHASH odd neg big frac pinf ninf past53 two64 bit52"),
    c("GEODIST odd neg big"),
    c("GEOPOS nokey a b"),
    c("GEOHASH nokey a"),
    c("GEOPOS str a"),
    c("GEOHASH str a"),
    c("GEODIST g Palermo Catania"),
    c("GEODIST g Palermo Catania km"),
    c("GEODIST g Palermo Catania MI"),
    c("GEODIST g Palermo Catania ft"),
    c("GEODIST g Palermo Catania m"),
    c("GEODIST g Palermo Catania yd"),
    c("GEODIST g Palermo Catania km x"),
    c("GEODIST g Palermo nope"),
    c("GEODIST g Palermo Palermo"),
    c("GEODIST g east_am west_am"),
    c("GEODIST g am180 am-180"),
    c("GEODIST g north_lim south_lim km"),
    c("GEODIST g near_n north_lim"),
    c("GEODIST nokey a b"),
    c("GEODIST str a b"),
    # GEOADD options and errors
    c("GEOADD g2 10 20 a 30 40 b"),
    c("GEOADD g2 NX 11 21 a 31 41 c"),
    c("GEOADD g2 XX 11 21 a 31 41 d"),
    c("GEOADD g2 XX CH 12 22 a 12 22 b"),
    c("GEOADD g2 CH 12 22 a 13 23 e"),
    c("GEOADD g2 ch nx 1 1 a"),
    c("ZRANGE g2 0 -1 WITHSCORES"),
    c("GEOADD g2 NX XX 1 1 a"),
    c("GEOADD g2 GT 1 1 a"),
    c("GEOADD g2 1 1 a 2"),
    c("GEOADD g2 CH NX XX"),
    c("GEOADD g2 NX CH CH"),
    c("GEOADD g2 200 10 x"),
    c("GEOADD g2 -180.0001 10 x"),
    c("GEOADD g2 10 85.06 x"),
    c("GEOADD g2 10 -90 x"),
    c("GEOADD g2 1 2 ok 10 90 x"),
    c("GEOADD g2 x 1 a"),
    c("GEOADD g2 1 nan a"),
    c("GEOADD g2 inf 1 a"),
    c("GEOADD g2 1 2"),
    c("GEOADD str 1 2 a"),
    c("EXISTS ok"),
    c("ZCARD g2"),
    # searches
    c("GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 200 km ASC"),
    c("GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 200 km DESC WITHDIST WITHCOORD WITHHASH"),
    c("GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 200 km"),
    c("GEOSEARCH g FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHCOORD WITHDIST"),
    c("GEOSEARCH g FROMMEMBER Palermo BYRADIUS 300 km ASC COUNT 2 WITHDIST"),
    c("GEOSEARCH g FROMMEMBER Palermo BYRADIUS 300 km COUNT 1 ANY"),
    c("GEOSEARCH g FROMMEMBER Palermo BYRADIUS 300 km COUNT 2 ANY DESC"),
    c("GEOSEARCH g FROMMEMBER Palermo BYRADIUS 30000 km COUNT 3 ANY"),
    c("GEOSEARCH g FROMLONLAT 0 0 BYRADIUS 40000 km ASC WITHDIST"),
    c("GEOSEARCH g FROMLONLAT 0 0 BYRADIUS 10000000000.0 km"),
    c("GEOSEARCH g FROMLONLAT 0 0 BYRADIUS 0 m WITHDIST"),
    c("GEOSEARCH g FROMLONLAT 0 0 BYBOX 0 0 m WITHDIST"),
    c("GEOSEARCH g FROMLONLAT 180 0.5 BYRADIUS 50 km ASC WITHDIST"),
    c("GEOSEARCH g FROMLONLAT -180 0 BYBOX 500 500 km ASC WITHDIST"),
    c("GEOSEARCH g FROMMEMBER east_am BYRADIUS 100 km ASC WITHDIST"),
    c("GEOSEARCH g FROMMEMBER north_lim BYRADIUS 2000 km ASC WITHDIST"),
    c("GEOSEARCH g FROMMEMBER south_lim BYBOX 5000 3000 km DESC WITHDIST WITHCOORD"),
    c("GEOSEARCH g FROMLONLAT 0 85.05112878 BYRADIUS 5000 km ASC"),
    c("GEOSEARCH g FROMLONLAT -122.2612767 37.7936847 BYRADIUS 5 km WITHDIST ASC"),
    c("GEOSEARCH g FROMLONLAT -122.2612767 37.7936847 BYBOX 4 5 mi WITHDIST DESC"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 km ASC"),
    c("GEOSEARCH nokey FROMLONLAT 1 1 BYRADIUS 1 km"),
    c("GEOSEARCH nokey FROMMEMBER x BYRADIUS 1 km"),
    c("GEOSEARCH str FROMMEMBER x BYRADIUS 1 km"),
    c("GEOSEARCH g FROMMEMBER nope BYRADIUS 1 km"),
    c("GEOSEARCH g FROMLONLAT 200 1 BYRADIUS 1 km"),
    c("GEOSEARCH g FROMLONLAT x 1 BYRADIUS 1 km"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS -1 km"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS x km"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 yd"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYBOX -1 1 km"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYBOX 1 x km"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYBOX x y km"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYBOX 1 1 yd"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYBOX 1 1 km BYRADIUS 1 km"),
    c("GEOSEARCH g FROMLONLAT 1 1 FROMMEMBER Palermo BYRADIUS 1 km"),
    c("GEOSEARCH g FROMMEMBER Palermo FROMLONLAT 1 1 BYRADIUS 1 km"),
    c("GEOSEARCH g FROMMEMBER Palermo FROMMEMBER Catania BYRADIUS 100 km ASC"),
    c("geosearch g BYRADIUS 1 km ASC"),
    c("GeoSearch g FROMLONLAT 1 1 ASC WITHDIST"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 km ANY"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 km COUNT 0"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 km COUNT x"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 km COUNT"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 km STORE x"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1 km STOREDIST"),
    c("GEOSEARCH g FROMLONLAT 1 1 BYRADIUS 1"),
    c("GEOSEARCH g FROMLONLAT 1 BYRADIUS 1 km"),
    # infinite and enormous shapes, centres on the corners of the geo range
    c("GEOSEARCH g FROMLONLAT 0 0 BYRADIUS inf km ASC"),
    c("GEOSEARCH g FROMLONLAT 0 0 BYBOX inf 1 km ASC"),
    c("GEOSEARCH g FROMLONLAT 0 0 BYBOX 1 inf km ASC"),
    c("GEORADIUS g 0 0 1e308 m WITHDIST"),
    c("GEOSEARCH g FROMLONLAT 180 85.05112878 BYRADIUS 1000 km WITHDIST"),
    c("GEOSEARCH g FROMMEMBER near_n BYBOX 40000 40000 km WITHDIST DESC"),
    c("GEOSEARCH g FROMLONLAT -180 -85.05112878 BYRADIUS 20000 km WITHDIST ASC COUNT 2"),
    # the STORE forms
    c("GEOSEARCHSTORE d g FROMLONLAT 15 37 BYBOX 400 400 km ASC COUNT 3"),
    c("ZRANGE d 0 -1 WITHSCORES"),
    c("GEOSEARCHSTORE d g FROMLONLAT 15 37 BYBOX 400 400 km ASC COUNT 3 STOREDIST"),
    c("ZRANGE d 0 -1 WITHSCORES"),
    c("GEOSEARCHSTORE d g FROMLONLAT 15 37 BYRADIUS 1 m"),
    c("EXISTS d"),
    c("GEOSEARCHSTORE d g FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST"),
    c("GEOSEARCHSTORE d nokey FROMMEMBER x BYRADIUS 200 km"),
    c("GEOSEARCHSTORE str g FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST"),
    c("TYPE str"),
    c("ZRANGE str 0 -1 WITHSCORES"),
    c("SET str v"),
    c("GEORADIUS g 15 37 200 km WITHDIST WITHCOORD ASC"),
    c("GEORADIUS g 15 37 200 km COUNT 1"),
    c("GEORADIUS g 15 37 200 km COUNT 1 ANY WITHHASH"),
    c("GEORADIUS g 15 37 200 km STORE d2"),
    c("ZRANGE d2 0 -1 WITHSCORES"),
    c("GEORADIUS g 15 37 200 km STOREDIST d2 DESC"),
    c("ZRANGE d2 0 -1 WITHSCORES"),
    c("GEORADIUS g 15 37 200 km STORE d2 WITHDIST"),
    c("GEORADIUS g 15 37 200 km STORE"),
    c("GEORADIUS g 15 37 1 m STORE d2"),
    c("EXISTS d2"),
    c("GEORADIUS nokey 15 37 200 km STORE d2"),
    c("GEORADIUS nokey 15 37 200 km"),
    c("GEORADIUS str 15 37 200 km"),
    c("GEORADIUS g 15 37 200 km FROMLONLAT 1 1"),
    c("GEORADIUS g 200 37 200 km"),
    c("GEORADIUS g 15 37 -200 km"),
    c("GEORADIUS g 15 37 200 kilometers"),
    c("GEORADIUS_RO g 15 37 200 km WITHDIST ASC"),
    c("GEORADIUS_RO g 15 37 200 km STORE d2"),
    c("GEORADIUS_RO g 15 37 200 km STOREDIST d2"),
    c("GEORADIUSBYMEMBER g Palermo 200 km WITHDIST ASC"),
    c("GEORADIUSBYMEMBER g Palermo 200 km STOREDIST d3"),
    c("ZRANGE d3 0 -1 WITHSCORES"),
    c("GEORADIUSBYMEMBER g nope 200 km"),
    c("GEORADIUSBYMEMBER g Palermo x km"),
    c("GEORADIUSBYMEMBER nokey Palermo x km"),
    c("GEORADIUSBYMEMBER nokey Palermo 200 km STORE d3"),
    c("EXISTS d3"),
    c("GEORADIUSBYMEMBER nokey Palermo 200 km WITHDIST STORE d3"),
    c("GEORADIUSBYMEMBER_RO g Catania 100 mi WITHCOORD WITHHASH DESC"),
    c("GEORADIUSBYMEMBER_RO g Catania 100 mi STORE d3"),
    c("GEORADIUSBYMEMBER_RO str Catania 100 mi"),
]


def test_targeted(raw_pair):
    run_all(raw_pair, SETUP + TARGETED)


def _rand_point(rnd: random.Random) -> tuple[float, float]:
    kind = rnd.randrange(4)
    if kind == 0:  # near the antimeridian
        return rnd.choice([-1, 1]) * rnd.uniform(175, 180), rnd.uniform(-60, 60)
    if kind == 1:  # near the poles' limit
        return rnd.uniform(-180, 180), rnd.choice([-1, 1]) * rnd.uniform(75, 85.05112878)
    if kind == 2:  # a city's worth
        return rnd.uniform(2.2, 2.5), rnd.uniform(48.8, 48.9)
    return rnd.uniform(-180, 180), rnd.uniform(-85.05112878, 85.05112878)


@pytest.mark.parametrize("seed", range(3))
def test_random_searches(raw_pair, seed):
    """Random points (antimeridian, poles, a dense city, anywhere) and random
    searches around random centres with radii from meters to the whole
    earth. Distances are distinct, so every sort is unambiguous."""
    rnd = random.Random(seed)
    pts = [(*_rand_point(rnd), f"p{i}") for i in range(300)]
    cmds = [geoadd("r", pts[i : i + 100]) for i in range(0, 300, 100)]
    for _ in range(60):
        if rnd.random() < 0.5:
            lon, lat = _rand_point(rnd)
            frm = ["FROMLONLAT", repr(lon), repr(lat)]
        else:
            frm = ["FROMMEMBER", rnd.choice(pts)[2]]
        unit = rnd.choice(["m", "km", "mi", "ft"])
        scale = {"m": 1, "km": 1e-3, "mi": 1 / 1609.34, "ft": 1 / 0.3048}[unit]
        size = 10 ** rnd.uniform(2, 7.3) * scale
        if rnd.random() < 0.5:
            by = ["BYRADIUS", repr(size), unit]
        else:
            by = ["BYBOX", repr(size), repr(size * rnd.uniform(0.2, 3)), unit]
        opts = [rnd.choice(["ASC", "DESC"]), "WITHDIST", "WITHCOORD", "WITHHASH"]
        if rnd.random() < 0.3:
            opts += ["COUNT", str(rnd.randint(1, 20))]
        cmds.append(z("GEOSEARCH", "r", *frm, *by, *opts))
        cmds.append(z("GEOSEARCH", "r", *frm, *by))
        cmds.append(z("GEOSEARCHSTORE", "rd", "r", *frm, *by, "STOREDIST"))
        cmds.append(z("ZRANGE", "rd", 0, -1, "WITHSCORES"))
    names = [p[2] for p in pts[:40]]
    cmds.append(z("GEOPOS", "r", *names))
    cmds.append(z("GEOHASH", "r", *names))
    for a, b in zip(names, names[1:]):
        cmds.append(z("GEODIST", "r", a, b, rnd.choice(["m", "km", "mi", "ft"])))
    run_all(raw_pair, cmds)


def test_geohash_arithmetic_in_process():
    """geo.pyx's score of a point decodes (by plain de-interleaving here) to a
    cell that holds the point."""
    from constdb._core import geo

    rnd = random.Random(5)
    for _ in range(2000):
        lon, lat = rnd.uniform(-180, 180), rnd.uniform(-85.05112878, 85.05112878)
        bits = int(geo.score(lon, lat))
        ilat = sum(((bits >> (2 * i)) & 1) << i for i in range(26))
        ilon = sum(((bits >> (2 * i + 1)) & 1) << i for i in range(26))
        span_lat, span_lon = 170.10225756 / 2**26, 360 / 2**26
        assert -85.05112878 + ilat * span_lat <= lat + 1e-9
        assert lat - 1e-9 <= -85.05112878 + (ilat + 1) * span_lat
        assert -180 + ilon * span_lon <= lon + 1e-9 <= -180 + (ilon + 1) * span_lon + 2e-9
        dlon, dlat = geo.decode(float(bits))
        assert abs(dlon - lon) <= span_lon and abs(dlat - lat) <= span_lat
