"""pCRE choice = Chromoformer's get_neighbors/get_partners: pooled over all TSS fragments of a gene,
first-seen score for a partner reached twice, then > 1.5, <= 40 kb, top 8 by (-score, "chrom:start-end")."""

from __future__ import annotations

from queue import PriorityQueue

import numpy as np
import pandas as pd

from chromexp.data import dataset

SETTINGS = {"max_pcres": 8, "pcre_min_frequency": 1.5, "pcre_max_length": 40_000}


def reference_partners(gene, ensg2tss, tss2frag, frag2neighbors, pair2score, thr=1.5, max_len=40_000, k=8):
    """The reference rule written the way Chromoformer's preprocessing loops over its pickles."""
    seen = {}
    for tss in ensg2tss[gene]:
        frag = tss2frag.get(tss)
        if frag is None:
            continue
        for nb in frag2neighbors.get(frag, []):
            if nb in seen:  # first-seen score kept
                continue
            seen[nb] = pair2score[(frag, nb)]
    q = PriorityQueue()
    for nb, score in seen.items():
        start, end = (int(v) for v in nb.split(":")[1].split("-"))
        if score > thr and end - start <= max_len:
            q.put((-score, nb))
    out = []
    while not q.empty() and len(out) < k:
        score, nb = q.get()
        out.append((nb, -score))
    return out


def _frag(chrom, start, end):
    return f"{chrom}:{start}-{end}"


def _ours(genes, ensg2tss, tss2frag, frag2neighbors, pair2score):
    """Run dataset._select_pcres on the same inputs, in its table layout."""
    rows = []
    for bait, nbs in frag2neighbors.items():
        bc, bs, be = bait.split(":")[0], *map(int, bait.split(":")[1].split("-"))
        for nb in nbs:
            oc, os_, oe = nb.split(":")[0], *map(int, nb.split(":")[1].split("-"))
            rows.append((bc, bs, be, oc, os_, oe, pair2score[(bait, nb)]))
    pairs = pd.DataFrame(
        rows, columns=["bait_chrom", "bait_start", "bait_end", "other_chrom", "other_start", "other_end", "frequency"]
    )
    tf = []
    for g in genes["gene_id"]:
        for tss in ensg2tss[g]:
            frag = tss2frag.get(tss)
            if frag is not None:
                c, (s, e) = frag.split(":")[0], map(int, frag.split(":")[1].split("-"))
                tf.append((g, c, s, e))
    tss_fragments = pd.DataFrame(tf, columns=["gene_id", "chrom", "start", "end"])
    excl = dataset._Exclusions()
    cand = dataset._select_pcres(genes, pairs, {}, SETTINGS, excl, tss_fragments)
    out = {}
    for r in cand.itertuples():
        out.setdefault(genes["gene_id"].iloc[r.gene_row], []).append((_frag(r.chrom, r.start, r.end), r.frequency))
    return out, excl.table().set_index("reason")


def test_gene_with_tss_in_two_fragments():
    f1, f2 = _frag("chr1", 10_000, 14_000), _frag("chr1", 30_000, 33_000)
    p1, p2, p3, p4 = (_frag("chr1", s, s + 2_000) for s in (100_000, 120_000, 140_000, 160_000))
    frag2neighbors = {f1: [p1, p2, p3], f2: [p1, p4, p3]}
    pair2score = {
        (f1, p1): 1.2,  # first seen below the threshold: dropped even though f2 scores it 5.0
        (f1, p2): 3.0,
        (f1, p3): 2.0,  # first seen 2.0: kept at 2.0, not f2's 4.0
        (f2, p1): 5.0,
        (f2, p4): 2.5,
        (f2, p3): 4.0,
    }
    ensg2tss = {"G": ["chr1:12000-12001", "chr1:31000-31001"]}
    tss2frag = {"chr1:12000-12001": f1, "chr1:31000-31001": f2}
    genes = pd.DataFrame({"gene_id": ["G"], "chrom": ["chr1"], "tss": [12_000], "strand": ["+"]})
    want = reference_partners("G", ensg2tss, tss2frag, frag2neighbors, pair2score)
    assert want == [(p2, 3.0), (p4, 2.5), (p3, 2.0)]
    ours, excl = _ours(genes, ensg2tss, tss2frag, frag2neighbors, pair2score)
    assert ours["G"] == want
    assert excl.loc["pcre_duplicate", "n_items"] == 2 and excl.loc["pcre_low_frequency", "n_items"] == 1
    # without the alternative TSS (bait = the fragment holding the gene's one TSS) only f1's partners count
    one_tss = {"G": ensg2tss["G"][:1]}
    assert _ours(genes, one_tss, tss2frag, frag2neighbors, pair2score)[0]["G"] == [(p2, 3.0), (p3, 2.0)]
    assert reference_partners("G", one_tss, tss2frag, frag2neighbors, pair2score) == [(p2, 3.0), (p3, 2.0)]


def test_random_genes_match_the_reference_loop():
    rng = np.random.default_rng(7)
    frags = [_frag("chr2", s, s + int(rng.integers(500, 45_000))) for s in range(0, 3_000_000, 50_000)]
    ensg2tss, tss2frag, frag2neighbors, pair2score = {}, {}, {}, {}
    genes = []
    for g in range(60):
        gid = f"G{g:03d}"
        n_tss = int(rng.integers(1, 4))
        baits = rng.choice(20, n_tss)  # sometimes two TSSs in one fragment
        ensg2tss[gid] = []
        for t, b in enumerate(baits):
            tss = f"chr2:{g}{t}-{g}{t}1"
            ensg2tss[gid].append(tss)
            tss2frag[tss] = frags[b]
        genes.append((gid, "chr2", 0, "+"))
    for b in range(20):
        nbs = [frags[i] for i in rng.choice(np.arange(20, len(frags)), int(rng.integers(0, 15)), replace=False)]
        frag2neighbors[frags[b]] = nbs
        for nb in nbs:
            pair2score[(frags[b], nb)] = float(rng.choice([1.0, 1.5, 1.6, 2.0, 2.0, 3.5, 7.0]))
    genes = pd.DataFrame(genes, columns=["gene_id", "chrom", "tss", "strand"])
    ours, _ = _ours(genes, ensg2tss, tss2frag, frag2neighbors, pair2score)
    n_multi = 0
    for gid in genes["gene_id"]:
        want = reference_partners(gid, ensg2tss, tss2frag, frag2neighbors, pair2score)
        assert ours.get(gid, []) == want, gid
        n_multi += len(set(tss2frag[t] for t in ensg2tss[gid])) > 1
    assert n_multi > 20  # the fixture exercises alternative TSSs
