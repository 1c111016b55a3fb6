"""SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE, SUNSUBSCRIBE,
PUBSUB: Redis's Pub/Sub on this node, with messages published on any member
delivered to this node's subscribers too (constdb/pubsub.py). PUBLISH and
SPUBLISH are compiled (constdb/_core/pubsubcore.pyx)."""

from __future__ import annotations

from typing import Any

from constdb._core.codec import RespError, Status
from constdb._core.protocol import NO_REPLY
from constdb.commands import command
from constdb.commands.common import text
from constdb.pubsub import CHANNEL, PATTERN, SHARD


@command("subscribe")
def subscribe(c: Any, argv: list[bytes]) -> Any:
    c.srv.pubsub.subscribe(c, CHANNEL, argv[1:])
    return NO_REPLY


@command("psubscribe")
def psubscribe(c: Any, argv: list[bytes]) -> Any:
    c.srv.pubsub.subscribe(c, PATTERN, argv[1:])
    return NO_REPLY


@command("ssubscribe")
def ssubscribe(c: Any, argv: list[bytes]) -> Any:
    c.srv.pubsub.subscribe(c, SHARD, argv[1:])
    return NO_REPLY


@command("unsubscribe")
def unsubscribe(c: Any, argv: list[bytes]) -> Any:
    c.srv.pubsub.unsubscribe(c, CHANNEL, argv[1:])
    return NO_REPLY


@command("punsubscribe")
def punsubscribe(c: Any, argv: list[bytes]) -> Any:
    c.srv.pubsub.unsubscribe(c, PATTERN, argv[1:])
    return NO_REPLY


@command("sunsubscribe")
def sunsubscribe(c: Any, argv: list[bytes]) -> Any:
    c.srv.pubsub.unsubscribe(c, SHARD, argv[1:])
    return NO_REPLY


@command("pubsub")
def pubsub(c: Any, argv: list[bytes]) -> Any:
    # a container named alone: never reached, its arity (-2) refuses that first
    raise RespError("ERR wrong number of arguments for 'pubsub' command")


def _one_pattern(argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise RespError(
            f"ERR unknown subcommand or wrong number of arguments for '{text(argv[1])}'."
            " Try PUBSUB HELP."
        )
    return argv[2] if len(argv) > 2 else None


@command("pubsub|channels")
def pubsub_channels(c: Any, argv: list[bytes]) -> Any:
    return c.srv.pubsub.active(CHANNEL, _one_pattern(argv))


@command("pubsub|shardchannels")
def pubsub_shardchannels(c: Any, argv: list[bytes]) -> Any:
    return c.srv.pubsub.active(SHARD, _one_pattern(argv))


@command("pubsub|numsub")
def pubsub_numsub(c: Any, argv: list[bytes]) -> Any:
    return c.srv.pubsub.numsub(CHANNEL, argv[2:])


@command("pubsub|shardnumsub")
def pubsub_shardnumsub(c: Any, argv: list[bytes]) -> Any:
    return c.srv.pubsub.numsub(SHARD, argv[2:])


@command("pubsub|numpat")
def pubsub_numpat(c: Any, argv: list[bytes]) -> Any:
    return len(c.srv.pubsub.patterns)


PUBSUB_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]


@command("pubsub|help")
def pubsub_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in PUBSUB_HELP]
