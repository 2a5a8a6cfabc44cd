"""What the forge's parent imports of torch, and when (each in a fresh interpreter: the test
process has imported torch long before). The parent only embeds with trained GNNs, so it must
not pay for TorchDynamo and Inductor; and it imports torch while the pool runs CEEMDAN, not
afterwards while the pool waits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EMBED_ONLY = """
import sys
import numpy as np
import torch
from singularity.features import gnn
net = gnn.GraphConvNet(7, 4, 2).double()
trained = gnn.TrainedGnn(params=tuple(p.detach().numpy() for p in net.parameters()),
                         mean=np.zeros(7), std=np.ones(7), hidden=4, dim=2)
with gnn.single_thread_deterministic():
    assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
assert not torch.are_deterministic_algorithms_enabled()
gnn.embed(trained, np.random.rand(5, 3, 7), np.random.rand(5, 3, 3))
print([m for m in ("torch._inductor.config", "torch._dynamo") if m in sys.modules])
"""

GNN_IMPORTED_DURING_CEEMDAN = """
import os, sys, time
sys.path.insert(0, {here!r})
from small_features import SMALL
from small_features import SYMBOLS
from singularity.data.synthetic import regime_switching_market
from singularity.features.factory import FeatureFactory

class StopAtCeemdan:
    workers = 2
    def map(self, fn, items, **kw):
        assert fn.__name__ == "decompose_batch"  # CEEMDAN: the family before the graph
        deadline = time.monotonic() + 30
        while "singularity.features.gnn" not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.05)
        print("singularity.features.gnn" in sys.modules, flush=True)
        os._exit(0)  # nothing after this is under test

universe = regime_switching_market(SYMBOLS, n_bars=300, seed=5)
FeatureFactory(SMALL, pool=StopAtCeemdan()).build(universe, progress=False, targets=[SYMBOLS[0]])
"""


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_embedding_does_not_import_torch_compile_machinery() -> None:
    # the old code's torch.use_deterministic_algorithms imported both (~2 CPU-s)
    assert _run(EMBED_ONLY) == "[]"


def test_the_gnn_module_is_imported_while_ceemdan_runs() -> None:
    # the old code imported it (and torch) only when the graph family started
    code = GNN_IMPORTED_DURING_CEEMDAN.replace("{here!r}", repr(str(Path(__file__).parent)))
    assert _run(code) == "True"
