"""Replication: links, handshake, streams, membership, full sync."""
