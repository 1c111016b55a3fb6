"""Geohash arithmetic of Redis's geo commands, written for ConstDB from the
behaviour of redis 7.0 (geo.c, geohash.c, geohash_helper.c): a position is a
sorted set member whose score is a 52-bit interleaving of 26 bits of longitude
(-180..180) and 26 of latitude (-85.05112878..85.05112878, the Web Mercator
range); a search scans the score ranges of the cell holding the centre and its
eight neighbours at a step chosen from the radius, then keeps the points within
the shape by haversine distance on a sphere of radius 6372797.560856 m. Every
step does the same double operations in the same order as Redis, so scores,
coordinates and distances agree to the bit."""

from libc.math cimport M_PI, asin, cos, sin, sqrt
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdio cimport snprintf

cdef double LON_MIN = -180.0
cdef double LON_MAX = 180.0
cdef double LAT_MIN = -85.05112878
cdef double LAT_MAX = 85.05112878
cdef double EARTH_R = 6372797.560856
cdef double MERCATOR_MAX = 20037726.37
cdef double D_R = M_PI / 180.0


cdef inline double _rad(double a) noexcept:
    return a * D_R


cdef inline double _deg(double a) noexcept:
    return a / D_R


cdef inline uint64_t _spread(uint64_t x) noexcept:
    # the 32 low bits of x to the even bit positions
    x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL
    x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0FULL
    x = (x | (x << 2)) & 0x3333333333333333ULL
    x = (x | (x << 1)) & 0x5555555555555555ULL
    return x


cdef inline uint64_t _squeeze(uint64_t x) noexcept:
    # the even bit positions of x to the 32 low bits
    x = x & 0x5555555555555555ULL
    x = (x | (x >> 1)) & 0x3333333333333333ULL
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0FULL
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FFULL
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFFULL
    x = (x | (x >> 16)) & 0x00000000FFFFFFFFULL
    return x


cdef bint _encode(double lon_min, double lon_max, double lat_min, double lat_max,
                  double lon, double lat, int step, GeoBits* h) noexcept:
    """The cell of (lon, lat) at step bits per coordinate: latitude on the
    even bits, longitude on the odd ones."""
    cdef double lat_off, lon_off
    h.bits = 0
    h.step = step
    if lon > LON_MAX or lon < LON_MIN or lat > LAT_MAX or lat < LAT_MIN:
        return False
    if lat < lat_min or lat > lat_max or lon < lon_min or lon > lon_max:
        return False
    lat_off = (lat - lat_min) / (lat_max - lat_min)
    lon_off = (lon - lon_min) / (lon_max - lon_min)
    lat_off *= <double>(1ULL << step)
    lon_off *= <double>(1ULL << step)
    h.bits = _spread(<uint32_t>lat_off) | (_spread(<uint32_t>lon_off) << 1)
    return True


cdef void _cell(GeoBits h, double* lon_lo, double* lon_hi, double* lat_lo,
                double* lat_hi) noexcept:
    """The bounds of cell h (in the geo range)."""
    cdef uint32_t ilat = <uint32_t>_squeeze(h.bits)
    cdef uint32_t ilon = <uint32_t>_squeeze(h.bits >> 1)
    cdef double lat_scale = LAT_MAX - LAT_MIN, lon_scale = LON_MAX - LON_MIN
    cdef double div = <double>(1ULL << h.step)
    cdef uint32_t ilat1 = ilat + 1, ilon1 = ilon + 1     # (wrap as Redis's do)
    lat_lo[0] = LAT_MIN + (ilat * 1.0 / div) * lat_scale
    lat_hi[0] = LAT_MIN + (ilat1 * 1.0 / div) * lat_scale
    lon_lo[0] = LON_MIN + (ilon * 1.0 / div) * lon_scale
    lon_hi[0] = LON_MIN + (ilon1 * 1.0 / div) * lon_scale


cdef double geo_score(double lon, double lat) noexcept:
    """GEOADD's score of a valid position: its 52-bit cell as a double."""
    cdef GeoBits h
    _encode(LON_MIN, LON_MAX, LAT_MIN, LAT_MAX, lon, lat, GEO_STEP_MAX, &h)
    return <double>h.bits


cdef bint geo_lonlat_ok(double lon, double lat) noexcept:
    return not (lon < LON_MIN or lon > LON_MAX or lat < LAT_MIN or lat > LAT_MAX)


