"""What makes an executed notebook noisy (issue 28 item 3): shared by the quiet-notebook and smoke tests.

An executed notebook is quiet when its saved outputs hold

* no progress-bar frames (tqdm redraws with carriage returns, or leaves ``NN%|███|`` in stderr),
* nothing in stderr (Jupyter renders it as a red box): no log lines (the chromexp log goes to stdout),
  no library warnings (``TqdmWarning: IProgress not found``, pandas' ``PerformanceWarning``),
* no per-epoch lines (they belong in the job's log, ``logs/<notebook>.log``),
* no line printed twice in a row by two log handlers (the same formatted line, one after the other).
"""

from __future__ import annotations

import re

#: A chromexp log line as the terminal handler formats it (``HH:MM:SS LEVEL name: message``).
LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (?:DETAIL|INFO|WARNING|ERROR) chromexp")
#: A tqdm frame: ``42%|████▏     | 5/12``.
TQDM_FRAME = re.compile(r"\d+%\|[^|\n]*\| *\d+/\d+")
#: A per-epoch training line (train.fit, train_stacked.fit_many, the Chromoformer recipe).
EPOCH_LINE = re.compile(r"\bepoch +\d+: [^\n]*\b(?:train|val)\b")


def noise(nb) -> list[str]:
    """The noise in an executed notebook's saved outputs, one sentence each (empty when quiet).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        An executed notebook (``nbformat.read(path, as_version=4)``).
    """
    found = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        streams = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
        for out in streams:
            text = str(out.get("text", ""))
            where = f"code cell {i + 1} ({out.get('name')})"
            if "\r" in text or TQDM_FRAME.search(text):
                found.append(f"{where}: a progress-bar frame")
            if out.get("name") == "stderr" and LOG_LINE.search(text):
                found.append(f"{where}: a log line rendered as stderr: {LOG_LINE.search(text).group(0)!r}")
            elif out.get("name") == "stderr" and text.strip():  # a library's warning, say
                found.append(f"{where}: a stderr box: {text.strip().splitlines()[0][:160]!r}")
            if m := EPOCH_LINE.search(text):
                found.append(f"{where}: a per-epoch line (belongs in the job log): {m.group(0)!r}")
        lines = [ln for o in streams for ln in str(o.get("text", "")).splitlines() if ln.strip()]
        twice = [a for a, b in zip(lines, lines[1:], strict=False) if a == b and len(a) > 20]
        if twice:
            found.append(f"code cell {i + 1}: the same line twice in a row (two log handlers?): {twice[0]!r}")
    return found
