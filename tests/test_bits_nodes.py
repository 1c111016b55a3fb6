"""Bits across real nodes (docs/crdt.md section 3.1, "Bits"): SETBITs of
different bits made on two nodes while their link is cut both survive; a
SETBIT concurrent with a SET resolves by ts; once the group is quiet the
overrides are folded into the register (GC at the stable point); a full sync
carries pending overrides."""

from __future__ import annotations

from support.nodes import (
    cut_link,
    heal_link,
    make_node,
    meet,
    proxied_pair,
    wait_converged,
    wait_for,
    wait_linked,
)


def desc(r, key) -> dict:
    d = r.execute_command("DESC", key)
    # DESC answers one block per object: [type, t, last-write, ..., name, value...]
    obj = d[0] if d and isinstance(d[0], list) else d
    return dict(zip(obj[::2], obj[1::2]))


def test_concurrent_setbits_of_different_bits_both_survive(node):
    a, b, pa, pb = proxied_pair(node)
    ra, rb = a.client(), b.client()
    ra.set("k", b"\x00\x00\x00")
    wait_converged([a, b])
    cut_link(pa, pb, a, b)
    assert ra.setbit("k", 1, 1) == 0
    assert ra.setbit("k", 23, 1) == 0
    assert rb.setbit("k", 10, 1) == 0
    assert rb.setbit("fresh", 3, 1) == 0
    assert ra.setbit("fresh", 12, 1) == 0
    assert rb.execute_command("BITFIELD", "k", "SET", "u4", 28, 9) == [0]
    heal_link(pa, pb, a, b)
    for r in (ra, rb):
        assert r.get("k") == b"\x40\x20\x01\x09"
        assert r.get("fresh") == b"\x10\x08"
        assert r.bitcount("k") == 5


def test_setbit_concurrent_with_set_resolves_by_ts(node):
    a, b, pa, pb = proxied_pair(node)
    ra, rb = a.client(), b.client()
    ra.set("k", b"\x00")
    wait_converged([a, b])
    cut_link(pa, pb, a, b)
    ra.set("k", b"\xf0")
    rb.setbit("k", 7, 1)
    set_ts = desc(ra, "k")[b"register"][1:]
    bit_ts = desc(rb, "k")[b"bits"][0][2:]
    heal_link(pa, pb, a, b)
    want = b"\xf1" if bit_ts > set_ts else b"\xf0"
    assert ra.get("k") == rb.get("k") == want


def test_overrides_fold_once_the_group_is_quiet(node):
    a, b, pa, pb = proxied_pair(node)
    ra, rb = a.client(), b.client()
    cut_link(pa, pb, a, b)
    ra.setbit("k", 0, 1)
    rb.setbit("k", 9, 1)
    assert b"bits" in desc(ra, "k")
    heal_link(pa, pb, a, b)
    # every node applied both and said so in its heartbeats: the stable point
    # passes them and each node folds them into its register
    wait_for(
        lambda: b"bits" not in desc(ra, "k") and b"bits" not in desc(rb, "k"),
        30,
        what="overrides folded",
    )
    assert ra.get("k") == rb.get("k") == b"\x80\x40"
    wait_converged([a, b])


def test_a_node_alone_folds_at_once_and_a_full_sync_carries_bits(node):
    a = make_node(node, "a")
    ra = a.client()
    ra.setbit("k", 5, 1)
    ra.execute_command("BITFIELD", "k", "INCRBY", "u8", 8, 200)
    assert b"bits" not in desc(ra, "k")
    b = make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    wait_converged([a, b])
    rb = b.client()
    assert rb.get("k") == b"\x04\xc8"
    rb.setbit("k", 0, 1)
    wait_converged([a, b])
    assert ra.get("k") == b"\x84\xc8"
