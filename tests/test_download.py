"""Tests of chromexp.data.download with an injected fake fetcher (no network)."""

from __future__ import annotations

import gzip
import hashlib
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
    assert list(table.columns) == ["kind", "name", "url", "dest", "size", "sha256"] and len(table) == len(files)


def test_manifest_rejects_unknown_choices(params):
    with pytest.raises(ValueError, match="unknown cell type 'E999'"):
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
