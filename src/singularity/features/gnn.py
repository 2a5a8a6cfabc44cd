"""Walk-forward graph network over the correlation graph (plain PyTorch, CPU).

Two graph convolutions (Kipf & Welling style, signed edges, symmetric normalisation
D^-1/2 (W + I) D^-1/2 with D = 1 + sum |W|) map each node's inputs at bar k to an embedding;
a linear head predicts whether the node's next return r[k+1] is positive.

Walk-forward, with the off-by-one made explicit: the target of bar s is r[s+1], known only at
the close of bar s+1. A model trained at retrain bar p uses samples s in [p-L, p-1] (targets up
to r[p], known at p) and, frozen, embeds bars p .. p+R-1. The first retrain is at
p0 = k_first + L, where k_first is the first bar with graph features; before it: NaN.
Each retraining is an independent task with its own seed drawn from (seed, p), so results do
not depend on the pool or the number of workers; trained models are memoised by a digest of
their training data, so appending a candle retrains nothing until the next retrain bar.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from singularity.features.settings import GraphSettings

_INPUT_STATS = ("graph_nbr_ret", "graph_leadlag_ret", "graph_strength", "graph_eigcent")
_RETURN_LAGS = 3
_CLIP = 5.0


class GraphConvNet(nn.Module):
    """x (B, N, F), s (B, N, N) -> (logit (B, N), embedding (B, N, dim))."""

    def __init__(self, n_in: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Linear(n_in, hidden)
        self.conv1 = nn.Linear(hidden, dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(s @ self.conv0(x))
        e = torch.tanh(s @ self.conv1(h))
        return self.head(e).squeeze(-1), e


@dataclass(frozen=True)
class GnnJob:
    """One retraining: plain arrays only, so it pickles cheaply to a pool worker."""

    x_train: np.ndarray  # (L, N, F) raw inputs, NaN where missing
    s_train: np.ndarray  # (L, N, N) normalised adjacency
    y_train: np.ndarray  # (L, N) 1.0 where r[s+1] > 0
    m_train: np.ndarray  # (L, N) bool: sample usable (node active at s, target known)
    seed: int
    hidden: int
    dim: int
    epochs: int
    lr: float
    batch: int

    def key(self) -> str:
        """Digest of everything the trained model depends on."""
        h = hashlib.blake2b(digest_size=20)
        h.update(
            repr((self.seed, self.hidden, self.dim, self.epochs, self.lr, self.batch)).encode()
        )
        for arr in (self.x_train, self.s_train, self.y_train, self.m_train):
            h.update(repr((arr.shape, arr.dtype.str)).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class TrainedGnn:
    """A trained model as plain arrays (parameters in ``model.parameters()`` order) and the
    input scaling of its training window."""

    params: tuple[np.ndarray, ...]
    mean: np.ndarray
    std: np.ndarray
    hidden: int
    dim: int


# Memo of trained models by the digest of their training data: training is deterministic, so
# a hit returns exactly what a retraining would. It makes extending the series by a candle
# cheap (the earlier retrainings are unchanged); it never changes a result.
_TRAINED: OrderedDict[str, TrainedGnn] = OrderedDict()
_TRAINED_MAX = 256


def clear_model_cache() -> None:
    _TRAINED.clear()


def node_inputs(r: np.ndarray, stats: Mapping[str, np.ndarray]) -> np.ndarray:
    """(T, N, F): the last returns and the graph statistics of each node at each bar."""
    lags = []
    for lag in range(_RETURN_LAGS):
        shifted = np.full_like(r, np.nan)
        shifted[lag:] = r[: len(r) - lag]
        lags.append(shifted)
    extra = [stats[name] for name in _INPUT_STATS if name in stats]
    return np.stack(lags + extra, axis=-1)


def norm_adjacency(rho: np.ndarray, active: np.ndarray, threshold: float) -> np.ndarray:
    """D^-1/2 (W + I) D^-1/2 per bar, W = rho on edges (|rho| >= threshold) between active nodes."""
    w = np.where(np.isfinite(rho) & (np.abs(rho) >= threshold), rho, 0.0)
    w = w * (active[:, :, None] & active[:, None, :])
    n = rho.shape[1]
    w[:, np.arange(n), np.arange(n)] = 1.0
    d = 1.0 / np.sqrt(np.abs(w).sum(axis=2))
    return w * d[:, :, None] * d[:, None, :]


def retrain_points(k_first: int, n_rows: int, train_window: int, every: int) -> list[int]:
    """Bars at which the model is retrained (the first one has a full training window)."""
    return list(range(k_first + train_window, n_rows, every))


def training_rows(point: int, train_window: int) -> slice:
    """Sample bars of the model trained at ``point``: s in [point-L, point-1], whose targets
    r[s+1] are all known at ``point`` (the last one is r[point] itself)."""
    return slice(point - train_window, point)


def job_seed(seed: int, point: int) -> int:
    return int(np.random.SeedSequence([seed, point]).generate_state(1)[0])


def _set_deterministic(mode: bool) -> None:
    """The kernels' deterministic flag, as ``torch.use_deterministic_algorithms`` sets it.
    That function also sets ``torch._inductor.config.deterministic``, a flag only
    ``torch.compile`` reads (never used here), and importing that config imports TorchDynamo
    and Inductor: about 2 CPU-seconds in a process that has not imported them, which the forge's
    parent (it only embeds: no optimiser, which imports them too) paid serially while the pool
    waited. Once that config is loaded anyway, the public function keeps both flags in step."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode)
    else:
        setter(mode)


