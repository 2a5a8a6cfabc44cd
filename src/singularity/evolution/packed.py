"""A population as packed token arrays, and the parent's per-generation work on it in numba.

The parent of a GP run used to hold one (code, vals) pair per individual and walk them in
Python every generation (unpack each child, re-pack the population for the workers, hash
each new child for the trial log): a few microseconds per individual, all of it serial.
Here the population is three arrays (``code``, ``vals``, ``offsets`` as ``program.pack``
makes them) and those steps are array gathers and a compiled hash set, so the parent's time
per generation hardly grows with the population.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np
from numba import njit

from singularity.evolution.program import Program, pack, unpack

Packed = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(code int32, vals float32, offsets int64[n + 1])."""


def concat(parts: list[Packed]) -> Packed:
    """Programs of ``parts`` one after another."""
    parts = [p for p in parts if len(p[2]) > 1]
    if not parts:
        return pack([])
    code = np.concatenate([p[0] for p in parts])
    vals = np.concatenate([p[1] for p in parts])
    offs = [np.zeros(1, dtype=np.int64)]
    base = 0
    for p in parts:
        offs.append(p[2][1:] - p[2][0] + base)
        base += int(p[2][-1] - p[2][0])
    return code, vals, np.concatenate(offs)


@njit(cache=True, nogil=True)
def _gather2(
    code_a: np.ndarray, vals_a: np.ndarray, offs_a: np.ndarray,
    code_b: np.ndarray, vals_b: np.ndarray, offs_b: np.ndarray, idx: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_a = offs_a.shape[0] - 1
    n = idx.shape[0]
    out_offs = np.zeros(n + 1, dtype=np.int64)
    for j in range(n):
        i = idx[j]
        if i < n_a:
            out_offs[j + 1] = out_offs[j] + offs_a[i + 1] - offs_a[i]
        else:
            out_offs[j + 1] = out_offs[j] + offs_b[i - n_a + 1] - offs_b[i - n_a]
    out_code = np.empty(out_offs[n], dtype=code_a.dtype)
    out_vals = np.empty(out_offs[n], dtype=vals_a.dtype)
    for j in range(n):
        i = idx[j]
        b = out_offs[j]
        if i < n_a:
            a = offs_a[i]
            for k in range(offs_a[i + 1] - a):
                out_code[b + k] = code_a[a + k]
                out_vals[b + k] = vals_a[a + k]
        else:
            a = offs_b[i - n_a]
            for k in range(offs_b[i - n_a + 1] - a):
                out_code[b + k] = code_b[a + k]
                out_vals[b + k] = vals_b[a + k]
    return out_code, out_vals, out_offs


def gather2(first: Packed, second: Packed, idx: np.ndarray) -> Packed:
    """``gather`` over the programs of ``first`` followed by those of ``second`` (without
    building that concatenation)."""
    return _gather2(
        *first, second[0].astype(first[0].dtype, copy=False),
        second[1].astype(first[1].dtype, copy=False), second[2],
        np.ascontiguousarray(idx, dtype=np.int64),
    )


def gather(packed: Packed, idx: np.ndarray) -> Packed:
    """Programs ``idx`` of ``packed``, in that order (repeats allowed)."""
    code, vals, offs = packed
    return gather2(packed, (code[:0], vals[:0], np.zeros(1, dtype=offs.dtype)), idx)


def program(packed: Packed, i: int) -> Program:
    return unpack(packed[0], packed[1], packed[2], i)


# ------------------------------------------------------------------------ the trial set

_EMPTY = -1


@njit(cache=True, nogil=True)
def _hash(code: np.ndarray, bits: np.ndarray, a: int, b: int) -> np.uint64:
    h = np.uint64(1469598103934665603)
    p = np.uint64(1099511628211)
    for k in range(a, b):
        h = (h ^ np.uint64(np.uint32(code[k]))) * p
        h = (h ^ np.uint64(np.uint32(bits[k]))) * p
    h ^= h >> np.uint64(29)
    return h


@njit(cache=True, nogil=True)
def _same(
    code: np.ndarray, bits: np.ndarray, a: int, b: int,
    t_code: np.ndarray, t_bits: np.ndarray, c: int, d: int,
) -> bool:
    if b - a != d - c:
        return False
    for k in range(b - a):
        if code[a + k] != t_code[c + k] or bits[a + k] != t_bits[c + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _slot(
    table: np.ndarray, code: np.ndarray, bits: np.ndarray, a: int, b: int,
    t_code: np.ndarray, t_bits: np.ndarray, t_offs: np.ndarray,
) -> np.uint64:
    """The slot of program code/bits[a:b]: its entry's, or the empty one it would take."""
    mask = np.uint64(table.shape[0] - 1)
    slot = _hash(code, bits, a, b) & mask
    while True:
        t = table[slot]
        if t == _EMPTY or _same(code, bits, a, b, t_code, t_bits, t_offs[t], t_offs[t + 1]):
            return slot
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True)
def _append(
    table: np.ndarray, slot: np.uint64,
    t_code: np.ndarray, t_bits: np.ndarray, t_offs: np.ndarray, t: int,
    code: np.ndarray, bits: np.ndarray, a: int, b: int,
) -> None:
    """Store program code/bits[a:b] as entry ``t`` (the next one) in empty ``slot``."""
    table[slot] = t
    c = t_offs[t]
    for k in range(b - a):
        t_code[c + k] = code[a + k]
        t_bits[c + k] = bits[a + k]
    t_offs[t + 1] = c + b - a


@njit(cache=True, nogil=True)
def _insert(
    table: np.ndarray,
    t_code: np.ndarray, t_bits: np.ndarray, t_offs: np.ndarray, t_sharpe: np.ndarray,
    n_trials: int,
    code: np.ndarray, bits: np.ndarray, offs: np.ndarray, idx: np.ndarray, sharpe: np.ndarray,
) -> int:
    """Add programs ``idx`` not seen before (in order); the caller sized every array.
    Returns the new trial count."""
    for j in range(idx.shape[0]):
        i = idx[j]
        a = offs[i]
        b = offs[i + 1]
        slot = _slot(table, code, bits, a, b, t_code, t_bits, t_offs)
        if table[slot] != _EMPTY:
            continue  # met before
        _append(table, slot, t_code, t_bits, t_offs, n_trials, code, bits, a, b)
        t_sharpe[n_trials] = sharpe[i]
        n_trials += 1
    return n_trials


@njit(cache=True, nogil=True)
def _rehash(table: np.ndarray, t_code: np.ndarray, t_bits: np.ndarray, t_offs: np.ndarray,
            n_trials: int) -> None:
    mask = np.uint64(table.shape[0] - 1)
    for t in range(n_trials):
        slot = _hash(t_code, t_bits, t_offs[t], t_offs[t + 1]) & mask
        while table[slot] != _EMPTY:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = t


class _Store:
    """Distinct programs (tokens, constant bits, offsets) and the hash table over them; a
    subclass keeps per-entry rows and grows them in ``_grow_rows``."""

    def __init__(self) -> None:
        self.n = 0
        self._code = np.empty(1024, dtype=np.int32)
        self._bits = np.empty(1024, dtype=np.int32)
        self._offs = np.zeros(257, dtype=np.int64)
        self._table = np.full(1024, _EMPTY, dtype=np.int64)

    def _grow_rows(self, size: int) -> None:
        raise NotImplementedError

    def _reserve(self, entries: int, tokens: int) -> None:
        if tokens > self._code.size:
            size = max(tokens, 2 * self._code.size)
            self._code = _grown(self._code, size)
            self._bits = _grown(self._bits, size)
        if entries + 1 > self._offs.size:
            size = max(entries + 1, 2 * self._offs.size)
            self._offs = _grown(self._offs, size)
            self._grow_rows(size)
        if 2 * entries > self._table.size:  # load factor <= 1/2
            size = self._table.size
            while 2 * entries > size:
                size *= 2
            self._table = np.full(size, _EMPTY, dtype=np.int64)
            _rehash(self._table, self._code, self._bits, self._offs, self.n)


class TrialSet(_Store):
    """Distinct programs in the order first met, each with a figure (its Sharpe ratio).
    Programs are equal when their ``program_key`` is: same tokens, same constant bits."""

    def __init__(self) -> None:
        super().__init__()
        self._sharpe = np.empty(256)
        # Load the compiled growth step now (numba's cache: tens of ms), not mid-run.
        _rehash(self._table, self._code, self._bits, self._offs, 0)

    def add(self, packed: Packed, idx: np.ndarray, sharpe: np.ndarray) -> None:
        """Programs ``idx`` of ``packed`` (with ``sharpe[idx]``) that are new, in order."""
        code, vals, offs = packed
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        if idx.size == 0:
            return
        tokens = int((offs[idx + 1] - offs[idx]).sum())
        self._reserve(self.n + idx.size, int(self._offs[self.n]) + tokens)
        bits = np.ascontiguousarray(vals, dtype=np.float32).view(np.int32)
        self.n = _insert(
            self._table, self._code, self._bits, self._offs, self._sharpe, self.n,
            np.ascontiguousarray(code, dtype=np.int32), bits, offs.astype(np.int64, copy=False),
            idx, np.ascontiguousarray(sharpe, dtype=np.float64),
        )

    def _grow_rows(self, size: int) -> None:
        self._sharpe = _grown(self._sharpe, size)

    def sharpe(self) -> np.ndarray:
        return self._sharpe[: self.n]

    def programs(self) -> PackedPrograms:
        """The trials in order, as a read-only sequence of programs (a snapshot)."""
        end = int(self._offs[self.n])
        return PackedPrograms((
            self._code[:end].copy(), self._bits[:end].view(np.float32).copy(),
            self._offs[: self.n + 1].copy(),
        ))


class PackedPrograms(Sequence[Program]):
    """Programs of a packed array, one built on access (a run meets tens of thousands of
    trials; most users sample a few hundred)."""

    def __init__(self, packed: Packed) -> None:
        self._packed = packed

    def __len__(self) -> int:
        return len(self._packed[2]) - 1

    @overload
    def __getitem__(self, i: int) -> Program: ...
    @overload
    def __getitem__(self, i: slice) -> list[Program]: ...

    def __getitem__(self, i: int | slice) -> Program | list[Program]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return program(self._packed, i % n)


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    out = np.empty(size, dtype=a.dtype)
    out[: a.size] = a
    return out


# ----------------------------------------------------------------- a table of programs


@njit(cache=True, nogil=True)
def _find_or_add(
    table: np.ndarray,
    t_code: np.ndarray, t_bits: np.ndarray, t_offs: np.ndarray, n_entries: int,
    code: np.ndarray, bits: np.ndarray, offs: np.ndarray, add: bool,
) -> tuple[np.ndarray, int]:
    """Entry id of every program of (code, bits, offs); -1 for one not in the table unless
    ``add`` (then it becomes the next entry; the caller sized every array)."""
    n = offs.shape[0] - 1
    ids = np.empty(n, dtype=np.int64)
    for i in range(n):
        a = offs[i]
        b = offs[i + 1]
        slot = _slot(table, code, bits, a, b, t_code, t_bits, t_offs)
        t = table[slot]
        if t == _EMPTY and add:
            t = n_entries
            _append(table, slot, t_code, t_bits, t_offs, t, code, bits, a, b)
            n_entries += 1
        ids[i] = t
    return ids, n_entries


class ProgramTable(_Store):
    """Distinct programs (equal when their ``program_key`` is), each with a row of figures;
    lookups and inserts of a whole packed batch in one compiled call."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.values = np.zeros((256, width))

    def ids(self, packed: Packed, *, add: bool) -> np.ndarray:
        """Entry ids of ``packed``'s programs: -1 where absent, unless ``add`` (new entries
        in first-met order, their ``values`` rows zero until set)."""
        code, vals, offs = packed
        offs = offs.astype(np.int64, copy=False)
        if add:
            self._reserve(self.n + len(offs) - 1, int(self._offs[self.n]) + int(offs[-1] - offs[0]))
        bits = np.ascontiguousarray(vals, dtype=np.float32).view(np.int32)
        ids, self.n = _find_or_add(
            self._table, self._code, self._bits, self._offs, self.n,
            np.ascontiguousarray(code, dtype=np.int32), bits, offs, add,
        )
        return ids

    def _grow_rows(self, size: int) -> None:
        grown = np.zeros((size, self.values.shape[1]))
        grown[: self.values.shape[0]] = self.values
        self.values = grown
