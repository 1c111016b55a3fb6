/* ConstDB's key table (ktable.pyx, ktable.pxd): bytes key -> object, open
   addressing with linear probing over a power-of-two array of 8-byte slots.

   A slot is 0 (empty) or an entry's address with a tag in its top byte (the
   top 8 bits of the key's hash: a probe skips most other keys without
   reading their entry). An entry is one pymalloc block, {obj, the low 32
   bits of the hash, the key's length, the key's bytes}: 16 bytes + the key.
   The hash is Python's bytes hash, so a lookup by a bytes key uses the hash
   the bytes object caches. Deletion shifts the entries after the removed
   one back (no tombstones); the table grows x2 past 3/4 full and halves
   below 1/8 (to between 1/4 and 1/2 full; not under KT_MIN slots).

   Resizing is incremental (a whole rehash of 6.3M keys took ~330 ms, one
   insert stalling the server). A resize allocates the new array (calloc:
   untouched pages cost nothing yet) and keeps the old one, `old`, which is
   then drained in slot order from a cursor `ocur`: every insert and delete
   moves up to `step` entries (KT_STEP) into the new array, visiting at most
   KT_VISIT slots per entry, and kt_rehash_ns (the server's cron, Redis's
   incrementallyRehash) moves batches until a time budget is spent, so an
   idle table finishes too. While draining, the old array's pattern of
   empty and non-empty slots is frozen: a moved or deleted entry leaves a
   tombstone (KT_TOMB, never an entry's address) and nothing is ever
   inserted there. So every old probe sequence stays intact whatever has
   been moved, clusters that wrap around the old array's end included, and
   no backward shift ever runs in the old array (the hard part of a
   linear-probing drain: a shift could carry an unmoved entry behind the
   cursor). An entry lives in exactly one array: a lookup probes the new
   array, then (a miss while draining) the old one, skipping tombstones;
   an insert of a new key goes to the new array, a replace rewrites the
   entry where it is, a delete backward-shifts in the new array or leaves a
   tombstone in the old. When the old array holds no entry (all moved or
   deleted) it is freed, in one go as Redis's dict frees its old table:
   the one step whose cost still grows with the table (the pages' unmap,
   about 0.35 ms a million slots here: 2.7 ms at 8M slots, against 320 ms
   for the whole rehash it replaces). A grow or shrink is started only when no drain is
   in progress; an insert that would take the new array past 3/4 while
   draining (not possible at real sizes: a drain takes at most
   old slots / KT_STEP operations, the new array has room for 3/8 of it
   more) first finishes the drain. A shrink wanted while draining is
   started by the first delete or cron step after the drain.

   Positions of kt_next (the GC's and active expiry's slices, KEYS, SCAN's
   copy) run over the old array's slots then the new array's while
   draining, so a drain step (which only moves entries from the old array
   into the new) can repeat an entry to a walk but never hide one from it;
   a walk that spans the start or end of a resize may miss or repeat some,
   as across any resize. kt_random draws uniformly over the new array's
   slots and the old array's slots from the cursor on. Every function here
   needs the GIL. */
#ifndef CONSTDB_KTABLE_H
#define CONSTDB_KTABLE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define KT_MIN 8
#define KT_MAX ((size_t)1 << 32)          /* the entries keep 32 bits of the hash */
#define KT_PTR ((uint64_t)0x00FFFFFFFFFFFFFFULL)
#define KT_TOMB ((uint64_t)1)             /* an old array's moved or deleted entry */
#define KT_STEP 16                        /* entries an insert or delete moves */
#define KT_VISIT 16                       /* slots a step visits per entry it may move */

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
    size_t used;             /* entries in both arrays */
    uint64_t ver;            /* + 1 at every insert and delete (iterators check it) */
    uint64_t rng;            /* xorshift state of kt_random */
    uint64_t zero;           /* the one empty slot a table without slots reads */
    uint64_t* old;           /* while resizing: the array being drained, else NULL */
    size_t omask;            /* its mask */
    size_t ocur;             /* its slots below ocur hold no entry (moved) */
    size_t oused;            /* entries still in it */
    size_t step;             /* entries an insert or delete moves (KT_STEP; tests lower it) */
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
    t->old = NULL;
    t->omask = 0;
    t->ocur = 0;
    t->oused = 0;
    t->step = KT_STEP;
}

/* the slot of an array (mask + 1 slots) holding the key (s, n) of hash h,
   or NULL. A tombstone (only an old array has them) has tag 0 and is
   never read as an entry. */
static inline uint64_t* kt_probe(uint64_t* slots, size_t mask, Py_hash_t h, const char* s,
                                 Py_ssize_t n) {
    size_t i = (size_t)h & mask;
    uint64_t tag = kt_tag(h), v;
    uint32_t h32 = (uint32_t)h;
    kt_entry* e;
    for (;;) {
        v = slots[i];
        if (v == 0) return NULL;
        if ((v >> 56) == tag && v != KT_TOMB) {
            e = kt_ent(v);
            if (e->h == h32 && (Py_ssize_t)e->klen == n && memcmp(e->key, s, (size_t)n) == 0)
                return slots + i;
        }
        i = (i + 1) & mask;
    }
}

