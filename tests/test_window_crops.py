"""Window study inputs: a central crop of the stored ± 20 kb window equals a freshly binned window.

Oracle: ``bedtools genomecov -bg`` over the smoke dataset's own tagAlign files gives per-base depth;
each window [TSS − w/2, TSS + w/2) is binned afresh (mean per bin, ``ln(mean + 1)`` in float64,
rounded to float32, reversed for minus-strand genes) and compared with
``chromoformer_inputs.crop_promoter`` of the stored inputs, for every window of the study and
every resolution, including the 2 and 10 kb windows at 2,000 bp whose bins are not stored and are
rebuilt from the 100-bp bins.
"""

from __future__ import annotations

import gzip
import io as stdio
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from chromexp.data import dataset, signal
from chromexp.models import chromoformer_inputs as ci

WINDOWS = (2000, 4000, 10000, 20000, 40000)
MARKS = ("H3K4me3", "H3K27ac")


def _depth(tag_path, genome_path, windows, tmp) -> dict[str, np.ndarray]:
    """Per-base depth from ``bedtools genomecov -bg`` on the reads overlapping ``windows`` (chrom, lo, hi)."""
    with gzip.open(tag_path, "rt") as handle:
        reads = pd.read_csv(handle, sep="\t", header=None, usecols=[0, 1, 2, 3, 4, 5])
    near = np.zeros(len(reads), dtype=bool)
    for chrom, lo, hi in windows:  # every read that covers a base of a window, nothing else
        near |= (reads[0].to_numpy() == chrom) & (reads[2].to_numpy() > lo) & (reads[1].to_numpy() < hi)
    reads = reads[near].sort_values([0, 1])
    sizes = pd.read_csv(genome_path, sep="\t", header=None, names=["chrom", "size"])
    genome = tmp / "genome.txt"  # only the windows' chromosomes (bedtools walks every listed one)
    sizes[sizes["chrom"].isin({w[0] for w in windows})].to_csv(genome, sep="\t", header=False, index=False)
    text = subprocess.run(
        ["bedtools", "genomecov", "-bg", "-i", "stdin", "-g", str(genome)],
        input=reads.to_csv(sep="\t", header=False, index=False),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    bg = pd.read_csv(stdio.StringIO(text), sep="\t", header=None, names=["chrom", "start", "end", "value"])
    out = {}
    for chrom in {w[0] for w in windows}:
        rows = bg[bg["chrom"] == chrom]
        end = max([int(rows["end"].max())] + [hi for c, _, hi in windows if c == chrom])
        steps = np.zeros(end + 1, dtype=np.int64)  # -bg leaves out zero runs, the trailing one too
        np.add.at(steps, rows["start"].to_numpy(), rows["value"].to_numpy())
        np.add.at(steps, rows["end"].to_numpy(), -rows["value"].to_numpy())
        out[chrom] = np.cumsum(steps)[:-1]
    return out


def _fresh(depth, tss, strand, window, res) -> np.ndarray:
    lo = tss - window // 2
    means = depth[lo : lo + window].reshape(-1, res).mean(axis=1)
    values = signal.log_transform(means, "e")
    return values[::-1] if strand == "-" else values


def test_crops_equal_freshly_binned_windows(smoke_params, smoke_dataset, tmp_path):
    if shutil.which("bedtools") is None:
        pytest.skip("bedtools is not installed")
    ds = smoke_dataset
    genes = ds.genes
    pick = np.concatenate(
        [np.flatnonzero(genes["strand"].to_numpy() == s)[:5] for s in ("+", "-")]
    )  # both orientations
    files = dataset.input_files(smoke_params, "E003")
    hw = ds.half_window
    windows = [(genes.loc[g, "chrom"], int(genes.loc[g, "tss"]) - hw, int(genes.loc[g, "tss"]) + hw) for g in pick]
    inputs = ci.dataset_inputs(ds, list(MARKS), index=pick)
    assert signal.log_base_value(ds.settings["log_base"]) == pytest.approx(np.e)
    worst = {}
    for m, mark in enumerate(MARKS):
        depth = _depth(files["reads"][mark], files["chrom_sizes"], windows, tmp_path)
        for window in WINDOWS:
            cropped = ci.crop_promoter(inputs, window)
            for res in ds.resolutions:
                got = cropped[f"promoter_{res}"]
                assert got.shape == (len(pick), len(MARKS), window // res)
                for row, g in enumerate(pick):
                    chrom, tss, strand = genes.loc[g, ["chrom", "tss", "strand"]]
                    want = _fresh(depth[chrom], int(tss), strand, window, res)
                    delta = float(np.abs(got[row, m].numpy() - want).max())
                    worst[(window, res)] = max(worst.get((window, res), 0.0), delta)
    aligned = {k: v for k, v in worst.items() if (k[0] // 2) % k[1] == 0}
    rebuilt = {k: v for k, v in worst.items() if (k[0] // 2) % k[1] != 0}
    assert set(rebuilt) == {(2000, 2000), (10000, 2000)}
    assert max(aligned.values()) == 0.0, aligned  # the stored bins themselves: exact
    assert max(rebuilt.values()) <= 1e-6, rebuilt  # one float32 round trip


def test_crop_keeps_pcres_and_checks_the_window():
    inputs = ci.random_inputs(3, n_marks=2, n_pcres=[0, 2, 8], window=40000, seed=1)
    out = ci.crop_promoter(inputs, 4000)
    assert out["promoter_100"].shape == (3, 2, 40) and out["promoter_2000"].shape == (3, 2, 2)
    assert out["pcre_100"] is inputs["pcre_100"] and out["freq"] is inputs["freq"]
    # the central bins: TSS between bins 199 and 200 of the 400
    torch.testing.assert_close(out["promoter_100"], inputs["promoter_100"][..., 180:220])
    assert torch.equal(ci.crop_promoter(inputs, 40000)["promoter_500"], inputs["promoter_500"])
    for bad in (3000, 50000, 0, 1000):  # not a multiple of 2 kb, too large, empty, below the coarsest bin
        with pytest.raises(ValueError, match="window"):
            ci.crop_promoter(inputs, bad)
    no_fine = {k: v for k, v in inputs.items() if not k.endswith(("_100", "_500"))}
    with pytest.raises(ValueError, match="tiles it"):
        ci.crop_promoter(no_fine, 2000)
