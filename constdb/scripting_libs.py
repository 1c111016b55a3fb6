"""The libraries Redis loads into its Lua state that lupa's Lua lacks:
cjson, cmsgpack, bit and struct, as Python functions in Lua tables, with
Redis's behaviour for the common cases (constdb/scripting.py installs them)."""

from __future__ import annotations

import json
import math
import struct as _st
from typing import Any

NESTING = 1000  # cjson's encode/decode depth limit


class LuaLibError(Exception):
    pass


# ---- bit (LuaBitOp) ----------------------------------------------------------


def _tobit(x: Any) -> int:
    if isinstance(x, bytes):
        x = float(x)
    v = int(round(float(x))) & 0xFFFFFFFF  # LuaBitOp: to the nearest integer, modulo 2^32
    return v - 0x100000000 if v & 0x80000000 else v


def _u(x: Any) -> int:
    return _tobit(x) & 0xFFFFFFFF


def _signed(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def _band(*a: Any) -> int:
    r = 0xFFFFFFFF
    for x in a:
        r &= _u(x)
    return _signed(r)


def _bor(*a: Any) -> int:
    r = 0
    for x in a:
        r |= _u(x)
    return _signed(r)


def _bxor(*a: Any) -> int:
    r = 0
    for x in a:
        r ^= _u(x)
    return _signed(r)


def _tohex(x: Any, n: Any = 8) -> bytes:
    n = _tobit(n)
    upper = n < 0
    n = min(abs(n), 8) or 8
    s = f"{_u(x):08x}"
    s = s[8 - n :]
    return (s.upper() if upper else s).encode()


def _rol(x: Any, n: Any) -> int:
    v, n = _u(x), _u(n) & 31
    return _signed((v << n) | (v >> (32 - n)))


def _ror(x: Any, n: Any) -> int:
    v, n = _u(x), _u(n) & 31
    return _signed((v >> n) | (v << (32 - n)))


BIT = {
    "tobit": _tobit,
    "tohex": _tohex,
    "bnot": lambda x: _signed(~_u(x)),
    "band": _band,
    "bor": _bor,
    "bxor": _bxor,
    "lshift": lambda x, n: _signed(_u(x) << (_u(n) & 31)),
    "rshift": lambda x, n: _signed(_u(x) >> (_u(n) & 31)),
    "arshift": lambda x, n: _signed(_tobit(x) >> (_u(n) & 31)),
    "rol": _rol,
    "ror": _ror,
    "bswap": lambda x: _signed(int.from_bytes(_u(x).to_bytes(4, "little"), "big")),
}


# ---- cjson ---------------------------------------------------------------------


def _fmt_num(x: Any) -> bytes:
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        raise LuaLibError("Cannot serialise number: must not be NaN or Inf")
    if isinstance(x, int):
        if abs(x) < 10**14:
            return str(x).encode()
        x = float(x)
    return b"%.14g" % x


_ESC = {i: (f"\\u{i:04x}").encode() for i in range(32)}
_ESC.update({8: b"\\b", 9: b"\\t", 10: b"\\n", 12: b"\\f", 13: b"\\r"})
_ESC[34] = b'\\"'
_ESC[92] = b"\\\\"
_ESC[47] = b"\\/"
_ESC[127] = b"\\u007f"


def _enc_str(s: bytes) -> bytes:
    out = bytearray(b'"')
    for ch in s:
        e = _ESC.get(ch)
        if e is None:
            out.append(ch)
        else:
            out += e
    out += b'"'
    return bytes(out)


class Codecs:
    def __init__(self, lua: Any) -> None:
        self.lua = lua
        self.null = lua.eval("newproxy(false)")
        self.lua_type = lua.globals().type
        self.is_null = lua.execute(
            b"local n = ... return function(v) return rawequal(v, n) end", self.null
        )

    # cjson
    def encode(self, *a: Any) -> bytes:
        if len(a) != 1:
            raise LuaLibError("bad argument #1 to 'encode' (expected 1 argument)")
        out: list[bytes] = []
        self._enc(a[0], out, 0)
        return b"".join(out)

    def _enc(self, v: Any, out: list[bytes], depth: int) -> None:
        if v is None or (type(v) not in (bytes, int, float, bool) and self.is_null(v)):
            out.append(b"null")
        elif v is True:
            out.append(b"true")
        elif v is False:
            out.append(b"false")
        elif isinstance(v, (int, float)):
            out.append(_fmt_num(v))
        elif isinstance(v, bytes):
            out.append(_enc_str(v))
        elif self.lua_type(v) == b"table":
            depth += 1
            if depth > NESTING:
                raise LuaLibError(f"Cannot serialise, excessive nesting ({depth})")
            items = list(v.items())
            n = 0
            arr = True
            for k, _ in items:
                if isinstance(k, int) and k >= 1:
                    n = max(n, k)
                else:
                    arr = False
                    break
            if arr and items and n > 10 and n > 2 * len(items):
                raise LuaLibError("Cannot serialise table: excessively sparse array")
            if arr and items:
                out.append(b"[")
                for i in range(1, n + 1):
                    if i > 1:
                        out.append(b",")
                    self._enc(v[i], out, depth)
                out.append(b"]")
                return
            out.append(b"{")
            first = True
            for k, x in items:
                if not first:
                    out.append(b",")
                first = False
                if isinstance(k, bytes):
                    out.append(_enc_str(k))
                elif isinstance(k, (int, float)):
                    out.append(b'"' + _fmt_num(k) + b'"')
                else:
                    raise LuaLibError(
                        "Cannot serialise table: table key must be a number or string"
                    )
                out.append(b":")
                self._enc(x, out, depth)
            out.append(b"}")
        else:
            t = self.lua_type(v).decode()
            raise LuaLibError(f"Cannot serialise {t}: type not supported")

    def decode(self, *a: Any) -> Any:
        if len(a) != 1:
            raise LuaLibError("bad argument #1 to 'decode' (expected 1 argument)")
        s = a[0]
        if not isinstance(s, bytes):
            s = str(s).encode()
        try:
            v = json.loads(
                s.decode("utf-8", "surrogateescape"),
                parse_constant=lambda c: float(c) if c != "NaN" else math.nan,
            )
        except (ValueError, RecursionError) as e:
            pos = getattr(e, "pos", 0) + 1
            raise LuaLibError(f"Expected value but found invalid token at character {pos}")
        return self._to_lua(v)

    def _to_lua(self, v: Any) -> Any:
        if v is None:
            return self.null
        if isinstance(v, str):
            return v.encode("utf-8", "surrogateescape")
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return float(v) if abs(v) >= 2**53 else v
        if isinstance(v, list):
            return self.lua.table_from([self._to_lua(x) for x in v])
        if isinstance(v, dict):
            return self.lua.table_from(
                {k.encode("utf-8", "surrogateescape"): self._to_lua(x) for k, x in v.items()}
            )
        return v

    # cmsgpack
    def mp_pack(self, *a: Any) -> bytes:
        if not a:
            raise LuaLibError("MessagePack pack needs input.")
        out = bytearray()
        for v in a:
            self._mp(v, out, 0)
        return bytes(out)

    def _mp(self, v: Any, out: bytearray, depth: int) -> None:
        if v is None:
            out.append(0xC0)
        elif v is True:
            out.append(0xC3)
        elif v is False:
            out.append(0xC2)
        elif isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 2**63):
            _mp_int(int(v), out)
        elif isinstance(v, float):
            f = _st.unpack(">f", _st.pack(">f", v))[0] if abs(v) < 3.4e38 or math.isinf(v) else None
            if f == v or (math.isnan(v)):
                out.append(0xCA)
                out += _st.pack(">f", v)
            else:
                out.append(0xCB)
                out += _st.pack(">d", v)
        elif isinstance(v, bytes):
            n = len(v)
            if n < 32:
                out.append(0xA0 | n)
            elif n <= 0xFF:
                out += bytes((0xD9, n))
            elif n <= 0xFFFF:
                out.append(0xDA)
                out += _st.pack(">H", n)
            else:
                out.append(0xDB)
                out += _st.pack(">I", n)
            out += v
        elif self.lua_type(v) == b"table":
            if depth >= 16:
                out.append(0xC0)
                return
            items = list(v.items())
            n = len(items)
            arr = all(isinstance(k, int) and k >= 1 for k, _ in items) and (
                not items or max(k for k, _ in items) == n
            )
            if arr:
                _mp_len(out, n, 0x90, 0xDC)
                for i in range(1, n + 1):
                    self._mp(v[i], out, depth + 1)
            else:
                _mp_len(out, n, 0x80, 0xDE)
                for k, x in items:
                    self._mp(k, out, depth + 1)
                    self._mp(x, out, depth + 1)
        else:
            out.append(0xC0)  # functions, userdata...: nil

    def mp_unpack(self, *a: Any) -> Any:
        if len(a) != 1 or not isinstance(a[0], bytes):
            raise LuaLibError("MessagePack unpack needs input.")
        s = a[0]
        pos = 0
        vals = []
        while pos < len(s):
            v, pos = self._mp_dec(s, pos)
            vals.append(v)
        return tuple(vals)

    def _mp_dec(self, s: bytes, p: int) -> tuple[Any, int]:
        try:
            return self._mp_dec1(s, p)
        except (IndexError, _st.error):
            raise LuaLibError("Missing bytes in input.")

    def _mp_dec1(self, s: bytes, p: int) -> tuple[Any, int]:
        b = s[p]
        p += 1
        if b <= 0x7F:
            return b, p
        if b >= 0xE0:
            return b - 256, p
        if 0xA0 <= b <= 0xBF:
            n = b & 0x1F
            return s[p : p + n], p + n
        if 0x90 <= b <= 0x9F:
            return self._mp_arr(s, p, b & 0x0F)
        if 0x80 <= b <= 0x8F:
            return self._mp_map(s, p, b & 0x0F)
        fixed = {
            0xCC: ">B",
            0xCD: ">H",
            0xCE: ">I",
            0xCF: ">Q",
            0xD0: ">b",
            0xD1: ">h",
            0xD2: ">i",
            0xD3: ">q",
            0xCA: ">f",
            0xCB: ">d",
        }
        if b in fixed:
            f = fixed[b]
            n = _st.calcsize(f)
            if p + n > len(s):
                raise IndexError
            return _st.unpack_from(f, s, p)[0], p + n
        if b == 0xC0:
            return None, p
        if b == 0xC2:
            return False, p
        if b == 0xC3:
            return True, p
        lens = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
        if b in lens:
            f = lens[b]
            n = _st.unpack_from(f, s, p)[0]
            p += _st.calcsize(f)
            if p + n > len(s):
                raise IndexError
            return s[p : p + n], p + n
        if b in (0xDC, 0xDD):
            f = ">H" if b == 0xDC else ">I"
            n = _st.unpack_from(f, s, p)[0]
            return self._mp_arr(s, p + _st.calcsize(f), n)
        if b in (0xDE, 0xDF):
            f = ">H" if b == 0xDE else ">I"
            n = _st.unpack_from(f, s, p)[0]
            return self._mp_map(s, p + _st.calcsize(f), n)
        raise LuaLibError("Bad data format in input.")

    def _mp_arr(self, s: bytes, p: int, n: int) -> tuple[Any, int]:
        t = self.lua.table()
        for i in range(1, n + 1):
            v, p = self._mp_dec1(s, p)
            t[i] = v
        return t, p

    def _mp_map(self, s: bytes, p: int, n: int) -> tuple[Any, int]:
        t = self.lua.table()
        for _ in range(n):
            k, p = self._mp_dec1(s, p)
            v, p = self._mp_dec1(s, p)
            if k is not None:
                t[k] = v
        return t, p


