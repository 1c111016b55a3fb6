# Effect record op codes, and the layout of every record: the one place that
# says what a record holds (docs/internals.md, "Records", is the same table).
#
# A record: u32 len | u8 op (bit 7, backlog.OP_CONT: more records of this
# group follow) | u64 uuid | payload; len counts from op. In payloads, key,
# member, field and value are varint-length bytes; dots = varint n, n x (u64
# node, u64 uuid); observed counters = varint n, n x (u64 node, i64 sum, u64
# last) (f64 sum for sorted sets). The type module named on each op encodes
# it (emit_*) and decodes it (its apply function); keyspace handles OP_TTL,
# OP_MEMBER and OP_FUNC and hands every other op to the type that registered it.

cdef enum:
    # t_string
    OP_REG = 1            # key, u8 flags (1 value present, 2 writes TTL), [value],
    #                       [i64 expire_at], observed counters
    OP_CNT = 2            # key, i64 delta
    # keyspace (the key's TTL register)
    OP_TTL = 3            # key, i64 expire_at (0 = persist)
    # t_set
    OP_SADD = 4           # key, member, dots removed
    OP_SREM = 5           # key, member, dots
    OP_SCLEAR = 6         # key, varint n, n x (member, dots); a DEL: writes the TTL register
    # t_hash
    OP_HSET = 7           # key, field, value, dots removed
    OP_HREM = 8           # key, field, dots
    OP_HCLEAR = 9         # key, varint n, n x (field, dots); a DEL: writes the TTL register
    # t_mv
    OP_MV = 10            # key, value, dots removed
    OP_MVCLEAR = 11       # key, dots; a DEL: writes the TTL register
    # keyspace (membership, handed to the replication layer)
    OP_MEMBER = 32        # opaque payload
    # keyspace (numbered databases, docs/replication.md "Numbered databases")
    OP_SELECT = 33        # varint db identity: the next records of this group are in that
    #                       db (same uuid as the record after it; written by the backlog
    #                       only where the db changes; a group starts in identity 0)
    OP_SWAPDB = 34        # varint n, n x varint identity: the whole index -> identity
    #                       mapping (LWW at (uuid, origin))
    # t_list
    OP_LINS = 40          # key, u64 anchor node, u64 anchor uuid (0 0: the head), u8 mode
    #                       (LINS_*), varint n, n x value; element i's id is
    #                       (origin, uuid - n + 1 + i), the record's uuid is the last id
    OP_LREM = 41          # key, varint n, n x (u64 node, u64 uuid): element ids removed
    OP_LSET = 42          # key, u64 node, u64 uuid (the element), value (LWW at (uuid, origin))
    OP_LCLEAR = 43        # as OP_LREM (every live element); a DEL: writes the TTL register
    # t_zset
    OP_ZW = 48            # key, member, u8 flags (ZW_*), [u64 ru, u64 rn if ZW_REBASE],
    #                       f64 value, [f64 delta if ZW_CNT], observed counters (f64 sums),
    #                       dots removed: the member's add at (origin, uuid) and its
    #                       score register write
    OP_ZREM = 49          # key, varint n, n x (member, dots)
    OP_ZCLEAR = 50        # as OP_ZREM (every member); a DEL: writes the TTL register
    # t_hash (field counters)
    OP_HCNT = 56          # key, field, i64 delta, u8 create (1: the field was absent, it is
    #                       added as "0" at this dot), [observed counters if create]
    OP_HSETC = 57         # key, field, value, dots removed, observed counters: HSET of a
    #                       field that has counters (resets what it observed)
    # t_string (bit overrides, bitval.pyx)
    OP_BITS = 64          # key, varint n, n x (varint start bit, u8 nbits (1..64), u64 bits:
    #                       the low nbits, most significant first): bits written at this ts
    # float counters (INCRBYFLOAT, HINCRBYFLOAT: docs/crdt.md section 3.7)
    OP_FCNT = 65          # key, i64 (the bits of a double): the origin's new running total of
    #                       its INCRBYFLOATs on key (t_string; a REG follows in the group)
    OP_HFCNT = 66         # key, field, i64 (a double's bits): the same for a hash field
    #                       (t_hash; an HSETC follows in the group)

    # t_hll (HyperLogLog, docs/crdt.md section 3.1.1)
    OP_HLLADD = 67        # key, u8 flags (t_hll HA_DENSE, HA_INVAL), varint n, n x (u16 register
    #                       index, u8 value): PFADD's / PFMERGE's register updates, in order
    OP_HLLREG = 68        # key, u8 has value, [value]: a whole write of the HLL register (a
    #                       string's bytes at its first PF* write; no value: a DEL, which also
    #                       writes the TTL register)
    OP_HLLCACHE = 69      # key: PFCOUNT filled the cached cardinality

    # keyspace (function libraries, handed to constdb/functions.py)
    OP_FUNC = 70          # library name, u8 has code, [code]: the library's LWW register
    #                       written at (uuid, origin); no code: FUNCTION DELETE / FLUSH

    OP_MAX = 127          # op codes are 7 bits

    # OP_LINS modes
    LINS_CHAIN = 0        # element i+1 goes right after element i (RPUSH, LINSERT)
    LINS_SAME = 1         # every element goes right after the anchor (LPUSH)

    # OP_ZW flags
    ZW_REBASE = 1         # the write rebases the register (ru, rn) it names (ZINCRBY)
    ZW_CNT = 2            # the write adds a delta to its origin's counter
