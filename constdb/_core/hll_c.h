/* HyperLogLog primitives on Redis's HLL string format (t_hll.pyx): hash, dense
   and sparse registers, histogram, estimator. Static: each module that cimports
   t_hll.pxd gets its own copy. */
#ifndef CONSTDB_HLL_C_H
#define CONSTDB_HLL_C_H
#include <stdint.h>
#include <string.h>
#include <math.h>

#define CH_REGS 16384
#define CH_HDR 16
#define CH_DENSE_BYTES 12288

static uint64_t ch_murmur64a(const unsigned char *data, long len, uint64_t seed) {
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ ((uint64_t)len * m);
    const unsigned char *end = data + (len - (len & 7));
    uint64_t k;
    while (data != end) {
        memcpy(&k, data, 8);   /* little endian hosts only (as the wheels we build) */
        k *= m; k ^= k >> r; k *= m;
        h ^= k; h *= m;
        data += 8;
    }
    switch (len & 7) {
    case 7: h ^= (uint64_t)data[6] << 48; /* fall through */
    case 6: h ^= (uint64_t)data[5] << 40; /* fall through */
    case 5: h ^= (uint64_t)data[4] << 32; /* fall through */
    case 4: h ^= (uint64_t)data[3] << 24; /* fall through */
    case 3: h ^= (uint64_t)data[2] << 16; /* fall through */
    case 2: h ^= (uint64_t)data[1] << 8;  /* fall through */
    case 1: h ^= (uint64_t)data[0]; h *= m;
    }
    h ^= h >> r; h *= m; h ^= h >> r;
    return h;
}

/* register index and run length (1..51) of an element */
static int ch_patlen(const unsigned char *ele, long n, long *reg) {
    uint64_t hash = ch_murmur64a(ele, n, 0xadc83b19ULL);
    int count = 1;
    *reg = (long)(hash & (CH_REGS - 1));
    hash >>= 14;
    hash |= (uint64_t)1 << 50;
    while ((hash & 1) == 0) { count++; hash >>= 1; }
    return count;
}

static inline unsigned ch_dget(const uint8_t *r, long i) {
    unsigned long byte = (unsigned long)i * 6 / 8, fb = ((unsigned long)i * 6) & 7;
    unsigned long b0 = r[byte], b1 = byte + 1 < CH_DENSE_BYTES ? r[byte + 1] : 0;
    return (unsigned)(((b0 >> fb) | (b1 << (8 - fb))) & 63);
}

static inline void ch_dset(uint8_t *r, long i, unsigned v) {
    unsigned long byte = (unsigned long)i * 6 / 8, fb = ((unsigned long)i * 6) & 7;
    unsigned long fb8 = 8 - fb;
    r[byte] = (uint8_t)((r[byte] & ~(63UL << fb)) | ((unsigned long)v << fb));
    if (byte + 1 < CH_DENSE_BYTES)
        r[byte + 1] = (uint8_t)((r[byte + 1] & ~(63UL >> fb8)) | ((unsigned long)v >> fb8));
}

#define CH_IS_ZERO(p) (((*(p)) & 0xc0) == 0)
#define CH_IS_XZERO(p) (((*(p)) & 0xc0) == 0x40)
#define CH_IS_VAL(p) ((*(p)) & 0x80)
#define CH_ZERO_LEN(p) (((*(p)) & 0x3f) + 1)
#define CH_XZERO_LEN(p) (((((*(p)) & 0x3f) << 8) | (*((p) + 1))) + 1)
#define CH_VAL_VALUE(p) ((((*(p)) >> 2) & 0x1f) + 1)
#define CH_VAL_LEN(p) (((*(p)) & 0x3) + 1)
#define CH_VAL_SET(p, val, len) (*(p) = (uint8_t)((((val) - 1) << 2 | ((len) - 1)) | 0x80))
#define CH_ZERO_SET(p, len) (*(p) = (uint8_t)((len) - 1))
#define CH_XZERO_SET(p, len) do { int _l = (len) - 1; \
    (p)[0] = (uint8_t)((_l >> 8) | 0x40); (p)[1] = (uint8_t)(_l & 0xff); } while (0)

