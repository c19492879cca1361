"""Download the real Roadmap inputs (docs/data-formats.md, "Inputs") into the layout the pipeline reads.

What is downloaded (a :class:`RemoteFile` manifest; checksums are ``None`` where the publisher
gives none — Roadmap publishes no checksums, so those files are checked for gzip integrity
instead):

==============  ===============================================================  ===========================
kind            source                                                           written to
==============  ===============================================================  ===========================
``tagAlign``    Roadmap consolidated alignments, ``{EID}-{MARK}.tagAlign.gz``    ``raw/{EID}-{MARK}.tagAlign.gz``
``expression``  Roadmap ``57epigenomes.RPKM.pc.gz``                              ``raw/57epigenomes.RPKM.pc.gz``
``narrowPeak``  Roadmap MACS2 peaks ``{EID}-{MARK}.narrowPeak.gz``               ``peaks/{EID}/`` (same name)
``broadPeak``   Roadmap MACS2 peaks ``{EID}-{MARK}.broadPeak.gz``                ``peaks/{EID}/`` (same name)
``gappedPeak``  Roadmap MACS2 peaks ``{EID}-{MARK}.gappedPeak.gz``               ``peaks/{EID}/`` (same name)
``pchic``       3DIV pcHi-C as preprocessed by Chromoformer (its                 ``raw/pchic/``, converted to
                ``preprocessing/Snakefile``): ``{TISSUE}_frag2neighbors.pickle``  ``raw/pchic/{TISSUE}.tsv.gz``
                and ``{TISSUE}_pair2score.pickle`` from the authors' bucket,
                ``tss2fragment.pickle`` from the repository (pinned commit)
``eqtl``        Wang et al. 2021 (Nat Commun) Suppl. Data 7 (``.xlsx``, sheet    ``raw/eqtl/``, converted to
                ``put_causal_eqtls_tissue_unique``) and UCSC's                   ``put_causal_eqtls_tissue_unique.tsv.gz``
                ``hg38ToHg19.over.chain.gz`` (liftover of the GRCh38 variants)   (:mod:`chromexp.data.eqtl`)
==============  ===============================================================  ===========================

Kind ``annotations``: Chromoformer's ``preprocessing/annotations/refGene.tsv`` and
``preprocessing/train.csv`` (the paper's 18,955 genes, their chosen TSS and fold), written to
``raw/annotations/`` and read with ``data.genes: reference`` (:mod:`chromexp.data.reference_genes`).

``raw/`` is :func:`chromexp.paths.raw_dir` and ``peaks/{EID}/`` is
:func:`chromexp.paths.peaks_dir` (``data/roadmap/...`` with ``data.source: roadmap``). The gene
table and chromosome sizes are not downloaded: :func:`install_vendored_annotations` writes
``genes.tsv`` and ``hg19.chrom.sizes`` from the real files vendored in ``chromexp/resources``.

Every file is fetched to a temporary file next to its destination, verified (size and SHA-256
when known, gzip integrity for ``.gz``), then renamed: an interrupted or failed download never
leaves a partial file. Files already present are skipped (and verified when a checksum is known),
so a download can be re-run to resume. The network access itself is one injectable callable,
``fetcher(url, dest_path)``, so tests never touch the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import paths
from ..constants import MARKS, PCHIC_TISSUE
from ..utils import atomic_path, atomic_write_text, file_sha256, get_logger, progress_bar
from .io import is_gzip

log = get_logger(__name__)

Fetcher = Callable[[str, Path], Any]

ROADMAP = "https://egg2.wustl.edu/roadmap/data"
TAGALIGN_URL = ROADMAP + "/byFileType/alignments/consolidated/{eid}-{mark}.tagAlign.gz"
RPKM_URL = ROADMAP + "/byDataType/rna/expression/57epigenomes.RPKM.pc.gz"
PEAK_URL = ROADMAP + "/byFileType/peaks/consolidated/{kind}/{eid}-{mark}.{kind}.gz"
#: Chromoformer's preprocessing/Snakefile downloads the 3DIV-derived pickles from here.
CHROMOFORMER_DATA_URL = "https://dohlee-bioinfo.sgp1.digitaloceanspaces.com/chromoformer-data/{tissue}_{what}.pickle"
#: tss2fragment.pickle is committed in the Chromoformer repository; pinned to release 1.1.3.
CHROMOFORMER_COMMIT = "309bf79b4d11e8d27380f914489e701485720951"
TSS2FRAGMENT_URL = (
    f"https://raw.githubusercontent.com/dohlee/chromoformer/{CHROMOFORMER_COMMIT}"
    "/preprocessing/annotations/tss2fragment.pickle"
)
# size and SHA-256 of that blob (git object 39cdfce9…), computed from the repository
TSS2FRAGMENT_SIZE = 1_989_496
TSS2FRAGMENT_SHA256 = "c720c82189a7f971f5cb2e0f30fc9b2d3e74ff0163b2753cd1583256a34b5256"
#: The paper's gene set (``data.genes: reference``, :mod:`chromexp.data.reference_genes`): Chromoformer's
#: RefSeq TSS annotation and its training metadata (genes, chosen TSS, fold), same pinned commit.
#: Their sizes/checksums could not be computed offline (None: checked by content when read).
CHROMOFORMER_RAW = f"https://raw.githubusercontent.com/dohlee/chromoformer/{CHROMOFORMER_COMMIT}"
REFGENE_URL = CHROMOFORMER_RAW + "/preprocessing/annotations/refGene.tsv"
TRAIN_CSV_URL = CHROMOFORMER_RAW + "/preprocessing/train.csv"

#: Wang et al. 2021, Nat Commun 12:3394, Supplementary Data 7 (the file the reference code reads).
EQTL_URL = (
    "https://static-content.springer.com/esm/art%3A10.1038%2Fs41467-021-23134-8/MediaObjects/"
    "41467_2021_23134_MOESM10_ESM.xlsx"
)
HG38_TO_HG19_CHAIN_URL = "https://hgdownload.soe.ucsc.edu/goldenPath/hg38/liftOver/hg38ToHg19.over.chain.gz"

ENSG2TSS_URL = CHROMOFORMER_RAW + "/preprocessing/annotations/ensg2tss.pickle"

PEAK_KINDS = ("narrowPeak", "broadPeak", "gappedPeak")
KINDS = ("tagAlign", "expression", *PEAK_KINDS, "pchic", "annotations", "eqtl", "ldsc")
DEFAULT_KINDS = ("tagAlign", "expression", "pchic", "annotations")
#: One line per kind: what it is and which notebook reads it (``chromexp download --kinds`` help).
KIND_HELP: dict[str, str] = {
    "tagAlign": "Roadmap consolidated alignments, one per cell type and mark (notebooks 10, 20)",
    "expression": "Roadmap RPKM matrix 57epigenomes.RPKM.pc.gz (notebook 10)",
    "narrowPeak": "Roadmap MACS2 narrow peaks (notebook 20 with peaks.source: files)",
    "broadPeak": "Roadmap MACS2 broad peaks (notebook 20 with peaks.source: files)",
    "gappedPeak": "Roadmap MACS2 gapped peaks (notebook 20 with peaks.source: files)",
    "pchic": "3DIV pcHi-C as preprocessed by Chromoformer, per tissue (notebook 10: pCREs)",
    "annotations": "Chromoformer's train.csv, refGene.tsv and ensg2tss.pickle (data.genes: reference)",
    "eqtl": "Wang et al. 2021 fine-mapped eQTLs + UCSC hg38ToHg19 chain (notebook 70)",
    "ldsc": "LDSC's 1000G phase 3 resources (Zenodo 10515792) + GWAS summary statistics (notebook 80)",
}
RPKM_FILE = "57epigenomes.RPKM.pc.gz"
GENES_FILE = "genes.tsv"
CHROM_SIZES_FILE = "hg19.chrom.sizes"


class DownloadError(OSError):
    """A file could not be downloaded (after retries) or failed verification."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of the manifest.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    url : str
        Where it is fetched from.
    dest : pathlib.Path
        Where it is written.
    size : int or None
        Expected size in bytes; ``None`` = not published.
    sha256 : str or None
        Expected SHA-256 (hex); ``None`` = not published (Roadmap and the Chromoformer bucket
        publish none).
    md5 : str or None
        Expected MD5 (hex), where the publisher gives only that (the LDSC Zenodo record).
    """

    kind: str
    url: str
    dest: Path
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    @property
    def name(self) -> str:
        """File name of :attr:`dest`."""
        return self.dest.name


def _layout(target: Mapping[str, Any] | str | os.PathLike) -> tuple[Path, Callable[[str], Path]]:
    """Raw directory and a peaks-directory-per-EID function for parameters or a raw dir path."""
    if isinstance(target, Mapping):
        return paths.raw_dir(target), lambda eid: paths.peaks_dir(target, eid)
    raw = Path(target).expanduser().resolve()
    # same layout as chromexp.paths: <dataset>/raw and <dataset>/peaks/<EID>
    return raw, lambda eid: raw.parent / "peaks" / eid


def _check_choice(values: Iterable[str] | None, allowed: Sequence[str], what: str) -> list[str]:
    values = list(allowed) if values is None else [values] if isinstance(values, str) else list(values)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}.")
    return values


def _tissues(cell_types: Iterable[str]) -> list[str]:
    """The distinct pcHi-C tissues of ``cell_types`` (cell types without one are left out)."""
    return list(dict.fromkeys(t for t in (PCHIC_TISSUE[eid] for eid in cell_types) if t is not None))


def _roadmap_cells(cell_types: Iterable[str] | None) -> list[str]:
    """Registered cell types whose inputs come from Roadmap (a user's own table is not downloaded)."""
    from chromexp import cells

    chosen = (
        [cells.normalise(c) for c in ([cell_types] if isinstance(cell_types, str) else cell_types)]
        if (cell_types is not None)
        else list(cells.ids())
    )
    return chosen


def roadmap_manifest(
    target: Mapping[str, Any] | str | os.PathLike,
    cell_types: Iterable[str] | None = None,
    marks: Iterable[str] | None = None,
    kinds: Iterable[str] = DEFAULT_KINDS,
) -> list[RemoteFile]:
    """List the files :func:`download_roadmap` fetches, with their destinations.

    Parameters
    ----------
    target : mapping or path
        Merged parameters (destinations from :mod:`chromexp.paths`) or a raw directory (peaks
        then go to ``<raw>/../peaks/<EID>/``).
    cell_types : iterable of str, optional
        Registered cell types (:mod:`chromexp.cells`, ``e003`` accepted); default all.
    marks : iterable of str, optional
        Histone marks of :data:`chromexp.constants.MARKS`; default all 7.
    kinds : iterable of str
        Subset of :data:`KINDS`.

    Returns
    -------
    list of RemoteFile
        In a fixed order, without duplicates (two cell types may share a pcHi-C tissue, e.g. H1).
    """
    cell_types = _roadmap_cells(cell_types)
    marks = _check_choice(marks, MARKS, "mark")
    kinds = _check_choice(kinds, KINDS, "kind")
    raw, peaks_of = _layout(target)
    files: list[RemoteFile] = []
    if "expression" in kinds:
        files.append(RemoteFile("expression", RPKM_URL, raw / RPKM_FILE))
    for eid in cell_types:
        for mark in marks:
            if "tagAlign" in kinds:
                url = TAGALIGN_URL.format(eid=eid, mark=mark)
                files.append(RemoteFile("tagAlign", url, raw / f"{eid}-{mark}.tagAlign.gz"))
            for kind in PEAK_KINDS:
                if kind in kinds:
                    url = PEAK_URL.format(kind=kind, eid=eid, mark=mark)
                    files.append(RemoteFile(kind, url, peaks_of(eid) / f"{eid}-{mark}.{kind}.gz"))
    if "annotations" in kinds:
        files.append(RemoteFile("annotations", REFGENE_URL, raw / "annotations" / "refGene.tsv"))
        files.append(RemoteFile("annotations", TRAIN_CSV_URL, raw / "annotations" / "train.csv"))
        # every TSS of each gene, the chosen one first: the source of Chromoformer's alternative TSSs
        files.append(RemoteFile("annotations", ENSG2TSS_URL, raw / "annotations" / "ensg2tss.pickle"))
    if "pchic" in kinds:
        files.append(RemoteFile("pchic", TSS2FRAGMENT_URL, raw / "pchic" / "tss2fragment.pickle",
                                TSS2FRAGMENT_SIZE, TSS2FRAGMENT_SHA256))  # fmt: skip
        for tissue in _tissues(cell_types):
            for what in ("frag2neighbors", "pair2score"):
                url = CHROMOFORMER_DATA_URL.format(tissue=tissue, what=what)
                files.append(RemoteFile("pchic", url, raw / "pchic" / f"{tissue}_{what}.pickle"))
    if "eqtl" in kinds:
        # neither publisher gives a checksum: the chain is checked for gzip integrity, the
        # spreadsheet by reading it (chromexp.data.eqtl.convert_xlsx)
        files.append(RemoteFile("eqtl", EQTL_URL, raw / "eqtl" / "41467_2021_23134_MOESM10_ESM.xlsx"))
        files.append(RemoteFile("eqtl", HG38_TO_HG19_CHAIN_URL, raw / "eqtl" / "hg38ToHg19.over.chain.gz"))
    return files


def manifest_frame(files: Sequence[RemoteFile]) -> pd.DataFrame:
    """The manifest as a table (kind, name, url, dest, size, sha256, md5; None where unknown)."""
    return pd.DataFrame(
        [(f.kind, f.name, f.url, str(f.dest), f.size, f.sha256, f.md5) for f in files],
        columns=["kind", "name", "url", "dest", "size", "sha256", "md5"],
    )


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def format_dry_run(files: Sequence[RemoteFile]) -> str:
    """A compact dry-run listing: kind, name, size (or "unknown"), destination folder; then count and total.

    Files already present are marked so (a rerun resumes). The total counts the known sizes and says
    how many are unknown (Roadmap publishes none).
    """
    rows = [("kind", "name", "size", "destination")]
    known, unknown, present = 0, 0, 0
    for f in files:
        here = f.dest.exists()
        present += here
        if f.size is None:
            unknown += 1
        else:
            known += f.size
        size = "unknown" if f.size is None else _human(f.size)
        folder = f.dest.parent
        if folder.is_relative_to(paths.repo_root()):
            folder = folder.relative_to(paths.repo_root())
        rows.append((f.kind, f.name, size + (" (present)" if here else ""), f"{folder}/"))
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    lines = ["  ".join(r[k].ljust(widths[k]) for k in range(3)) + "  " + r[3] for r in rows]
    total = _human(known) + (f" + {unknown} of unknown size" if unknown else "")
    lines.append(f"{len(files)} file(s), {present} present already; total {total}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# fetching and verification
# --------------------------------------------------------------------------------------------
def urllib_fetcher(url: str, dest: Path, *, timeout: float = 60.0, progress: bool = True) -> None:
    """Default fetcher: stream ``url`` to ``dest`` with urllib, with a progress bar on a terminal."""
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "chromexp"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        total = response.headers.get("Content-Length")
        with progress_bar(
            total=int(total) if total else None,
            unit="B",
            unit_scale=True,
            desc=Path(url).name,
            enabled=progress,
        ) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
        if total and out.tell() != int(total):
            # transient (connection dropped): ConnectionError is retried, DownloadError is not
            raise ConnectionError(f"{url}: received {out.tell()} bytes, expected {total}.")


sha256sum = file_sha256  # SHA-256 (hex) of a file (chromexp.utils.file_sha256)


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """MD5 (hex) of a file, read in chunks (only to compare with a publisher's MD5)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_gzip(path: str | os.PathLike, name: str | None = None) -> None:
    """Raise :class:`DownloadError` unless ``path`` is a complete gzip stream (all members).

    Roadmap publishes no checksums; a complete gzip stream (each member's CRC and length
    trailer check out) is the best available test that a download was not cut short.
    """
    name = name or str(path)
    if not is_gzip(path):
        raise DownloadError(f"{name}: is not gzip-compressed (an HTML error page?).")
    with open(path, "rb") as handle:
        decomp = zlib.decompressobj(wbits=31)
        while chunk := handle.read(1 << 20):
            data = chunk
            while data:
                if decomp.eof:  # concatenated gzip members (e.g. bgzip): start the next one
                    decomp = zlib.decompressobj(wbits=31)
                try:
                    decomp.decompress(data)
                except zlib.error as err:
                    raise DownloadError(f"{name}: corrupt gzip data ({err}).") from err
                data = decomp.unused_data if decomp.eof else b""
        if not decomp.eof:
            raise DownloadError(f"{name}: the gzip stream is truncated.")


def verify(path: Path, remote: RemoteFile) -> None:
    """Check ``path`` against ``remote``'s size and SHA-256 (when known) and gzip integrity."""
    if remote.size is not None and path.stat().st_size != remote.size:
        raise DownloadError(f"{remote.name}: size {path.stat().st_size} bytes, expected {remote.size} ({remote.url}).")
    if remote.sha256 is not None:
        actual = sha256sum(path)
        if actual != remote.sha256:
            raise DownloadError(
                f"{remote.name}: SHA-256 {actual} does not match the expected {remote.sha256} ({remote.url})."
            )
    if remote.md5 is not None:
        actual = md5sum(path)
        if actual != remote.md5:
            raise DownloadError(
                f"{remote.name}: MD5 {actual} does not match the {remote.md5} the publisher gives ({remote.url}); "
                "the file is damaged or not the published one."
            )
    if remote.name.endswith(".gz"):
        check_gzip(path, remote.name)


def record_path(dest: str | os.PathLike) -> Path:
    """The download record of ``dest``: ``.<name>.download.json`` beside it.

    Written only after a download (or a present file) passed every available check; a file at the
    destination without a matching record is checked again before it is trusted.
    """
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.download.json")


def _record(dest: Path, remote: RemoteFile) -> dict:
    st = dest.stat()
    return {"url": remote.url, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _has_record(dest: Path, remote: RemoteFile) -> bool:
    try:
        return json.loads(record_path(dest).read_text()) == _record(dest, remote)
    except (OSError, ValueError):
        return False


def _published_check(remote: RemoteFile) -> bool:
    return remote.size is not None or remote.sha256 is not None or remote.md5 is not None


def check_complete(path: str | os.PathLike, name: str | None = None) -> None:
    """Structural completeness checks for a file without a published size or checksum.

    A cut-short download fails them: a gzip stream without its trailer, a zip (``.xlsx``) without
    its central directory, a pickle without its final STOP opcode, a text table not ending in a
    newline. Raises :class:`DownloadError` naming the file; other files pass. (A file with a
    published size or checksum is checked against those instead, by :func:`verify`.)
    """
    path = Path(path)
    name = name or str(path)
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise DownloadError(f"{name}: the file is empty.")
    if suffix == ".gz":
        check_gzip(path, name)
    elif suffix in (".xlsx", ".zip"):
        import zipfile

        if not zipfile.is_zipfile(path):
            raise DownloadError(f"{name}: not a complete zip/xlsx archive (truncated or another kind of file).")
    elif suffix in (".pickle", ".pkl"):
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b".":
                raise DownloadError(f"{name}: the pickle is truncated (no final STOP opcode).")
    elif suffix in (".tsv", ".csv", ".txt", ".bed"):
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                raise DownloadError(f"{name}: the text file ends mid-line (truncated).")


def fetch_file(
    remote: RemoteFile,
    fetcher: Fetcher | None = None,
    *,
    retries: int = 3,
    backoff: float = 5.0,
    force: bool = False,
) -> str:
    """Fetch one file atomically; return ``"skipped"``, ``"verified"`` or ``"downloaded"``.

    A file already at the destination is ``"skipped"`` only when its download record
    (:func:`record_path`: size and modification time of a file that passed every check) matches;
    otherwise it is checked now — published size / SHA-256 / MD5 where known, and the structural
    checks of :func:`check_complete` (gzip trailer, zip directory, …) — and recorded
    (``"verified"``), or reported as damaged. A truncated file is never skipped as present.

    Parameters
    ----------
    remote : RemoteFile
        What to fetch and where to.
    fetcher : callable, optional
        ``fetcher(url, dest_path)`` writes the content of ``url`` to ``dest_path`` (a temporary
        file); default :func:`urllib_fetcher`.
    retries : int
        Further attempts after a failed fetch (waiting ``backoff * 2**attempt`` s between).
    backoff : float
        Seconds of the first wait.
    force : bool
        Download even if the destination exists.

    Raises
    ------
    DownloadError
        All attempts failed, or the file failed verification; no file is left at ``dest``.
        An existing destination that fails its checksum is reported, not overwritten (pass
        ``force=True`` to replace it).
    """
    fetcher = fetcher or urllib_fetcher
    dest = remote.dest
    if dest.exists() and not force:
        if _has_record(dest, remote):
            log.info("%s: present (downloaded and verified before), skipped", dest)
            return "skipped"
        try:
            verify(dest, remote)
            if not _published_check(remote):
                check_complete(dest, remote.name)
        except DownloadError as err:
            raise DownloadError(
                f"{dest} exists but is damaged or incomplete: {err} Delete it or pass --force (force=True) to "
                "download it again."
            ) from err
        atomic_write_text(record_path(dest), json.dumps(_record(dest, remote)) + "\n")
        log.info("%s: present, verified", dest)
        return "verified"
    last: BaseException | None = None
    for attempt in range(retries + 1):
        try:
            with atomic_path(dest) as tmp:
                fetcher(remote.url, tmp)
                if not tmp.exists() or tmp.stat().st_size == 0:
                    raise DownloadError(f"{remote.url}: the download is empty.")
                verify(tmp, remote)
                if not _published_check(remote):
                    check_complete(tmp, remote.name)
            atomic_write_text(record_path(dest), json.dumps(_record(dest, remote)) + "\n")
            log.info("%s: downloaded from %s", dest, remote.url)
            return "downloaded"
        except DownloadError:
            raise  # a verification failure is not transient: do not retry
        except OSError as err:
            if _offline(err):  # no name resolution / no route: retrying will not help
                raise DownloadError(
                    f"cannot reach {_host(remote.url)} to download {remote.name} (offline? {_reason(err)}); "
                    "connect to the network, or copy the file to "
                    f"{dest} yourself."
                ) from None
            last = err
            if attempt < retries:
                wait = backoff * 2**attempt
                log.warning("%s: attempt %d failed (%s); retrying in %.0f s", remote.url, attempt + 1, err, wait)
                time.sleep(wait)
        except Exception as err:  # network errors are transient; anything else is reported below
            last = err
            if attempt < retries:
                wait = backoff * 2**attempt
                log.warning("%s: attempt %d failed (%s); retrying in %.0f s", remote.url, attempt + 1, err, wait)
                time.sleep(wait)
    raise DownloadError(f"{remote.url}: download failed after {retries + 1} attempts ({last}).") from last


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    return f"{type(reason).__name__}: {reason}"


def _host(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).netloc or url


def _offline(err: BaseException) -> bool:
    """Whether ``err`` says the machine cannot reach the network at all (DNS failure, no route)."""
    import errno
    import socket

    reason = getattr(err, "reason", None) or err
    if isinstance(reason, socket.gaierror):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def download_roadmap(
    target: Mapping[str, Any] | str | os.PathLike,
    cell_types: Iterable[str] | None = None,
    marks: Iterable[str] | None = None,
    kinds: Iterable[str] = DEFAULT_KINDS,
    *,
    fetcher: Fetcher | None = None,
    retries: int = 3,
    backoff: float = 5.0,
    force: bool = False,
    convert_pchic: bool = True,
) -> pd.DataFrame:
    """Download the real Roadmap / 3DIV inputs into the pipeline's layout (resumable).

    Parameters
    ----------
    target : mapping or path
        Merged parameters (files go to :func:`chromexp.paths.raw_dir` and
        :func:`chromexp.paths.peaks_dir`) or a raw directory.
    cell_types, marks, kinds
        As in :func:`roadmap_manifest`; default all 11 cell types, all 7 marks, and
        ``("tagAlign", "expression", "pchic")``. The full set is large (tens of GB).
    fetcher : callable, optional
        ``fetcher(url, dest_path)``; default :func:`urllib_fetcher` (tests inject a fake).
    retries, backoff, force
        As in :func:`fetch_file`.
    convert_pchic : bool
        Also write ``raw/pchic/{TISSUE}.tsv.gz`` (the table :func:`chromexp.data.io.read_pchic`
        reads) from each tissue's Chromoformer pickles; skipped when present.

    Returns
    -------
    pandas.DataFrame
        One row per file: kind, name, url, dest, status (``downloaded``/``skipped``/``verified``/
        ``converted``; see :func:`fetch_file`), bytes.
    """
    kinds = _check_choice(kinds, KINDS, "kind")  # a list: iterated twice below
    cell_types = _roadmap_cells(cell_types)
    files = roadmap_manifest(target, cell_types, marks, kinds)
    records = []
    for i, remote in enumerate(files, start=1):
        log.info("[%d/%d] %s", i, len(files), remote.name)
        status = fetch_file(remote, fetcher, retries=retries, backoff=backoff, force=force)
        records.append((remote.kind, remote.name, remote.url, str(remote.dest), status, remote.dest.stat().st_size))
    if convert_pchic and "pchic" in kinds:
        raw, _ = _layout(target)
        for tissue in _tissues(cell_types):
            out = pchic_from_chromoformer(raw / "pchic", tissue, force=force)
            records.append(("pchic", out.name, "", str(out), "converted", out.stat().st_size))
    if "eqtl" in kinds:
        from . import eqtl

        raw, _ = _layout(target)
        out = raw / "eqtl" / eqtl.EQTL_FILE
        if force or not out.exists():
            eqtl.convert_xlsx(raw / "eqtl" / eqtl.XLSX_FILE, out)
            records.append(("eqtl", out.name, "", str(out), "converted", out.stat().st_size))
    return pd.DataFrame(records, columns=["kind", "name", "url", "dest", "status", "bytes"])


def pchic_from_chromoformer(pchic_dir: str | os.PathLike, tissue: str, *, force: bool = False) -> Path:
    """Write ``{tissue}.tsv.gz`` from ``{tissue}_frag2neighbors.pickle`` + ``{tissue}_pair2score.pickle``.

    Returns the path of the table (existing tables are kept unless ``force``).
    """
    from . import io

    pchic_dir = Path(pchic_dir)
    out = pchic_dir / f"{tissue}.tsv.gz"
    if out.exists() and not force:
        log.info("%s: present, skipped", out)
        return out
    frame = io.read_chromoformer_pchic(
        pchic_dir / f"{tissue}_frag2neighbors.pickle", pchic_dir / f"{tissue}_pair2score.pickle"
    )
    io.write_pchic(frame, out)
    log.info("%s: %d fragment pairs written", out, len(frame))
    return out


def install_vendored_annotations(target: Mapping[str, Any] | str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write ``genes.tsv`` and ``hg19.chrom.sizes`` into the raw directory from the vendored real files.

    The gene table (Ensembl ids of the RPKM matrix, 0-based hg19 TSS, strand, gene length) comes
    from ``resources/roadmap/genes_rpkm_11.tsv.gz`` (see ``resources/README.md``); its RPKM
    columns are left out (expression comes from ``57epigenomes.RPKM.pc.gz``).

    Returns
    -------
    list of pathlib.Path
        The two files (existing ones are kept unless ``force``).
    """
    from . import io

    raw, _ = _layout(target)
    resources = paths.resources_dir()
    out_genes, out_sizes = raw / GENES_FILE, raw / CHROM_SIZES_FILE
    if force or not out_sizes.exists():
        sizes = io.read_chrom_sizes(resources / CHROM_SIZES_FILE)
        with atomic_path(out_sizes) as tmp:
            tmp.write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))
    if force or not out_genes.exists():
        genes = io.read_gene_table(resources / "roadmap" / "genes_rpkm_11.tsv.gz", resources / CHROM_SIZES_FILE)
        with atomic_path(out_genes) as tmp:
            genes.to_csv(tmp, sep="\t", index=False, na_rep="NA")
    return [out_genes, out_sizes]


# ----------------------------------------------------------------------------------------------
# Stratified-LDSC inputs (notebook 80): LDSC's published resources and GWAS summary statistics
# ----------------------------------------------------------------------------------------------
#: LDSC's resources (Alkes Price group). In 2023 the group moved them off the old public bucket
#: (now requester-pays); the free copies are Zenodo record 10515792, the default here. Set
#: $CHROMEXP_LDSC_URL to the base of another copy (the files are then fetched as <base>/<name>).
LDSC_ZENODO_RECORD = "10515792"
LDSC_URL = f"https://zenodo.org/records/{LDSC_ZENODO_RECORD}/files"
LDSC_URL_ENV = "CHROMEXP_LDSC_URL"
#: name -> (file, what it unpacks to, note, md5 the Zenodo record publishes or None). Archives are
#: also checked to be complete gzip streams before unpacking. ``hm3_no_MHC.list.txt`` (HapMap3 SNPs,
#: MHC excluded) replaces the old ``hapmap3_snps.tgz`` + ``w_hm3.snplist``: the regression SNPs, and
#: with the alleles of the 1000G .bim files the munge_sumstats --merge-alleles list
#: (:func:`chromexp.ldsc.real_panel`).
LDSC_RESOURCES: dict[str, tuple[str, str, str, str | None]] = {
    "plink": ("1000G_Phase3_plinkfiles.tgz", "1000G_EUR_Phase3_plink/1000G.EUR.QC.{chrom}.{bed,bim,fam}",
              "1000 Genomes phase 3 EUR reference panel (hg19), PLINK", "a7773ab485827b533cb300c76356d76b"),
    "frq": ("1000G_Phase3_frq.tgz", "1000G_Phase3_frq/1000G.EUR.QC.{chrom}.frq", "allele frequencies (--frqfile-chr)",
            "ac29686ffd5b6378789857a522ebca77"),
    "baseline": ("1000G_Phase3_baselineLD_v2.2_ldscores.tgz", "baselineLD.{chrom}.{annot.gz,l2.ldscore.gz,l2.M,l2.M_5_50}",
                 "baseline-LD model v2.2 (97 annotations) LD scores", None),
    "weights": ("1000G_Phase3_weights_hm3_no_MHC.tgz",
                "1000G_Phase3_weights_hm3_no_MHC/weights.hm3_noMHC.{chrom}.l2.ldscore.gz",
                "regression weights: HapMap3 SNPs, MHC excluded", None),
    "hapmap3": ("hm3_no_MHC.list.txt", "hm3_no_MHC.list.txt", "HapMap3 SNP ids without the MHC (--print-snps)", None),
}  # fmt: skip
#: GWAS summary statistics in LDSC format (already munged) from the Price group's
#: ``sumstats_formatted`` collection (Finucane et al. 2018), for the paper's trait families: liver /
#: lipid traits for E066 and brain traits for E007. NOT VERIFIED here (no network): that these are the
#: exact files of the paper's Suppl. table; names and URLs follow that collection. Any file
#: ``<name>.sumstats.gz`` placed in ``data/ldsc/gwas/`` is used as well.
#: Bipolar disorder: the collection has no ``PASS_BIP``; it has ``PASS_BIP_Stahl2019``,
#: ``PASS_Bipolar_Disorder`` and ``PASS_BipolarDisorder_Ruderfer2018``. We take
#: ``PASS_BIP_Stahl2019`` (PGC bipolar GWAS, Stahl et al. 2019, Nat Genet: 20,352 cases / 31,358
#: controls), the largest and newest of the three; the other two are its predecessors (PGC 2011,
#: and Ruderfer et al. 2018's bipolar-vs-control arm, which shares samples with it).
GWAS_SUMSTATS_URL = "https://storage.googleapis.com/broad-alkesgroup-public/sumstats_formatted/{name}.sumstats"
GWAS_TRAITS = ("PASS_LDL", "PASS_HDL", "PASS_Triglycerides", "PASS_Schizophrenia", "PASS_BIP_Stahl2019", "PASS_Height1")


def ldsc_dir(params: Mapping[str, Any] | None = None) -> Path:
    """Where the real s-LDSC inputs live: ``<data_dir>/ldsc`` (shared by every dataset)."""
    return paths.data_dir(params) / "ldsc"


def ldsc_manifest(target: str | os.PathLike, traits: Iterable[str] = GWAS_TRAITS) -> list[RemoteFile]:
    """Files to fetch for real s-LDSC: LDSC's archives (into ``archives/``) and GWAS sumstats (``gwas/``)."""
    target = Path(target)
    base = os.environ.get(LDSC_URL_ENV, LDSC_URL).rstrip("/")
    files = [
        RemoteFile("ldsc", f"{base}/{name}", target / ("archives" if name.endswith(".tgz") else "") / name, md5=md5)
        for name, _, _, md5 in LDSC_RESOURCES.values()
    ]
    for t in traits:
        files.append(RemoteFile("gwas", GWAS_SUMSTATS_URL.format(name=t), target / "gwas" / f"{t}.sumstats"))
    return files


def unpack(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a ``.tgz`` (tar members must stay inside ``dest``) or a ``.bz2`` file into ``dest``.

    A ``<archive name>.unpacked`` marker is written last, so an interrupted unpack is redone.
    """
    import bz2
    import shutil
    import tarfile

    archive, dest = Path(archive), Path(dest)
    marker = dest / f".{archive.name}.unpacked"
    if marker.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest, filter="data")  # refuses absolute paths and ../ members
    elif archive.suffix == ".bz2":
        with bz2.open(archive, "rb") as src, atomic_path(dest / archive.name[: -len(".bz2")]) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
    else:
        raise ValueError(f"{archive}: don't know how to unpack (expected .tgz or .bz2).")
    marker.write_text("")
    return dest


def download_ldsc(
    target: str | os.PathLike,
    traits: Iterable[str] = GWAS_TRAITS,
    *,
    fetcher: Fetcher | None = None,
    retries: int = 3,
    backoff: float = 5.0,
    force: bool = False,
) -> pd.DataFrame:
    """Download and unpack the real s-LDSC inputs into ``target`` (default layout: :func:`ldsc_dir`).

    About 5 GB in all (the 1000G PLINK files and baseline-LD scores dominate). Resumable: present
    files are skipped, unpacked archives are not unpacked again. GWAS files in the
    ``sumstats_formatted`` format are renamed ``<trait>.sumstats.gz`` (gzipped) for ldsc.
    """
    import gzip
    import shutil

    target = Path(target)
    records = []
    for remote in ldsc_manifest(target, traits):
        status = fetch_file(remote, fetcher, retries=retries, backoff=backoff, force=force)
        if remote.kind == "ldsc" and remote.name.endswith((".tgz", ".bz2")):
            unpack(remote.dest, target)
        else:
            gz = remote.dest.with_name(remote.dest.name + ".gz")
            if not gz.exists() or force:
                with open(remote.dest, "rb") as src, atomic_path(gz) as tmp, gzip.open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
        records.append((remote.kind, remote.name, remote.url, str(remote.dest), status, remote.dest.stat().st_size))
    return pd.DataFrame(records, columns=["kind", "name", "url", "dest", "status", "bytes"])
