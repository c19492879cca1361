"""Tests of chromexp.data.download with an injected fake fetcher (no network)."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from collections import defaultdict
from pathlib import Path

import pytest

from chromexp import paths
from chromexp.data import download, io
from chromexp.data.download import DownloadError, RemoteFile

TAGALIGN = b"chr1\t10\t46\tN\t1000\t+\nchr1\t20\t56\tN\t1000\t-\n"


@pytest.fixture
def params(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_DATA, raising=False)
    return {
        "paths": {"data_dir": str(tmp_path / "data")},
        "data": {"source": "roadmap", "preset": "demo", "name": None},
    }


class FakeFetcher:
    """Serves gzip content for .gz URLs and plain bytes otherwise; records calls."""

    def __init__(self, content: dict[str, bytes] | None = None):
        self.calls: list[str] = []
        self.content = content or {}

    def __call__(self, url: str, dest: Path) -> None:
        self.calls.append(url)
        body = self.content.get(url, TAGALIGN)
        Path(dest).write_bytes(gzip.compress(body) if url.endswith(".gz") else body)


def test_manifest_urls_and_names(params):
    files = download.roadmap_manifest(
        params,
        ["E003", "E016"],
        ["H3K4me3"],
        ["tagAlign", "expression", "narrowPeak", "broadPeak", "gappedPeak", "pchic"],
    )
    by_name = {f.name: f for f in files}
    raw = paths.raw_dir(params)
    base = "https://egg2.wustl.edu/roadmap/data"
    assert (
        by_name["E003-H3K4me3.tagAlign.gz"].url == f"{base}/byFileType/alignments/consolidated/E003-H3K4me3.tagAlign.gz"
    )
    assert by_name["E003-H3K4me3.tagAlign.gz"].dest == raw / "E003-H3K4me3.tagAlign.gz"
    assert by_name["57epigenomes.RPKM.pc.gz"].url == f"{base}/byDataType/rna/expression/57epigenomes.RPKM.pc.gz"
    for kind in ("narrowPeak", "broadPeak", "gappedPeak"):
        peak = by_name[f"E016-H3K4me3.{kind}.gz"]
        assert peak.url == f"{base}/byFileType/peaks/consolidated/{kind}/E016-H3K4me3.{kind}.gz"
        assert peak.dest == paths.peaks_dir(params, "E016") / f"E016-H3K4me3.{kind}.gz"
    # E003 and E016 share the H1 pcHi-C: fetched once
    pchic = [f.name for f in files if f.kind == "pchic"]
    assert pchic == ["tss2fragment.pickle", "H1_frag2neighbors.pickle", "H1_pair2score.pickle"]
    assert by_name["H1_pair2score.pickle"].url.endswith("/chromoformer-data/H1_pair2score.pickle")
    assert by_name["tss2fragment.pickle"].sha256 == download.TSS2FRAGMENT_SHA256
    assert by_name["E003-H3K4me3.tagAlign.gz"].sha256 is None  # Roadmap publishes none
    table = download.manifest_frame(files)
    assert list(table.columns) == ["kind", "name", "url", "dest", "size", "sha256", "md5"] and len(table) == len(files)


def test_manifest_rejects_unknown_choices(params):
    with pytest.raises(ValueError, match="Unknown cell type .E999."):
        download.roadmap_manifest(params, ["E999"])
    with pytest.raises(ValueError, match="unknown mark 'H3K4me2'"):
        download.roadmap_manifest(params, ["E003"], ["H3K4me2"])
    with pytest.raises(ValueError, match="unknown kind 'bam'"):
        download.roadmap_manifest(params, ["E003"], kinds=["bam"])


def test_download_lands_files_then_skips(params):
    fetcher = FakeFetcher()
    result = download.download_roadmap(
        params, ["E003"], ["H3K4me3", "H3K27ac"], ["tagAlign", "expression"], fetcher=fetcher
    )
    raw = paths.raw_dir(params)
    expected = {"57epigenomes.RPKM.pc.gz", "E003-H3K4me3.tagAlign.gz", "E003-H3K27ac.tagAlign.gz"}
    assert {p.name for p in raw.iterdir()} == expected  # no temporary files left behind
    assert set(result["status"]) == {"downloaded"} and len(fetcher.calls) == 3
    reads = io.read_tagalign(raw / "E003-H3K4me3.tagAlign.gz")  # the pipeline's reader reads it
    assert reads["start"].tolist()[:2] == [10, 20]

    again = download.download_roadmap(
        params, ["E003"], ["H3K4me3", "H3K27ac"], ["tagAlign", "expression"], fetcher=fetcher
    )
    assert set(again["status"]) == {"skipped"} and len(fetcher.calls) == 3  # nothing fetched


def test_raw_dir_path_target_puts_peaks_next_to_raw(tmp_path):
    raw = tmp_path / "roadmap" / "raw"
    download.download_roadmap(raw, ["E005"], ["H3K9me3"], ["broadPeak"], fetcher=FakeFetcher())
    assert (tmp_path / "roadmap" / "peaks" / "E005" / "E005-H3K9me3.broadPeak.gz").is_file()


def test_checksum_mismatch_raises_and_leaves_no_file(tmp_path):
    remote = RemoteFile("pchic", "https://example.org/x.pickle", tmp_path / "x.pickle", sha256="0" * 64)
    with pytest.raises(DownloadError, match="SHA-256 .* does not match"):
        download.fetch_file(remote, FakeFetcher(), retries=0)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_raises(tmp_path):
    remote = RemoteFile("pchic", "https://example.org/x.pickle", tmp_path / "x.pickle", size=3)
    with pytest.raises(DownloadError, match="expected 3"):
        download.fetch_file(remote, FakeFetcher(), retries=0)
    assert list(tmp_path.iterdir()) == []


def test_known_checksum_accepts_right_content(tmp_path):
    body = b"payload"
    remote = RemoteFile("pchic", "u", tmp_path / "x.pickle", size=len(body), sha256=hashlib.sha256(body).hexdigest())
    assert download.fetch_file(remote, FakeFetcher({"u": body})) == "downloaded"
    assert (tmp_path / "x.pickle").read_bytes() == body
    assert download.fetch_file(remote, FakeFetcher({"u": body})) == "skipped"


def test_existing_file_with_wrong_checksum_is_reported_not_overwritten(tmp_path):
    body = b"payload"
    remote = RemoteFile("pchic", "u", tmp_path / "x.pickle", sha256=hashlib.sha256(body).hexdigest())
    (tmp_path / "x.pickle").write_bytes(b"something else")
    with pytest.raises(DownloadError, match="exists but"):
        download.fetch_file(remote, FakeFetcher({"u": body}))
    assert (tmp_path / "x.pickle").read_bytes() == b"something else"
    assert download.fetch_file(remote, FakeFetcher({"u": body}), force=True) == "downloaded"
    assert (tmp_path / "x.pickle").read_bytes() == body


def test_failing_fetcher_is_retried_and_leaves_no_partial_file(tmp_path):
    calls = []

    def flaky(url, dest):
        calls.append(url)
        Path(dest).write_bytes(b"\x1f\x8bhalf a file")  # partial content, then the connection drops
        raise ConnectionError("connection reset")

    remote = RemoteFile(
        "tagAlign", "https://example.org/E003-H3K4me3.tagAlign.gz", tmp_path / "E003-H3K4me3.tagAlign.gz"
    )
    with pytest.raises(DownloadError, match="failed after 3 attempts.*connection reset"):
        download.fetch_file(remote, flaky, retries=2, backoff=0)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def test_transient_failure_then_success(tmp_path):
    attempts = []

    def once_flaky(url, dest):
        attempts.append(url)
        if len(attempts) == 1:
            raise TimeoutError("timed out")
        Path(dest).write_bytes(gzip.compress(TAGALIGN))

    remote = RemoteFile("tagAlign", "u.tagAlign.gz", tmp_path / "E003-H3K4me3.tagAlign.gz")
    assert download.fetch_file(remote, once_flaky, retries=1, backoff=0) == "downloaded"
    assert len(attempts) == 2 and gzip.decompress(remote.dest.read_bytes()) == TAGALIGN


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (gzip.compress(TAGALIGN * 500)[:-20], "truncated"),
        (b"<html>404 Not Found</html>", "not gzip-compressed"),
        (b"", "empty"),
    ],
)
def test_broken_gzip_download_is_rejected(tmp_path, body, reason):
    def fetcher(url, dest):
        Path(dest).write_bytes(body)

    remote = RemoteFile("tagAlign", "u.tagAlign.gz", tmp_path / "E003-H3K4me3.tagAlign.gz")
    with pytest.raises(DownloadError, match=reason):
        download.fetch_file(remote, fetcher, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_check_gzip_accepts_concatenated_members(tmp_path):
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress(b"a" * 10) + gzip.compress(b"b" * 10))
    download.check_gzip(path)
    path.write_bytes(gzip.compress(b"a" * 10) + gzip.compress(b"b" * 5000)[:-10])
    with pytest.raises(DownloadError, match="truncated"):
        download.check_gzip(path)


def test_pchic_download_is_converted_to_the_pipeline_table(params, monkeypatch):
    frag2neighbors = defaultdict(set)
    frag2neighbors["chr1:1000-5000"].update({"chr1:20000-26000", "chr1:9000-9500"})
    pair2score = {("chr1:1000-5000", "chr1:20000-26000"): 2.75, ("chr1:1000-5000", "chr1:9000-9500"): 1.25}
    tss2fragment = {"chr1:1200-1201": "chr1:1000-5000", "chr1:7-8": None}
    bodies = {
        download.CHROMOFORMER_DATA_URL.format(tissue="H1", what="frag2neighbors"): pickle.dumps(frag2neighbors),
        download.CHROMOFORMER_DATA_URL.format(tissue="H1", what="pair2score"): pickle.dumps(pair2score),
        download.TSS2FRAGMENT_URL: pickle.dumps(tss2fragment),
    }
    # the real checksum belongs to the real file; the fake one gets its own
    monkeypatch.setattr(download, "TSS2FRAGMENT_SHA256", hashlib.sha256(bodies[download.TSS2FRAGMENT_URL]).hexdigest())
    monkeypatch.setattr(download, "TSS2FRAGMENT_SIZE", len(bodies[download.TSS2FRAGMENT_URL]))
    result = download.download_roadmap(params, ["E003", "E016"], kinds=["pchic"], fetcher=FakeFetcher(bodies))
    assert result["status"].tolist() == ["downloaded"] * 3 + ["converted"]
    table = io.read_pchic(paths.raw_dir(params) / "pchic" / "H1.tsv.gz")
    assert table[["other_start", "other_end", "frequency"]].values.tolist() == [
        [9000, 9500, 1.25],
        [20000, 26000, 2.75],
    ]
    assert (table["bait_start"] == 1000).all() and (table["bait_end"] == 5000).all()
    tss = io.read_tss2fragment(paths.raw_dir(params) / "pchic" / "tss2fragment.pickle")
    assert tss[["tss_start", "frag_start", "frag_end"]].values.tolist() == [[1200, 1000, 5000]]


def test_install_vendored_annotations(params):
    genes_path, sizes_path = download.install_vendored_annotations(params)
    assert genes_path == paths.raw_dir(params) / "genes.tsv"
    sizes = io.read_chrom_sizes(sizes_path)
    genes = io.read_gene_table(genes_path, sizes)
    vendored = io.read_gene_table(paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz")
    assert len(sizes) == 24
    assert genes.equals(vendored)  # round trip through genes.tsv is lossless


# ---------------------------------------------------------------------------------------------
# issue 27: every kind on fixtures, md5 checks, ensg2tss.pickle, the LDSC Zenodo entries
# ---------------------------------------------------------------------------------------------
def _bodies_for(files) -> dict[str, bytes]:
    """Fixture content in each file's real format, keyed by URL."""
    import io as _io
    import tarfile

    def tgz(name: str) -> bytes:
        buf = _io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            data = b"x\n"
            info = tarfile.TarInfo(f"{name}/README")
            info.size = len(data)
            tar.addfile(info, _io.BytesIO(data))
        return buf.getvalue()

    out = {}
    for f in files:
        if f.name.endswith(".tgz"):
            out[f.url] = tgz(f.name)
        elif f.name.endswith(".pickle"):
            out[f.url] = pickle.dumps({"ENSG1": [("chr1", 99, 100, "+")]})
        else:
            out[f.url] = b"gene_id\tE003\nENSG1\t1.0\n"
    return out


