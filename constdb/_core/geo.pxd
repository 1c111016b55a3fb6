# Redis's geohash arithmetic (52-bit scores on the sorted-set type): see geo.pyx.
from libc.stdint cimport uint64_t

cdef enum:
    GEO_STEP_MAX = 26
    SHAPE_RADIUS = 0
    SHAPE_BOX = 1


cdef struct GeoBits:
    uint64_t bits
    int step


cdef struct GeoShape:
    int type                    # SHAPE_RADIUS | SHAPE_BOX
    double lon
    double lat
    double conversion           # meters per unit
    double radius               # in units
    double width                # in units
    double height


cdef double geo_score(double lon, double lat) noexcept
cdef bint geo_lonlat_ok(double lon, double lat) noexcept
cdef void geo_decode(double score, double* lon, double* lat) noexcept
cdef double geo_distance(double lon1, double lat1, double lon2, double lat2) noexcept
cdef bint geo_in_shape(GeoShape* s, double lon, double lat, double* dist) noexcept
cdef int geo_boxes(GeoShape* s, GeoBits* out) noexcept
cdef void geo_box_scores(GeoBits h, double* lo, double* hi) noexcept
cdef int geo_hash11(double score, char* out) noexcept
cdef Py_ssize_t fmt_human(char* buf, double v) noexcept
