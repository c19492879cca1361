"""A new cell type by its parameter file alone, run through notebooks 00 → 10 → 30 on the smoke settings (issue 27).

The user writes one file, ``<cells dir>/E017.yaml`` (a folder named by ``$CHROMEXP_CELLS_DIR``, here
a temporary one: nothing in the repository changes), whose expression comes from their own table
(gene_id → RPKM). Notebook 00 generates semi-synthetic reads driven by that expression, notebook 10
builds its dataset (no pcHi-C: ``pchic_tissue: null``) and notebook 30 trains the promoter CNNs.
"""

from __future__ import annotations

import gzip

import nbformat
import numpy as np
import pandas as pd
import pytest

from chromexp import cells, paths
from chromexp.runner import cli

CELL_FILE = """\
# E017 — a user's cell type: the only file the user writes
cell:
  name: IMR-90 (own expression table)
  state: primary
  pchic_tissue: null
  eqtl_tissues: []
  expression:
    source: table
    column: rpkm
    table: {table}
"""


def _own_expression(path) -> pd.Series:
    """A real-looking expression table: the vendored E116 RPKM of every gene, shuffled among genes."""
    genes = pd.read_csv(paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz", sep="\t")
    genes = genes.drop_duplicates("gene_id")
    values = np.random.default_rng(17).permutation(genes["E116"].to_numpy())
    table = pd.DataFrame({"gene_id": genes["gene_id"], "rpkm": values})
    table.to_csv(path, sep="\t", index=False)
    return table.set_index("gene_id")["rpkm"]


@pytest.mark.notebook
def test_a_new_cell_type_from_its_file_alone_runs_notebooks_00_10_30(tmp_path, monkeypatch, capsys):
    cells_dir = tmp_path / "cells"
    cells_dir.mkdir()
    expected = _own_expression(tmp_path / "imr90_rpkm.tsv")
    (cells_dir / "E017.yaml").write_text(CELL_FILE.format(table=tmp_path / "imr90_rpkm.tsv"))
    monkeypatch.setenv(cells.ENV_CELLS_DIR, str(cells_dir))  # the notebook kernels inherit it
    assert "E017" in cells.ids() and not (paths.params_dir() / "cells" / "E017.yaml").exists()

    args = ["batch", "--notebooks", "00", "10", "30", "--cells", "e017", "-f", "params/smoke.yaml"]
    args += ["--run-name", "own", "--jobs", "1", "-p", "simulate.presets.smoke.cell_types", "[E017]"]
    args += ["-p", "cell_types", "[E017]"]
    for key in ("data", "results", "figures"):
        args += ["-p", f"paths.{key}_dir", str(tmp_path / key)]
    code = cli.main(args)
    out = capsys.readouterr().out
    assert code == 0, out

    # notebook 00 wrote reads for E017 only, and its expression column is the user's table
    raw = tmp_path / "data" / "semisynthetic-smoke" / "raw"
    assert sorted(p.name for p in raw.glob("*.tagAlign.gz"))[0].startswith("E017-")
    assert not list(raw.glob("E003-*.tagAlign.gz"))
    with gzip.open(raw / "57epigenomes.RPKM.pc.gz", "rt") as fh:
        generated = pd.read_csv(fh, sep="\t").set_index("gene_id")["E017"]
    assert len(generated) > 50
    np.testing.assert_allclose(generated.to_numpy(), expected.loc[generated.index].to_numpy())

    # notebooks 10 and 30 ran for E017, without error outputs, and the metrics are E017's
    run = tmp_path / "results" / "own" / "E017"
    for name in ("10_data_prep.ipynb", "30_promoter_model.ipynb"):
        nb = nbformat.read(run / name, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[:1]}"
    metrics = pd.read_csv(run / "metrics.tsv", sep="\t")
    assert set(metrics["cell_type"]) == {"E017"} and set(metrics["provenance"]) == {"semi-synthetic"}
    assert set(metrics.loc[metrics["model"] == "promoter_cnn", "marks"]) == {"H3K4me3", "H3K27me3"}
