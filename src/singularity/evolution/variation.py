"""Tree generation and variation with DEAP operators, one child per seed.

gplearn's recipe for results that do not depend on the number of workers: the parent draws one
seed per child; whoever builds the child (any worker, or the parent) seeds a private generator
with it, picks parents by tournament from the previous generation's fitness, and applies the
variation. DEAP's operators draw from the global ``random`` module, so it is re-seeded per child
and its previous state restored afterwards (nothing leaks into the caller).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from deap import gp

from singularity.evolution import primitives as P
from singularity.evolution import token_ops as T
from singularity.evolution.program import Codec, Program

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
            expr.append(_constant(term, rng) if isinstance(term, gp.MetaEphemeral) else term)
        else:
            prim = rng.choice(prims)
            expr.append(prim)
            for arg in reversed(prim.args):
                stack.append((depth + 1, arg))
    return expr


def _constant(cls: Any, rng: Any) -> Any:
    """An ephemeral constant drawn from ``rng`` (DEAP would draw from the global random)."""
    node = cls.__new__(cls)
    node.value = round(rng.uniform(-2.0, 2.0), 2)
    return node


def random_tree(codec: Codec, seed: int, params: VariationParams) -> Program:
    """Ramped half-and-half: depth drawn in [min, max], full or grow with equal odds."""
    rng = random.Random(seed)
    grow = rng.random() < 0.5
    tree = generate(
        codec.pset, P.Series, rng=rng, min_depth=params.init_min_depth,
        max_depth=params.init_max_depth, grow=grow,
    )
    return codec.encode(tree)


def tournament(rng: random.Random, fitness: Sequence[float] | np.ndarray, lo: int, hi: int, k: int) -> int:
    """Best of k drawn (with replacement) from [lo, hi); ties go to the lower index."""
    best = -1
    span = hi - lo
    for _ in range(k):
        i = lo + int(rng.random() * span)
        if best < 0 or fitness[i] > fitness[best] or (fitness[i] == fitness[best] and i < best):
            best = i
    return best


def make_child(
    codec: Codec,
    program: Callable[[int], Program],
    tree: Callable[[int], gp.PrimitiveTree],
    fitness: Sequence[float] | np.ndarray,
    lo: int,
    hi: int,
    seed: int,
    params: VariationParams,
) -> tuple[Program | None, int]:
    """One child from ``seed``: (program, -1) if new, or (None, index) when it is an unchanged
    copy of individual ``index`` (reproduction, or a child over the limits).
    ``program(i)`` is individual i's token program, ``tree(i)`` a fresh DEAP tree of it."""
    rng = random.Random(seed)
    p1 = tournament(rng, fitness, lo, hi, params.tournament_size)
    r = rng.random()
    if r < params.crossover_prob:
        p2 = tournament(rng, fitness, lo, hi, params.tournament_size)
        prog = crossover_tokens(program(p1), program(p2), rng)
    elif r < params.crossover_prob + params.mutation_prob:
        prog = codec.encode(_mutate(codec, tree(p1), rng))
    else:
        return None, p1
    code = prog[0]
    # A tree of n nodes is at most n-1 high: measure the height only where it can exceed.
    too_high = len(code) > params.max_height + 1 and token_height(code) > params.max_height
    if too_high or len(code) > params.max_size:
        return None, p1  # DEAP's staticLimit: keep the parent
    return prog, -1


def subtree_end(code: np.ndarray, i: int) -> int:
    """End (exclusive) of the subtree starting at token i (prefix order)."""
    end = T.subtree_end(np.asarray(code), int(i), T.ARITY)
    if end < 0:
        raise ValueError("truncated token program")
    return int(end)


def token_height(code: np.ndarray) -> int:
    """Height of a prefix token program (a lone leaf is 0), as DEAP's ``height``."""
    return int(T.token_height(np.asarray(code), T.ARITY))


def crossover_tokens(p1: Program, p2: Program, rng: random.Random) -> Program:
    """DEAP's typed one-point crossover (first child), on token programs: a random non-root
    subtree of ``p1`` replaced by one of the same type from ``p2`` (type drawn uniformly among
    the types both have, then a node of that type in each). Types are visited in a fixed order
    (DEAP draws from a ``set`` of type objects, whose order changes from process to process
    and would make runs irreproducible). Three draws from ``rng`` in that order (type, point
    in p1, point in p2), none when the programs cannot cross."""
    c1, v1 = p1
    c2, v2 = p2
    if len(c1) < 2 or len(c2) < 2:
        return p1
    # The draws are made before we know whether they are needed: the caller draws nothing
    # from ``rng`` after a crossover, so a draw that goes unused changes no result.
    r_type, r1, r2 = rng.random(), rng.random(), rng.random()
    i1, i2 = T.crossover_points(c1, c2, r_type, r1, r2, T.RET)
    if i1 < 0:
        return p1
    e1 = subtree_end(c1, i1)
    e2 = subtree_end(c2, i2)
    return (
        np.concatenate((c1[:i1], c2[i2:e2], c1[e1:])),
        np.concatenate((v1[:i1], v2[i2:e2], v1[e1:])),
    )


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
        return mutate_uniform(tree, codec.pset, rng)
    if kind == "shrink":
        return mutate_shrink(tree, rng)
    return mutate_node_replacement(tree, codec.pset, rng)


def mutate_uniform(
    tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, rng: random.Random
) -> gp.PrimitiveTree:
    """DEAP's mutUniform: a random subtree replaced by a new small one of the same type."""
    index = rng.randrange(len(tree))
    slice_ = tree.searchSubtree(index)
    tree[slice_] = generate(pset, tree[index].ret, rng=rng, min_depth=0, max_depth=2, grow=True)
    return tree


def mutate_node_replacement(
    tree: gp.PrimitiveTree, pset: gp.PrimitiveSetTyped, rng: random.Random
) -> gp.PrimitiveTree:
    """DEAP's mutNodeReplacement: one node swapped for another of the same signature."""
    if len(tree) < 2:
        return tree
    index = rng.randrange(1, len(tree))
    node = tree[index]
    if node.arity == 0:
        term = rng.choice(pset.terminals[node.ret])
        tree[index] = _constant(term, rng) if isinstance(term, gp.MetaEphemeral) else term
    else:
        tree[index] = rng.choice([p for p in pset.primitives[node.ret] if p.args == node.args])
    return tree


def mutate_shrink(tree: gp.PrimitiveTree, rng: random.Random) -> gp.PrimitiveTree:
    """DEAP's mutShrink: a branch replaced by one of its own arguments of the same type."""
    if len(tree) < 3:
        return tree
    iprims = [
        (i, nd) for i, nd in enumerate(tree[1:], 1)
        if isinstance(nd, gp.Primitive) and nd.ret in nd.args
    ]
    if not iprims:
        return tree
    index, prim = rng.choice(iprims)
    arg_idx = rng.choice([i for i, t in enumerate(prim.args) if t == prim.ret])
    rindex = index + 1
    subtree: list[Any] = []
    for _ in range(arg_idx + 1):
        rslice = tree.searchSubtree(rindex)
        subtree = tree[rslice]
        rindex += len(subtree)
    tree[tree.searchSubtree(index)] = subtree
    return tree