@pytest.mark.parametrize("kind", [k for k in download.KINDS if k not in ("pchic", "eqtl", "ldsc")])
def test_every_roadmap_kind_downloads_on_a_fixture_and_resumes(params, kind):
    files = download.roadmap_manifest(params, ["E003"], ["H3K4me3"], [kind])
    assert files and {f.kind for f in files} == {kind}
    fetcher = FakeFetcher({f.url: b for f, b in zip(files, _bodies_for(files).values())})
    table = download.download_roadmap(params, ["E003"], ["H3K4me3"], [kind], fetcher=fetcher)
    assert set(table["status"]) == {"downloaded"} and all(Path(d).is_file() for d in table["dest"])
    again = download.download_roadmap(params, ["E003"], ["H3K4me3"], [kind], fetcher=fetcher)
    assert set(again["status"]) == {"skipped"} and len(fetcher.calls) == len(files)


def test_eqtl_kind_lists_the_spreadsheet_and_the_chain(params):
    names = [f.name for f in download.roadmap_manifest(params, ["E066"], kinds=["eqtl"])]
    assert names == ["41467_2021_23134_MOESM10_ESM.xlsx", "hg38ToHg19.over.chain.gz"]


def test_ldsc_kind_defaults_to_the_zenodo_record_with_its_md5s(tmp_path, monkeypatch):
    monkeypatch.delenv(download.LDSC_URL_ENV, raising=False)
    files = {f.name: f for f in download.ldsc_manifest(tmp_path)}
    plink = files["1000G_Phase3_plinkfiles.tgz"]
    assert plink.url == "https://zenodo.org/records/10515792/files/1000G_Phase3_plinkfiles.tgz"
    assert plink.md5 == "a7773ab485827b533cb300c76356d76b"
    assert files["1000G_Phase3_frq.tgz"].md5 == "ac29686ffd5b6378789857a522ebca77"
    assert "hm3_no_MHC.list.txt" in files and "w_hm3.snplist.bz2" not in files
    assert "PASS_BIP_Stahl2019.sumstats" in files and "PASS_BIP.sumstats" not in files
    monkeypatch.setenv(download.LDSC_URL_ENV, "https://mirror.example/ldsc/")
    assert download.ldsc_manifest(tmp_path)[0].url == "https://mirror.example/ldsc/1000G_Phase3_plinkfiles.tgz"


