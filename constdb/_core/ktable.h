/* ConstDB's key table (ktable.pyx, ktable.pxd): bytes key -> object, open
   addressing with linear probing over a power-of-two array of 8-byte slots.

   A slot is 0 (empty) or an entry's address with a tag in its top byte (the
   top 8 bits of the key's hash: a probe skips most other keys without
   reading their entry). An entry is one pymalloc block, {obj, the low 32
   bits of the hash, the key's length, the key's bytes}: 16 bytes + the key.
   The hash is Python's bytes hash, so a lookup by a bytes key uses the hash
   the bytes object caches. Deletion shifts the entries after the removed
   one back (no tombstones); the table grows x2 past 3/4 full and halves
   below 1/8 (not under KT_MIN slots). Every function here needs the GIL. */
#ifndef CONSTDB_KTABLE_H
#define CONSTDB_KTABLE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#define KT_MIN 8
#define KT_MAX ((size_t)1 << 32)          /* the entries keep 32 bits of the hash */
#define KT_PTR ((uint64_t)0x00FFFFFFFFFFFFFFULL)

#if defined(__x86_64__) || defined(__i386__)
#define KT_PF(p) __asm__ volatile("prefetcht0 %0" :: "m"(*(const char*)(p)))
#else
#define KT_PF(p) __builtin_prefetch(p)
#endif

typedef struct {
    PyObject* obj;           /* owned */
    uint32_t h;              /* the hash's low 32 bits */
    uint32_t klen;
    char key[];
} kt_entry;

typedef struct {
    uint64_t* slots;         /* mask + 1 slots; NULL: none yet (mask 0) */
    size_t mask;
    size_t used;
    uint64_t ver;            /* + 1 at every insert and delete (iterators check it) */
    uint64_t rng;            /* xorshift state of kt_random */
    uint64_t zero;           /* the one empty slot a table without slots reads */
} kt_table;

static inline kt_entry* kt_ent(uint64_t v) { return (kt_entry*)(uintptr_t)(v & KT_PTR); }
static inline uint64_t kt_tag(Py_hash_t h) { return (uint64_t)h >> 56; }

