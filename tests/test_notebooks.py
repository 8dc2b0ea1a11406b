"""Every notebook in notebooks/ runs end to end (nbclient), with small sampling settings, so none goes stale.

The notebooks read BAYES_SCALING_NOTEBOOK_DRAWS (draws and tuning steps per chain); here it is small.
They read ../shared/data, so they skip (or fail in CI) like the other real-data tests.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
DRAWS = "100"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, shared_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_SCALING_NOTEBOOK_DRAWS", DRAWS)
    monkeypatch.setenv("BAYES_SCALING_DATA", str(shared_root))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    work = tmp_path / "notebooks"
    work.mkdir()
    # files the notebooks read relative to their folder (benchmark results) stay reachable
    os.symlink(path.parent.parent / "benchmarks", tmp_path / "benchmarks")
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