def test_ldsc_kind_downloads_verifies_md5_and_unpacks(tmp_path, monkeypatch):
    files = download.ldsc_manifest(tmp_path, traits=["PASS_LDL"])
    bodies = _bodies_for(files)
    # the fixtures' own md5s stand in for the record's (the real ones belong to the real archives)
    patched = {
        key: (
            archive,
            unpacked,
            note,
            hashlib.md5(bodies[f"{download.LDSC_URL}/{archive}"]).hexdigest() if md5 else None,
        )
        for key, (archive, unpacked, note, md5) in download.LDSC_RESOURCES.items()
    }
    monkeypatch.setattr(download, "LDSC_RESOURCES", patched)
    table = download.download_ldsc(tmp_path, traits=["PASS_LDL"], fetcher=FakeFetcher(bodies))
    assert set(table["status"]) == {"downloaded"}
    assert (tmp_path / "1000G_Phase3_plinkfiles.tgz" / "README").is_file()  # unpacked into the target
    assert (tmp_path / "hm3_no_MHC.list.txt").is_file() and (tmp_path / "gwas" / "PASS_LDL.sumstats.gz").is_file()


def test_md5_mismatch_on_a_corrupted_file_is_refused_and_leaves_nothing(tmp_path):
    good = b"the published archive"
    remote = RemoteFile(
        "ldsc", "https://x/1000G_Phase3_frq.tgz", tmp_path / "frq.bin", md5=hashlib.md5(good).hexdigest()
    )
    with pytest.raises(DownloadError, match=r"MD5 .* does not match .* the file is damaged"):
        download.fetch_file(remote, lambda url, dest: Path(dest).write_bytes(good[:-3] + b"XYZ"), retries=0)
    assert not remote.dest.exists() and not list(tmp_path.iterdir())
    assert download.fetch_file(remote, lambda url, dest: Path(dest).write_bytes(good), retries=0) == "downloaded"
    remote.dest.write_bytes(b"corrupted on disk later")  # a present file is verified too
    with pytest.raises(DownloadError, match="exists but"):
        download.fetch_file(remote, lambda url, dest: None)


