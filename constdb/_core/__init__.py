"""Compiled core of ConstDB (Cython): clock, codecs, CRDT objects, keyspace, protocol."""
