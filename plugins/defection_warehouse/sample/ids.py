"""Deterministic, unique, random-looking ids in the style of the source systems."""

from __future__ import annotations

import hashlib
import math

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TRI = [a + b + c for a in _B62 for b in _B62 for c in _B62]
_T = len(_TRI)  # 62**3
_MOD = _T ** 5  # 62**15: 15 base-62 characters
# About MOD / golden ratio, odd and coprime with 31, so n -> n * _MULT mod _MOD is a bijection
# that spreads consecutive counters over the whole id space.
_MULT = int(_MOD * 0.6180339887498949) | 1
while math.gcd(_MULT, 62) != 1:
    _MULT += 2


class IdMaker:
    """``prefix`` + 15 base-62 characters from a scrambled counter (unique per maker)."""

    __slots__ = ("prefix", "n", "_add")

    def __init__(self, prefix: str, seed: int) -> None:
        self.prefix = prefix
        self.n = 0
        digest = hashlib.sha256(f"{prefix}:{seed}".encode()).digest()
        self._add = int.from_bytes(digest, "big") % _MOD

    def __call__(self) -> str:
        self.n += 1
        x = (self.n * _MULT + self._add) % _MOD
        x, a = divmod(x, _T)
        x, b = divmod(x, _T)
        x, c = divmod(x, _T)
        e, d = divmod(x, _T)
        return self.prefix + _TRI[e] + _TRI[d] + _TRI[c] + _TRI[b] + _TRI[a]


class Counter:
    """Sequential integer ids (CRM primary keys)."""

    __slots__ = ("n",)

    def __init__(self, start: int = 0) -> None:
        self.n = start

    def __call__(self) -> int:
        self.n += 1
        return self.n
