"""Local round trip with the real pipeline: build on the tiny model -> materialize -> verify -> sql -> inspect;
then one altered byte makes verify fail and name the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from tamper import flip_byte

from lidr_data.cli import main


@pytest.mark.slow
def test_build_materialize_verify(tmp_path: Path, capsys):
    from lidr_data.build.pipeline import build
    from lidr_data.build.recipe import load_recipe
    from lidr_data.commands.demo import DEMO_RECIPE

    run_dir = build(load_recipe(DEMO_RECIPE), workdir=tmp_path, limit=4, progress=False)
    store = tmp_path / "store"
    assert main(["materialize", str(run_dir), "--store", str(store)]) == 0
    version = store / "demo" / "iter-1"
    assert main(["verify", f"{store / 'demo'}@iter-1"]) == 0
    capsys.readouterr()
    assert main(["sql", str(version), "SELECT count(*) AS n FROM pairs", "--format", "csv"]) == 0
    import pyarrow.parquet as pq

    assert capsys.readouterr().out.split()[-1] == str(pq.read_metadata(run_dir / "pairs.parquet").num_rows)
    assert main(["inspect", str(version), "--html", str(tmp_path / "report.html")]) == 0
    target = next((version / "data" / "all").glob("*.parquet"))
    flip_byte(target, 100)
    capsys.readouterr()
    assert main(["verify", str(version)]) == 1
    assert target.relative_to(version).as_posix() in capsys.readouterr().err