/* a register's value in a sparse HLL (s: the whole string); -1: invalid */
static int ch_sget(const uint8_t *s, long len, long index) {
    const uint8_t *p = s + CH_HDR, *end = s + len;
    long first = 0, span;
    while (p < end) {
        if (CH_IS_ZERO(p)) { span = CH_ZERO_LEN(p); if (index < first + span) return 0; p++; }
        else if (CH_IS_VAL(p)) {
            span = CH_VAL_LEN(p); if (index < first + span) return CH_VAL_VALUE(p); p++;
        } else {
            if (p + 1 >= end) return -1;
            span = CH_XZERO_LEN(p); if (index < first + span) return 0; p += 2;
        }
        first += span;
    }
    return -1;
}

/* Set register index of the sparse HLL s (*plen bytes; s has room for 3
   more, zeroed) to count if larger, in place, splitting and merging
   opcodes as Redis does. 0 unchanged, 1 changed, -1 invalid, 2 promote
   (the caller converts to dense and sets it there). */
static int ch_sset(uint8_t *s, long *plen, long maxbytes, long index, int count) {
    uint8_t *sparse, *end, *p, *prev, *next;
    long first, span, runlen = 0;
    int is_zero = 0, is_xzero = 0, is_val = 0;
    uint8_t seq[5], *n = seq;
    long last, len;
    int seqlen, oldlen, deltalen, scanlen;
    if (count > 32) return 2;
    sparse = p = s + CH_HDR;
    end = s + *plen;
    first = 0; prev = NULL; span = 0;
    while (p < end) {
        long oplen = 1;
        if (CH_IS_ZERO(p)) span = CH_ZERO_LEN(p);
        else if (CH_IS_VAL(p)) span = CH_VAL_LEN(p);
        else { span = CH_XZERO_LEN(p); oplen = 2; }
        if (index <= first + span - 1) break;
        prev = p; p += oplen; first += span;
    }
    if (span == 0 || p >= end) return -1;
    next = CH_IS_XZERO(p) ? p + 2 : p + 1;
    if (next >= end) next = NULL;
    if (CH_IS_ZERO(p)) { is_zero = 1; runlen = CH_ZERO_LEN(p); }
    else if (CH_IS_XZERO(p)) { is_xzero = 1; runlen = CH_XZERO_LEN(p); }
    else { is_val = 1; runlen = CH_VAL_LEN(p); }
    if (is_val) {
        if (CH_VAL_VALUE(p) >= count) return 0;
        if (runlen == 1) { CH_VAL_SET(p, count, 1); goto updated; }
    }
    if (is_zero && runlen == 1) { CH_VAL_SET(p, count, 1); goto updated; }
    last = first + span - 1;
    if (is_zero || is_xzero) {
        if (index != first) {
            len = index - first;
            if (len > 64) { CH_XZERO_SET(n, len); n += 2; } else { CH_ZERO_SET(n, len); n++; }
        }
        CH_VAL_SET(n, count, 1); n++;
        if (index != last) {
            len = last - index;
            if (len > 64) { CH_XZERO_SET(n, len); n += 2; } else { CH_ZERO_SET(n, len); n++; }
        }
    } else {
        int curval = CH_VAL_VALUE(p);
        if (index != first) { len = index - first; CH_VAL_SET(n, curval, len); n++; }
        CH_VAL_SET(n, count, 1); n++;
        if (index != last) { len = last - index; CH_VAL_SET(n, curval, len); n++; }
    }
    seqlen = (int)(n - seq);
    oldlen = is_xzero ? 2 : 1;
    deltalen = seqlen - oldlen;
    if (deltalen > 0 && *plen + deltalen > maxbytes) return 2;
    if (deltalen && next) memmove(next + deltalen, next, end - next);
    *plen += deltalen;
    memcpy(p, seq, seqlen);
    end += deltalen;
updated:
    p = prev ? prev : sparse;
    scanlen = 5;
    while (p < end && scanlen--) {
        if (CH_IS_XZERO(p)) { p += 2; continue; }
        else if (CH_IS_ZERO(p)) { p++; continue; }
        if (p + 1 < end && CH_IS_VAL(p + 1)) {
            int v1 = CH_VAL_VALUE(p), v2 = CH_VAL_VALUE(p + 1);
            if (v1 == v2) {
                int l2 = CH_VAL_LEN(p) + CH_VAL_LEN(p + 1);
                if (l2 <= 4) {
                    CH_VAL_SET(p + 1, v1, l2);
                    memmove(p, p + 1, end - p);
                    *plen -= 1;
                    end--;
                    continue;
                }
            }
        }
        p++;
    }
    s[15] |= 0x80;
    return 1;
}

