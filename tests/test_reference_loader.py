"""Real E003 data through our loader equals Chromoformer's own loader (chromoformer==1.1.3).

The reference ``ChromoformerDataset`` reads one ``{chrom}:{start}-{end}.npy`` per region (the
promoter window ``[TSS - 20 kb, TSS + 20 kb)`` and each pCRE fragment), a float16 array of shape
(7, length) holding the per-base depth in ``MARKS`` order, exactly as in its demo. We write
those files in ``tmp_path`` from the same vendored bedGraphs (brute force, base by base), run
the reference loader, and compare its promoter / pCRE tensors, pad masks, interaction masks
and frequencies with :class:`chromexp.data.dataset.CellDataset` built by our own path.

Precision: depths are integers <= 113 here, exact in float16, so the reference's float16 files
lose nothing. The reference then averages in float32 and applies ``torch.log`` in float32; we
average exactly and round ``log1p`` once to float32. The two agree to float32 rounding (a few
ulp), which is the tolerance used; structure (padding, masks, order, counts) must be identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromexp.constants import MARKS
from chromexp.data import dataset, io

torch = pytest.importorskip("torch")
chromoformer_data = pytest.importorskip("chromoformer.data")


@pytest.fixture(scope="module")
def real(tmp_path_factory, request):
    """Our real-E003 dataset and the reference loader's items over npy files from the same bedGraphs.

    The reference loader is slow (per-bin Python loops, dense 400 × 400 masks): by default every
    third of the 100 genes (34 genes, both strands, 0 to 8 pCREs) is compared; ``--runslow``
    compares all 100.
    """
    from chromexp.config import load_params

    root = tmp_path_factory.mktemp("real_e003")
    params = load_params("E003", overrides={"paths": {"data_dir": str(root / "data")}})
    ds = dataset.load_real_e003(params)

    res_dir = dataset.real_e003_dir()
    meta = pd.read_csv(res_dir / "genes.csv")
    step = 1 if request.config.getoption("--runslow") else 3
    chosen = list(range(0, len(meta), step))
    regions = set()
    for r in meta.iloc[chosen].itertuples():
        regions.add((r.chrom, r.start - 20000, r.start + 20000))
        if isinstance(r.neighbors, str):
            for token in r.neighbors.split(";"):
                chrom, span = token.split(":")
                a, b = map(int, span.split("-"))
                regions.add((chrom, a, b))
    # brute-force per-base depth over each region from the bedGraph intervals
    tracks = {m: io.read_bedgraph(res_dir / f"E003-{m}.demo.bedGraph.gz") for m in MARKS}
    npy_dir = root / "npy"
    npy_dir.mkdir()
    by_chrom = {
        m: {c: g.sort_values("start") for c, g in t.astype({"chrom": str}).groupby("chrom")} for m, t in tracks.items()
    }
    for chrom, a, b in sorted(regions):
        arr = np.zeros((len(MARKS), b - a), dtype=np.float64)
        for k, m in enumerate(MARKS):
            t = by_chrom[m].get(chrom)
            if t is None:
                continue
            lo = np.searchsorted(t["end"].to_numpy(), a, side="right")
            hi = np.searchsorted(t["start"].to_numpy(), b, side="left")
            s = np.clip(t["start"].to_numpy()[lo:hi], a, b) - a
            e = np.clip(t["end"].to_numpy()[lo:hi], a, b) - a
            # paint every base of every interval (per-base depth, as the reference's npy files hold)
            arr[k, np.repeat(s, e - s) + np.arange((e - s).sum()) - np.repeat(np.cumsum(e - s) - (e - s), e - s)] = (
                np.repeat(t["value"].to_numpy()[lo:hi], e - s)
            )
        assert np.all(arr == arr.astype(np.float16)), "depth must be exact in float16 (as in the reference demo)"
        np.save(npy_dir / f"{chrom}:{a}-{b}.npy", arr.astype(np.float16))
    ref = chromoformer_data.ChromoformerDataset(
        str(res_dir / "genes.csv"), str(npy_dir), list(meta["gene_id"]), regression=True
    )
    items = {i: ref[i] for i in chosen}  # the reference's items, computed once
    return ds, items, meta.iloc[chosen]


def _close(ours, theirs):
    # float32 rounding of ln(mean + 1): the reference rounds mean, mean + 1 and the log in float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-6)


def test_reference_tensors_equal(real):
    ds, items, meta = real
    row = {g: i for i, g in enumerate(ds.genes["gene_id"])}
    assert len(ds) == 100 and ds.exclusions["n_items"].sum() == 0
    assert set(ds.genes["strand"]) == {"+", "-"}  # both strands covered
    max_diff = 0.0
    assert set(meta["strand"]) == {"+", "-"}
    n_ref = meta["neighbors"].fillna("").map(lambda s: len(s.split(";")) if s else 0)
    assert n_ref.min() == 0 and n_ref.max() == 8  # empty, partial and full pCRE slots are compared
    for res in (2000, 500, 100):
        prom = ds.promoter(resolution=res)
        x, mask, freq, n = ds.pcres(resolution=res)
        length = 40000 // res
        for i, gene in zip(meta.index, meta["gene_id"]):
            item = items[i]
            j = row[gene]
            theirs = item["promoter_feats"][res][0].numpy().T  # (7, L)
            _close(prom[j], theirs)
            max_diff = max(max_diff, float(np.abs(prom[j] - theirs).max()))
            assert not item["promoter_pad_masks"][res][0, 0].any()  # a full 40 kb window has no padding
            theirs_x = item["pcre_feats"][res].numpy().transpose(0, 2, 1)  # (8, 7, L)
            _close(x[j], theirs_x)
            # the reference's pCRE mask is (8, 1, L, L) over (promoter bin, pCRE bin); with an unpadded
            # promoter every row equals the pCRE's column mask
            theirs_mask = item["pcre_pad_masks"][res][:, 0].numpy()
            assert np.array_equal(theirs_mask, np.repeat(mask[j][:, None, :], length, axis=1))
            inter = item["interaction_masks"][res][0].numpy()
            assert np.array_equal(inter[0], np.arange(9) > n[j])
            np.testing.assert_array_equal(item["interaction_freq"][0, 1:].numpy(), freq[j])
            # empty slots are all zero and fully masked
            assert np.all(x[j, n[j] :] == 0) and np.all(mask[j, n[j] :])
    assert max_diff < 2e-6


def test_reference_targets_and_counts(real):
    ds, items, meta = real
    by_id = ds.genes.set_index("gene_id")
    for i, gene in zip(meta.index, meta["gene_id"]):
        assert float(items[i]["label"]) == pytest.approx(by_id.loc[gene, "target"], abs=1e-6)
    expected_n = meta["neighbors"].fillna("").map(lambda s: len(s.split(";")) if s else 0)
    assert np.array_equal(ds.n_pcres()[[by_id.index.get_loc(g) for g in meta["gene_id"]]], expected_n.to_numpy())
    # every gene of the demo is on fold 1 (its "split" column)
    assert set(ds.genes["fold"]) == set(meta["split"]) == {1}
