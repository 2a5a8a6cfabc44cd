"""The engine sizes orders with the backtest kernel's ``_order`` run by CPython (no Numba
start-up in the engine process): it must equal the compiled kernel bit for bit."""

from __future__ import annotations

import numpy as np

from singularity.backtest.kernel import _order
from singularity.engine.venues import kernel_order


def test_python_order_equals_the_compiled_kernel_bit_for_bit():
    rng = np.random.default_rng(7)
    py = kernel_order()
    n = 10_000
    cash = rng.choice([0.0, 1e-9, 1.0, 1e4, 1e7], n) * rng.uniform(0.0, 2.0, n)
    shares = rng.normal(0.0, 1.0, n) * rng.choice([0.0, 1e-6, 1.0, 100.0], n)
    want = np.concatenate([rng.choice([-1.0, 0.0, 0.5, 1.0], n // 2), rng.uniform(-1.0, 1.0, n - n // 2)])
    price = rng.lognormal(6.0, 3.0, n)
    fee = rng.choice([0.0, 1e-4, 1e-3, 0.01], n)
    slip = rng.choice([0.0, 5e-4, 1e-3], n)
    # a buy that exactly fits the cash (the tolerance branch)
    cash[:100], shares[:100], want[:100], fee[:100], slip[:100] = 1e4, 0.0, 1.0, 0.0, 0.0
    for args in zip(cash, shares, want, price, fee, slip, strict=True):
        a = [float(x) for x in args]
        assert py(*a) == _order(*a), a
