"""A small Transformer encoder classifying windows of past features (PyTorch).

Sample t is the window of feature rows t-window+1 .. t (see :func:`past_windows`): it never
sees a row after t, so its prediction is causal by construction. Attention runs freely inside
the window (every row in it is in the past); the class is read from the token of bar t.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from singularity.models.base import WarmupAwareClassifier


def past_windows(features: ArrayLike, window: int) -> np.ndarray:
    """(n, f) feature rows -> (n, window, f) float32 windows ending at each row; the first
    window-1 samples lack history and are NaN (warm-up)."""
    F = np.asarray(features, dtype=np.float32)
    if F.ndim != 2:
        raise ValueError(f"past_windows needs a 2-D (bars, features) array, got shape {F.shape}")
    padded = np.concatenate([np.full((window - 1, F.shape[1]), np.nan, np.float32), F])
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (n, f, window)
    return view.transpose(0, 2, 1)


def window_row_moments(X: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (float64) over every row of every window of
    ``X`` (n, window, f), bit for bit what ``X.reshape(-1, f).astype(float64)`` then ``.mean(0)``
    and ``.std(0)`` give, without that float64 copy of all the windows: numpy sums a C-ordered
    array along axis 0 row after row, so carrying the running sum from chunk to chunk (added
    to the chunk's first row) keeps the order of the additions, and with it every rounding."""
    f = X.shape[2]
    count = X.shape[0] * X.shape[1]

    def total(rows_of: Any) -> np.ndarray:
        acc: np.ndarray | None = None
        for i in range(0, X.shape[0], chunk):
            r = rows_of(X[i : i + chunk].reshape(-1, f).astype(np.float64))
            if acc is not None:
                r[0] += acc  # (acc + r0) + r1 + ...: the whole array's order of additions
            acc = r.sum(axis=0)
        assert acc is not None
        return acc

    mean = total(lambda r: r) / count
    var = total(lambda r: np.square(r - mean, out=r)) / count
    return mean, np.sqrt(var)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown torch device {device!r}: expected 'auto', 'cpu' or 'cuda'")
    return device


@contextmanager
def deterministic_on(device: str) -> Iterator[None]:
    """On CUDA, deterministic algorithms for the duration (same seed, same weights): cuDNN's
    autotuner off, deterministic kernels, and the cuBLAS workspace setting that makes its
    matrix products reproducible (read when cuBLAS starts, so set before the first one).
    Previous settings come back afterwards. On the CPU, torch is deterministic already."""
    if not device.startswith("cuda"):
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[1], prev[2]


