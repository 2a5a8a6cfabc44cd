"""DynamicRegimeModel: HDBSCAN regimes, refitted walk-forward, with ids stable across refits.

Walk-forward (``label_history``): the first fit happens once ``window`` bars with every regime
feature defined have closed; then every ``refit_every`` bars. Fit j clusters the standardised
``cluster_features`` of the ``window`` bars before its refit bar t_j (closed bars ending at t_j - 1) and
labels the bars t_j .. t_{j+1} - 1 with ``hdbscan.approximate_predict`` (noise, or strength
below ``min_strength``, is unclassified). The refits are independent tasks (they run in the
worker pool, never in the caller's thread when a pool is given); what must be sequential is
cheap and runs here afterwards: matching each fit's clusters to the stable ids of the fits
before it (``linear_sum_assignment`` on the distance between cluster centres), the
probabilities of the EnvironmentClassifier trained on the same window, the fill (a bar
HDBSCAN leaves unclassified takes the known regime whose latest centre lies within
``fill_distance`` of that regime's spreads: noise at a cluster's edge, or a regime absent from
the current window but seen before; a state unlike any seen stays unclassified), and the
persistence filter (a label switches only after the new one has held ``persistence`` bars).

Everything at bar t depends on bars < t (the fits) and the features at t (the assignment),
so labels and probabilities are causal; the refit schedule is anchored to the first bar with
complete features, which truncating the history does not move.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from singularity.errors import DataError
from singularity.regimes.classifier import ClassifierParams, EnvironmentClassifier
from singularity.regimes.settings import RegimeSettings

UNCLASSIFIED = -1


@dataclass(frozen=True)
class FitResult:
    """One refit's outcome (plain arrays: it crosses process boundaries)."""

    start: int
    labels: np.ndarray  # local cluster ids of the block's bars, -1 unclassified
    strengths: np.ndarray
    centres: np.ndarray  # (k, c) raw-space centres (cluster features), largest first
    spreads: np.ndarray  # (k, c) each cluster's standard deviation per feature (raw space)
    scale: np.ndarray  # (c,) the window's cluster-feature std (distance units for matching)
    classifier: ClassifierParams | None


FitTask = tuple[Any, int, int, int, RegimeSettings, tuple[int, ...]]


@dataclass(frozen=True)
class WindowFit:
    """One fitted window (the HDBSCAN model lives here: it stays in the process that fitted
    it; ``assign`` labels any later rows with it)."""

    t: int
    model: Any  # hdbscan.HDBSCAN with prediction data, or None when no cluster was found
    mean: np.ndarray
    scale: np.ndarray
    remap: np.ndarray  # hdbscan's label -> local id (largest cluster first)
    centres: np.ndarray
    spreads: np.ndarray
    classifier: ClassifierParams | None
    cols: tuple[int, ...]


def fit_window(x_all: np.ndarray, t: int, window: int, s: RegimeSettings,
               cols: tuple[int, ...]) -> WindowFit:
    """Fit HDBSCAN on rows [t - window, t) of ``x_all`` (columns ``cols``) and the
    classifier on every column of the same rows."""
    import hdbscan

    win_all = np.asarray(x_all[t - window:t], dtype=np.float64)
    win_all = win_all[np.isfinite(win_all).all(axis=1)]
    idx = list(cols)
    win = win_all[:, idx]
    d = len(idx)
    none = WindowFit(t, None, np.zeros(d), np.ones(d), np.zeros(0, dtype=np.int64), np.zeros((0, d)),
                     np.zeros((0, d)), None, cols)
    if len(win) < 2 * s.min_cluster_size:
        return none
    mean = win.mean(axis=0)
    scale = win.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (win - mean) / scale
    model = hdbscan.HDBSCAN(
        min_cluster_size=s.min_cluster_size, min_samples=s.min_samples, prediction_data=True,
        core_dist_n_jobs=1,
    ).fit(z)
    fit_labels = model.labels_.astype(np.int64)
    ids, sizes = np.unique(fit_labels[fit_labels >= 0], return_counts=True)
    if len(ids) == 0:
        return dataclasses.replace(none, scale=scale)
    order = ids[np.argsort(-sizes, kind="stable")]  # largest cluster first
    remap = np.full(int(fit_labels.max()) + 1, UNCLASSIFIED, dtype=np.int64)
    remap[order] = np.arange(len(order))
    fit_labels = np.where(fit_labels >= 0, remap[np.maximum(fit_labels, 0)], UNCLASSIFIED)
    centres = np.array([win[fit_labels == k].mean(axis=0) for k in range(len(order))])
    # a cluster's spread, floored at 5 % of the window's (a cluster of near-equal values
    # must not make its neighbourhood a point)
    spreads = np.array([np.maximum(win[fit_labels == k].std(axis=0), 0.05 * scale)
                        for k in range(len(order))])
    clf = EnvironmentClassifier(c=s.classifier_c).fit(win_all, fit_labels).params_
    return WindowFit(t, model, mean, scale, remap, centres, spreads, clf, cols)