def _mp_len(out: bytearray, n: int, fix: int, c16: int) -> None:
    """An array's or a map's header: fix | n, or the 16- or 32-bit form."""
    if n <= 15:
        out.append(fix | n)
    elif n <= 0xFFFF:
        out.append(c16)
        out += _st.pack(">H", n)
    else:
        out.append(c16 + 1)
        out += _st.pack(">I", n)


def _mp_int(v: int, out: bytearray) -> None:
    if v >= 0:
        if v <= 0x7F:
            out.append(v)
        elif v <= 0xFF:
            out += bytes((0xCC, v))
        elif v <= 0xFFFF:
            out.append(0xCD)
            out += _st.pack(">H", v)
        elif v <= 0xFFFFFFFF:
            out.append(0xCE)
            out += _st.pack(">I", v)
        else:
            out.append(0xCF)
            out += _st.pack(">Q", v & 0xFFFFFFFFFFFFFFFF)
    elif v >= -32:
        out.append(v & 0xFF)
    elif v >= -128:
        out.append(0xD0)
        out += _st.pack(">b", v)
    elif v >= -32768:
        out.append(0xD1)
        out += _st.pack(">h", v)
    elif v >= -(2**31):
        out.append(0xD2)
        out += _st.pack(">i", v)
    else:
        out.append(0xD3)
        out += _st.pack(">q", v)