def test_dry_run_is_compact_with_count_and_total(params):
    files = download.roadmap_manifest(params, ["E003"], ["H3K4me3"], ["tagAlign", "pchic"])
    text = download.format_dry_run(files)
    lines = text.splitlines()
    assert lines[0].split() == ["kind", "name", "size", "destination"]
    assert any("tss2fragment.pickle" in line and "2.0 MB" in line for line in lines)
    assert any("E003-H3K4me3.tagAlign.gz" in line and "unknown" in line for line in lines)
    assert lines[-1] == f"{len(files)} file(s), 0 present already; total 2.0 MB + {len(files) - 1} of unknown size"


def test_annotations_kind_includes_ensg2tss_at_the_pinned_commit(params):
    files = {f.name: f for f in download.roadmap_manifest(params, ["E003"], kinds=["annotations"])}
    assert files["ensg2tss.pickle"].url == (
        f"https://raw.githubusercontent.com/dohlee/chromoformer/{download.CHROMOFORMER_COMMIT}"
        "/preprocessing/annotations/ensg2tss.pickle"
    )


def _ensg2tss_fixture() -> bytes:
    """ensg2tss.pickle as Chromoformer's prepare_ensg2tss.py writes it: defaultdict(list) of
    (chrom, tss, tss + 1, strand) tuples, longest transcript first, numpy ints from to_records()."""
    import numpy as np

    e = defaultdict(list)
    e["ENSG01"] += [("chr1", np.int64(1199), np.int64(1200), "+"), ("chr1", np.int64(3999), np.int64(4000), "+")]
    e["ENSG02"] += [("chr1", np.int64(20999), np.int64(21000), "-"), ("chr1", np.int64(20999), np.int64(21000), "-")]
    return pickle.dumps(e)


