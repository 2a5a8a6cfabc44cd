"""Exchange keys are secrets: held as SecretStr, redacted in every output, never stored in the
registry or a file under the data directory, never logged, never inherited by workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from singularity.config import SECRET_ENV_VARS, drop_secret_env, effective_items, load_settings
from singularity.data.store import CandleStore

KEY = "AKxq7Tz9KEYVALUEnotforprint"
SECRET = "SEx81wqSECRETVALUEnotforlogs"
ENV = {"SINGULARITY_EXCHANGE__API_KEY": KEY, "SINGULARITY_EXCHANGE__SECRET": SECRET}


def test_keys_are_secret_types_redacted_and_left_out_of_the_dump(tmp_path: Path) -> None:
    loaded = load_settings(environ=ENV, cwd=tmp_path)
    s = loaded.settings
    assert s.exchange.api_key is not None and s.exchange.api_key.get_secret_value() == KEY
    assert KEY not in repr(s) and SECRET not in str(s)
    rows = {k: (v, src) for k, v, src in effective_items(loaded)}
    assert rows["exchange.api_key"] == ("**********", "env:SINGULARITY_EXCHANGE__API_KEY")
    assert rows["exchange.secret"] == ("**********", "env:SINGULARITY_EXCHANGE__SECRET")
    dump = json.dumps(s.public_dump())
    assert KEY not in dump and SECRET not in dump and "api_key" not in dump
    env = dict(ENV, OTHER="1")
    drop_secret_env(env)
    assert env == {"OTHER": "1"} and set(SECRET_ENV_VARS) == set(ENV)


def test_the_database_password_is_neither_stored_nor_shown(tmp_path: Path) -> None:
    url = "postgresql+psycopg://forge:DBPASSnotforstore@db.example:5432/singularity?sslmode=require"
    loaded = load_settings(environ={"SINGULARITY_DATABASE_URL": url}, cwd=tmp_path)
    assert loaded.settings.database_url == url  # the registry still connects with it
    # what a forge run stores in its registry row, and what a cluster task carries
    assert loaded.settings.public_dump()["database"]["url"] == (
        "postgresql+psycopg://forge@db.example:5432/singularity?sslmode=require")
    rows = {k: v for k, v, _src in effective_items(loaded)}  # config show
    assert rows["database.url"] == "postgresql+psycopg://forge:**********@db.example:5432/singularity?sslmode=require"
    bad = load_settings(environ={"SINGULARITY_DATABASE_URL": "forge:DBPASSnotforstore"}, cwd=tmp_path)
    assert {k: v for k, v, _src in effective_items(bad)}["database.url"] == "**********"


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env.update(ENV, SINGULARITY_DATA_DIR=str(tmp / "data"))
    return subprocess.run([sys.executable, "-m", "singularity", "--config", str(tmp / "s.toml"), *args],
                          env=env, cwd=tmp, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_forge_cycle_with_keys_set_leaves_them_nowhere(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        "[features.ceemdan]\nenabled = false\n[features.graph]\nenabled = false\n"
        "[bakeoff]\nmodels = [\"logistic\"]\nfolds = 3\n"
        "[gauntlet]\nnoise_runs = 2\npermutation_runs = 20\nsearch_null_runs = 1\nwalk_forward_blocks = 2\n"
        "pbo_candidates = 16\neffective_trials_sample = 16\n")
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1500)))
    open_ = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-01", periods=1500, freq="1h", tz="UTC", name="timestamp")
    CandleStore(tmp_path / "data").write("synthetic", "BTC/USDT", "1h", pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close), "close": close,
         "volume": 1.0}, index=idx))
    outputs = [_cli(tmp_path, "config", "show"), _cli(tmp_path, "config", "show", "--json"),
               _cli(tmp_path, "forge", "BTC/USDT", "--exchange", "synthetic", "--population", "40",
                    "--generations", "1", "--workers", "2", "--json"),
               _cli(tmp_path, "registry", "runs", "--json")]
    assert all(r.returncode == 0 for r in outputs), [r.stderr[-500:] for r in outputs]
    assert "**********" in outputs[0].stdout and json.loads(outputs[1].stdout)["exchange.secret"]["value"] == "**********"
    run = json.loads(outputs[2].stdout)
    assert run["run_id"] >= 1
    for r in outputs:
        for text in (r.stdout, r.stderr):
            assert KEY not in text and SECRET not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and any(p.suffix == ".html" for p in files)
    for p in files:
        data = p.read_bytes()
        assert KEY.encode() not in data and SECRET.encode() not in data, p
