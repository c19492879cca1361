"""Chromoformer equals the reference package ``chromoformer==1.1.3`` given the same weights.

Oracle: the reference model (``chromoformer.net``) and, for the real E003 genes, the reference
data pipeline (``chromoformer.data.ChromoformerDataset`` reading per-base depth arrays that we
write from the vendored bedGraphs, exactly as the Chromoformer demo's ``.npy`` files). The
reference calls ``.cuda()`` on its positional encoding; the ``reference`` fixture patches
``Tensor.cuda`` to a no-op so that it runs on CPU.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import torch

from chromexp import paths
from chromexp.constants import MARKS
from chromexp.models import chromoformer as cf
from chromexp.models import chromoformer_inputs as ci

ref_net = pytest.importorskip("chromoformer.net")
ref_data = pytest.importorskip("chromoformer.data")

TOL = 1e-5
# Published parameter counts (docs/methods.md, "Chromoformer"; Chromoformer paper).
PUBLISHED = {("reg", 1): 5_337_935, ("reg", 7): 5_342_543, ("clf", 7): 5_342_672}


@pytest.fixture
def reference(monkeypatch):
    """The reference module with ``Tensor.cuda`` patched to a no-op (CPU run)."""
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
    return ref_net


def _reference_model(kind: str, n_marks: int):
    cls = ref_net.ChromoformerRegressor if kind == "reg" else ref_net.ChromoformerClassifier
    # Fresh dicts: the reference mutates its default keyword dictionaries.
    model = cls(
        n_feats=n_marks,
        embed_kws={"n_layers": 1, "n_heads": 2, "d_model": 128, "d_ff": 128},
        pairwise_interaction_kws={"n_layers": 2, "n_heads": 2, "d_model": 128, "d_ff": 256},
        regulation_kws={"n_layers": 6, "n_heads": 8, "d_model": 256, "d_ff": 256},
        seed=42,
    )
    # Perturb every tensor (LayerNorm affine, gamma_f, biases included) so that a wrong
    # wiring cannot hide behind default initial values.
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _pair(kind: str, n_marks: int):
    reference = _reference_model(kind, n_marks)
    ours = cf.build_model(kind, n_marks)
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours.eval()


def _reference_output(model, inputs, kind):
    with torch.no_grad():
        out = model(**ci.to_reference_batch(inputs))
    return out.squeeze(-1) if kind == "reg" else out


@pytest.mark.parametrize(("kind", "n_marks"), sorted(PUBLISHED))
def test_parameter_counts_match_published_and_reference(kind, n_marks):
    reference, ours = _pair(kind, n_marks)
    assert cf.count_parameters(ours) == PUBLISHED[(kind, n_marks)]
    assert cf.count_parameters(ours) == sum(p.numel() for p in reference.parameters())
    # Same tensor names and shapes both ways: strict loading in either direction.
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


def test_positional_encoding_is_bitwise_the_reference():
    for length in (20, 80, 400):
        expected = ref_net.EmbeddingTransformer._pos_enc(None, dim=128, max_len=length)
        assert torch.equal(cf.sinusoidal_encoding(length, 128), expected)


@pytest.mark.parametrize(("kind", "n_marks"), [("reg", 1), ("clf", 3)])
def test_random_inputs_equal_reference(reference, kind, n_marks):
    """0–8 pCREs (every count), short windows so the O(L²) reference stays fast."""
    ref_model, ours = _pair(kind, n_marks)
    inputs = ci.random_inputs(9, n_marks=n_marks, n_pcres=list(range(9)), window=8000, seed=n_marks)
    expected = _reference_output(ref_model, inputs, kind)
    with torch.no_grad():
        fast = ours(**inputs)
        full = ours(full_attention=True, **inputs)
    assert expected.abs().max() > 0.1  # the comparison is not between near-zero outputs
    torch.testing.assert_close(fast, expected, atol=TOL, rtol=0)
    torch.testing.assert_close(full, expected, atol=TOL, rtol=0)


# ---- real E003 genes, through the reference data pipeline ----------------------------------


def _read_bedgraph_regions(path, regions):
    """Per-base depth of ``regions`` [(chrom, start, end)] from a bedGraph (0-based, half-open).

    Minimal private reader for this oracle (the project's reader is chromexp.data.io); it fails if
    a region is not fully covered, since the vendored files only cover the demo regions.
    """
    table = pd.read_csv(
        path,
        sep="\t",
        header=None,
        names=["chrom", "start", "end", "value"],
        dtype={"chrom": str, "start": np.int64, "end": np.int64, "value": np.float32},
    )
    out = {}
    for chrom, start, end in regions:
        sub = table[(table["chrom"] == chrom) & (table["end"] > start) & (table["start"] < end)]
        depth = np.full(end - start, np.nan, dtype=np.float32)
        for s, e, v in zip(sub["start"], sub["end"], sub["value"], strict=True):
            depth[max(s, start) - start : min(e, end) - start] = v
        if np.isnan(depth).any():
            raise ValueError(f"{path}: region {chrom}:{start}-{end} is not fully covered.")
        out[(chrom, start, end)] = depth
    return out


def _write_reference_npy_dir(genes: pd.DataFrame, npy_dir):
    """Write the Chromoformer demo's ``{chrom}:{start}-{end}.npy`` arrays (7 × length depth,
    marks in MARKS order) for the genes' TSS ± 20 kb windows and pCREs."""
    regions = set()
    for row in genes.itertuples():
        regions.add((row.chrom, row.start - 20000, row.start + 20000))
        if isinstance(row.neighbors, str):
            for item in row.neighbors.split(";"):
                chrom, span = item.split(":")
                s, e = map(int, span.split("-"))
                regions.add((chrom, s, e))
    regions = sorted(regions)
    resources = paths.resources_dir() / "e003_real"
    per_mark = []
    for mark in MARKS:
        with gzip.open(resources / f"E003-{mark}.demo.bedGraph.gz", "rt") as handle:
            per_mark.append(_read_bedgraph_regions(handle, regions))
    for region in regions:
        chrom, s, e = region
        np.save(npy_dir / f"{chrom}:{s}-{e}.npy", np.stack([m[region] for m in per_mark]))


