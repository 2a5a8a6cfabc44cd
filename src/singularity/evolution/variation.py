"""Tree generation and variation with DEAP operators, one child per seed.

gplearn's recipe for results that do not depend on the number of workers: the parent draws one
seed per child; whoever builds the child (any worker, or the parent) seeds a private generator
with it, picks parents by tournament from the previous generation's fitness, and applies the
variation. DEAP's operators draw from the global ``random`` module, so it is re-seeded per child
and its previous state restored afterwards (nothing leaks into the caller).
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from deap import gp

from singularity.evolution import primitives as P
from singularity.evolution.program import Codec, Program, program_key

MUTATIONS = ("subtree", "node", "shrink", "ephemeral")
MUTATION_WEIGHTS = (0.4, 0.25, 0.15, 0.2)


@dataclass(frozen=True)
class VariationParams:
    crossover_prob: float = 0.6
    mutation_prob: float = 0.3
    tournament_size: int = 5
    max_height: int = 10
    max_size: int = 60
    init_min_depth: int = 2
    init_max_depth: int = 5


@contextlib.contextmanager
def global_random_guard() -> Iterator[None]:
    """Restore the global ``random`` state on exit (DEAP's operators use it)."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def generate(
    pset: gp.PrimitiveSetTyped,
    type_: type,
    *,
    rng: Any,
    min_depth: int,
    max_depth: int,
    grow: bool,
) -> list[Any]:
    """A random typed tree (prefix list). Types with no primitives (windows, lags) are always
    leaves, which DEAP's own generators cannot handle."""
    height = rng.randint(min_depth, max_depth)
    ratio = pset.terms_count / (pset.terms_count + pset.prims_count)
    expr: list[Any] = []
    stack: list[tuple[int, type]] = [(0, type_)]
    while stack:
        depth, t = stack.pop()
        prims = pset.primitives[t]
        terms = pset.terminals[t]
        leaf = (
            not prims
            or depth >= height
            or (grow and depth >= min_depth and rng.random() < ratio)
        )
        if leaf and terms:
            term = rng.choice(terms)
            expr.append(term() if isinstance(term, gp.MetaEphemeral) else term)
        else:
            prim = rng.choice(prims)
            expr.append(prim)
            for arg in reversed(prim.args):
                stack.append((depth + 1, arg))
    return expr


def _expr_for_mutation(pset: gp.PrimitiveSetTyped, type_: type) -> list[Any]:
    # mutUniform's sub-tree generator: small trees, drawn from the (seeded) global random.
    return generate(pset, type_, rng=random, min_depth=0, max_depth=2, grow=True)


def random_tree(codec: Codec, seed: int, params: VariationParams) -> Program:
    """Ramped half-and-half: depth drawn in [min, max], full or grow with equal odds."""
    rng = random.Random(seed)
    random.seed(seed ^ 0x5EED)
    grow = rng.random() < 0.5
    tree = generate(
        codec.pset, P.Series, rng=rng, min_depth=params.init_min_depth,
        max_depth=params.init_max_depth, grow=grow,
    )
    return codec.encode(tree)


def tournament(rng: random.Random, fitness: np.ndarray, lo: int, hi: int, k: int) -> int:
    """Best of k drawn (with replacement) from [lo, hi); ties go to the lower index."""
    best = -1
    for _ in range(k):
        i = rng.randrange(lo, hi)
        if best < 0 or fitness[i] > fitness[best] or (fitness[i] == fitness[best] and i < best):
            best = i
    return best


def make_child(
    codec: Codec,
    parent: Any,
    fitness: np.ndarray,
    lo: int,
    hi: int,
    seed: int,
    params: VariationParams,
) -> tuple[Program | None, int]:
    """One child from ``seed``: (program, -1) if new, or (None, index) when it is an unchanged
    copy of individual ``index`` (reproduction, a no-op variation, or a child over the limits).
    ``parent(i)`` gives individual i as a fresh DEAP tree."""
    rng = random.Random(seed)
    random.seed(seed ^ 0x5EED)
    p1 = tournament(rng, fitness, lo, hi, params.tournament_size)
    r = rng.random()
    if r < params.crossover_prob:
        p2 = tournament(rng, fitness, lo, hi, params.tournament_size)
        child = crossover_one_point(parent(p1), parent(p2), rng)
    elif r < params.crossover_prob + params.mutation_prob:
        child = _mutate(codec, parent(p1), rng)
    else:
        return None, p1
    if child.height > params.max_height or len(child) > params.max_size:
        return None, p1  # DEAP's staticLimit: keep the parent
    prog = codec.encode(child)
    return prog, -1


def crossover_one_point(
    ind1: gp.PrimitiveTree, ind2: gp.PrimitiveTree, rng: random.Random
) -> gp.PrimitiveTree:
    """DEAP's typed one-point crossover (first child only), with the common types visited in a
    fixed order: DEAP draws from a ``set`` of type objects, whose order changes from process
    to process and would make runs irreproducible."""
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1
    types1: dict[type, list[int]] = {}
    types2: dict[type, list[int]] = {}
    for i, node in enumerate(ind1[1:], 1):
        types1.setdefault(node.ret, []).append(i)
    for i, node in enumerate(ind2[1:], 1):
        types2.setdefault(node.ret, []).append(i)
    common = sorted(set(types1) & set(types2), key=lambda t: t.__name__)
    if common:
        t = rng.choice(common)
        s1 = ind1.searchSubtree(rng.choice(types1[t]))
        s2 = ind2.searchSubtree(rng.choice(types2[t]))
        ind1[s1] = ind2[s2]
    return ind1


def _mutate(codec: Codec, tree: gp.PrimitiveTree, rng: random.Random) -> gp.PrimitiveTree:
    kind = rng.choices(MUTATIONS, weights=MUTATION_WEIGHTS)[0]
    if kind == "ephemeral":
        consts = [i for i, nd in enumerate(tree) if nd.name == P.CONST_NAME]
        if consts:
            i = rng.choice(consts)
            v = float(tree[i].value)
            tree[i] = codec.constant(round(v + rng.gauss(0.0, 0.25 * max(abs(v), 0.2)), 2))
            return tree
        kind = "node"
    if kind == "subtree":
        expr = functools.partial(_expr_for_mutation)
        return gp.mutUniform(tree, expr=expr, pset=codec.pset)[0]
    if kind == "shrink":
        return gp.mutShrink(tree)[0]
    return gp.mutNodeReplacement(tree, pset=codec.pset)[0]


def is_same(a: Program, b: Program) -> bool:
    return program_key(a) == program_key(b)