/* the slot (of either array) holding the key (s, n) of hash h, or NULL */
static inline uint64_t* kt_find(const kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n) {
    uint64_t* p = kt_probe(t->slots, t->mask, h, s, n);
    if (p != NULL || t->old == NULL) return p;
    return kt_probe(t->old, t->omask, h, s, n);
}

static inline uint64_t* kt_find_key(const kt_table* t, PyObject* key) {
    Py_hash_t h;
    if (!PyBytes_Check(key)) return NULL;
    h = kt_hash(key);
    return kt_find(t, h, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
}

/* the object of a bytes key (borrowed), NULL: not there (or not bytes) */
static inline PyObject* kt_get(const kt_table* t, PyObject* key) {
    uint64_t* p = kt_find_key(t, key);
    return p == NULL ? NULL : kt_ent(*p)->obj;
}

static inline PyObject* kt_get_raw(const kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n) {
    uint64_t* p = kt_find(t, h, s, n);
    return p == NULL ? NULL : kt_ent(*p)->obj;
}

/* ends a drain: frees the old array (it holds no entry any more) */
static void kt_drop_old(kt_table* t) {
    PyMem_Free(t->old);
    t->old = NULL;
    t->omask = 0;
    t->ocur = 0;
    t->oused = 0;
}

/* moves up to nmove entries from the old array into the new one, visiting
   up to nvisit old slots; 1: entries remain to move, 0: the drain is over */
static int kt_move(kt_table* t, size_t nmove, size_t nvisit) {
    uint64_t* old = t->old;
    uint64_t* ns = t->slots;
    size_t on = t->omask + 1, i = t->ocur, nmask = t->mask, j, end;
    uint64_t v;
    if (old == NULL) return 0;
    end = on - i > nvisit ? i + nvisit : on;
    for (; i < end && nmove > 0; i++) {
        if (i + 8 < on && old[i + 8] > KT_TOMB) KT_PF(kt_ent(old[i + 8]));
        v = old[i];
        if (v <= KT_TOMB) continue;
        j = kt_ent(v)->h & nmask;
        while (ns[j] != 0) j = (j + 1) & nmask;
        ns[j] = v;
        old[i] = KT_TOMB;
        nmove--;
        if (--t->oused == 0) break;
    }
    t->ocur = i;
    if (t->oused == 0 || i >= on) {
        kt_drop_old(t);
        return 0;
    }
    return 1;
}

/* starts a resize to nslots slots (a power of two, room for every entry);
   the entries move later (kt_move) unless there are none. No drain may be
   in progress. */
static int kt_resize(kt_table* t, size_t nslots) {
    uint64_t* ns;
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
        if (t->used == 0) {
            PyMem_Free(t->slots);
        } else {
            t->old = t->slots;
            t->omask = t->mask;
            t->ocur = 0;
            t->oused = t->used;
        }
    }
    t->slots = ns;
    t->mask = nslots - 1;
    t->ver++;
    return 0;
}

/* moves every entry left in the old array (a grow needed while draining) */
static inline void kt_finish(kt_table* t) {
    while (kt_move(t, (size_t)-1, (size_t)-1)) {}
}

/* starts a shrink if the table is below 1/8 full and not draining */
static void kt_maybe_shrink(kt_table* t) {
    size_t n = t->mask + 1;
    if (t->old != NULL || n <= KT_MIN || t->used * 8 >= n) return;
    while (n > KT_MIN && t->used * 4 < n) n >>= 1;   /* to at most half full */
    if (kt_resize(t, n) < 0) PyErr_Clear();       /* (stays big: no harm) */
}

