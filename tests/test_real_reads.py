"""Real Roadmap tagAlign files run unchanged (issue 10 item 3), checked against ``bedtools genomecov``.

Consolidated Roadmap alignments hold reads on chrM and unplaced contigs (``chr1_gl000191_random``)
and reads that run past a chromosome end. The fixture writes such a file set in the real formats;
the dataset must build, skip the contig reads with a count per chromosome in its exclusion report,
clip the overhanging reads exactly as ``bedtools genomecov`` does, and its bins must equal the
bins computed from ``bedtools genomecov -bg`` on the same files. Malformed reads still fail.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from chromexp.config import load_params
from chromexp.constants import CHROMOSOMES
from chromexp.data import dataset, io, signal

SIZE = 100_000
HW = 20_000  # signal.half_window of the default parameters
MARKS = ["H3K4me3", "H3K27ac"]
CONTIGS = {"chrM": 16_571, "chr1_gl000191_random": 106_433}  # hg19 lengths
# genes: windows TSS ± 20 kb; the first two end exactly at the chromosome end, where clipped reads land
GENES = [
    ("G_end_plus", "chr1", SIZE - HW, "+"),
    ("G_end_minus", "chr2", SIZE - HW, "-"),
    ("G_mid", "chr1", 50_000, "-"),
]

requires_bedtools = pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools not installed")


def _reads(rng: np.random.Generator, mark_index: int) -> pd.DataFrame:
    """Reads of one mark: ordinary ones, 30 past the end of chr1/chr2, 5 starting past it, contig reads."""
    parts = []
    for chrom in ("chr1", "chr2"):
        s = np.concatenate([rng.integers(0, SIZE - 36, 1500), rng.normal(SIZE - 500, 300, 600).astype(np.int64)])
        s = np.clip(s, 0, SIZE - 36)
        over = rng.integers(SIZE - 35, SIZE, 15)  # start < SIZE < end: clipped
        beyond = rng.integers(SIZE, SIZE + 50, 2 + mark_index)  # start >= SIZE: cover nothing
        starts = np.concatenate([s, over, beyond])
        parts.append(pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + 36}))
    for chrom, n in (("chrM", 40 + mark_index), ("chr1_gl000191_random", 7)):
        starts = rng.integers(0, 10_000, n)
        parts.append(pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + 36}))
    reads = pd.concat(parts, ignore_index=True)
    reads = reads.sample(frac=1.0, random_state=mark_index).reset_index(drop=True)  # unsorted positions …
    reads = reads.sort_values("chrom", kind="stable").reset_index(drop=True)  # … grouped by chrom (bedtools)
    reads["name"] = "N"
    reads["score"] = 1000
    reads["strand"] = np.where(rng.random(len(reads)) < 0.5, "+", "-")
    return reads


@pytest.fixture(scope="module")
def real_format(tmp_path_factory):
    root = tmp_path_factory.mktemp("realfmt")
    raw = root / "data" / "rf" / "raw"
    raw.mkdir(parents=True)
    (raw / "hg19.chrom.sizes").write_text("".join(f"{c}\t{SIZE}\n" for c in CHROMOSOMES))
    genes = pd.DataFrame(GENES, columns=["gene_id", "chrom", "tss", "strand"])
    genes.to_csv(raw / "genes.tsv", sep="\t", index=False)
    with gzip.open(raw / "57epigenomes.RPKM.pc.gz", "wt") as h:
        pd.DataFrame({"gene_id": genes["gene_id"], "E003": [1.0, 5.0, 0.5]}).to_csv(h, sep="\t", index=False)
    rng = np.random.default_rng(7)
    reads = {}
    for k, mark in enumerate(MARKS):
        reads[mark] = _reads(rng, k)
        with gzip.open(raw / f"E003-{mark}.tagAlign.gz", "wt") as h:
            reads[mark][["chrom", "start", "end", "name", "score", "strand"]].to_csv(
                h, sep="\t", header=False, index=False
            )
    # bedtools needs every chromosome of the reads in its genome file (it exits on chrM otherwise)
    genome = root / "genome.txt"
    genome.write_text(
        "".join(f"{c}\t{SIZE}\n" for c in CHROMOSOMES) + "".join(f"{c}\t{n}\n" for c, n in CONTIGS.items())
    )
    params = load_params(
        "E003",
        overrides={
            "paths": {"data_dir": str(root / "data")},
            "data": {"name": "rf", "source": "roadmap"},
            "marks": MARKS,
        },
    )
    return {"raw": raw, "reads": reads, "genome": genome, "params": params}


def _bedtools_depth(tagalign, genome) -> dict[str, np.ndarray]:
    """Per-base depth of ``bedtools genomecov -bg`` (chr1 and chr2)."""
    out = subprocess.run(
        ["bedtools", "genomecov", "-bg", "-i", str(tagalign), "-g", str(genome)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    depth = {c: np.zeros(SIZE, dtype=np.int64) for c in ("chr1", "chr2")}
    for line in out.splitlines():
        chrom, start, end, value = line.split("\t")
        if chrom in depth:
            depth[chrom][int(start) : int(end)] = int(value)
    return depth


def test_reader_clips_and_skips_with_counts(real_format):
    raw, reads = real_format["raw"], real_format["reads"]
    sizes = io.read_chrom_sizes(raw / "hg19.chrom.sizes")
    path = raw / "E003-H3K27ac.tagAlign.gz"
    frame = io.read_tagalign(path, sizes, on_unknown_chrom="drop", past_end="clip")
    truth = reads["H3K27ac"]
    report = frame.attrs["read_report"]
    assert report["n_records"] == len(truth)
    assert report["unknown_chromosomes"] == {"chrM": 41, "chr1_gl000191_random": 7}
    assert report["clipped"] == 30 and report["past_end"] == 2 * 3
    assert len(frame) == len(truth) - 41 - 7 - 6
    assert frame["end"].max() == SIZE and (frame["start"] < frame["end"]).all()
    # the defaults still refuse both, naming the first offending line
    with pytest.raises(ValueError, match=re.escape(f"{path}:") + r"\d+: end \(\d+\) is beyond the end of chr1"):
        io.read_tagalign(path, sizes)
    with pytest.raises(ValueError, match=re.escape(f"{path}:") + r"\d+: unknown chromosome 'chr1_gl000191_random'"):
        io.read_tagalign(path, sizes, past_end="clip")


@requires_bedtools
@pytest.mark.parametrize("mark", MARKS)
def test_read_depth_equals_bedtools_genomecov_per_base(real_format, mark):
    raw = real_format["raw"]
    path = raw / f"E003-{mark}.tagAlign.gz"
    theirs = _bedtools_depth(path, real_format["genome"])
    frame = io.read_tagalign(path, raw / "hg19.chrom.sizes", on_unknown_chrom="drop", past_end="clip")
    cov = signal.ReadCoverage.from_reads(frame)
    for chrom, depth in theirs.items():
        ours = np.diff(cov.cumulative(chrom, np.arange(SIZE + 1)))
        assert np.array_equal(ours, depth), chrom
        assert depth[-36:].sum() > 0  # the clipped reads do reach the last bases


@requires_bedtools
def test_real_format_dataset_builds_and_bins_equal_bedtools(real_format):
    params, raw = real_format["params"], real_format["raw"]
    dataset.build_dataset(params, "E003", force=True)
    ds = dataset.load_dataset(params, "E003")
    assert sorted(ds.genes["gene_id"]) == sorted(g[0] for g in GENES)  # the windows at the ends are kept
    ex = ds.exclusions.set_index("reason")
    row = ex.loc["reads_unknown_chromosome"]
    assert row["level"] == "read" and row["n_items"] == (40 + 7) + (41 + 7)
    for text in ("H3K4me3: chrM 40, chr1_gl000191_random 7", "H3K27ac: chrM 41, chr1_gl000191_random 7"):
        assert text in row["description"]
    assert ex.loc["reads_clipped", "n_items"] == 2 * 30
    assert ex.loc["reads_past_end", "n_items"] == (2 * 2) + (2 * 3)
    genes = ds.genes
    for mark in MARKS:
        depth = _bedtools_depth(raw / f"E003-{mark}.tagAlign.gz", real_format["genome"])
        for res in ds.resolutions:
            ours = ds.promoter(marks=[mark], resolution=res)[:, 0, :]
            for i, g in enumerate(genes.itertuples()):
                window = depth[g.chrom][g.tss - HW : g.tss + HW]
                means = window.reshape(-1, res).mean(axis=1)
                expected = signal.log_transform(means[::-1] if g.strand == "-" else means, "e").astype(np.float32)
                assert np.array_equal(ours[i], expected), (mark, res, g.gene_id)


def test_malformed_reads_still_fail(real_format, tmp_path):
    """Clipping and skipping are for real-file artefacts only: a read with start > end stays an error."""
    sizes = io.read_chrom_sizes(real_format["raw"] / "hg19.chrom.sizes")
    for bad, reason in (
        ("chrM\t50\t10\tN\t1000\t+", "start (50) must be < end (10)"),
        ("chr1\t-5\t31\tN\t1000\t+", "negative start -5"),
        ("chr1_gl000191_random\tx\t31\tN\t1000\t+", "column 'start': expected an integer"),
    ):
        path = tmp_path / "bad.tagAlign"
        path.write_text("chr1\t10\t46\tN\t1000\t+\n" + bad + "\n")
        with pytest.raises(ValueError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(reason)):
            io.read_tagalign(path, sizes, on_unknown_chrom="drop", past_end="clip")
