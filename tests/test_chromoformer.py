"""Chromoformer models: invariances, fast path = full path, heads, input checks, adapters.

Equality with the reference package is in ``test_chromoformer_reference.py``.
"""

from __future__ import annotations

import pytest
import torch

from chromexp.models import chromoformer as cf
from chromexp.models import chromoformer_inputs as ci

WINDOW = 4000  # 2 / 8 / 40 bins: the same code paths as 40 kb, fast


def _model(kind="reg", n_marks=3, seed=0, **kw):
    torch.manual_seed(seed)
    model = cf.build_model(kind, n_marks, **kw)
    with torch.no_grad():  # non-default LayerNorm / gamma_f values
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _inputs(batch=9, n_marks=3, seed=0, n_pcres=None):
    n_pcres = list(range(9))[:batch] if n_pcres is None else n_pcres
    return ci.random_inputs(batch, n_marks=n_marks, n_pcres=n_pcres, window=WINDOW, seed=seed)


def test_fast_path_equals_full_path():
    model, inputs = _model(), _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs), model(full_attention=True, **inputs), atol=1e-5, rtol=0)


def test_fast_path_equals_full_path_with_deeper_embedding():
    """The general branch (embedding transformer with 2 layers: only the last is TSS-only)."""
    model = _model(architecture={"embed": {"n_layers": 2}})
    inputs = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs), model(full_attention=True, **inputs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("full", [False, True])
def test_bf16_autocast_on_cpu(full):
    """Under bf16 autocast (train.mixed_precision) both paths run and stay close to float32.

    The fast path scatters bf16 pCRE embeddings into a float32 buffer: without a cast, index_put
    raised "Index put requires the source and destination dtypes match".
    """
    model, inputs = _model(), _inputs()
    with torch.no_grad():
        ref = model(full_attention=full, **inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(full_attention=full, **inputs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05 * float(ref.abs().max()), rtol=0)


@pytest.mark.parametrize("full", [False, True])
def test_padding_and_empty_slot_values_do_not_matter(full):
    model, inputs = _model(), _inputs()
    noisy = dict(inputs)
    gen = torch.Generator().manual_seed(1)
    for res in cf.RESOLUTIONS:
        x, pad = inputs[f"pcre_{res}"], inputs[f"pcre_mask_{res}"]
        noise = 5 * torch.rand(x.shape, generator=gen)
        noisy[f"pcre_{res}"] = torch.where(pad.unsqueeze(2), noise, x)
    empty = inputs["pcre_mask_100"].all(-1)
    noisy["freq"] = torch.where(empty, 3.0, inputs["freq"])
    assert not torch.equal(noisy["pcre_100"], inputs["pcre_100"])
    with torch.no_grad():
        torch.testing.assert_close(
            model(full_attention=full, **noisy), model(full_attention=full, **inputs), atol=1e-6, rtol=0
        )


def test_train_and_eval_mode_agree():
    """The reference's dropouts have p = 0 and there is no batch norm: the mode changes nothing."""
    model, inputs = _model(), _inputs()
    with torch.no_grad():
        evaluated = model(**inputs)
        model.train()
        trained = model(**inputs)
    assert torch.equal(evaluated, trained)


def test_batch_composition_does_not_change_predictions():
    model, inputs = _model(), _inputs()
    with torch.no_grad():
        whole = model(**inputs)
        perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
        permuted = model(**ci.subset(inputs, perm))
        picks = [0, 4, 8]  # no pCRE, 4 pCREs, 8 pCREs
        singles = torch.cat([model(**ci.subset(inputs, [i])) for i in picks])
    torch.testing.assert_close(permuted, whole[perm], atol=1e-6, rtol=0)
    torch.testing.assert_close(singles, whole[picks], atol=1e-6, rtol=0)


def test_pcre_slot_order_does_not_matter():
    """No positional encoding across slots: permuting a gene's pCREs (with their frequencies)
    leaves the prediction unchanged, also when empty slots come first."""
    model, inputs = _model(), _inputs()
    perm = torch.tensor([7, 0, 6, 1, 5, 2, 4, 3])
    permuted = {k: (v[:, perm] if k.startswith("pcre") or k == "freq" else v) for k, v in inputs.items()}
    with torch.no_grad():
        torch.testing.assert_close(model(**permuted), model(**inputs), atol=1e-5, rtol=0)


def test_frequencies_and_distal_signal_matter():
    """Sanity of the wiring: the frequency bias and the pCRE signal both reach the output."""
    model, inputs = _model(), _inputs()
    with torch.no_grad():
        base = model(**inputs)
        changed = model(**{**inputs, "freq": inputs["freq"] * 2})
        zero_pcre = model(
            **{k: (torch.zeros_like(v) if k.startswith("pcre_") and "mask" not in k else v) for k, v in inputs.items()}
        )
    has_pcre = ~inputs["pcre_mask_100"].all(-1).all(-1)
    assert (changed - base)[has_pcre].abs().min() > 0
    assert (changed - base)[~has_pcre].abs().max() == 0
    assert (zero_pcre - base)[has_pcre].abs().min() > 0


def test_unused_reference_tensors_get_no_gradient():
    model, inputs = _model(), _inputs()
    model(**inputs).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused and all(
        ".w_bias." in n
        or "gamma_f" in n
        and "regulation" not in n
        or n.startswith("pairwise_interaction.")
        and ".ln." in n
        and "layers" not in n
        for n in unused
    )
    used = {n for n, p in model.named_parameters() if p.grad is not None}
    assert all(f"regulation.{r}.transformer.layers.0.self_att.gamma_f" in used for r in cf.RESOLUTIONS)


def test_heads_shapes_and_diff_consistency():
    inputs = _inputs(batch=4)
    clf = _model("clf")
    with torch.no_grad():
        assert clf(**inputs).shape == (4, 2)
    diff = _model("diff")
    other = _inputs(batch=4, seed=5)
    paired = {**{f"{k}_a": v for k, v in inputs.items()}, **{f"{k}_b": v for k, v in other.items()}}
    swapped = {**{f"{k}_a": v for k, v in other.items()}, **{f"{k}_b": v for k, v in inputs.items()}}
    with torch.no_grad():
        out, out_swapped = diff(**paired), diff(**swapped)
        emb = cf.ChromoformerBackbone.forward(diff, **inputs)
    assert out.shape == (4, 3)
    # The auxiliary outputs are the shared head on each cell type's own embedding.
    torch.testing.assert_close(out[:, 1], diff.fc_head(emb).squeeze(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out_swapped[:, 1:], out[:, [2, 1]], atol=1e-6, rtol=0)
    assert cf.count_parameters(diff) == cf.count_parameters(_model("reg")) + (2 * 384 * 128 + 128 + 128 + 1)
    with pytest.raises(ValueError, match="_a or _b"):
        diff(**paired, freq=inputs["freq"])


def test_attention_maps_are_distributions_and_respect_masks():
    model, inputs = _model(), _inputs(batch=4, n_pcres=[0, 1, 3, 8])
    pred, maps = model.attention_maps(**inputs)
    with torch.no_grad():
        torch.testing.assert_close(pred, model(**inputs), atol=1e-5, rtol=0)
    pw = maps[100]["pairwise"][0]  # (B, S, heads, L, L)
    assert pw.shape == (4, 8, 2, 40, 40)
    pad = inputs["pcre_mask_100"]
    valid = ~pad.all(-1)
    torch.testing.assert_close(pw.sum(-1), torch.ones_like(pw.sum(-1)))
    assert pw[valid].masked_select(pad[valid][:, None, None, :].expand_as(pw[valid])).abs().max() == 0
    reg = maps[100]["regulation"][-1]  # (B, heads, 9, 9)
    assert reg[2, :, 0, 4:].abs().max() == 0  # gene with 3 pCREs: empty slots get no attention


def test_input_validation():
    model, inputs = _model(), _inputs(batch=2)
    with pytest.raises(ValueError, match="lack"):
        model(**{k: v for k, v in inputs.items() if k != "freq"})
    with pytest.raises(ValueError, match="promoter_100"):
        model(**{**inputs, "promoter_100": inputs["promoter_100"][:, :2]})
    with pytest.raises(ValueError, match="pcre_mask_500"):
        model(**{**inputs, "pcre_mask_500": inputs["pcre_mask_500"].float()})
    with pytest.raises(ValueError, match="full path"):
        cf.ChromoformerBackbone.forward(model, return_attention=True, **inputs)
    with pytest.raises(ValueError, match="kind"):
        cf.build_model("foo", 3)
    with pytest.raises(ValueError, match="architecture"):
        cf.build_model("reg", 3, architecture={"embedding": {}})
    with pytest.raises(ValueError, match="n_pcres"):
        ci.random_inputs(2, n_pcres=[9, 0])


def test_reference_layout_round_trip():
    inputs = _inputs()
    back = ci.from_reference_batch(ci.to_reference_batch(inputs))
    assert back.keys() == inputs.keys()
    assert all(torch.equal(back[k], inputs[k]) for k in inputs)


def test_dataset_inputs_from_smoke_dataset(smoke_dataset):
    """The adapter reads a CellDataset (skipped until chromexp.data.dataset exists)."""
    inputs = ci.dataset_inputs(smoke_dataset, ["H3K4me3", "H3K27ac"], index=[0, 1, 2])
    assert inputs["promoter_100"].shape == (3, 2, 400)
    assert inputs["pcre_100"].shape[:3] == (3, inputs["freq"].shape[1], 2)
    model = _model(n_marks=2)
    with torch.no_grad():
        out = model(**inputs)
    assert out.shape == (3,) and torch.isfinite(out).all()


# ---- training helpers (notebooks 40 and 50) -------------------------------------------------


def test_study_pairs_are_the_15_of_the_design():
    from chromexp.constants import MARKS
    from chromexp.experiments import chromoformer as ct

    pairs = ct.anchor_pairs(["H3K4me3", "H3K9ac", "H3K27ac"], MARKS)
    assert len(pairs) == 15 == len({frozenset(p) for p in pairs})
    assert all({"H3K4me3", "H3K9ac", "H3K27ac"} & set(p) for p in pairs)
    with pytest.raises(ValueError, match="anchor"):
        ct.anchor_pairs(["H3K4me2"], MARKS)


def test_params_build_the_published_model(smoke_params):
    from chromexp.experiments import chromoformer as ct

    assert ct.architecture_from_params(smoke_params["model"]["chromoformer"]) == cf.DEFAULT_ARCHITECTURE
    assert cf.count_parameters(ct.build(smoke_params, 7, kind="clf")) == 5_342_672


def test_gain_tables():
    import pandas as pd

    rows = []
    values = {"H3K4me3": [0.6, 0.7], "H3K27me3": [0.3, 0.4], "H3K27me3+H3K4me3": [0.65, 0.8]}
    all7 = "H3K27ac+H3K27me3+H3K36me3+H3K4me1+H3K4me3+H3K9ac+H3K9me3"
    values[all7] = [0.7, 0.75]
    for marks, vs in values.items():
        for fold, v in zip((1, 2), vs, strict=True):
            rows.append(("chromoformer_reg", marks, fold, v))
            rows.append(("promoter_cnn", marks, fold, v - 0.1))
    metrics = pd.DataFrame(rows, columns=["model", "marks", "fold", "value"]).assign(split="test", metric="pearson_r")
    from chromexp.analyses import gains as model_gains

    gains = model_gains.gain_over_promoter(metrics)
    assert len(gains) == 8 and (gains["gain"] - 0.1).abs().max() < 1e-12
    pairs = model_gains.pair_gains(metrics, mark_sets=[("H3K4me3", "H3K27me3")], all_marks=all7.split("+"))
    assert list(pairs["best_single"]) == ["H3K4me3", "H3K4me3"]
    assert pairs["gain_over_best_single"].round(6).tolist() == [0.05, 0.1]
    assert pairs["gain_over_all_marks"].round(6).tolist() == [-0.05, 0.05]

    # The Fig. 4A/C and Fig. 5 panels: structure and the data label in the title.
    from chromexp.plots import panels

    fig = panels.plot_distal_vs_promoter(metrics.assign(cell_type="E003"), gains, "semi-synthetic")
    assert len(fig.axes) == 2 and "SEMI-SYNTHETIC" in fig._suptitle.get_text()
    assert len(fig.axes[0].patches) == 4 and len(fig.axes[1].patches) == 4
    fig = panels.plot_pair_gains(pairs, "real")
    assert [len(ax.patches) for ax in fig.axes] == [1, 1] and "real data" in fig._suptitle.get_text()
    panels.plt.close("all")


def test_embedding_only_ablation_is_the_intact_models_tss_embedding():
    """Fig. 3b's ablation: fc_head(cat(p_tss)); with the intact model's weights, its embedding transformers' TSS tokens."""
    intact, inputs = _model("reg"), _inputs(batch=5)
    ablated = cf.build_model("reg", 3, variant="embedding_only").eval()
    shared = {k: v for k, v in intact.state_dict().items() if k.startswith(("embed.", "fc_head."))}
    ablated.load_state_dict(shared, strict=True)  # exactly the embedding transformers and the head
    with torch.no_grad():
        tss = [
            intact.embed[str(r)].forward_full(inputs[f"promoter_{r}"].transpose(1, 2))[:, WINDOW // r // 2]
            for r in intact.resolutions
        ]
        want = intact.fc_head(torch.cat(tss, dim=1)).squeeze(-1)
        torch.testing.assert_close(ablated(**inputs), want, atol=1e-5, rtol=0)
        torch.testing.assert_close(ablated(full_attention=True, **inputs), want, atol=1e-5, rtol=0)
        # pCREs do not reach it (they do reach the intact model: test_frequencies_and_distal_signal_matter)
        other = {**inputs, **{k: v.flip(0) for k, v in inputs.items() if k.startswith(("pcre", "freq"))}}
        torch.testing.assert_close(ablated(**other), ablated(**inputs), atol=0, rtol=0)
    assert cf.count_parameters(ablated) == sum(v.numel() for v in shared.values())
    clf = cf.build_model("clf", 3, variant="embedding_only")
    with torch.no_grad():
        assert clf(**inputs).shape == (5, 2)
    with pytest.raises(ValueError, match="variant"):
        cf.build_model("reg", 3, variant="no_pairwise")
    with pytest.raises(ValueError, match="reg and clf"):
        cf.build_model("diff", 3, variant="embedding_only")


def test_cropped_promoter_with_the_full_pcre_window():
    """The window study crops the promoter only: fast path = full path when the two windows differ."""
    model = _model("clf")
    inputs = ci.crop_promoter(_inputs(batch=6), 2000)  # 20 / 4 / 1 promoter bins, 40 / 8 / 2 pCRE bins
    assert inputs["promoter_2000"].shape[-1] == 1 and inputs["pcre_2000"].shape[-1] == 2
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs), model(full_attention=True, **inputs), atol=1e-5, rtol=0)
