"""Compiled core of ConstDB (Cython): the clock, codecs, CRDT objects, the
keyspace, one module per CRDT type, snapshots and the RESP protocol.
docs/internals.md has the map.

The type table: each type module registers its TypeOps with the keyspace when
it is imported, so every type is imported here, before anything can meet an
object or a record of it.
"""

from constdb._core import t_hash, t_hll, t_list, t_mv, t_set, t_string, t_zset  # noqa: F401  (type table)