/* a bytes key's hash: the cached one of an exact bytes object */
static inline Py_hash_t kt_hash(PyObject* key) {
    if (PyBytes_CheckExact(key)) return PyObject_Hash(key);
    return _Py_HashBytes(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
}

static inline void kt_init(kt_table* t, uint64_t seed) {
    t->zero = 0;
    t->slots = &t->zero;
    t->mask = 0;
    t->used = 0;
    t->ver = 0;
    t->rng = seed | 1;
}

/* the slot holding the key (s, n) of hash h, or -1 */
static inline Py_ssize_t kt_find(const kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n) {
    size_t mask = t->mask, i = (size_t)h & mask;
    uint64_t tag = kt_tag(h), v;
    uint32_t h32 = (uint32_t)h;
    kt_entry* e;
    for (;;) {
        v = t->slots[i];
        if (v == 0) return -1;
        if ((v >> 56) == tag) {
            e = kt_ent(v);
            if (e->h == h32 && (Py_ssize_t)e->klen == n && memcmp(e->key, s, (size_t)n) == 0)
                return (Py_ssize_t)i;
        }
        i = (i + 1) & mask;
    }
}

static inline Py_ssize_t kt_find_key(const kt_table* t, PyObject* key) {
    Py_hash_t h;
    if (!PyBytes_Check(key)) return -1;
    h = kt_hash(key);
    return kt_find(t, h, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
}

/* the object of a bytes key (borrowed), NULL: not there (or not bytes) */
static inline PyObject* kt_get(const kt_table* t, PyObject* key) {
    Py_ssize_t i = kt_find_key(t, key);
    return i < 0 ? NULL : kt_ent(t->slots[i])->obj;
}

static inline PyObject* kt_get_raw(const kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n) {
    Py_ssize_t i = kt_find(t, h, s, n);
    return i < 0 ? NULL : kt_ent(t->slots[i])->obj;
}

/* the table at nslots slots (a power of two, room for every entry) */
static int kt_resize(kt_table* t, size_t nslots) {
    uint64_t* ns;
    uint64_t* old = t->slots;
    size_t nmask = nslots - 1, i, j, n = t->mask + 1;
    if (nslots > KT_MAX || nslots < KT_MIN) {
        PyErr_NoMemory();
        return -1;
    }
    ns = (uint64_t*)PyMem_Calloc(nslots, sizeof(uint64_t));
    if (ns == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (t->mask != 0) {
        for (i = 0; i < n; i++) {
            uint64_t v = old[i];
            if (v == 0) continue;
            j = kt_ent(v)->h & nmask;
            while (ns[j] != 0) j = (j + 1) & nmask;
            ns[j] = v;
        }
        PyMem_Free(old);
    }
    t->slots = ns;
    t->mask = nmask;
    t->ver++;
    return 0;
}

/* key (s, n) of hash h -> obj: 1 inserted, 0 replaced, -1 error set */
static int kt_set_raw(kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n, PyObject* obj) {
    Py_ssize_t i = kt_find(t, h, s, n);
    kt_entry* e;
    size_t j;
    if (i >= 0) {
        e = kt_ent(t->slots[i]);
        PyObject* was = e->obj;
        Py_INCREF(obj);
        e->obj = obj;
        Py_DECREF(was);
        return 0;
    }
    if (n < 0 || (uint64_t)n > (uint64_t)UINT32_MAX
            || (size_t)n > (size_t)PY_SSIZE_T_MAX - sizeof(kt_entry)) {
        PyErr_SetString(PyExc_ValueError, "key too long for the key table");
        return -1;
    }
    e = (kt_entry*)PyMem_Malloc(sizeof(kt_entry) + (size_t)n);
    if (e == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (((uint64_t)(uintptr_t)e & ~KT_PTR) != 0) {   /* (an address the tag would hide) */
        PyMem_Free(e);
        PyErr_NoMemory();
        return -1;
    }
    if (t->mask == 0 || (t->used + 1) * 4 > (t->mask + 1) * 3) {
        if (kt_resize(t, t->mask == 0 ? KT_MIN : (t->mask + 1) * 2) < 0) {
            PyMem_Free(e);
            return -1;
        }
    }
    e->h = (uint32_t)h;
    e->klen = (uint32_t)n;
    memcpy(e->key, s, (size_t)n);
    Py_INCREF(obj);
    e->obj = obj;
    j = (size_t)h & t->mask;
    while (t->slots[j] != 0) j = (j + 1) & t->mask;
    t->slots[j] = (uint64_t)(uintptr_t)e | (kt_tag(h) << 56);
    t->used++;
    t->ver++;
    return 1;
}

static inline int kt_set(kt_table* t, PyObject* key, PyObject* obj) {
    Py_hash_t h;
    if (!PyBytes_Check(key)) {
        PyErr_Format(PyExc_TypeError, "key table keys are bytes, not %.100s",
                     Py_TYPE(key)->tp_name);
        return -1;
    }
    h = kt_hash(key);
    return kt_set_raw(t, h, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), obj);
}

/* removes the entry at slot i; returns its object (a new reference). The
   table may shrink (then positions of an ongoing walk move). */
static PyObject* kt_take_at(kt_table* t, size_t i) {
    size_t mask = t->mask, j = i, home, n;
    uint64_t v;
    kt_entry* e = kt_ent(t->slots[i]);
    PyObject* obj = e->obj;
    PyMem_Free(e);
    for (;;) {
        j = (j + 1) & mask;
        v = t->slots[j];
        if (v == 0) break;
        home = kt_ent(v)->h & mask;
        /* the entry at j may fill i unless its home lies in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = v;
            i = j;
        }
    }
    t->slots[i] = 0;
    t->used--;
    t->ver++;
    n = mask + 1;
    if (n > KT_MIN && t->used * 8 < n) {
        while (n > KT_MIN && t->used * 4 < n) n >>= 1;   /* to at most half full */
        if (kt_resize(t, n) < 0) PyErr_Clear();       /* (stays big: no harm) */
    }
    return obj;
}

/* removes key (s, n): its object (a new reference), NULL: not there */
static inline PyObject* kt_pop_raw(kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n) {
    Py_ssize_t i = kt_find(t, h, s, n);
    return i < 0 ? NULL : kt_take_at(t, (size_t)i);
}

static inline PyObject* kt_pop(kt_table* t, PyObject* key) {
    Py_ssize_t i = kt_find_key(t, key);
    return i < 0 ? NULL : kt_take_at(t, (size_t)i);
}

/* removes key: 1 if it was there */
static inline int kt_del(kt_table* t, PyObject* key) {
    PyObject* o = kt_pop(t, key);
    if (o == NULL) return 0;
    Py_DECREF(o);
    return 1;
}

/* the first entry at a slot >= *pos (then *pos is past it), NULL: none */
static inline kt_entry* kt_next(const kt_table* t, Py_ssize_t* pos) {
    size_t i = (size_t)*pos, n = t->mask + 1;
    if (t->mask == 0) return NULL;
    for (; i < n; i++) {
        if (t->slots[i] != 0) {
            *pos = (Py_ssize_t)(i + 1);
            return kt_ent(t->slots[i]);
        }
    }
    *pos = (Py_ssize_t)n;
    return NULL;
}

static inline uint64_t kt_rand(kt_table* t) {
    uint64_t x = t->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t->rng = x;
    return x;
}

/* a random entry, NULL: empty. Up to 64 random slots (1/load of them
   expected: 8 at most, the table being 1/8 full or more), then the first
   entry after the last one drawn (64 empty draws: under 0.02% of the time
   at 1/8 full), so draws are near uniform, where walking from every empty
   slot would favour the first entry of each run of entries. */
static inline kt_entry* kt_random(kt_table* t) {
    size_t i = 0;
    int k;
    if (t->used == 0) return NULL;
    for (k = 0; k < 64; k++) {
        i = (size_t)(kt_rand(t) >> 11) & t->mask;
        if (t->slots[i] != 0) return kt_ent(t->slots[i]);
    }
    while (t->slots[i] == 0) i = (i + 1) & t->mask;
    return kt_ent(t->slots[i]);
}

/* frees every entry (their objects' references dropped last) */
static void kt_clear(kt_table* t) {
    uint64_t* slots = t->slots;
    size_t i, n = t->mask + 1;
    int had = t->mask != 0;
    t->slots = &t->zero;
    t->mask = 0;
    t->used = 0;
    t->ver++;
    if (!had) return;
    for (i = 0; i < n; i++) {
        if (slots[i] != 0) {
            kt_entry* e = kt_ent(slots[i]);
            PyObject* o = e->obj;
            PyMem_Free(e);
            Py_DECREF(o);
        }
    }
    PyMem_Free(slots);
}

/* the full hash of an entry's key (computed: an entry keeps 32 bits) */
static inline Py_hash_t kt_entry_hash(const kt_entry* e) {
    return _Py_HashBytes(e->key, (Py_ssize_t)e->klen);
}

/* a new bytes object of an entry's key */
static inline PyObject* kt_key(const kt_entry* e) {
    return PyBytes_FromStringAndSize(e->key, (Py_ssize_t)e->klen);
}

/* pymalloc's block for an entry of a key of n bytes (16-byte classes up
   to 512 bytes; a larger one is malloc's, with its 16-byte header) */
static inline Py_ssize_t kt_entry_bytes(Py_ssize_t n) {
    Py_ssize_t b = (Py_ssize_t)sizeof(kt_entry) + n;
    return b <= 512 ? (b + 15) & ~(Py_ssize_t)15 : b + 16;
}

/* staged prefetch of a key of hash h (protocol.pyx's pipelines): its first
   slot, then the entry there if its tag is the key's, then that entry's
   object if the hash matches */
static inline void kt_prefetch_slot(const kt_table* t, Py_hash_t h) {
    KT_PF(t->slots + ((size_t)h & t->mask));
}
static inline void kt_prefetch_entry(const kt_table* t, Py_hash_t h) {
    uint64_t v = t->slots[(size_t)h & t->mask];
    if (v != 0 && (v >> 56) == kt_tag(h)) KT_PF(kt_ent(v));
}
static inline void kt_prefetch_obj(const kt_table* t, Py_hash_t h) {
    uint64_t v = t->slots[(size_t)h & t->mask];
    if (v != 0 && (v >> 56) == kt_tag(h)) {
        kt_entry* e = kt_ent(v);
        if (e->h == (uint32_t)h) {
            KT_PF(e->obj);
            KT_PF((char*)e->obj + 63);
        }
    }
}

#endif