def assign(fit: WindowFit, x_all: np.ndarray, end: int, s: RegimeSettings, begin: int | None = None) -> FitResult:
    """Labels of rows [begin, end) (default: from fit.t) with the fitted window (each row on
    its own, so labelling a block bar by bar gives the labels of the whole block)."""
    import hdbscan

    t = fit.t if begin is None else begin
    labels = np.full(end - t, UNCLASSIFIED, dtype=np.int64)
    strengths = np.zeros(end - t)
    if fit.model is not None:
        block_all = np.asarray(x_all[t:end], dtype=np.float64)
        ok = np.isfinite(block_all).all(axis=1)
        if ok.any():
            block = block_all[ok][:, list(fit.cols)]
            lab, strength = hdbscan.approximate_predict(fit.model, (block - fit.mean) / fit.scale)
            lab = np.where(lab >= 0, fit.remap[np.maximum(lab, 0)], UNCLASSIFIED)
            lab[strength < s.min_strength] = UNCLASSIFIED
            labels[ok] = lab
            strengths[ok] = strength
    return FitResult(t, labels, strengths, fit.centres, fit.spreads, fit.scale, fit.classifier)


def fit_block(task: FitTask) -> FitResult:
    """Fit HDBSCAN on rows [t - window, t) and label rows [t, end) (module level: a pool task).
    HDBSCAN sees the columns ``cols``; the classifier learns its labels from every column."""
    handle, t, end, window, s, cols = task
    x_all = handle.load()["x"]
    return assign(fit_window(x_all, t, window, s, cols), x_all, end, s)


class FitCache:
    """Refits kept between calls in one process on a growing history (the engine's regime
    worker): the results of complete blocks, and the newest window's fitted model with the
    labels of its block so far; a call labels only the rows added since (and those from
    ``redo_from`` on, whose features changed). A refit happens once per refit point, as in one
    call over the whole history. One cache per history (the worker starts another with it)."""

    def __init__(self) -> None:
        self.done: dict[tuple[int, int], FitResult] = {}
        self.open: WindowFit | None = None
        self.partial: FitResult | None = None
        self.refits = 0

    def result(self, x: np.ndarray, t: int, end: int, s: RegimeSettings,
               cols: tuple[int, ...], redo_from: int | None = None) -> FitResult:
        hit = self.done.get((t, end))
        if hit is not None:
            return hit
        if self.open is None or self.open.t != t or self.open.cols != cols:
            self.open = fit_window(x, t, s.window, s, cols)
            self.refits += 1
            self.partial = None
        p = self.partial
        keep = 0 if p is None else min(len(p.labels), end - t)
        if redo_from is not None:
            keep = min(keep, max(0, redo_from - t))
        if p is not None and keep == end - t == len(p.labels):
            out = p
        else:
            more = assign(self.open, x, end, s, begin=t + keep)
            labels, strengths = more.labels, more.strengths
            if p is not None and keep:
                labels = np.concatenate([p.labels[:keep], labels])
                strengths = np.concatenate([p.strengths[:keep], strengths])
            out = dataclasses.replace(more, start=t, labels=labels, strengths=strengths)
        self.partial = out
        if end - t == s.refit_every:  # complete: its labels never change again
            self.done[(t, end)] = out
        return out


# ----------------------------------------------------------------------------- stable ids


def match_clusters(
    centres: np.ndarray, scale: np.ndarray, slots: Sequence[tuple[np.ndarray, np.ndarray] | None],
    new_cost: float,
) -> np.ndarray:
    """Stable id (slot) of each new cluster. A known slot (its centre and the feature scale of
    the fit that set it) costs the RMS distance between centres in units of the larger of the
    two scales (a window holding one calm regime has a tiny spread, which must not make the
    same regime look new); an empty slot costs ``new_cost`` (so a far cluster opens a new id).
    Clusters beyond the number of slots join their nearest known slot."""
    from scipy.optimize import linear_sum_assignment

    k, n_slots = len(centres), len(slots)
    cost = np.full((k, n_slots), float(new_cost))
    for j, slot in enumerate(slots):
        if slot is not None:
            c, c_scale = slot
            unit = np.maximum(scale, c_scale)
            cost[:, j] = np.sqrt((((centres - c) / unit) ** 2).mean(axis=1))
    out = np.full(k, -1, dtype=np.int64)
    head = min(k, n_slots)  # the largest clusters get their own slot
    rows, cols = linear_sum_assignment(cost[:head])
    out[rows] = cols
    for i in range(head, k):
        out[i] = int(np.argmin(cost[i]))
    return out