cdef inline uint64_t _score_bits(double score) noexcept:
    # Redis's (uint64_t)score as x86-64 computes it (cvttsd2si, whose
    # out-of-range result is 2^63): a score that is not a geohash (negative,
    # past 2^64, infinite) decodes to the same clamped corner as in Redis
    cdef double y
    if score < 9223372036854775808.0:
        if score > -9223372036854775808.0:
            return <uint64_t><int64_t>score
        return 0x8000000000000000ULL
    y = score - 9223372036854775808.0
    if y < 9223372036854775808.0:
        return (<uint64_t><int64_t>y) ^ 0x8000000000000000ULL
    return 0


cdef void geo_decode(double score, double* lon, double* lat) noexcept:
    """The centre of a score's cell, clamped to the geo range."""
    cdef GeoBits h
    cdef double x0, x1, y0, y1
    h.bits = _score_bits(score)
    h.step = GEO_STEP_MAX
    _cell(h, &x0, &x1, &y0, &y1)
    lon[0] = (x0 + x1) / 2
    if lon[0] > LON_MAX:
        lon[0] = LON_MAX
    if lon[0] < LON_MIN:
        lon[0] = LON_MIN
    lat[0] = (y0 + y1) / 2
    if lat[0] > LAT_MAX:
        lat[0] = LAT_MAX
    if lat[0] < LAT_MIN:
        lat[0] = LAT_MIN


cdef double geo_distance(double lon1, double lat1, double lon2, double lat2) noexcept:
    """Haversine distance in meters."""
    cdef double lat1r = _rad(lat1), lon1r = _rad(lon1), lat2r = _rad(lat2), lon2r = _rad(lon2)
    cdef double u = sin((lat2r - lat1r) / 2), v = sin((lon2r - lon1r) / 2)
    return 2.0 * EARTH_R * asin(sqrt(u * u + cos(lat1r) * cos(lat2r) * v * v))


cdef bint geo_in_shape(GeoShape* s, double lon, double lat, double* dist) noexcept:
    """Is the point within the shape? dist: its distance from the centre (m)."""
    cdef double lon_d, lat_d
    if s.type == SHAPE_RADIUS:
        dist[0] = geo_distance(s.lon, s.lat, lon, lat)
        return dist[0] <= s.radius * s.conversion
    lon_d = geo_distance(lon, lat, s.lon, lat)
    lat_d = geo_distance(lon, lat, lon, s.lat)
    if lon_d > s.width * s.conversion / 2 or lat_d > s.height * s.conversion / 2:
        return False
    dist[0] = geo_distance(s.lon, s.lat, lon, lat)
    return True


cdef int _steps(double range_m, double lat) noexcept:
    cdef int step = 1
    if range_m == 0:
        return 26
    while range_m < MERCATOR_MAX:
        range_m *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    if step < 1:
        step = 1
    if step > 26:
        step = 26
    return step


cdef inline uint64_t _move(uint64_t bits, int step, int d, bint x_axis) noexcept:
    # one cell east/west (x_axis: the odd bits) or north/south, wrapping
    cdef uint64_t keep_mask = 0x5555555555555555ULL if x_axis else 0xAAAAAAAAAAAAAAAAULL
    cdef uint64_t own_mask = 0xAAAAAAAAAAAAAAAAULL if x_axis else 0x5555555555555555ULL
    cdef uint64_t v = bits & own_mask, keep = bits & keep_mask
    cdef uint64_t zz = keep_mask >> (64 - step * 2)
    if d > 0:
        v = v + (zz + 1)
    else:
        v = v | zz
        v = v - (zz + 1)
    v &= own_mask >> (64 - step * 2)
    return v | keep


cdef void _neighbours(GeoBits h, GeoBits* n) noexcept:
    """n[0] = h, then north, south, east, west, north-east, north-west,
    south-east, south-west (Redis's scan order)."""
    cdef int i
    cdef int dx[9]
    cdef int dy[9]
    dx[:] = [0, 0, 0, 1, -1, 1, -1, 1, -1]
    dy[:] = [0, 1, -1, 0, 0, 1, 1, -1, -1]
    for i in range(9):
        n[i].step = h.step
        n[i].bits = h.bits
        if dx[i]:
            n[i].bits = _move(n[i].bits, h.step, dx[i], True)
        if dy[i]:
            n[i].bits = _move(n[i].bits, h.step, dy[i], False)