# ---- struct (Roberto Ierusalimschy's struct library) ---------------------------

_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "T": 8, "i": 4, "I": 4, "f": 4, "d": 8}


def _fmt_items(fmt: bytes):
    """(option, size) per item of a struct format; endianness and alignment
    options yielded as ('<', 0) etc."""
    f = fmt.decode("latin-1")
    i = 0
    while i < len(f):
        ch = f[i]
        i += 1
        j = i
        while j < len(f) and f[j].isdigit():
            j += 1
        num = int(f[i:j]) if j > i else None
        i = j
        if ch in " ":
            continue
        if ch in "<>=":
            yield ch, 0
        elif ch == "!":
            yield "!", num if num is not None else 8
        elif ch in "iI":
            n = num if num is not None else 4
            if n < 1 or n > 8:
                raise LuaLibError(f"integral size {n} is larger than limit of 8")
            yield ch, n
        elif ch in _SIZES:
            yield ch, _SIZES[ch]
        elif ch == "x":
            yield "x", 1
        elif ch == "c":
            yield "c", num if num is not None else 1
        elif ch == "s":
            yield "s", 0
        else:
            raise LuaLibError(f"invalid format option '{ch}'")


def _align(pos: int, size: int, maxalign: int) -> int:
    a = min(size, maxalign)
    if a <= 1 or size == 0:
        return 0
    return (-pos) % a