@pytest.fixture(scope="module")
def e003_reference_batch(tmp_path_factory):
    """Six real E003 genes (both strands; 0, 1, 3 and 8 pCREs) as the reference dataset builds them."""
    meta = pd.read_csv(paths.resources_dir() / "e003_real" / "genes.csv")
    n = meta["neighbors"].fillna("").map(lambda s: len([x for x in s.split(";") if x]))
    picks = []
    for count in (0, 8):
        for strand in "+-":
            picks.append(meta.index[(n == count) & (meta["strand"] == strand)][0])
    picks += [meta.index[n == 1][0], meta.index[n == 3][0]]
    genes = meta.loc[picks]
    npy_dir = tmp_path_factory.mktemp("e003_npy")
    _write_reference_npy_dir(genes, npy_dir)
    meta_path = npy_dir / "meta.csv"
    genes.to_csv(meta_path, index=False)
    dataset = ref_data.ChromoformerDataset(str(meta_path), str(npy_dir), list(genes["gene_id"]), regression=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    return genes, batch


def test_real_e003_genes_equal_reference(reference, e003_reference_batch):
    genes, batch = e003_reference_batch
    assert set(genes["strand"]) == {"+", "-"}
    ref_model, ours = _pair("reg", 7)
    args = {k: v for k, v in batch.items() if k != "label"}
    with torch.no_grad():
        expected = ref_model(**args).squeeze(-1)
        inputs = ci.from_reference_batch(batch)
        fast, full = ours(**inputs), ours(full_attention=True, **inputs)
    # The adapter round-trips the reference batch exactly.
    back = ci.to_reference_batch(inputs)
    for key in ("promoter_feats", "pcre_feats", "pcre_pad_masks", "interaction_masks"):
        for res in cf.RESOLUTIONS:
            assert torch.equal(back[key][res], batch[key][res]), (key, res)
    assert torch.equal(back["interaction_freq"], batch["interaction_freq"])
    assert inputs["promoter_100"].abs().max() > 1  # real signal, not an empty fixture
    torch.testing.assert_close(fast, expected, atol=TOL, rtol=0)
    torch.testing.assert_close(full, expected, atol=TOL, rtol=0)


def test_training_step_matches_reference(reference):
    """Same weights, same batch: same loss and same gradients in train mode.

    (Comparing weights after an Adam step would be ill-conditioned: Adam's first step is
    ≈ lr·sign(grad), which amplifies float noise in gradients that are zero in exact
    arithmetic, such as the key component along which softmax is shift-invariant.)
    """
    ref_model, ours = _pair("reg", 2)
    ref_model.train()
    ours.train()
    inputs = ci.random_inputs(3, n_marks=2, n_pcres=[0, 3, 8], window=4000, seed=11)
    target = torch.randn(3, generator=torch.Generator().manual_seed(0))
    batch = ci.to_reference_batch(inputs)
    loss_ref = torch.nn.functional.mse_loss(ref_model(**batch).squeeze(-1), target)
    loss_ours = torch.nn.functional.mse_loss(ours(**inputs), target)
    loss_ref.backward()
    loss_ours.backward()
    torch.testing.assert_close(loss_ours, loss_ref, atol=TOL, rtol=0)
    grads_ref = dict(ref_model.named_parameters())
    for name, p in ours.named_parameters():
        g_ref = grads_ref[name].grad
        if g_ref is None:
            assert p.grad is None, name
        else:
            torch.testing.assert_close(p.grad, g_ref, atol=1e-5, rtol=1e-4, msg=name)


def test_project_dataset_feeds_the_model_like_the_reference_pipeline(reference, e003_reference_batch, smoke_params):
    """End to end on real E003 genes: chromexp.data.dataset's real-E003 store -> our adapter -> our
    model equals the reference's ChromoformerDataset -> reference model."""
    from chromexp.data import dataset

    genes, batch = e003_reference_batch
    ds = dataset.load_real_e003(smoke_params)
    ids = ds.genes["gene_id"].to_numpy()
    index = np.array([int(np.flatnonzero(ids == g)[0]) for g in genes["gene_id"]])
    ours_inputs = ci.dataset_inputs(ds, list(MARKS), index=index)
    ref_inputs = ci.from_reference_batch(batch)
    for key, value in ref_inputs.items():
        if value.dtype == torch.bool:
            assert torch.equal(ours_inputs[key], value), key
        else:
            torch.testing.assert_close(ours_inputs[key], value, atol=1e-6, rtol=0, msg=key)
    ref_model, ours = _pair("reg", 7)
    with torch.no_grad():
        expected = ref_model(**{k: v for k, v in batch.items() if k != "label"}).squeeze(-1)
        torch.testing.assert_close(ours(**ours_inputs), expected, atol=TOL, rtol=0)