/* dense registers of the sparse HLL s into out (CH_HDR + CH_DENSE_BYTES
   zeroed bytes); the header is copied. 0, or -1 if s is invalid. */
static int ch_to_dense(const uint8_t *s, long len, uint8_t *out) {
    const uint8_t *p = s + CH_HDR, *end = s + len;
    long idx = 0, runlen, regval;
    memcpy(out, s, CH_HDR);
    out[4] = 0;
    while (p < end) {
        if (CH_IS_ZERO(p)) { idx += CH_ZERO_LEN(p); p++; }
        else if (CH_IS_XZERO(p)) {
            idx += p + 1 < end ? CH_XZERO_LEN(p) : (((*p) & 0x3f) << 8) + 1; p += 2;
        } else {
            runlen = CH_VAL_LEN(p); regval = CH_VAL_VALUE(p);
            if (runlen + idx > CH_REGS) return -1;  /* overflow: Redis 7.0.15 refuses it */
            while (runlen--) { ch_dset(out + CH_HDR, idx, (unsigned)regval); idx++; }
            p++;
        }
    }
    return idx == CH_REGS ? 0 : -1;
}

/* register histogram of an HLL string (dense or sparse); -1 if invalid */
static int ch_histo(const uint8_t *s, long len, int *h) {
    long j;
    if (s[4] == 0) {
        const uint8_t *r = s + CH_HDR;
        for (j = 0; j < CH_REGS / 4; j++) {
            unsigned b0 = r[0], b1 = r[1], b2 = r[2];
            h[b0 & 63]++;
            h[((b0 >> 6) | (b1 << 2)) & 63]++;
            h[((b1 >> 4) | (b2 << 4)) & 63]++;
            h[(b2 >> 2) & 63]++;
            r += 3;
        }
        return 0;
    } else {
        const uint8_t *p = s + CH_HDR, *end = s + len;
        long idx = 0, runlen;
        while (p < end) {
            if (CH_IS_ZERO(p)) { runlen = CH_ZERO_LEN(p); idx += runlen; h[0] += runlen; p++; }
            else if (CH_IS_XZERO(p)) {
                runlen = p + 1 < end ? CH_XZERO_LEN(p) : (((*p) & 0x3f) << 8) + 1;
                idx += runlen; h[0] += runlen; p += 2;
            } else {
                runlen = CH_VAL_LEN(p); idx += runlen; h[CH_VAL_VALUE(p)] += runlen; p++;
            }
        }
        return idx == CH_REGS ? 0 : -1;
    }
}

static void ch_histo_raw(const uint8_t *regs, int *h) {
    long j;
    for (j = 0; j < CH_REGS; j++) h[regs[j]]++;
}

