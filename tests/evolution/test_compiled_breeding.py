"""Compiled breeding gives exactly the children of ``variation.make_child``: the same
Mersenne Twister draws as Python's ``random.Random(seed)``, the same tournaments, crossover
points and size limits."""

from __future__ import annotations

import random

import numpy as np
from gp_data import random_market

from singularity.evolution import token_ops as T
from singularity.evolution.breeding import COPY, MUTATE, NEW, breed_tokens, random_sequence
from singularity.evolution.evaluator import codec_for
from singularity.evolution.program import pack, program_key, unpack
from singularity.evolution.settings import EvolutionSettings
from singularity.evolution.synthesizer import evolve, variation_params
from singularity.evolution.variation import make_child, random_tree


def test_mersenne_twister_draws_equal_pythons() -> None:
    for seed in (0, 1, 42, 2**32 - 1, 2**32, 2**40 + 12345, 2**62 - 1):
        want = random.Random(seed)
        got = random_sequence(seed, 1500)  # past one twist of the 624-word state
        assert got.tolist() == [want.random() for _ in range(1500)], seed


def test_compiled_children_equal_make_child() -> None:
    inputs, _ = random_market(200, 4, 1)
    codec = codec_for(tuple(inputs.columns))
    params = variation_params(EvolutionSettings(max_size=30, max_height=6))
    rng = np.random.default_rng(7)
    progs = [random_tree(codec, int(s), params) for s in rng.integers(0, 2**62, 300)]
    code, vals, offs = pack(progs)
    fitness = rng.normal(size=len(progs)).round(1)  # ties exercise the index rule
    seeds = rng.integers(0, 2**62, 2000)
    lo = np.where(np.arange(2000) % 2 == 0, 0, 150)
    hi = lo + 150
    kind, src, c_code, c_vals, c_offs = breed_tokens(
        code, vals, offs, fitness, seeds, lo, hi, params.crossover_prob, params.mutation_prob,
        params.tournament_size, params.max_height, params.max_size, T.ARITY, T.RET)
    fit = fitness.tolist()
    k = 0
    seen = set()
    for j, s in enumerate(seeds.tolist()):
        child, copy = make_child(codec, progs.__getitem__, lambda i: codec.decode(progs[i]), fit,
                                 int(lo[j]), int(hi[j]), s, params)
        seen.add(int(kind[j]))
        if kind[j] == MUTATE:
            continue
        if kind[j] == NEW:
            assert child is not None and copy == -1
            assert program_key(unpack(c_code, c_vals, c_offs, k)) == program_key(child)
            k += 1
        else:
            assert kind[j] == COPY and child is None and copy == src[j]
    assert seen == {COPY, NEW, MUTATE}
    assert k == len(c_offs) - 1


def test_fixed_seed_run_with_compiled_breeding_matches_make_child(monkeypatch) -> None:
    """A whole run through the compiled path equals one where every child is built by
    make_child (the compiled path disabled: every child flagged as a mutation)."""
    import singularity.evolution.evaluator as E

    inputs, candles = random_market(400, 4, 2)
    kw = dict(population=120, generations=3, seed=5,
              settings=EvolutionSettings(stagnation_generations=100))
    fast = evolve(inputs, candles, **kw)

    def python_only(*a):  # type: ignore[no-untyped-def]
        n = len(a[4])
        return (np.full(n, MUTATE), np.full(n, -1), a[0][:0], a[1][:0], np.zeros(1, np.int64))

    monkeypatch.setattr(E, "breed_tokens", python_only)
    slow = evolve(inputs, candles, **kw)
    assert [h.to_dict() for h in fast.hall_of_fame] == [h.to_dict() for h in slow.hall_of_fame]
    assert [g.best for g in fast.generations] == [g.best for g in slow.generations]
    assert fast.distinct_trials == slow.distinct_trials