@contextmanager
def single_thread_deterministic() -> Iterator[None]:
    """One torch thread and deterministic kernels for the block, restored afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    _set_deterministic(True)
    try:
        yield
    finally:
        _set_deterministic(deterministic)
        torch.set_num_threads(threads)


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (x - mean) / std
    return np.clip(np.nan_to_num(z, nan=0.0), -_CLIP, _CLIP)


def train_gnn(job: GnnJob) -> TrainedGnn:
    """Train on the job's window (module-level, so a pool worker can run it).

    Scaling statistics come from the training window only.
    """
    usable = job.m_train[:, :, None] & np.isfinite(job.x_train)
    count = usable.sum(axis=(0, 1))
    filled = np.where(usable, job.x_train, 0.0)
    mean = filled.sum(axis=(0, 1)) / np.maximum(count, 1)
    var = (np.where(usable, job.x_train - mean, 0.0) ** 2).sum(axis=(0, 1)) / np.maximum(count, 1)
    std = np.where(var > 0, np.sqrt(var), 1.0)
    with single_thread_deterministic():
        torch.manual_seed(job.seed)
        gen = torch.Generator().manual_seed(job.seed)
        model = GraphConvNet(job.x_train.shape[2], job.hidden, job.dim).double()
        opt = torch.optim.Adam(model.parameters(), lr=job.lr, weight_decay=1e-4)
        x = torch.from_numpy(_standardise(job.x_train, mean, std))
        s = torch.from_numpy(np.ascontiguousarray(job.s_train))
        y = torch.from_numpy(job.y_train.astype("float64"))
        m = torch.from_numpy(job.m_train)
        n_bars = x.shape[0]
        for _ in range(job.epochs):
            order = torch.randperm(n_bars, generator=gen)
            for start in range(0, n_bars, job.batch):
                idx = order[start : start + job.batch]
                mask = m[idx]
                if not bool(mask.any()):
                    continue
                logits, _ = model(x[idx], s[idx])
                loss = nn.functional.binary_cross_entropy_with_logits(logits[mask], y[idx][mask])
                opt.zero_grad()
                loss.backward()
                opt.step()
        params = tuple(p.detach().numpy().copy() for p in model.parameters())
    return TrainedGnn(params=params, mean=mean, std=std, hidden=job.hidden, dim=job.dim)


def embed(trained: TrainedGnn, x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frozen model on bars (B, N, F) / (B, N, N): (embedding (B, N, dim), P(up) (B, N))."""
    with single_thread_deterministic(), torch.no_grad():
        model = GraphConvNet(x.shape[2], trained.hidden, trained.dim).double()
        for p, value in zip(model.parameters(), trained.params, strict=True):
            p.copy_(torch.from_numpy(value))
        model.eval()
        xe = torch.from_numpy(_standardise(x, trained.mean, trained.std))
        logits, emb = model(xe, torch.from_numpy(np.ascontiguousarray(s)))
        pup = torch.sigmoid(logits)
    return emb.numpy().copy(), pup.numpy().copy()


def trained_models(jobs: list[GnnJob], pool: Any = None) -> list[TrainedGnn]:
    """Train the jobs (memoised; the misses go to ``pool`` when one is given)."""
    keys = [job.key() for job in jobs]
    missing = [i for i, k in enumerate(keys) if k not in _TRAINED]
    todo = [jobs[i] for i in missing]
    fresh = pool.map(train_gnn, todo) if pool is not None and todo else map(train_gnn, todo)
    for i, model in zip(missing, fresh, strict=True):
        _TRAINED[keys[i]] = model
    out = []
    for k in keys:
        _TRAINED.move_to_end(k)
        out.append(_TRAINED[k])
    while len(_TRAINED) > _TRAINED_MAX:
        _TRAINED.popitem(last=False)
    return out


def walk_forward_embeddings(
    *,
    r: np.ndarray,
    rho: np.ndarray,
    stats: Mapping[str, np.ndarray],
    settings: GraphSettings,
    pool: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (T, N, dim) and up-probabilities (T, N); NaN before the first retrain and
    where a node has no return (not in the graph) at that bar."""
    n_rows, n_nodes = r.shape
    dim = settings.gnn_embedding_dim
    emb = np.full((n_rows, n_nodes, dim), np.nan)
    pup = np.full((n_rows, n_nodes), np.nan)
    has_graph = np.isfinite(stats["graph_strength"]).any(axis=1)
    if not has_graph.any():
        return emb, pup
    k_first = int(np.argmax(has_graph))
    train, every = settings.gnn_train_window, settings.gnn_retrain_every
    points = retrain_points(k_first, n_rows, train, every)
    if not points:
        return emb, pup
    active = np.isfinite(r)
    x_all = node_inputs(r, stats)
    s_all = norm_adjacency(rho, active, float(settings.edge_threshold))
    target = np.full_like(r, np.nan)
    target[:-1] = r[1:]  # target of bar s is r[s+1]: only rows s <= p-1 are used at p
    jobs = []
    for p in points:
        rows = training_rows(p, train)
        jobs.append(
            GnnJob(
                x_train=x_all[rows],
                s_train=s_all[rows],
                y_train=(target[rows] > 0).astype("float64"),
                m_train=active[rows] & np.isfinite(target[rows]),
                seed=job_seed(settings.seed, p),
                hidden=settings.gnn_hidden,
                dim=dim,
                epochs=settings.gnn_epochs,
                lr=settings.gnn_learning_rate,
                batch=settings.gnn_batch_bars,
            )
        )
    for p, model in zip(points, trained_models(jobs, pool), strict=True):
        stop = min(p + every, n_rows)
        emb[p:stop], pup[p:stop] = embed(model, x_all[p:stop], s_all[p:stop])
    emb[~active] = np.nan
    pup[~active] = np.nan
    return emb, pup
