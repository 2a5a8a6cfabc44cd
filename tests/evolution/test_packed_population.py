"""The parent's packed population: gathers and the trial set give what the per-object code
gave (a dict keyed by ``program_key``, list indexing), and node counts are honest."""

from __future__ import annotations

import numpy as np
from gp_data import random_market

from singularity.evolution.evaluator import codec_for
from singularity.evolution.interpreter import plan
from singularity.evolution.packed import TrialSet, concat, gather, gather2, program
from singularity.evolution.program import pack, program_key
from singularity.evolution.settings import EvolutionSettings
from singularity.evolution.synthesizer import _best, evolve, variation_params
from singularity.evolution.variation import random_tree


def _programs(n: int, seed: int) -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 6))
        code = rng.integers(0, 4, k).astype(np.int32)
        vals = rng.choice(np.array([0.0, -0.0, 0.5, 1.0], dtype=np.float32), k)
        out.append((code, vals))
    return out


def test_trial_set_matches_a_dict_of_program_keys_through_growth() -> None:
    progs = _programs(3000, 1)  # many repeats (small alphabet), -0.0 and 0.0 distinct
    sharpe = np.random.default_rng(2).normal(size=len(progs))
    ref: dict[bytes, float] = {}
    for p, s in zip(progs, sharpe, strict=True):
        ref.setdefault(program_key(p), float(s))
    ts = TrialSet()
    packed = pack(progs)
    for a in range(0, len(progs), 700):  # several adds: the table and stores grow between
        ts.add(packed, np.arange(a, min(a + 700, len(progs))), sharpe)
    assert ts.n == len(ref)
    assert [program_key(p) for p in ts.programs()] == list(ref)
    assert ts.sharpe().tolist() == list(ref.values())


def test_gather_and_concat_equal_list_indexing() -> None:
    progs = _programs(50, 3)
    more = _programs(7, 4)
    both = concat([pack(progs), pack([]), pack(more)])
    idx = np.array([56, 0, 3, 3, 50, 49])
    got = gather(both, idx)
    want = [program_key((progs + more)[i]) for i in idx]
    assert [program_key(program(got, i)) for i in range(len(idx))] == want
    got2 = gather2(pack(progs), pack(more), idx)
    assert [program_key(program(got2, i)) for i in range(len(idx))] == want


def test_generation_nodes_count_only_computed_nodes() -> None:
    """Gen 0 in one batch: the distinct trees' DAG nodes (shared subtrees once), not the sum
    of tree sizes (what was counted before)."""
    inputs, candles = random_market(300, 4, 5)
    settings = EvolutionSettings(batch_size=400)
    r = evolve(inputs, candles, population=400, generations=0, seed=3, settings=settings)
    codec = codec_for(tuple(inputs.columns))
    seeds = np.random.default_rng(3).integers(0, 2**62, 400)
    trees = [random_tree(codec, int(s), variation_params(settings)) for s in seeds]
    distinct = list({program_key(t): t for t in trees}.values())
    g = r.generations[0]
    assert g.tree_nodes == sum(len(c) for c, _ in trees)
    assert g.nodes == plan(distinct, inputs.shape[1]).n_nodes
    assert g.nodes < g.tree_nodes


def test_packed_metrics_cache_equals_the_evaluator_and_never_serves_a_failed_batch(
    monkeypatch,
) -> None:
    import pytest

    import singularity.evolution.evaluator as E
    from singularity.config import CostSettings
    from singularity.evolution.synthesizer import eval_config

    inputs, candles = random_market(300, 4, 6)
    codec = codec_for(tuple(inputs.columns))
    settings = EvolutionSettings()
    params = variation_params(settings)
    trees = [random_tree(codec, s, params) for s in range(60)]
    batch = trees[:40] + trees[:5]  # repeats within the batch
    data = E.market_arrays(inputs, candles)
    cfg = eval_config(settings, CostSettings(), "1h")
    want, _, _ = E.evaluate_programs(data, cfg, batch)
    key = "test-packed-cache"

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("killed mid-batch")

    with monkeypatch.context() as m:
        m.setattr(E, "_run", boom)
        with pytest.raises(RuntimeError):
            E.cached_metrics_packed(key, data, cfg, pack(batch))
    got, computed, _ = E.cached_metrics_packed(key, data, cfg, pack(batch))
    assert got.tolist() == want.tolist()
    assert computed == len({program_key(t) for t in batch})
    again, computed2, nodes2 = E.cached_metrics_packed(key, data, cfg, pack(trees[30:]))
    assert computed2 == len({program_key(t) for t in trees[40:]}) and nodes2 > 0
    assert again.tolist() == E.evaluate_programs(data, cfg, trees[30:])[0].tolist()


def test_elites_are_the_head_of_a_full_stable_sort() -> None:
    """The elites (best first, ties by index) from the partitioned candidates equal the first
    k of a stable sort of the whole population: ties, signed zeros, -inf, all equal."""
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        sel = np.round(rng.normal(size=n), trial % 3)
        sel[rng.random(n) < 0.1] = -0.0
        if trial % 7 == 0:
            sel[rng.integers(0, n)] = -np.inf
        if trial % 11 == 0:
            sel[:] = 1.0
        for k in range(n + 1):
            assert np.array_equal(_best(sel, k), np.lexsort((np.arange(n), -sel))[:k])
