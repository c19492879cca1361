"""The README and docs/ as a reader meets them: a table of contents that lists every section, links that resolve.

Developers add a README section per notebook ("## <Title> (notebook NN)"); this test asks them to add
it to the Contents too. Timings of ``make demo`` live in one place (README "Quick start", per notebook
in docs/performance.md), so ``params/demo.yaml`` states none. The docs describe main (no row about
a branch or unmerged work, no "not downloadable" where ``chromexp download`` exists) and give the
data's provenance one column name, ``provenance`` (issue 28 item 5).
"""

from __future__ import annotations

import re

import pytest

HEADING = re.compile(r"^(#{1,6}) +(.+?) *$", flags=re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _without_code(text: str) -> str:
    """Markdown outside fenced code blocks (a '# comment' in a bash block is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def anchors(text: str) -> set[str]:
    return {slug(h) for _, h in HEADING.findall(_without_code(text))}


def test_slug_matches_github():
    assert slug("Provenance, result tables and intended differences") == (
        "provenance-result-tables-and-intended-differences"
    )
    assert slug("`make demo`, notebook by notebook") == "make-demo-notebook-by-notebook"
    assert slug("CLASTER (notebook 47)") == "claster-notebook-47"


def test_readme_contents_lists_every_section_in_order(repo):
    text = (repo / "README.md").read_text()
    body = _without_code(text)
    sections = [h for level, h in HEADING.findall(body) if level == "##" and h != "Contents"]
    contents = body.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = [target[1:] for target in LINK.findall(contents) if target.startswith("#")]
    missing = [s for s in sections if slug(s) not in listed]
    assert not missing, f"README sections missing from its Contents (add a link there): {missing}"
    unknown = [a for a in listed if a not in anchors(text)]
    assert not unknown, f"README Contents links to no section: {unknown}"
    order = [slug(s) for s in sections]
    assert listed == sorted(listed, key=order.index), "the Contents lists the sections out of order"
    first = [slug(s) for s in sections[:4]]
    assert first == ["quick-start", "reproduce-the-manuscript-figures", "your-own-data", "interactive-jupyterlab"]


@pytest.mark.parametrize("name", ["README.md", *[f"docs/{p}" for p in ("methods.md", "deviations.md", "data-formats.md",
                                                                        "real-data.md", "runner.md", "performance.md")]])  # fmt: skip
def test_relative_links_resolve(repo, name):
    path = repo / name
    text = path.read_text()
    bad = []
    for target in LINK.findall(_without_code(text)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            bad.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not bad, f"{name}: broken links: {bad}"


def test_demo_timings_are_stated_in_one_place(repo):
    """README "Quick start" states how long `make demo` takes; params/demo.yaml points there, with no number."""
    demo = (repo / "params" / "demo.yaml").read_text()
    comments = "\n".join(line.split("#", 1)[1] for line in demo.splitlines() if "#" in line)
    duration = re.search(r"[^\n]*\d\s*(min|minutes|h|hours|s)\b[^\n]*", comments)
    assert not duration, (
        f"params/demo.yaml states a duration ({duration.group(0).strip()!r}): state it once, in the README "
        "(the notebook's section, or 'Quick start' for the whole demo), and point there"
    )
    assert "README" in comments and "docs/performance.md" in comments


def test_moved_sections_live_in_docs(repo):
    """Reference material left the README: the runner's guarantees and the benchmark tables are in docs/."""
    readme = (repo / "README.md").read_text()
    assert "*Stale data.*" not in readme and "*Stale data.*" in (repo / "docs" / "runner.md").read_text()
    performance = (repo / "docs" / "performance.md").read_text()
    for table_row in ("| reads → 100/500/2000 bp bins", "| promoter CNN | H3K4me3 | 4 |"):
        assert table_row not in readme and table_row in performance


DOCS = ["README.md", *[f"docs/{p}" for p in ("methods.md", "deviations.md", "data-formats.md", "real-data.md",
                                              "runner.md", "performance.md")]]  # fmt: skip


@pytest.mark.parametrize("name", DOCS)
def test_docs_describe_what_is_on_main_not_a_branch(repo, name):
    """A reader of main's docs meets main's code: no row about "branch X", unmerged work, or a download that exists."""
    text = _without_code((repo / name).read_text())
    stale = [
        m.group(0)
        for pattern in (
            r"[^\n]{0,60}\b(?:on|in|from) (?:the )?branch `?[\w-]+`?[^\n]{0,40}",  # "(on branch science)"
            r"[^\n]{0,60}\b(?:unmerged|not yet merged|once merged|when merged|pending merge)\b[^\n]{0,40}",
            r"[^\n]{0,60}\bnot downloadable\b[^\n]{0,40}",  # `chromexp download` fetches every kind
        )
        for m in re.finditer(pattern, text, flags=re.IGNORECASE)
    ]
    assert not stale, f"{name} describes work that is not on main (or a download that exists): {stale}"


def test_docs_check_finds_a_stale_row():
    """The pattern above is not vacuous: the rows issue 28 found would be caught."""
    row = "| pCRE choice | partners pooled | the reference rule (on branch `science`, not yet merged) |"
    assert re.search(r"\b(?:on|in|from) (?:the )?branch `?[\w-]+`?", row)
    assert re.search(r"\bnot yet merged\b", row)


def test_data_formats_names_the_provenance_column_provenance(repo):
    """docs/data-formats.md: every result table listed with a `provenance` column, none with a `data` column."""
    text = (repo / "docs" / "data-formats.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `") and "provenance" in line]
    assert len(rows) >= 10, "the result tables' rows of docs/data-formats.md no longer list `provenance`"
    table_rows = [line for line in text.splitlines() if line.startswith("| `")]
    # the column names of a row: the comma-separated names inside its backtick spans
    columns = {row.split("|")[1].strip(): {c.strip() for span in re.findall(r"`([^`]*)`", row.split("|")[2])
                                           for c in span.split(",")} for row in table_rows}  # fmt: skip
    with_data = [table for table, names in columns.items() if "data" in names]
    assert not with_data, f"docs/data-formats.md lists a `data` column (the provenance is `provenance`): {with_data}"


def test_old_tables_with_a_data_column_are_read_with_provenance(tmp_path):
    """Tables written before the `data` column was retired read as today's (renamed, or dropped when equal)."""
    import pandas as pd

    from chromexp import results

    old = pd.DataFrame({"mark": ["H3K4me3"], "cnn_minus_naive": [0.1], "data": ["semi-synthetic"]})
    old.to_csv(tmp_path / "promoter_cnn_vs_naive.tsv", sep="\t", index=False)
    read = results.read_table(tmp_path / "promoter_cnn_vs_naive.tsv")
    assert (
        list(read.columns) == ["mark", "cnn_minus_naive", "provenance"]
        and read["provenance"].iloc[0] == "semi-synthetic"
    )
    both = old.assign(provenance="semi-synthetic")
    assert list(results.legacy_provenance(both).columns) == ["mark", "cnn_minus_naive", "provenance"]
    other = pd.DataFrame({"data": ["E003 vs simulated"]})  # not a provenance: left alone
    assert list(results.legacy_provenance(other).columns) == ["data"]
    with pytest.raises(ValueError, match="contradicts"):
        results.legacy_provenance(old.assign(provenance="real"))
