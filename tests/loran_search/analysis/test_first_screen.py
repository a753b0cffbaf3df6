"""report.html in a real browser: the verdict is on the first screen and nothing scrolls sideways.

Headless Chromium renders the report of the synthetic search-and-confirm study at 1280 px wide.
A script injected into a *copy* of the page writes the layout facts into the document title,
which ``--dump-dom`` returns: the document's ``scrollWidth`` (must be ≤ 1280: the page never
scrolls sideways), where the verdict sits (its first answer must end inside the first 800 px),
how wide the tables are inside their boxes (the wide ones scroll there, not the page) and how
wide the note cells are (no word-per-line columns). A screenshot is taken too.

Skipped, with the command to install it, when no ``chromium`` is on PATH.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WIDTH = 1280
FIRST_SCREEN = 800  # px: a laptop's first viewport at 1280 px wide

PROBE = """<script>
(function () {
  const verdict = document.getElementById('verdict');
  const first = verdict.querySelector('li');
  const wraps = Array.from(document.querySelectorAll('.table-wrap'));
  const notes = Array.from(document.querySelectorAll('td.text.wide'));
  // a long note in the first note cell: it must wrap into a readable block, not a word per line
  const note = notes[0];
  note.textContent = 'not paired: the candidate and the baseline were not evaluated on the '
    + 'same examples (seed 1: 3 example ids missing from the baseline); nothing was dropped. '
    + 'confirmation without baseline: no confirmation gain, the search evidence stands.';
  const words = note.textContent.split(' ').length;
  const lines = note.getBoundingClientRect().height
    / parseFloat(getComputedStyle(note).lineHeight || '16');
  document.title = 'PROBE' + JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
    innerWidth: window.innerWidth,
    verdictTop: verdict.getBoundingClientRect().top,
    firstAnswerBottom: first.getBoundingClientRect().bottom,
    firstAnswer: first.textContent.slice(0, 60),
    tables: wraps.map(w => [w.scrollWidth, w.clientWidth]),
    noteWidths: notes.map(td => td.getBoundingClientRect().width),
    noteWords: words,
    noteLines: lines,
  });
})();
</script>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(
            "headless Chromium is not installed; install it to run the first-screen test: "
            "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu), then rerun"
        )
    return exe


def _run(exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", f"--window-size={WIDTH},2400"]  # fmt: skip
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120)


def test_verdict_is_on_the_first_screen_and_nothing_scrolls_sideways(
    curse_report: Path, tmp_path: Path
) -> None:
    exe = _chromium()
    page = (curse_report / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    done = _run(exe, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    match = re.search(r"<title>PROBE(.*?)</title>", done.stdout, re.S)
    assert match, f"no probe result; chromium said: {done.stderr[-2000:]}"
    facts = json.loads(html.unescape(match.group(1)))
    assert facts["innerWidth"] == WIDTH
    # Nothing scrolls sideways at 1280 px.
    assert facts["scrollWidth"] <= WIDTH, facts
    assert facts["bodyScrollWidth"] <= WIDTH, facts
    # The verdict opens the page and its first answer is read without scrolling.
    assert facts["verdictTop"] < 150, facts
    assert facts["firstAnswerBottom"] < FIRST_SCREEN, facts
    assert facts["firstAnswer"].startswith("Held-out confirmation (test split")
    # The wide configuration table scrolls inside its own box.
    assert facts["tables"] and all(client <= WIDTH for _, client in facts["tables"])
    assert any(scroll > client for scroll, client in facts["tables"]), facts["tables"]
    # Note cells keep a readable width: a 40-word note wraps into a few lines, not 40.
    assert facts["noteWidths"] and min(facts["noteWidths"]) >= 200, facts["noteWidths"]
    assert facts["noteLines"] <= facts["noteWords"] / 4, facts
    # A screenshot of the first screen, for a human to look at.
    shot = tmp_path / "first_screen.png"
    _run(exe, f"--screenshot={shot}", (curse_report / "report.html").as_uri())
    assert shot.stat().st_size > 10_000
