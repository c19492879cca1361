"""The paper's gene set (data.genes: reference) on fixtures in the format of Chromoformer's files."""

from __future__ import annotations

import gzip
import pickle

import pandas as pd
import pytest
from test_dataset import TSS_A, _make_raw

from chromexp.config import load_params
from chromexp.constants import CHROM_FOLD
from chromexp.data import dataset, download, reference_genes

TRAIN_HEADER = "gene_id,eid,label,expression,chrom,start,end,strand,split,neighbors,scores\n"


def _train_rows(genes, eids=("E003", "E116")):
    """Rows of Chromoformer's train.csv (one per gene and epigenome) for (gene_id, chrom, tss, strand)."""
    lines = []
    for eid in eids:
        for g, chrom, tss, strand in genes:
            lines.append(f"{g},{eid},1,2.5,{chrom},{tss},{tss + 1},{strand},{CHROM_FOLD[chrom]},,\n")
    return TRAIN_HEADER + "".join(lines)


def test_paper_fold_sizes_and_a_fixture_in_the_same_format(tmp_path):
    assert sum(reference_genes.PAPER_FOLD_SIZES.values()) == 18_955
    want = {1: 3, 2: 1, 3: 2, 4: 0}
    genes = [
        ("A1", "chr1", 100, "+"),
        ("A2", "chr5", 200, "-"),
        ("A3", "chrY", 300, "+"),
        ("B1", "chr7", 5, "+"),
        ("C1", "chr2", 7, "-"),
        ("C2", "chr20", 9, "+"),
    ]
    path = tmp_path / "train.csv"
    path.write_text(_train_rows(genes))
    table = reference_genes.read_train_csv(path)
    assert len(table) == 6 and table["gene_id"].tolist() == [g[0] for g in genes]  # one row per gene, file order
    assert table.set_index("gene_id").loc["A2", "tss"] == 200
    assert reference_genes.fold_sizes(table) == want


def test_train_csv_errors_name_file_and_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(TRAIN_HEADER + "A1,E003,1,2.5,chr1,100,101,+,1,,\nA1,E116,1,2.5,chr1,150,151,+,1,,\n")
    with pytest.raises(ValueError, match=r"train.csv:3: the gene's rows disagree"):
        reference_genes.read_train_csv(path)
    path.write_text(TRAIN_HEADER + "A1,E003,1,2.5,chr1,100,101,+,2,,\n")
    with pytest.raises(ValueError, match="chr1 belongs to fold 1"):
        reference_genes.read_train_csv(path)
    path.write_text("gene_id,chrom\nA1,chr1\n")
    with pytest.raises(ValueError, match="missing column"):
        reference_genes.read_train_csv(path)
    with pytest.raises(ValueError, match="chromexp download"):
        reference_genes.read_train_csv(tmp_path / "absent.csv")


def test_refgene_layouts(tmp_path):
    p = tmp_path / "refGene.tsv"
    p.write_text("name\tchrom\tstrand\ttxStart\ttxEnd\tname2\nNM_1\tchr1\t-\t100\t500\tG\nNM_2\tchr1\t+\t700\t900\tG\n")
    t = reference_genes.read_refgene(p)
    assert t[["gene_id", "tss"]].values.tolist() == [["G", 499], ["G", 700]]  # minus strand: txEnd - 1
    p.write_text("gene_id\tchrom\ttss\nG\tchr1\t5\n")
    assert reference_genes.read_refgene(p)["tss"].tolist() == [5]
    p.write_text("foo\tbar\n1\t2\n")
    with pytest.raises(ValueError, match="cannot find"):
        reference_genes.read_refgene(p)


def test_download_lists_the_reference_annotations(tmp_path):
    files = download.roadmap_manifest(tmp_path / "raw", ["E003"], ["H3K4me3"], ["annotations"])
    assert [f.dest.relative_to(tmp_path / "raw").as_posix() for f in files] == [
        "annotations/refGene.tsv",
        "annotations/train.csv",
        "annotations/ensg2tss.pickle",
    ]
    assert all(
        download.CHROMOFORMER_COMMIT in f.url
        and f.url.startswith("https://raw.githubusercontent.com/dohlee/chromoformer/")
        for f in files
    )
    assert "annotations" in download.DEFAULT_KINDS