def test_ensg2tss_is_read_in_its_format_chosen_tss_first(tmp_path):
    path = tmp_path / "ensg2tss.pickle"
    path.write_bytes(_ensg2tss_fixture())
    t = io.read_ensg2tss(path)
    assert t.values.tolist() == [
        ["ENSG01", 0, "chr1", 1199, "+"],
        ["ENSG01", 1, "chr1", 3999, "+"],
        ["ENSG02", 0, "chr1", 20999, "-"],  # listed twice: kept once
    ]


def test_ensg2tss_alternative_tsss_pool_their_bait_fragments(tmp_path):
    from chromexp.data import reference_genes

    path = tmp_path / "ensg2tss.pickle"
    path.write_bytes(_ensg2tss_fixture())
    t2f = tmp_path / "tss2fragment.pickle"
    t2f.write_bytes(pickle.dumps({"chr1:1199-1200": "chr1:1000-2000", "chr1:3999-4000": "chr1:3000-5000"}))
    frags = reference_genes.tss_fragments(io.read_ensg2tss(path), io.read_tss2fragment(t2f))
    assert frags.values.tolist() == [["ENSG01", "chr1", 1000, 2000], ["ENSG01", "chr1", 3000, 5000]]


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/chromexp-pwned",))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    path = tmp_path / "ensg2tss.pickle"
    path.write_bytes(pickle.dumps({"ENSG01": [_Evil()]}))
    with pytest.raises(ValueError, match=r"refusing to load (posix|os|nt)\.system"):
        io.read_ensg2tss(path)
    assert not Path("/tmp/chromexp-pwned").exists()
    path.write_bytes(pickle.dumps({"ENSG01": [("chr1", 5, 9, "+")]}))
    with pytest.raises(ValueError, match=r"TSS 1 of gene 'ENSG01' is not \(chrom, tss, tss \+ 1, strand\)"):
        io.read_ensg2tss(path)
