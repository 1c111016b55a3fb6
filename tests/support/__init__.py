"""What the tests share: the raw RESP client (resp), server processes and
node groups (nodes), the fault proxy (proxy), byte-for-byte comparison with
redis-server (differential) and the Hypothesis profiles (profiles). The
fixtures themselves live in tests/conftest.py; the in-process nodes of the
CRDT tests (a Keyspace and its handlers, no process) in core."""
