"""Fine-mapped eQTL input: read, validate, select tissue-unique eQTLs, lift GRCh38 -> hg19.

The real input is Wang et al. 2021 (Nat Commun 12:3394), Supplementary Data 7, sheet
``put_causal_eqtls_tissue_unique``: one row per putative causal eQTL with ``tissue`` (GTEx
name), ``gene`` (versioned Ensembl id), ``variant`` (``chr:pos:ref:alt``, 1-based, **GRCh38**) and
its PIP. The loci of the study are hg19, so variants are lifted with a chain file through
``pyliftover`` (UCSC ``hg38ToHg19.over.chain.gz`` for real data; the semi-synthetic dataset ships a
SIMULATED chain, see :mod:`chromexp.simulate.eqtl`).

Reading (:func:`read_fine_mapped_eqtls`) accepts the TSV layout the simulator writes and
:func:`convert_xlsx` produces, or the published ``.xlsx`` itself (needs ``openpyxl``); a malformed
line raises ``ValueError("<file>:<line>: <reason>")``. Variants on chromosomes outside chr1-22/X/Y
are not an error: they are counted in the exclusion report (``table.attrs["excluded"]``).

(The reader could move to :mod:`chromexp.data.io` with the other readers later.)
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paths
from ..constants import CHROMOSOMES
from ..utils import atomic_path, get_logger

log = get_logger("chromexp.data.eqtl")

SHEET = "put_causal_eqtls_tissue_unique"
EQTL_FILE = "put_causal_eqtls_tissue_unique.tsv.gz"
XLSX_FILE = "41467_2021_23134_MOESM10_ESM.xlsx"
CHAIN_FILE = "hg38ToHg19.over.chain.gz"
SIMULATED_CHAIN_FILE = "hg38ToHg19.simulated.over.chain.gz"
REQUIRED = ("tissue", "gene", "variant", "pip")
#: Columns of :func:`read_fine_mapped_eqtls`'s table.
COLUMNS = ("tissue", "gene_id", "gene", "variant", "chrom", "pos", "ref", "alt", "pip", "line")
_VARIANT = re.compile(r"^(?:chr)?([0-9A-Za-z]+)[:_](\d+)[:_]([ACGTN]+)[:_]([ACGTN]+)(?:_b3[78])?$")


def _open(path: Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8", newline="") if gz else open(path, encoding="utf-8", newline="")


def _rows_from_text(path: Path):
    """Yield (line_number, fields) of a tab-separated file; the first non-comment line is the header."""
    with _open(path) as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if line == "" or line.startswith("#"):
                continue
            yield number, line.split("\t")


def _rows_from_xlsx(path: Path, sheet: str):
    try:
        frame = pd.read_excel(path, sheet_name=sheet, dtype=str, header=None)
    except ImportError as err:
        raise ImportError(f"Reading {path} needs openpyxl (pip install openpyxl).") from err
    except ValueError as err:
        raise ValueError(f"{path}: no sheet {sheet!r} ({err}).") from err
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        fields = ["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in row]
        if all(f == "" for f in fields):
            continue
        yield i, fields


def read_fine_mapped_eqtls(path: str | Path, sheet: str = SHEET) -> pd.DataFrame:
    """Read and validate a fine-mapped eQTL table (Wang et al. 2021 Suppl. Data 7 layout).

    Parameters
    ----------
    path : path
        A TSV (optionally gzipped) with a header holding at least ``tissue``, ``gene``,
        ``variant`` and ``pip`` (case-insensitive; extra columns ignored; without a ``pip``
        column, the single column whose name starts with ``pip`` is used), or the published
        ``.xlsx`` (then ``sheet`` is read; line numbers are spreadsheet rows).
    sheet : str
        Sheet of an ``.xlsx`` file.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`: ``gene_id`` is ``gene`` without its version suffix, ``chrom`` is
        ``chr``-prefixed, ``pos`` the 1-based GRCh38 position, ``line`` the source line.
        ``attrs["excluded"]`` counts rows left out by reason (chromosome outside chr1-22/X/Y).

    Raises
    ------
    ValueError
        ``"<file>:<line>: <reason>"`` for a missing column, a wrong number of fields, a
        malformed variant, a PIP that is not a number in [0, 1], or an empty tissue or gene.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such eQTL file.")
    rows = _rows_from_xlsx(path, sheet) if path.suffix.lower() in (".xlsx", ".xls") else _rows_from_text(path)
    header = None
    records = []
    other_chrom = 0
    for number, fields in rows:
        if header is None:
            names = [f.strip().lower() for f in fields]
            pips = [n for n in names if n.startswith("pip")]
            if "pip" not in names and len(pips) == 1:  # e.g. a column named after the PIP's method
                log.info("%s: using column %r as the PIP", path, fields[names.index(pips[0])])
                names[names.index(pips[0])] = "pip"
            missing = [c for c in REQUIRED if c not in names]
            if missing:
                raise ValueError(f"{path}:{number}: the header lacks column(s) {missing}; it has {fields}.")
            header = names
            idx = {c: names.index(c) for c in REQUIRED}
            continue
        if len(fields) != len(header):
            raise ValueError(f"{path}:{number}: {len(fields)} fields, the header has {len(header)}.")
        tissue, gene, variant, pip_text = (fields[idx[c]].strip() for c in REQUIRED)
        if not tissue or not gene:
            raise ValueError(f"{path}:{number}: empty tissue or gene.")
        m = _VARIANT.match(variant)
        if not m:
            raise ValueError(f"{path}:{number}: variant {variant!r} is not chr:pos:ref:alt.")
        try:
            pip = float(pip_text)
        except ValueError:
            raise ValueError(f"{path}:{number}: PIP {pip_text!r} is not a number.") from None
        if not 0.0 <= pip <= 1.0:
            raise ValueError(f"{path}:{number}: PIP {pip} is outside [0, 1].")
        chrom = "chr" + m.group(1)
        if chrom not in CHROMOSOMES:
            other_chrom += 1
            continue
        records.append(
            (tissue, gene.split(".")[0], gene, variant, chrom, int(m.group(2)), m.group(3), m.group(4), pip, number)
        )
    if header is None:
        raise ValueError(f"{path}: empty file (no header).")
    table = pd.DataFrame(records, columns=list(COLUMNS))
    table["pos"] = table["pos"].astype(np.int64)
    table.attrs["excluded"] = {"chromosome outside chr1-22, X, Y": other_chrom}
    if other_chrom:
        log.info(
            "%s: %d of %d eQTLs on chromosomes outside chr1-22/X/Y left out",
            path,
            other_chrom,
            other_chrom + len(table),
        )
    return table


def convert_xlsx(xlsx: str | Path, out: str | Path, sheet: str = SHEET) -> Path:
    """Write the sheet of the published ``.xlsx`` as the TSV (tissue, gene, variant, pip) read here."""
    table = read_fine_mapped_eqtls(xlsx, sheet)
    with atomic_path(out) as tmp:
        table[["tissue", "gene", "variant", "pip"]].to_csv(tmp, sep="\t", index=False, compression="gzip")
    return Path(out)


def tissue_unique(
    table: pd.DataFrame, tissues: Sequence[str], pip_in: float = 0.9, pip_out: float = 0.1
) -> pd.DataFrame:
    """The eQTLs fine-mapped in ``tissues`` (PIP > ``pip_in``) and not elsewhere (PIP < ``pip_out``).

    "Elsewhere" is every tissue of the table outside ``tissues`` (a cell type matched to two
    tissues, e.g. E007 to two brain regions, keeps an eQTL found in both). A (gene, variant) pair
    listed for several of ``tissues`` is kept once.

    Returns
    -------
    pandas.DataFrame
        Rows of ``table`` (first occurrence per gene_id and variant).
    """
    tissues = list(tissues)
    inside = table["tissue"].isin(tissues).to_numpy()
    key = table["gene_id"] + "|" + table["variant"]
    other = table.loc[~inside].groupby(key[~inside])["pip"].max()
    best_other = key.map(other).fillna(0.0).to_numpy()
    keep = inside & (table["pip"].to_numpy() > pip_in) & (best_other < pip_out)
    out = table[keep]
    return out[~(out["gene_id"] + "|" + out["variant"]).duplicated()].reset_index(drop=True)


def liftover(table: pd.DataFrame, chain: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lift variants from GRCh38 to hg19 with ``pyliftover`` and a UCSC chain file.

    A variant lifts when its position maps into an aligned block; with several mappings the
    highest-scoring chain is used (counted). A variant whose position falls in a gap of the chain,
    or whose chromosome the chain does not know, fails and is counted.
    Only positions are lifted: alleles are kept as written (not complemented when a chain maps to
    the minus strand, not checked against a reference genome); the test uses positions only.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`read_fine_mapped_eqtls` output (``chrom``, 1-based ``pos``).
    chain : path
        Chain file (GRCh38 -> hg19), plain or gzipped.

    Returns
    -------
    lifted : pandas.DataFrame
        The rows that lifted, with ``chrom_hg19`` and ``pos_hg19`` (0-based) added.
    report : pandas.DataFrame
        status (lifted, several mappings (best kept), lifted to another chromosome, in a gap of
        the chain, chromosome not in the chain), n.
    """
    from pyliftover import LiftOver

    chain = Path(chain)
    if not chain.is_file():
        raise ValueError(f"{chain}: no such chain file.")
    lo = LiftOver(str(chain))
    n = len(table)
    chrom_out = np.empty(n, dtype=object)
    pos_out = np.full(n, -1, np.int64)
    status = np.empty(n, dtype=object)
    for i, (c, p) in enumerate(zip(table["chrom"].to_numpy(), table["pos"].to_numpy())):
        hits = lo.convert_coordinate(c, int(p) - 1)
        if hits is None:
            status[i] = "chromosome not in the chain"
        elif not hits:
            status[i] = "in a gap of the chain (fails to lift)"
        else:
            chrom_out[i], pos_out[i] = hits[0][0], hits[0][1]
            status[i] = "lifted" if len(hits) == 1 else "several mappings (best kept)"
            if hits[0][0] != c:
                status[i] = "lifted to another chromosome"
    ok = pos_out >= 0
    lifted = table.loc[ok].assign(chrom_hg19=chrom_out[ok], pos_hg19=pos_out[ok]).reset_index(drop=True)
    order = [
        "lifted",
        "several mappings (best kept)",
        "lifted to another chromosome",
        "in a gap of the chain (fails to lift)",
        "chromosome not in the chain",
    ]
    counts = pd.Series(status).value_counts()
    report = pd.DataFrame({"status": order, "n": [int(counts.get(s, 0)) for s in order]})
    failed = int((~ok).sum())
    if failed:
        log.info("liftover with %s: %d of %d variants failed to lift", chain.name, failed, n)
    return lifted, report


def eqtl_dir(params: Mapping[str, Any]) -> Path:
    """``<raw>/eqtl``: the eQTL table and the chain file of the dataset."""
    return paths.raw_dir(params) / "eqtl"


def eqtl_inputs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The eQTL table and the chain file of the run's dataset, with clear errors when absent.

    Semi-synthetic data: the simulator's table and its SIMULATED chain (``simulated`` True);
    real data: the downloaded Suppl. Data 7 (converted TSV, or the ``.xlsx``) and the UCSC chain.
    """
    d = eqtl_dir(params)
    if params["data"]["source"] == "semisynthetic":
        table, chain = d / EQTL_FILE, d / SIMULATED_CHAIN_FILE
        if not (table.is_file() and chain.is_file()):
            raise FileNotFoundError(
                f"{d} lacks the simulated eQTLs ({EQTL_FILE}, {SIMULATED_CHAIN_FILE}): the raw folder was made "
                "before the eQTL simulator existed. Regenerate it by running notebook 00_demo_data."
            )
        return {"table": table, "chain": chain, "simulated_chain": True}
    table = d / EQTL_FILE if (d / EQTL_FILE).is_file() else d / XLSX_FILE
    chain = d / CHAIN_FILE
    if not (table.is_file() and chain.is_file()):
        raise FileNotFoundError(
            f"{d} lacks the fine-mapped eQTLs or the hg38ToHg19 chain: run `chromexp download --kinds eqtl`."
        )
    return {"table": table, "chain": chain, "simulated_chain": False}


def locus_eqtls(
    params: Mapping[str, Any],
    tissues: Sequence[str],
    gene_id: str,
    chrom: str,
    start: int,
    end: int,
) -> tuple[pd.DataFrame, str]:
    """The fine-mapped eQTLs of one gene inside ``[start, end)`` of ``chrom`` (hg19), for a locus view.

    The same selection as notebook 70: tissue-unique eQTLs of ``tissues`` (PIP > ``eqtl.pip_in``
    there, < ``eqtl.pip_out`` in every other tissue) of this gene, lifted to hg19 with the dataset's
    chain. A cell type without matched tissues, or a dataset without eQTL inputs, gives no eQTL and
    a note that says why (a locus view then says nothing about eQTLs but that note).

    Returns
    -------
    eqtls : pandas.DataFrame
        ``pos_hg19`` (0-based), ``pip``, ``tissue``, ``variant``; one row per eQTL in the interval.
    note : str
        What the rows are, or why there are none.
    """
    cols = ["pos_hg19", "pip", "tissue", "variant"]
    empty = pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "pos_hg19" else "float64" if c == "pip" else object) for c in cols}
    )
    tissues = list(tissues)
    if not tissues:
        return empty, "no eQTL tissue is matched to this cell type (cell.eqtl_tissues is empty)"
    try:
        inputs = eqtl_inputs(params)
    except FileNotFoundError as err:
        return empty, f"no eQTL input for this dataset ({err})"
    cfg = params["eqtl"]
    table = read_fine_mapped_eqtls(inputs["table"])
    gene = tissue_unique(table, tissues, float(cfg["pip_in"]), float(cfg["pip_out"]))
    gene = gene[gene["gene_id"] == gene_id]
    where = f"{', '.join(tissues)} (PIP > {cfg['pip_in']} there, < {cfg['pip_out']} elsewhere)"
    if gene.empty:
        return empty, f"no fine-mapped eQTL of this gene in {where}"
    lifted, _ = liftover(gene, inputs["chain"])
    inside = lifted[(lifted["chrom_hg19"] == chrom) & (lifted["pos_hg19"] >= start) & (lifted["pos_hg19"] < end)]
    out = inside[cols].reset_index(drop=True)
    chain = " (SIMULATED eQTLs and chain)" if inputs["simulated_chain"] else ""
    return out, f"{len(out)} fine-mapped eQTL(s) of this gene in the window, {where}{chain}"