def test_dataset_from_the_reference_gene_set(tmp_path):
    """Genes and TSSs from train.csv; alternative TSSs (ensg2tss.pickle + tss2fragment) pool pCREs, as the
    reference's get_neighbors does (its refGene.tsv gives only gene ids)."""
    raw, _, _ = _make_raw(tmp_path)
    alt_tss = 57_000  # G_chr1_0's alternative TSS, in another bait fragment with its own partner
    with gzip.open(raw / "pchic" / "H1.tsv.gz", "rt") as h:
        pairs = pd.read_csv(h, sep="\t")
    extra = pd.DataFrame(
        [
            ("chr1", 56_000, 58_000, "chr1", 100_000, 101_000, 9.0),
            ("chr1", 56_000, 58_000, "chr1", 60_000, 63_000, 1.0),
        ],
        columns=pairs.columns,
    )
    with gzip.open(raw / "pchic" / "H1.tsv.gz", "wt") as h:
        pd.concat([pairs, extra]).to_csv(h, sep="\t", index=False)
    (raw / "annotations").mkdir()
    chosen = [
        ("G_chr1_0", "chr1", TSS_A, "+"),
        ("G_chr2_1", "chr2", 100_000, "-"),
        ("G_chr7_2", "chr7", 150_500, "+"),
        ("G_chr9_2", "chr9", 150_000, "-"),
    ]
    strands = pd.read_csv(raw / "genes.tsv", sep="\t").set_index("gene_id")["strand"]
    chosen = [(g, c, t, strands[g]) for g, c, t, _ in chosen]
    (raw / "annotations" / "train.csv").write_text(_train_rows(chosen))
    # Chromoformer's format: gene -> [(chrom, tss, tss + 1, strand), ...], the chosen TSS first
    ensg2tss = {"G_chr1_0": [("chr1", TSS_A, TSS_A + 1, "+"), ("chr1", alt_tss, alt_tss + 1, "+")]}
    (raw / "annotations" / "ensg2tss.pickle").write_bytes(pickle.dumps(ensg2tss))
    # a refGene.tsv listing another TSS must not matter any more
    (raw / "annotations" / "refGene.tsv").write_text(f"gene_id\tchrom\ttss\tstrand\nG_chr1_0\tchr1\t{TSS_A}\t+\n")
    tss2fragment = {
        f"chr1:{TSS_A}-{TSS_A + 1}": "chr1:49000-52000",
        f"chr1:{alt_tss}-{alt_tss + 1}": "chr1:56000-58000",
    }
    (raw / "pchic" / "tss2fragment.pickle").write_bytes(pickle.dumps(tss2fragment))
    params = load_params(
        "E003",
        overrides={
            "paths": {"data_dir": str(tmp_path / "data")},
            "data": {"name": "toy", "source": "roadmap", "genes": "reference"},
        },
    )
    dataset.build_dataset(params, "E003")
    ds = dataset.load_dataset(params, "E003")
    assert ds.provenance == "real"
    assert sorted(ds.genes["gene_id"]) == sorted(g[0] for g in chosen)  # the reference set, not genes.tsv
    assert ds.genes.set_index("gene_id").loc["G_chr7_2", "tss"] == 150_500  # Chromoformer's TSS choice
    assert reference_genes.fold_sizes(ds.genes) == {1: 1, 2: 1, 3: 1, 4: 1}
    a = ds.pcre_table().query("gene_id == 'G_chr1_0'").sort_values("slot")
    # the alternative TSS's partner (9.0) comes first; chr1:60000-63000 keeps its first-seen 3.0 (not 1.0)
    assert a["start"].tolist()[:3] == [100_000, 60_000, 120_000]
    assert a["frequency"].tolist()[:2] == [9.0, 3.0]
    # our choice equals Chromoformer's own (train.csv neighbors/scores), gene by gene
    expected = {
        "G_chr1_0": [
            (100_000, 101_000, 9.0),
            (60_000, 63_000, 3.0),
            (120_000, 125_000, 2.5),
            (20_000, 23_000, 2.5),
            (70_000, 71_234, 2.0),
            (80_000, 86_000, 1.9),
            (90_000, 95_000, 1.8),
            (30_000, 31_000, 1.7),
        ],
        "G_chr2_1": [(120_000, 124_250, 2.2), (60_000, 60_150, 1.8)],
    }
    chrom_of = {"G_chr1_0": "chr1", "G_chr2_1": "chr2"}
    lines = []
    for line in (raw / "annotations" / "train.csv").read_text().splitlines(keepends=True)[1:]:
        g, eid = line.split(",")[:2]
        if eid == "E003" and g in expected:
            nb = ";".join(f"{chrom_of[g]}:{a}-{b}" for a, b, _ in expected[g])
            sc = ";".join(str(f) for *_, f in expected[g])
            line = line.rstrip("\n")[:-2] + f",{nb},{sc}\n"  # fill the two empty last fields
        lines.append(line)
    ref_csv = tmp_path / "train_with_neighbors.csv"
    ref_csv.write_text(TRAIN_HEADER + "".join(lines))
    ref = reference_genes.read_reference_pcres(ref_csv, "E003")
    agree = reference_genes.compare_pcres(ds.pcre_table(), ref, ds.genes["gene_id"])
    assert agree["fraction"] == 1.0 and agree["n_genes"] == 4, agree["examples"]
    swapped = ref.assign(slot=ref["slot"].where(ref["slot"] > 1, 1 - ref["slot"]))  # first two pCREs swapped
    assert reference_genes.compare_pcres(ds.pcre_table(), swapped, ds.genes["gene_id"])["n_agree"] == 2
    vendored = load_params(
        "E003", overrides={"paths": {"data_dir": str(tmp_path / "data")}, "data": {"name": "toy", "source": "roadmap"}}
    )
    assert reference_genes.gene_set(vendored) == "vendored"
    with pytest.raises(ValueError, match="data.genes"):
        reference_genes.gene_set({"data": {"genes": "refseq"}})
