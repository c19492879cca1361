"""Fine-mapped eQTL input (chromexp.data.eqtl) and the eQTL simulator (chromexp.simulate.eqtl)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexp import paths
from chromexp.data import download, eqtl
from chromexp.simulate import eqtl as simulate_eqtl

DATA = Path(__file__).parent / "data"
CHAIN = DATA / "hg38ToHg19.fixture.over.chain"
HEADER = "tissue\tgene\tvariant\tpip\n"


def write(path: Path, text: str, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


# ---------------------------------------------------------------------------------------------
# reader
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_reader_parses_the_published_layout(tmp_path, gz):
    text = HEADER + (
        "Liver\tENSG00000000001.5\tchr1:101:A:G\t0.95\n"
        "Lung\tENSG00000000002\t2:500:C:T\t0.99\n"  # no chr prefix, no version
        "Lung\tENSG00000000003.1\tchrM:20:A:C\t0.99\n"  # mitochondrial: counted, left out
        "Lung\tENSG00000000004.2\tchr3_77_G_A_b38\t0.93\n"  # GTEx-style id
    )
    t = eqtl.read_fine_mapped_eqtls(write(tmp_path / ("e.tsv.gz" if gz else "e.tsv"), text, gz))
    assert t["gene_id"].tolist() == ["ENSG00000000001", "ENSG00000000002", "ENSG00000000004"]
    assert t["chrom"].tolist() == ["chr1", "chr2", "chr3"]
    assert t["pos"].tolist() == [101, 500, 77]
    assert t["ref"].tolist() == ["A", "C", "G"] and t["alt"].tolist() == ["G", "T", "A"]
    assert t["line"].tolist() == [2, 3, 5]
    assert t.attrs["excluded"] == {"chromosome outside chr1-22, X, Y": 1}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Liver\tENSG1\tchr1-101-A-G\t0.95", "is not chr:pos:ref:alt"),
        ("Liver\tENSG1\tchr1:101:A:G\thigh", "is not a number"),
        ("Liver\tENSG1\tchr1:101:A:G\t1.5", r"outside \[0, 1\]"),
        ("Liver\tENSG1\tchr1:101:A:G", "3 fields, the header has 4"),
        ("\tENSG1\tchr1:101:A:G\t0.95", "empty tissue or gene"),
    ],
)
def test_reader_rejects_a_malformed_line_with_file_and_line(tmp_path, line, reason):
    path = write(tmp_path / "e.tsv", HEADER + "Liver\tENSG0\tchr1:5:A:C\t0.99\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"e\.tsv:3: .*{reason}"):
        eqtl.read_fine_mapped_eqtls(path)


def test_reader_takes_a_single_pip_named_column(tmp_path):
    path = write(tmp_path / "e.tsv", "Tissue\tGene\tVariant\tPIP_EMS\tpval\nLiver\tENSG1.1\tchr1:5:A:C\t0.97\t1e-9\n")
    assert eqtl.read_fine_mapped_eqtls(path)["pip"].tolist() == [0.97]
    two = write(tmp_path / "f.tsv", "tissue\tgene\tvariant\tpip_a\tpip_b\n")
    with pytest.raises(ValueError, match="lacks column"):
        eqtl.read_fine_mapped_eqtls(two)


def test_reader_rejects_a_header_without_the_columns(tmp_path):
    path = write(tmp_path / "e.tsv", "tissue\tgene\tvariant\n")
    with pytest.raises(ValueError, match=r"e\.tsv:1: the header lacks column\(s\) \['pip'\]"):
        eqtl.read_fine_mapped_eqtls(path)


def test_xlsx_sheet_is_read_and_converted(tmp_path):
    pytest.importorskip("openpyxl")
    xlsx = tmp_path / eqtl.XLSX_FILE
    with pd.ExcelWriter(xlsx) as writer:
        pd.DataFrame({"a": [1]}).to_excel(writer, sheet_name="other", index=False)
        pd.DataFrame(
            {
                "tissue": ["Liver", "Lung"],
                "gene": ["ENSG1.2", "ENSG2.1"],
                "variant": ["chr1:10:A:G", "chr2:20:C:T"],
                "pip": [0.95, 0.97],
            }
        ).to_excel(writer, sheet_name=eqtl.SHEET, index=False)
    out = eqtl.convert_xlsx(xlsx, tmp_path / eqtl.EQTL_FILE)
    t = eqtl.read_fine_mapped_eqtls(out)
    assert t[["tissue", "gene_id", "chrom", "pos", "pip"]].values.tolist() == [
        ["Liver", "ENSG1", "chr1", 10, 0.95],
        ["Lung", "ENSG2", "chr2", 20, 0.97],
    ]
    with pytest.raises(ValueError, match="no sheet"):
        eqtl.read_fine_mapped_eqtls(xlsx, sheet="missing")


def test_tissue_unique_filter():
    t = pd.DataFrame(
        {
            "tissue": ["Liver", "Lung", "Liver", "Lung", "Liver", "Brain_A", "Brain_B", "Liver"],
            "gene_id": ["G1", "G1", "G2", "G2", "G3", "G4", "G4", "G5"],
            "variant": ["v1", "v1", "v2", "v2", "v3", "v4", "v4", "v5"],
            "pip": [0.95, 0.05, 0.95, 0.2, 0.85, 0.95, 0.99, 0.91],
        }
    )
    liver = eqtl.tissue_unique(t, ["Liver"])
    assert liver["gene_id"].tolist() == ["G1", "G5"]  # G2 also in Lung (0.2 >= 0.1), G3 PIP <= 0.9
    # a cell type matched to two tissues keeps an eQTL found in both, once
    brain = eqtl.tissue_unique(t, ["Brain_A", "Brain_B"])
    assert brain["gene_id"].tolist() == ["G4"]
    # ... but one tissue alone does not ("elsewhere" includes the other brain region)
    assert eqtl.tissue_unique(t, ["Brain_A"]).empty


# ---------------------------------------------------------------------------------------------
# liftover on the hand-made chain
# ---------------------------------------------------------------------------------------------
def test_liftover_on_the_fixture_chain():
    variants = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr1", "chr1", "chr1", "chr2", "chr3"],
            "pos": [101, 600, 1150, 1300, 50, 11, 500],  # 1-based
            "line": range(2, 9),
        }
    )
    lifted, report = eqtl.liftover(variants, CHAIN)
    # hand computation: chr1 0-based x in [100, 1100) -> x - 100; [1200, 2100) -> x - 200;
    # chr2 x -> chr5 (minus strand, size 4000) 3999 - x
    assert lifted["line"].tolist() == [2, 3, 5, 7]
    assert lifted["chrom_hg19"].tolist() == ["chr1", "chr1", "chr1", "chr5"]
    assert lifted["pos_hg19"].tolist() == [0, 499, 1099, 3989]
    counts = dict(zip(report["status"], report["n"]))
    assert counts["lifted"] == 3
    assert counts["lifted to another chromosome"] == 1
    assert counts["in a gap of the chain (fails to lift)"] == 2  # inside the gap, before the chain
    assert counts["chromosome not in the chain"] == 1
    assert report["n"].sum() == len(variants)


def test_simulated_chain_round_trips_and_its_gap_fails(tmp_path):
    sizes = {"chr1": 1_000_000, "chr2": 800_000}
    chain = simulate_eqtl.simulated_chain(sizes, ["chr1", "chr2"], seed=3)
    path = write(tmp_path / "sim.over.chain.gz", simulate_eqtl.chain_text(chain), gz=True)
    rng = np.random.default_rng(0)
    chrom = np.array(["chr1"] * 50 + ["chr2"] * 50)
    pos19 = np.concatenate([rng.integers(0, 1_000_000, 50), rng.integers(0, 800_000, 50)])
    pos38 = simulate_eqtl.to_grch38(chain, chrom, pos19)
    c1 = chain.set_index("chrom").loc["chr1"]
    gap = int(c1["gap_at"] + c1["offset"] + 7)  # a GRCh38-only position
    variants = pd.DataFrame({"chrom": [*chrom, "chr1"], "pos": [*(pos38 + 1), gap + 1], "line": range(101)})
    lifted, report = eqtl.liftover(variants, path)
    assert lifted["line"].tolist() == list(range(100))
    assert lifted["pos_hg19"].tolist() == pos19.tolist()
    assert dict(zip(report["status"], report["n"]))["in a gap of the chain (fails to lift)"] == 1


# ---------------------------------------------------------------------------------------------
# the simulator, end to end on the smoke preset
# ---------------------------------------------------------------------------------------------
def test_simulated_eqtls_follow_the_planting_rule_and_lift_back(smoke_params, smoke_raw):
    truth = simulate_eqtl.read_truth(smoke_raw)
    enh = pd.read_csv(smoke_raw / "truth" / "enhancers.tsv.gz", sep="\t")
    # E116 (EBV lymphocytes) is the smoke preset's only eQTL-matched cell type; E003 has none
    assert set(truth["tissue"]) == {"Cells_EBV-transformed_lymphocytes"}
    # enhancer eQTLs lie inside their enhancer, for the enhancer's own gene
    e = truth[truth["kind"].str.startswith("enhancer")].merge(enh, on="enhancer_id", suffixes=("", "_enh"))
    assert len(e) > 50 and (e["gene_id"] == e["gene_id_enh"]).all()
    assert ((e["pos_hg19"] >= e["center"] - e["width"] / 2 - 1) & (e["pos_hg19"] < e["center"] + e["width"] / 2)).all()
    # planted preferentially in active enhancers (rates of params/defaults.yaml: 0.6 vs 0.03)
    active = enh["active_E116"].to_numpy(bool)
    planted = enh["enhancer_id"].isin(set(e["enhancer_id"])).to_numpy()
    assert planted[active].mean() > 0.45 and planted[~active].mean() < 0.1
    # the written table is the truth in GRCh38; the simulated chain lifts it back exactly
    table = eqtl.read_fine_mapped_eqtls(smoke_raw / "eqtl" / eqtl.EQTL_FILE)
    assert len(table) == len(truth) and (table["variant"].to_numpy() == truth["variant"].to_numpy()).all()
    lifted, report = eqtl.liftover(table, smoke_raw / "eqtl" / eqtl.SIMULATED_CHAIN_FILE)
    merged = lifted.merge(truth, on="variant")
    assert (merged["pos_hg19_x"] == merged["pos_hg19_y"]).all()
    failed = set(table["variant"]) - set(lifted["variant"])
    assert failed == set(truth.loc[truth["kind"] == "unliftable", "variant"])
    # the "passes_filter" truth column is what the test's filter selects
    kept = eqtl.tissue_unique(table, ["Cells_EBV-transformed_lymphocytes"])
    assert set(kept["variant"]) == set(truth.loc[truth["passes_filter"], "variant"])
    assert 0 < (~truth["passes_filter"]).sum() < len(truth)


def test_eqtl_inputs_explain_what_is_missing(tmp_path):
    semi = {"paths": {"data_dir": str(tmp_path)}, "data": {"source": "semisynthetic", "preset": "smoke", "name": None}}
    with pytest.raises(FileNotFoundError, match="notebook 00_demo_data"):
        eqtl.eqtl_inputs(semi)
    real = {"paths": {"data_dir": str(tmp_path)}, "data": {"source": "roadmap", "preset": "demo", "name": None}}
    with pytest.raises(FileNotFoundError, match="chromexp download --kinds eqtl"):
        eqtl.eqtl_inputs(real)


# ---------------------------------------------------------------------------------------------
# download entries
# ---------------------------------------------------------------------------------------------
def test_download_fetches_and_converts_the_eqtl_inputs(tmp_path, monkeypatch):
    pytest.importorskip("openpyxl")
    monkeypatch.delenv(paths.ENV_DATA, raising=False)
    params = {
        "paths": {"data_dir": str(tmp_path / "data")},
        "data": {"source": "roadmap", "preset": "demo", "name": None},
    }
    files = download.roadmap_manifest(params, ["E066"], kinds=["eqtl"])
    assert [f.url for f in files] == [download.EQTL_URL, download.HG38_TO_HG19_CHAIN_URL]
    assert files[0].url.endswith("41467_2021_23134_MOESM10_ESM.xlsx")
    buf = io.BytesIO()
    pd.DataFrame({"tissue": ["Liver"], "gene": ["ENSG1.1"], "variant": ["chr1:101:A:G"], "pip": [0.95]}).to_excel(
        buf, sheet_name=eqtl.SHEET, index=False
    )
    bodies = {download.EQTL_URL: buf.getvalue(), download.HG38_TO_HG19_CHAIN_URL: gzip.compress(CHAIN.read_bytes())}

    def fetcher(url, dest):
        Path(dest).write_bytes(bodies[url])

    result = download.download_roadmap(params, ["E066"], kinds=["eqtl"], fetcher=fetcher)
    assert result["status"].tolist() == ["downloaded", "downloaded", "converted"]
    inputs = eqtl.eqtl_inputs({**params, "data": params["data"]})
    assert inputs["table"].name == eqtl.EQTL_FILE and not inputs["simulated_chain"]
    lifted, _ = eqtl.liftover(eqtl.read_fine_mapped_eqtls(inputs["table"]), inputs["chain"])
    assert lifted["pos_hg19"].tolist() == [0]


def test_planted_truth_as_effect_gives_a_significant_top_decile(smoke_raw):
    """The direct oracle on the smoke preset: ranking E116's distal loci by the planted enhancer
    contribution itself must enrich the top decile for the simulated eQTLs (after the filter and
    the liftover), and a shuffled ranking must not."""
    from chromexp.analyses import enrichment
    from chromexp.data import io

    genes = io.read_gene_table(smoke_raw / "genes.tsv")
    rpkm = io.read_expression(smoke_raw / "57epigenomes.RPKM.pc.gz", ["E116"])["E116"]
    rpkm = rpkm.reindex(genes["gene_id"]).to_numpy()
    active = genes[rpkm >= np.median(rpkm)]
    loci = enrichment.window_bins(active)
    loci = loci[~loci["position"].isin(enrichment.PROMOTER_POSITIONS)].reset_index(drop=True)
    loci = loci.assign(cell_type="E116", provenance="semi-synthetic")
    enh = pd.read_csv(smoke_raw / "truth" / "enhancers.tsv.gz", sep="\t")
    # removing a planted enhancer lowers expression by its contribution: the effect is its negative
    # (the paper's deciles rank the signed decrease, per side of the TSS)
    loci["effect"] = -enrichment.planted_locus_effect(loci, enh, "E116")
    table = eqtl.read_fine_mapped_eqtls(smoke_raw / "eqtl" / eqtl.EQTL_FILE)
    unique = eqtl.tissue_unique(table, ["Cells_EBV-transformed_lymphocytes"])
    lifted, _ = eqtl.liftover(unique, smoke_raw / "eqtl" / eqtl.SIMULATED_CHAIN_FILE)
    has = enrichment.count_eqtls(loci, lifted) > 0
    tissues = {"E116": ["Cells_EBV-transformed_lymphocytes"]}
    d = enrichment.decile_tests(loci, has, tissues, n_random=2000, seed=0)
    top = d[d["decile"] == 10].iloc[0]
    assert top["p"] < 0.01 and top["fraction"] > 3 * top["random_mean"]
    shuffled = loci.assign(effect=np.random.default_rng(0).permutation(loci["effect"].to_numpy()))
    null = enrichment.decile_tests(shuffled, has, tissues, n_random=2000, seed=0)
    assert null.loc[null["decile"] == 10, "p"].iloc[0] > 0.01
