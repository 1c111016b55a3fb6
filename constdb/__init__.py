"""ConstDB: an active-active, CRDT-replicated in-memory cache speaking the Redis protocol."""

__version__ = "0.1.0"