def nearest_regime(x: np.ndarray, protos: Sequence[tuple[np.ndarray, np.ndarray] | None],
                   radius: float) -> np.ndarray:
    """For each row of ``x`` (cluster features), the stable id of the nearest known regime
    (its latest centre, distance in units of its own spread, RMS over the features) when
    within ``radius``, else unclassified: a bar HDBSCAN leaves as noise, or a regime absent
    from the current window but seen before, keeps the regime it resembles; a state unlike
    any seen stays unclassified."""
    out = np.full(len(x), UNCLASSIFIED, dtype=np.int64)
    known = [(j, p) for j, p in enumerate(protos) if p is not None]
    if not known or not len(x):
        return out
    d = np.stack([np.sqrt((((x - c) / sp) ** 2).mean(axis=1)) for _, (c, sp) in known], axis=1)
    best = d.argmin(axis=1)
    near = d[np.arange(len(x)), best] <= radius
    out[near] = np.array([j for j, _ in known])[best[near]]
    return out


def persist(raw: np.ndarray, persistence: int) -> np.ndarray:
    """A label (unclassified included) replaces the current one only after it has held
    ``persistence`` consecutive bars; causal (each output uses inputs up to that bar)."""
    if len(raw) == 0:
        return np.empty_like(raw)
    out, _ = persist_from(raw, persistence, (int(raw[0]), int(raw[0]), 0))
    return out


PersistState = tuple[int, int, int]
"""(current label, candidate label, bars the candidate has held)."""


def persist_from(raw: np.ndarray, persistence: int, state: PersistState) -> tuple[np.ndarray, PersistState]:
    """``persist`` resumed from ``state`` (what it was after the bars before ``raw``): the
    outputs and the state after ``raw``; split anywhere, the pieces give ``persist``'s output."""
    out = np.empty_like(raw)
    current, candidate, run = state
    for i, v in enumerate(raw.tolist()):
        if v == current:
            run = 0
        elif v == candidate:
            run += 1
        else:
            candidate, run = v, 1
        if v != current and run >= persistence:
            current = v
        out[i] = current
    return out, (current, candidate, run)


# ----------------------------------------------------------------------------- walk-forward


@dataclass(frozen=True)
class RegimeLabels:
    """The walk-forward output for one symbol's feature rows."""

    labels: np.ndarray  # stable ids after the persistence filter, -1 unclassified / warm-up
    raw: np.ndarray  # stable ids before the filter
    proba: np.ndarray  # (n, max_regimes) classifier probabilities, NaN where unknown
    warmup: np.ndarray  # bool: before the first fit
    fits: int
    fallback_blocks: int
    """Refits that found no cluster: their bars were labelled by the previous classifier."""
    refit_rows: tuple[int, ...] = field(default=())
    known: np.ndarray | None = None
    """(n, max_regimes) bool: the regimes the bar's classifier was trained on (a regime filled
    from an older fit's centre may be unknown to it: its probability says nothing)."""