/* key (s, n) of hash h -> obj: 1 inserted, 0 replaced, -1 error set */
static int kt_set_raw(kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n, PyObject* obj) {
    uint64_t* p = kt_find(t, h, s, n);
    kt_entry* e;
    size_t j;
    if (p != NULL) {
        e = kt_ent(*p);
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
    if (t->old != NULL) kt_move(t, t->step, t->step * KT_VISIT);
    if (t->mask == 0 || (t->used + 1) * 4 > (t->mask + 1) * 3) {
        if (t->old != NULL) kt_finish(t);
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

/* removes the entry at slot p (kt_find's); returns its object (a new
   reference). Entries may move between the arrays and the table may
   start a shrink (then positions of an ongoing walk move). */
static PyObject* kt_take_at(kt_table* t, uint64_t* p) {
    size_t mask = t->mask, i, j, home;
    uint64_t v;
    kt_entry* e = kt_ent(*p);
    PyObject* obj = e->obj;
    PyMem_Free(e);
    t->used--;
    t->ver++;
    if (t->old != NULL && p >= t->old && p <= t->old + t->omask) {
        *p = KT_TOMB;                       /* the old array's pattern stays */
        if (--t->oused == 0) kt_drop_old(t);
    } else {
        i = j = (size_t)(p - t->slots);
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
    }
    if (t->old != NULL) kt_move(t, t->step, t->step * KT_VISIT);
    kt_maybe_shrink(t);
    return obj;
}

/* removes key (s, n): its object (a new reference), NULL: not there */
static inline PyObject* kt_pop_raw(kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n) {
    uint64_t* p = kt_find(t, h, s, n);
    return p == NULL ? NULL : kt_take_at(t, p);
}

static inline PyObject* kt_pop(kt_table* t, PyObject* key) {
    uint64_t* p = kt_find_key(t, key);
    return p == NULL ? NULL : kt_take_at(t, p);
}

/* removes key: 1 if it was there */
static inline int kt_del(kt_table* t, PyObject* key) {
    PyObject* o = kt_pop(t, key);
    if (o == NULL) return 0;
    Py_DECREF(o);
    return 1;
}

static inline int64_t kt_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* the cron's step (Redis's incrementallyRehash): moves entries in batches
   of 128 until the drain ends or budget_ns has passed (checked after each
   batch, ~10 us), then starts a shrink the table waits for. Returns 1 if
   entries remain to move. The version changes if anything moved (a
   KeyTable iterator then stops, as it does after an insert). */
static int kt_rehash_ns(kt_table* t, int64_t budget_ns) {
    int64_t start;
    int more = 0;
    if (t->old != NULL) {
        t->ver++;
        start = kt_now_ns();
        while ((more = kt_move(t, 128, 128 * KT_VISIT)) && kt_now_ns() - start < budget_ns) {}
    }
    if (!more) kt_maybe_shrink(t);
    return t->old != NULL;
}

/* the first entry at a position >= *pos (then *pos is past it), NULL:
   none. Positions run over the old array's slots (while draining), then
   the new array's. */
static inline kt_entry* kt_next(const kt_table* t, Py_ssize_t* pos) {
    size_t i = (size_t)*pos, n = t->mask + 1, on = 0;
    if (t->mask == 0) return NULL;
    if (t->old != NULL) {
        on = t->omask + 1;
        for (; i < on; i++) {
            if (t->old[i] > KT_TOMB) {
                *pos = (Py_ssize_t)(i + 1);
                return kt_ent(t->old[i]);
            }
        }
    }
    for (; i < on + n; i++) {
        if (t->slots[i - on] != 0) {
            *pos = (Py_ssize_t)(i + 1);
            return kt_ent(t->slots[i - on]);
        }
    }
    *pos = (Py_ssize_t)(on + n);
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

/* kt_random while draining: uniform over the new array's slots and the
   old array's from the cursor on (below it no entry is left), then as
   kt_random does, over that same combined range */
static kt_entry* kt_random_draining(kt_table* t) {
    size_t n = t->mask + 1, rest = t->omask + 1 - t->ocur, all = n + rest, i = 0;
    uint64_t v;
    int k;
    for (k = 0; k < 128; k++) {
        i = (size_t)((kt_rand(t) >> 11) % all);
        v = i < n ? t->slots[i] : t->old[t->ocur + i - n];
        if (v > KT_TOMB) return kt_ent(v);
    }
    for (;;) {
        i = i + 1 == all ? 0 : i + 1;
        v = i < n ? t->slots[i] : t->old[t->ocur + i - n];
        if (v > KT_TOMB) return kt_ent(v);
    }
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
    if (t->old != NULL) return kt_random_draining(t);
    for (k = 0; k < 64; k++) {
        i = (size_t)(kt_rand(t) >> 11) & t->mask;
        if (t->slots[i] != 0) return kt_ent(t->slots[i]);
    }
    while (t->slots[i] == 0) i = (i + 1) & t->mask;
    return kt_ent(t->slots[i]);
}

/* frees the entries of n slots (their objects' references dropped after) */
static void kt_free_slots(uint64_t* slots, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (slots[i] > KT_TOMB) {
            kt_entry* e = kt_ent(slots[i]);
            PyObject* o = e->obj;
            PyMem_Free(e);
            Py_DECREF(o);
        }
    }
    PyMem_Free(slots);
}

/* frees every entry (their objects' references dropped last) */
static void kt_clear(kt_table* t) {
    uint64_t* slots = t->slots;
    uint64_t* old = t->old;
    size_t n = t->mask + 1, on = t->omask + 1;
    int had = t->mask != 0;
    t->slots = &t->zero;
    t->mask = 0;
    t->used = 0;
    t->ver++;
    t->old = NULL;
    t->omask = 0;
    t->ocur = 0;
    t->oused = 0;
    if (old != NULL) kt_free_slots(old, on);
    if (had) kt_free_slots(slots, n);
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