static double ch_sigma(double x) {
    double zp, y = 1, z = x;
    if (x == 1.) return INFINITY;
    do { x *= x; zp = z; z += x * y; y += y; } while (zp != z);
    return z;
}

static double ch_tau(double x) {
    double zp, y = 1.0, z = 1 - x;
    if (x == 0. || x == 1.) return 0.;
    do { x = sqrt(x); zp = z; y *= 0.5; z -= pow(1 - x, 2) * y; } while (zp != z);
    return z / 3;
}

/* Ertl's improved estimator over the register histogram (as Redis 7) */
static uint64_t ch_estimate(const int *h) {
    double m = CH_REGS, z, E;
    int j;
    z = m * ch_tau((m - h[51]) / m);
    for (j = 50; j >= 1; --j) { z += h[j]; z *= 0.5; }
    z += m * ch_sigma(h[0] / m);
    E = (double)llroundl(0.721347520444481703680 * m * m / z);
    return (uint64_t)E;
}

/* max[i] = MAX(max[i], register i of s); -1 if s is an invalid sparse HLL */
static int ch_merge(uint8_t *max, const uint8_t *s, long len) {
    long i;
    if (s[4] == 0) {
        /* four 6-bit registers in each 3 bytes, least significant bits first */
        const uint8_t *r = s + CH_HDR;
        uint8_t *m = max;
        for (i = 0; i < CH_REGS / 4; i++) {
            unsigned b0 = r[0], b1 = r[1], b2 = r[2], v;
            v = b0 & 63; if (v > m[0]) m[0] = (uint8_t)v;
            v = ((b0 >> 6) | (b1 << 2)) & 63; if (v > m[1]) m[1] = (uint8_t)v;
            v = ((b1 >> 4) | (b2 << 4)) & 63; if (v > m[2]) m[2] = (uint8_t)v;
            v = b2 >> 2; if (v > m[3]) m[3] = (uint8_t)v;
            r += 3;
            m += 4;
        }
        return 0;
    } else {
        const uint8_t *p = s + CH_HDR, *end = s + len;
        long runlen, regval;
        i = 0;
        while (p < end) {
            if (CH_IS_ZERO(p)) { i += CH_ZERO_LEN(p); p++; }
            else if (CH_IS_XZERO(p)) {
                i += p + 1 < end ? CH_XZERO_LEN(p) : (((*p) & 0x3f) << 8) + 1; p += 2;
            } else {
                runlen = CH_VAL_LEN(p); regval = CH_VAL_VALUE(p);
                if (runlen + i > CH_REGS) return -1;
                while (runlen--) { if (regval > max[i]) max[i] = (uint8_t)regval; i++; }
                p++;
            }
        }
        return i == CH_REGS ? 0 : -1;
    }
}

/* dense registers regs (after the header) raised to max[i] where it is
   larger: the same bytes as setting each non-zero max[i] with ch_dset when it
   grows (Redis's PFMERGE into a dense value) */
static void ch_dense_max(uint8_t *regs, const uint8_t *max) {
    long j;
    uint8_t *r = regs;
    const uint8_t *m = max;
    for (j = 0; j < CH_REGS / 4; j++) {
        unsigned b0 = r[0], b1 = r[1], b2 = r[2];
        unsigned v0 = b0 & 63, v1 = ((b0 >> 6) | (b1 << 2)) & 63;
        unsigned v2 = ((b1 >> 4) | (b2 << 4)) & 63, v3 = b2 >> 2;
        if (m[0] > v0) v0 = m[0];
        if (m[1] > v1) v1 = m[1];
        if (m[2] > v2) v2 = m[2];
        if (m[3] > v3) v3 = m[3];
        r[0] = (uint8_t)(v0 | (v1 << 6));
        r[1] = (uint8_t)((v1 >> 2) | (v2 << 4));
        r[2] = (uint8_t)((v2 >> 4) | (v3 << 2));
        r += 3;
        m += 4;
    }
}
#endif