class _Net(nn.Module):
    def __init__(
        self, n_features: int, window: int, d_model: int, n_heads: int, n_layers: int,
        dim_feedforward: int, dropout: float, n_classes: int,
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(n_features, d_model)
        self.pos = nn.Parameter(torch.randn(1, window, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.inp(x) + self.pos)
        return self.head(self.norm(h[:, -1]))


class TransformerClassifier(WarmupAwareClassifier):
    """X: (n, window, n_features) windows (from :func:`past_windows`) or the same flattened
    to (n, window * n_features). Features are standardised with the training rows' mean and
    std and clipped to ±10. ``n_jobs`` sets torch's CPU threads during fit/predict (1 inside
    pool workers; None leaves torch's default). ``device='auto'`` = CUDA when available.

    Early stopping (``validation_fraction`` > 0): the LAST fraction of the training rows (rows
    come in time order) is held out, ``validation_gap`` rows before it are dropped (labels that
    span several bars would otherwise leak into it), and the weights of the epoch with the
    lowest validation loss are kept; training stops after ``patience`` epochs without one."""

    def __init__(
        self,
        window: int = 32,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 64,
        dropout: float = 0.1,
        epochs: int = 5,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        device: str = "auto",
        n_jobs: int | None = None,
        random_state: int = 0,
        validation_fraction: float = 0.0,
        validation_gap: int = 0,
        patience: int = 2,
    ) -> None:
        self.window = window
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.validation_gap = validation_gap
        self.patience = patience

    def _as_array(self, X: ArrayLike) -> np.ndarray:
        Xa = np.asarray(X, dtype=np.float32)
        if Xa.ndim == 2:
            if Xa.shape[1] % self.window:
                raise ValueError(f"{Xa.shape[1]} columns are not a multiple of window={self.window}")
            Xa = Xa.reshape(Xa.shape[0], self.window, -1)
        if Xa.ndim != 3 or Xa.shape[1] != self.window:
            raise ValueError(f"expected windows of shape (n, {self.window}, features), got {Xa.shape}")
        return Xa

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        """Standardised, clipped windows. Elementwise, so scaling a batch of windows gives
        exactly the values the whole array would: callers scale one batch at a time instead
        of holding a scaled copy of every window (memory: a window array is ``window`` times
        the size of the feature rows it is built from)."""
        Z = np.subtract(X, self.mean_, dtype=np.float32)  # one temporary, scaled in place
        np.divide(Z, self.scale_, out=Z)
        np.clip(Z, -10.0, 10.0, out=Z)
        return torch.from_numpy(Z)

    def _threads(self) -> int:
        prev = torch.get_num_threads()
        if self.n_jobs is not None:
            torch.set_num_threads(max(1, self.n_jobs))
        return prev

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        prev = self._threads()
        try:
            with deterministic_on(resolve_device(self.device)):
                self._train(X, y, w)
        finally:
            torch.set_num_threads(prev)

    def _train(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        mean, std = window_row_moments(X)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = np.where(std > 1e-12, std, 1.0).astype(np.float32)
        self.device_ = resolve_device(self.device)
        torch.manual_seed(self.random_state)
        gen = torch.Generator().manual_seed(self.random_state)
        net = _Net(
            X.shape[2], self.window, self.d_model, self.n_heads, self.n_layers,
            self.dim_feedforward, self.dropout, len(self.classes_),
        ).to(self.device_)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        per_row = nn.CrossEntropyLoss(reduction="none")
        yt = torch.from_numpy(y.astype(np.int64))
        wt = torch.from_numpy(np.asarray(w, dtype=np.float32))
        n_val = int(len(yt) * self.validation_fraction)
        n_fit = len(yt) - n_val - self.validation_gap
        if n_val < 20 or n_fit < 20:  # too few rows to hold any out: plain training
            n_val, n_fit = 0, len(yt)
        Xv, yv = self._scaled(X[len(yt) - n_val :]), yt[len(yt) - n_val :]
        yt, wt = yt[:n_fit], wt[:n_fit]
        self.epoch_seconds_: list[float] = []
        self.train_loss_: list[float] = []
        self.val_loss_: list[float] = []
        best, best_state, waited = np.inf, None, 0
        for _ in range(self.epochs):
            t0 = time.perf_counter()
            net.train()
            order = torch.randperm(len(yt), generator=gen)
            total = 0.0
            for i in range(0, len(order), self.batch_size):
                idx = order[i : i + self.batch_size]
                xb = self._scaled(X[idx.numpy()]).to(self.device_)  # only this batch is scaled
                yb, wb = yt[idx].to(self.device_), wt[idx].to(self.device_)
                opt.zero_grad()
                loss = (per_row(net(xb), yb) * wb).sum() / wb.sum()  # sample-weighted mean
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            self.train_loss_.append(total / len(yt))
            self.epoch_seconds_.append(time.perf_counter() - t0)
            if n_val:
                net.eval()
                with torch.no_grad():
                    v = float(loss_fn(net(Xv.to(self.device_)), yv.to(self.device_)))
                self.val_loss_.append(v)
                if v < best:
                    best, waited = v, 0
                    best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
                else:
                    waited += 1
                    if waited >= self.patience:
                        break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.best_epoch_ = int(np.argmin(self.val_loss_)) + 1 if self.val_loss_ else len(self.train_loss_)
        net.eval()
        self.net_ = net.to("cpu")  # predictions run on the CPU wherever it trained

    def _proba(self, X: np.ndarray) -> np.ndarray:
        prev = self._threads()
        try:
            out = []
            with torch.no_grad():
                for i in range(0, len(X), 4096):
                    out.append(torch.softmax(self.net_(self._scaled(X[i : i + 4096])), dim=1).numpy())
            return np.concatenate(out).astype(np.float64)
        finally:
            torch.set_num_threads(prev)

    def state_dict_bytes(self) -> bytes:
        """The network's state dict plus the scaler, serialised by ``torch.save``."""
        buf = io.BytesIO()
        torch.save(
            {
                "state_dict": self.net_.state_dict(),
                "mean": torch.from_numpy(self.mean_),
                "scale": torch.from_numpy(self.scale_),
                "classes": torch.from_numpy(self.classes_.astype(np.float64)),
            },
            buf,
        )
        return buf.getvalue()
