"""The commands written in Python (off the hot path), one module per topic.

Every one is a module-level function `fn(client, argv)` marked with
`@command("name")` (or `"container|sub"`); it returns its reply as a value
(see WBuf.pyvalue) or raises RespError. Arity, flags, key positions and
documentation come from the command table (commands.toml via table.py) only:
`register_handlers(srv, modules)` names the handlers, as `add_command` does for the C
ones in constdb/_core/cmd_*.pyx.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Iterable

Handler = Callable[[Any, list], Any]


def command(*names: str) -> Callable[[Handler], Handler]:
    """Mark a module-level function as the handler of these commands."""

    def mark(fn: Handler) -> Handler:
        fn.command_names = names  # type: ignore[attr-defined]
        return fn

    return mark


def handlers(module: ModuleType) -> list[tuple[str, Handler]]:
    """The (full name, handler) pairs a module defines, containers first."""
    found = []
    for fn in vars(module).values():
        if getattr(fn, "__module__", None) != module.__name__:
            continue
        for name in getattr(fn, "command_names", ()):
            found.append((name, fn))
    found.sort(key=lambda x: "|" in x[0])
    return found


def register_handlers(srv: Any, modules: Iterable[ModuleType]) -> None:
    pairs = [p for m in modules for p in handlers(m)]
    pairs.sort(key=lambda x: "|" in x[0])
    for name, fn in pairs:
        srv.register_py(name.encode(), fn)