cdef int geo_boxes(GeoShape* s, GeoBits* out) noexcept:
    """geohashCalculateAreasByShapeWGS84: the nine cells to scan (out[0..8],
    a cell of step 0 is skipped)."""
    cdef double height, width, lat_delta, dtop, dbot, min_lon, max_lon, min_lat, max_lat
    cdef double radius_m, x0, x1, y0, y1, ax0, ax1, ay0, ay1
    cdef int steps
    cdef bint decrease = False
    cdef GeoBits h
    if s.type == SHAPE_RADIUS:
        height = s.conversion * s.radius
        width = height
    else:
        height = s.conversion * (s.height / 2)
        width = s.conversion * (s.width / 2)
    lat_delta = _deg(height / EARTH_R)
    dtop = _deg(width / EARTH_R / cos(_rad(s.lat + lat_delta)))
    dbot = _deg(width / EARTH_R / cos(_rad(s.lat - lat_delta)))
    if s.lat < 0:
        min_lon = s.lon - dbot
        max_lon = s.lon + dbot
    else:
        min_lon = s.lon - dtop
        max_lon = s.lon + dtop
    min_lat = s.lat - lat_delta
    max_lat = s.lat + lat_delta
    if s.type == SHAPE_RADIUS:
        radius_m = s.radius
    else:
        radius_m = sqrt((s.width / 2) * (s.width / 2) + (s.height / 2) * (s.height / 2))
    radius_m *= s.conversion
    steps = _steps(radius_m, s.lat)
    _encode(LON_MIN, LON_MAX, LAT_MIN, LAT_MAX, s.lon, s.lat, steps, &h)
    _neighbours(h, out)
    _cell(out[1], &x0, &x1, &y0, &y1)
    if y1 < max_lat:
        decrease = True
    _cell(out[2], &x0, &x1, &y0, &y1)
    if y0 > min_lat:
        decrease = True
    _cell(out[3], &x0, &x1, &y0, &y1)
    if x1 < max_lon:
        decrease = True
    _cell(out[4], &x0, &x1, &y0, &y1)
    if x0 > min_lon:
        decrease = True
    if steps > 1 and decrease:
        steps -= 1
        _encode(LON_MIN, LON_MAX, LAT_MIN, LAT_MAX, s.lon, s.lat, steps, &h)
        _neighbours(h, out)
    if steps >= 2:
        _cell(h, &ax0, &ax1, &ay0, &ay1)
        if ay0 < min_lat:
            out[2].step = out[8].step = out[7].step = 0
            out[2].bits = out[8].bits = out[7].bits = 0
        if ay1 > max_lat:
            out[1].step = out[5].step = out[6].step = 0
            out[1].bits = out[5].bits = out[6].bits = 0
        if ax0 < min_lon:
            out[4].step = out[8].step = out[6].step = 0
            out[4].bits = out[8].bits = out[6].bits = 0
        if ax1 > max_lon:
            out[3].step = out[7].step = out[5].step = 0
            out[3].bits = out[7].bits = out[5].bits = 0
    return 9


cdef void geo_box_scores(GeoBits h, double* lo, double* hi) noexcept:
    """The score range [lo, hi) of the points in cell h."""
    cdef int shift = 52 - h.step * 2
    lo[0] = <double>(h.bits << shift)
    hi[0] = <double>((h.bits + 1) << shift)


cdef int geo_hash11(double score, char* out) noexcept:
    """GEOHASH: the standard 11-character geohash of the point (its cell
    re-encoded over latitude -90..90; the 11th character is always 0)."""
    cdef const char* alphabet = b"0123456789bcdefghjkmnpqrstuvwxyz"
    cdef double lon, lat
    cdef GeoBits h
    cdef int i, idx
    geo_decode(score, &lon, &lat)
    _encode(-180.0, 180.0, -90.0, 90.0, lon, lat, 26, &h)
    for i in range(11):
        if i == 10:
            idx = 0
        else:
            idx = (h.bits >> (52 - ((i + 1) * 5))) & 0x1F
        out[i] = alphabet[idx]
    return 11


cdef Py_ssize_t fmt_human(char* buf, double v) noexcept:
    """Redis's "human" long double format (GEOPOS, WITHCOORD): 17 decimals,
    trailing zeros and point dropped, -0 as 0. buf holds 400 bytes."""
    cdef Py_ssize_t n = snprintf(buf, 400, "%.17f", v), i
    cdef bint dot = False
    for i in range(n):
        if buf[i] == b'.':
            dot = True
            break
    if dot:
        while buf[n - 1] == b'0':
            n -= 1
        if buf[n - 1] == b'.':
            n -= 1
    if n == 2 and buf[0] == b'-' and buf[1] == b'0':
        buf[0] = b'0'
        n = 1
    buf[n] = 0
    return n


def score(double lon, double lat):
    """GEOADD's score of (lon, lat) (for tests and tools)."""
    return geo_score(lon, lat)


def decode(double score):
    """The (lon, lat) a score decodes to (for tests and tools)."""
    cdef double lon, lat
    geo_decode(score, &lon, &lat)
    return lon, lat