def st_pack(fmt: bytes, *vals: Any) -> bytes:
    out = bytearray()
    little, maxalign = True, 1
    vi = 0
    for opt, size in _fmt_items(fmt):
        if opt in "<>=":
            little = opt != ">"
            continue
        if opt == "!":
            maxalign = size
            continue
        if opt in "bBhHlLTiI":
            out += b"\0" * _align(len(out), size, maxalign)
            v = vals[vi]
            vi += 1
            n = int(float(v)) if not isinstance(v, int) else v
            n &= (1 << (8 * size)) - 1
            out += n.to_bytes(size, "little" if little else "big")
        elif opt in "fd":
            out += b"\0" * _align(len(out), size, maxalign)
            v = float(vals[vi])
            vi += 1
            out += _st.pack(("<" if little else ">") + opt, v)
        elif opt == "x":
            out += b"\0"
        elif opt == "c":
            v = vals[vi]
            vi += 1
            if not isinstance(v, bytes):
                v = str(v).encode()
            if size == 0:
                size = len(v)
            if len(v) < size:
                raise LuaLibError("string too short")
            out += v[:size]
        elif opt == "s":
            v = vals[vi]
            vi += 1
            if not isinstance(v, bytes):
                v = str(v).encode()
            if b"\0" in v:
                raise LuaLibError("string contains zeros")
            out += v + b"\0"
    return bytes(out)


