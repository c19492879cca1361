"""Data: readers of every input format and the per-cell-type dataset store (one module per kind of data).

* :mod:`chromexp.data.io` — readers of reads, signal, peaks, regions, tables and pickles.
* :mod:`chromexp.data.signal` — read depth over genomic windows.
* :mod:`chromexp.data.intervals` — interval operations with bedtools semantics.
* :mod:`chromexp.data.reference_genes` — the paper's gene set on real data (TSS choice, folds).
* :mod:`chromexp.data.dataset` — the per-cell-type dataset store (genes, folds, bins, pCREs).
* :mod:`chromexp.data.download` — the real Roadmap (and eQTL, LDSC) inputs, downloaded and checked.
* :mod:`chromexp.data.eqtl` — fine-mapped eQTL inputs: read, validate, lift over.
* :mod:`chromexp.data.plink` — PLINK 1 binary files and per-SNP annotations.
* :mod:`chromexp.data.binned` — pre-binned count tables: per-gene TSS windows, the vendored real E116 counts.

May import the base modules (``constants``, ``paths``, ``config``, ``utils``, ``provenance``,
``results``, ``metrics``, ``runs``) and other modules of this package; nothing else of chromexp
(``tests/test_architecture.py`` holds the rule). This package imports nothing itself: import the
module you need.
"""