class Walk:
    """The sequential part of the walk-forward: each fit's clusters matched to the stable ids
    of the fits before it, the fill, and the classifier's probabilities, applied block after
    block (``apply``). Its state after a block is all a later block needs, so labelling can
    resume at any block boundary (the engine's regime worker keeps it; ``copy`` for a block
    still growing)."""

    def __init__(self, s: RegimeSettings, cols: tuple[int, ...]) -> None:
        self.s = s
        self.cols = cols
        self.slots: list[tuple[np.ndarray, np.ndarray] | None] = [None] * s.max_regimes
        self.protos: list[tuple[np.ndarray, np.ndarray] | None] = [None] * s.max_regimes
        self.last: tuple[ClassifierParams, np.ndarray] | None = None
        self.fallback = 0

    def copy(self) -> Walk:
        w = Walk(self.s, self.cols)
        w.slots, w.protos, w.last, w.fallback = list(self.slots), list(self.protos), self.last, self.fallback
        return w

    def apply(self, fit: FitResult, block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stable ids before the persistence filter, probabilities (n, max_regimes) and known
        regimes of the block's feature rows ``block`` (rows fit.start ..)."""
        s, cols, k_max = self.s, self.cols, self.s.max_regimes
        m = len(block)
        raw = np.full(m, UNCLASSIFIED, dtype=np.int64)
        proba = np.full((m, k_max), np.nan)
        known = np.zeros((m, k_max), dtype=bool)
        slots, protos = self.slots, self.protos
        ok = np.isfinite(block).all(axis=1)
        if fit.classifier is not None:
            ids = match_clusters(fit.centres, fit.scale, slots, s.match_distance)
            for local, slot in enumerate(ids.tolist()):
                if local < k_max:
                    slots[slot] = (fit.centres[local], fit.scale)
                    protos[slot] = (fit.centres[local], fit.spreads[local])
            raw[:] = np.where(fit.labels >= 0, ids[np.maximum(fit.labels, 0)], UNCLASSIFIED)
            self.last = (fit.classifier, ids)
        elif self.last is not None:
            self.fallback += 1
        if s.fill_distance > 0 and ok.any():
            sub = raw[ok]
            sub[sub < 0] = nearest_regime(block[ok][sub < 0][:, list(cols)], protos, s.fill_distance)
            raw[ok] = sub
        if self.last is None or not ok.any():
            return raw, proba, known
        params, ids = self.last
        p_local = EnvironmentClassifier.proba(params, block[ok])
        p = np.zeros((int(ok.sum()), k_max))
        for col, cls in enumerate(params.classes.tolist()):
            p[:, ids[cls]] += p_local[:, col]
        proba[ok] = p
        kn = np.zeros(k_max, dtype=bool)
        kn[ids[params.classes]] = True
        known[ok] = kn
        if fit.classifier is None:  # fallback: the previous classifier's best guess
            guess = np.where(p.max(axis=1) >= 0.5, p.argmax(axis=1), UNCLASSIFIED)
            sub = raw[ok]
            raw[ok] = np.where(sub >= 0, sub, guess)
        return raw, proba, known


class DynamicRegimeModel:
    """HDBSCAN regimes for one symbol; see the module docstring."""

    def __init__(self, settings: RegimeSettings) -> None:
        self.settings = settings

    def first_fit_row(self, x: np.ndarray) -> int | None:
        finite = np.isfinite(x).all(axis=1)
        if not finite.any():
            return None
        return int(np.argmax(finite)) + self.settings.window

    def cluster_columns(self, columns: Sequence[str] | None, d: int, name: str) -> tuple[int, ...]:
        """Indices of the columns HDBSCAN clusters (every column when ``columns`` is None)."""
        s = self.settings
        if columns is None:
            return tuple(range(d))
        cols = tuple(i for i, c in enumerate(columns) if c in s.cluster_features)
        if not cols:
            raise DataError(f"{name}: none of the cluster_features "
                            f"({', '.join(s.cluster_features)}) among the regime features")
        return cols

    def start_row(self, x: np.ndarray, name: str) -> int:
        """The first refit row of feature rows ``x``; DataError while there is none yet."""
        s = self.settings
        n = x.shape[0]
        start = self.first_fit_row(x)
        if start is None or start >= n:
            have = 0 if start is None else n - (start - s.window)  # rows from the first complete one
            raise DataError(
                f"{name}: {have} bars with complete regime features; the first regime fit "
                f"needs more than window={s.window}"
            )
        return start

    def label_history(
        self, x: np.ndarray, *, columns: Sequence[str] | None = None, pool: Any = None,
        name: str = "series",
    ) -> RegimeLabels:
        """Walk-forward labels of feature rows ``x`` (n, d) named ``columns`` (default: every
        column is clustered); ``pool`` runs the refits."""
        from singularity.runtime.pool import run_map, share_arrays

        s = self.settings
        cols = self.cluster_columns(columns, x.shape[1], name)
        x = np.ascontiguousarray(x, dtype=np.float64)
        n = x.shape[0]
        start = self.start_row(x, name)
        points = list(range(start, n, s.refit_every))
        handle = share_arrays({"x": x}, pool)
        try:
            tasks = [(handle, t, min(t + s.refit_every, n), s.window, s, cols) for t in points]
            fits = run_map(pool, fit_block, tasks)
        finally:
            if pool is not None:
                pool.release(handle)
        walk = Walk(s, cols)
        raw = np.full(n, UNCLASSIFIED, dtype=np.int64)
        proba = np.full((n, s.max_regimes), np.nan)
        known = np.zeros((n, s.max_regimes), dtype=bool)
        for fit in fits:
            a, b = fit.start, fit.start + len(fit.labels)
            raw[a:b], proba[a:b], known[a:b] = walk.apply(fit, x[a:b])
        warmup = np.zeros(n, dtype=bool)
        warmup[:start] = True
        labels = raw.copy()
        labels[start:] = persist(raw[start:], s.persistence)
        return RegimeLabels(labels, raw, proba, warmup, len(fits), walk.fallback, tuple(points), known)
