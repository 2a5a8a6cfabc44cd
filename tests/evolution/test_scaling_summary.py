"""benchmarks/scaling.py's 16-task projection counts the extra work the split costs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _scaling():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("scaling_bench", ROOT / "benchmarks" / "scaling.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_projection_at_tasks_divides_by_work_inflation() -> None:
    mod = _scaling()
    one = {"tasks_per_generation": 1, "parent_serial_cpu_share": 0.03, "tree_cpu_seconds": 5.0}
    wide = {"tasks_per_generation": 16, "parent_serial_cpu_share": 0.02, "tree_cpu_seconds": 6.0}
    out = mod.at_tasks(one, wide)
    assert out["tasks_per_generation"] == 16
    assert out["serial_fraction_cpu"] == 0.02
    assert out["work_inflation"] == 1.2
    amdahl16 = 1.0 / (0.02 + 0.98 / 16)
    assert out["amdahl_projection"]["16"] == round(amdahl16, 2) == 12.31
    assert out["projected_speedup_vs_one_task"]["16"] == pytest.approx(round(amdahl16 / 1.2, 2))
    assert out["projected_speedup_vs_one_task"]["16"] == 10.26