def st_unpack(fmt: bytes, data: bytes, init: Any = 1) -> tuple:
    pos = int(init) - 1
    little, maxalign = True, 1
    res: list[Any] = []
    for opt, size in _fmt_items(fmt):
        if opt in "<>=":
            little = opt != ">"
            continue
        if opt == "!":
            maxalign = size
            continue
        if opt in "bBhHlLTiI" or opt in "fd":
            pos += _align(pos, size, maxalign)
            if pos + size > len(data):
                raise LuaLibError("data string too short")
            chunk = data[pos : pos + size]
            pos += size
            if opt in "fd":
                res.append(_st.unpack(("<" if little else ">") + opt, chunk)[0])
            else:
                n = int.from_bytes(chunk, "little" if little else "big", signed=opt in "bhli")
                res.append(float(n) if abs(n) >= 2**53 else n)
        elif opt == "x":
            pos += 1
        elif opt == "c":
            if size == 0:
                if not res:
                    raise LuaLibError("format 'c0' needs a previous size")
                size = int(res.pop())
            if pos + size > len(data):
                raise LuaLibError("data string too short")
            res.append(data[pos : pos + size])
            pos += size
        elif opt == "s":
            end = data.find(b"\0", pos)
            if end < 0:
                raise LuaLibError("unfinished string in data")
            res.append(data[pos:end])
            pos = end + 1
    res.append(pos + 1)
    return tuple(res)


def st_size(fmt: bytes) -> int:
    pos, maxalign = 0, 1
    for opt, size in _fmt_items(fmt):
        if opt == "!":
            maxalign = size
        elif opt in "<>=":
            continue
        elif opt in "s" or (opt == "c" and size == 0):
            raise LuaLibError("options 'c0' - 's' have undefined sizes")
        else:
            pos += _align(pos, size, maxalign) + size
    return pos


# ---- installing ------------------------------------------------------------------


WHERE = b"""
local dbg = debug
return function()
  local i = dbg.getinfo(3, "Sl")
  if i and i.currentline > 0 then return i.short_src .. ":" .. i.currentline .. ": " end
  return ""
end
"""


def _guard(fn: Any, where: Any) -> Any:
    """fn's errors as a C library's luaL_error words them: prefixed with the
    calling script's position."""

    def call(*a: Any) -> Any:
        try:
            return fn(*a)
        except LuaLibError as e:
            raise LuaLibError(where().decode() + str(e)) from None
        except (TypeError, ValueError, IndexError, OverflowError, _st.error) as e:
            raise LuaLibError(where().decode() + f"bad argument ({e})") from None

    return call


def install_libs(lua: Any) -> Any:
    """Make cjson, cmsgpack, bit and struct globals of the Lua state (before
    the sandbox is closed); returns the codecs object."""
    codecs = Codecs(lua)
    g = lua.globals()
    where = lua.execute(WHERE)

    def lib(name: str, fns: dict) -> Any:
        # Python functions are C functions to Lua: an error they raise has
        # no position, as one of a C library's
        t = lua.table_from({k.encode(): _guard(v, where) for k, v in fns.items()})
        g[name.encode()] = t
        return t

    lib("bit", BIT)
    lib("struct", {"pack": st_pack, "unpack": st_unpack, "size": st_size})
    cj = lib("cjson", {"encode": codecs.encode, "decode": codecs.decode})
    cj[b"null"] = codecs.null
    mp = lib("cmsgpack", {"pack": codecs.mp_pack, "unpack": codecs.mp_unpack})
    mp[b"_NAME"] = b"cmsgpack"
    cj[b"_NAME"] = b"cjson"
    return codecs
