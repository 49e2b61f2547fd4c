"""One self-contained HTML file of a reproduction, built from its results folder alone.

``carbonedge reproduce`` writes ``results/<digest>/`` (see :mod:`carbonedge.experiments.outputs`):
``report.md``, the tables as CSV/JSON, the ledger, the figures as PNG. :func:`write_html_report`
turns that folder into one HTML file a researcher can attach to a mail or a paper review:

- ``report.md`` rendered with markdown-it-py (CommonMark + tables, raw HTML off): parameters
  and method, the headline (verdict), Tables II, IV, V, overhead, sweep, energy breakdown;
  its figures embedded as ``data:image/png;base64`` URIs;
- the SCI (ISO/IEC 21031) of the ledger, per node and overall, each term labelled
  (:mod:`carbonedge.carbon.sci`);
- every CSV of the folder as a table (the per-task ledger is summarised by the SCI section);
- every other PNG of the folder, ``tables.txt`` (the terminal output) and the file list.

No script, no external request: it renders the same offline, printed, or years later.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carbonedge.carbon.errors import LedgerError
from carbonedge.carbon.ledger_file import read_ledger
from carbonedge.carbon.sci import SciError, SciScore, sci_score
from carbonedge.errors import ConfigError

REPORT_MD = "report.md"
MARKER = "complete.json"
HTML_NAME = "report.html"
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
# The per-task ledger is summarised (SCI section) rather than copied: thousands of rows.
_NOT_TABULATED = {"ledger.csv"}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2327;
 margin:0 auto;max-width:1180px;padding:1.5rem 2rem 4rem}
h1{font-size:1.7rem;margin:.2rem 0 .4rem}h2{border-bottom:2px solid #2e7d32;padding-bottom:.2rem;
 margin-top:2.2rem}h3{margin-top:1.6rem}code{background:#f2f4f3;padding:0 .25em;border-radius:3px;
 overflow-wrap:anywhere;font-size:.88em}pre{background:#f6f8f7;padding:.8rem;overflow-x:auto;
 font-size:.8em;line-height:1.3}.wrap{overflow-x:auto;margin:.6rem 0}table{border-collapse:collapse;
 font-size:.84em}th,td{border:1px solid #d5dbd8;padding:.25rem .5rem;text-align:left;
 vertical-align:top;white-space:nowrap}th{background:#e8f1ea}
tr:nth-child(even) td{background:#fafbfa}
img{max-width:100%;height:auto;border:1px solid #e1e5e3;margin:.5rem 0}
.meta{color:#5b6660;font-size:.9em}.badge{display:inline-block;padding:.05rem .5rem;
 border-radius:1rem;font-size:.8em;font-weight:600;color:#fff;background:#2e7d32}
.badge.warn{background:#b26a00}.measured{color:#1b5e20;font-weight:600}
.modelled{color:#8a5300;font-weight:600}.sourced{color:#0d47a1;font-weight:600}
.missing{color:#b71c1c;font-weight:600}nav ul{columns:3;font-size:.9em;padding-left:1.2rem}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:600}
@media print{nav{display:none}}
"""


@dataclass(frozen=True)
class _Section:
    anchor: str
    title: str
    body: str


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _data_uri(path: Path) -> str:
    mime = IMAGE_TYPES[path.suffix.lower()]
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure_file(folder: Path, src: str) -> Path | None:
    """The image ``src`` names inside ``folder`` (never outside it), or None."""
    if not src or "://" in src or src.startswith(("data:", "/")):
        return None
    candidate = (folder / src).resolve()
    inside = candidate.parent == folder.resolve() or folder.resolve() in candidate.parents
    if inside and candidate.is_file() and candidate.suffix.lower() in IMAGE_TYPES:
        return candidate
    return None


def _table(head: str, body: str) -> str:
    return f'<div class="wrap"><table><thead>{head}</thead><tbody>{body}</tbody></table></div>'


def _wrap_tables(text: str) -> str:
    return text.replace("<table>", '<div class="wrap"><table>').replace(
        "</table>", "</table></div>"
    )


def render_markdown(
    text: str, folder: Path, taken: set[str]
) -> tuple[str, list[_Section], set[str]]:
    """``report.md`` as HTML: h2 ids for the contents, images as data URIs. Returns the HTML,
    the h2 sections (anchor, title) and the image files embedded."""
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    if len(tokens) >= 3 and tokens[0].type == "heading_open" and tokens[0].tag == "h1":
        tokens = tokens[3:]  # report.md's title: the page has its own
    headings: list[_Section] = []
    used: set[str] = set()
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and i + 1 < len(tokens):
            title = tokens[i + 1].content
            anchor = _slug(title, taken)
            token.attrSet("id", anchor)
            if token.tag == "h2":
                headings.append(_Section(anchor, title, ""))
        for j, child in enumerate(token.children or []):
            if child.type != "image":
                continue
            src = str(child.attrGet("src") or "")
            image = _figure_file(folder, src)
            if image is None:
                missing = Token("text", "", 0)
                missing.content = f"[figure not in the results folder: {src}]"
                token.children[j] = missing  # type: ignore[index]
                continue
            child.attrSet("src", _data_uri(image))
            used.add(image.name)
    body = md.renderer.render(tokens, md.options, {})
    return _wrap_tables(body), headings, used


def _cell(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return html.escape(value)
    if value.strip().lstrip("-").isdigit():
        return html.escape(value)
    return f'<span title="{html.escape(value)}">{number:.6g}</span>'


def csv_table(path: Path) -> tuple[str, int, int]:
    """A CSV file as an HTML table (floats to 6 significant digits, full value on hover);
    returns the HTML, the rows and the columns."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return "<p>(empty file)</p>", 0, 0
    head = "".join(f"<th>{html.escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows[1:])
    return _table(f"<tr>{head}</tr>", body), len(rows) - 1, len(rows[0])


def _label(label: str) -> str:
    return f'<span class="{html.escape(label)}">{html.escape(label)}</span>'


def _fleet_embodied(folder: Path) -> tuple[dict[str, Any], str]:
    """Embodied footprints of the reproduction's fleet, and a note on where they came from."""
    from carbonedge.fleet.spec import load_fleet

    try:
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, "params.json unreadable: no embodied footprints"
    fleet_file = params.get("fleet_file")
    if fleet_file and not Path(fleet_file).is_file():
        return {}, f"fleet file {fleet_file} (outside the results folder) not found"
    try:
        fleet = load_fleet(fleet_file)
    except ConfigError as exc:
        return {}, f"fleet file unusable: {exc}"
    note = f"fleet {fleet.source}" + (
        " (read from outside the results folder)" if fleet_file else ""
    )
    return {n.name: n.embodied for n in fleet.nodes}, note


def sci_section(folder: Path) -> str:
    """The SCI of the folder's ledger (``ledger.sqlite``, else ``ledger.csv``) as HTML."""
    ledger = next(
        (folder / n for n in ("ledger.sqlite", "ledger.csv") if (folder / n).is_file()), None
    )
    if ledger is None:
        return "<p>No ledger in this results folder: no SCI.</p>"
    try:
        embodied, note = _fleet_embodied(folder)
        score = sci_score(read_ledger(ledger), embodied_by_node=embodied)
    except (LedgerError, SciError) as exc:
        return f"<p>SCI not computed: {html.escape(str(exc))}</p>"
    return _sci_html(score, ledger.name, note)


def _sci_html(score: SciScore, ledger_name: str, note: str) -> str:
    missing = (
        f" No embodied footprint for {', '.join(score.missing_embodied)} ({html.escape(note)}): "
        "M counts 0 for them; add <code>embodied_kgco2e</code> and <code>lifetime_years</code> "
        "to the fleet file."
        if score.missing_embodied
        else f" Embodied footprints: {html.escape(note)}."
    )
    summary = (
        f"<p><b>SCI = (E·I + M) / R = ({score.operational_g:.4g} + {score.embodied_g:.4g}) "
        f"gCO2e / {score.inferences} inferences = {score.sci_g_per_inference:.4g} gCO2e per "
        f"inference</b> (ISO/IEC 21031, R = one inference), from <code>{ledger_name}</code>.</p>"
        f"<ul><li>E = {score.energy_kwh:.4g} kWh ({_label(score.energy_label)}; PUE included)</li>"
        f"<li>I = {score.intensity_g_per_kwh:.4g} gCO2/kWh ({_label(score.intensity_label)}; "
        "energy-weighted)</li>"
        f"<li>M = {score.embodied_g:.4g} gCO2e ({_label(score.embodied_label)}; TE × TS × RS, "
        "time held = union of the node's task intervals)</li>"
        f"<li>R = {score.inferences} inferences ({_label(score.inferences_label)}: counted in "
        "the ledger; pipeline stages count once)</li></ul>"
        f"<p class='meta'>Every configuration, model and repeat together.{missing}</p>"
    )
    head = (
        "<tr><th>node</th><th>tasks</th><th>inferences</th><th>E (kWh)</th><th>E label</th>"
        "<th>I (gCO2/kWh)</th><th>I source</th><th>E·I (g)</th><th>busy (s)</th>"
        "<th>M (g)</th><th>M label</th><th>SCI (g/inf)</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(n.node)}</td><td>{n.tasks}</td><td>{n.inferences:.6g}</td>"
        f"<td>{n.energy_kwh:.4g}</td><td>{_label(n.energy_label)}</td>"
        f"<td>{n.intensity_g_per_kwh:.4g}</td>"
        f"<td>{html.escape('; '.join(n.intensity_sources))}</td>"
        f"<td>{n.operational_g:.4g}</td><td>{n.busy_s:.3f}</td><td>{n.embodied_g:.4g}</td>"
        f"<td>{_label(n.embodied_label)}</td>"
        f"<td>{(n.total_g / n.inferences if n.inferences else 0.0):.4g}</td></tr>"
        for n in score.nodes
    )
    return summary + _table(head, rows)


def _files_list(folder: Path) -> str:
    items = "".join(
        f"<tr><td><code>{html.escape(p.name)}</code></td><td>{p.stat().st_size:,}</td></tr>"
        for p in sorted(folder.iterdir())
        if p.is_file()
    )
    return _table("<tr><th>file</th><th>bytes</th></tr>", items)


def check_results_folder(folder: str | Path) -> Path:
    """``folder`` as a Path if it is a results folder of ``carbonedge reproduce`` (has
    ``report.md``); else :class:`ConfigError` naming it."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such results folder")
    if not (path / REPORT_MD).is_file():
        raise ConfigError(
            f"{path}: not a results folder of `carbonedge reproduce` (no {REPORT_MD}); "
            "give results/<digest>/"
        )
    return path


def render_html_report(folder: str | Path) -> str:
    """The self-contained HTML of the results folder ``folder``."""
    path = check_results_folder(folder)
    taken: set[str] = {"contents", "sci", "data-tables", "other-figures", "terminal", "files"}
    report, headings, used = render_markdown(
        (path / REPORT_MD).read_text(encoding="utf-8"), path, taken
    )
    sections = [_Section("sci", "SCI (ISO/IEC 21031) of the ledger", sci_section(path))]
    tables = []
    for csv_path in sorted(path.glob("*.csv")):
        if csv_path.name in _NOT_TABULATED:
            continue
        table, n_rows, n_cols = csv_table(csv_path)
        tables.append(
            f"<details><summary><code>{html.escape(csv_path.name)}</code> ({n_rows} rows, "
            f"{n_cols} columns)</summary>{table}</details>"
        )
    sections.append(
        _Section(
            "data-tables", "Data tables (every CSV of the folder)", "".join(tables) or "<p>none</p>"
        )
    )
    others = [
        p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_TYPES and p.name not in used
    ]
    if others:
        figures = "".join(
            f'<figure><img src="{_data_uri(p)}" alt="{html.escape(p.name)}">'
            f"<figcaption><code>{html.escape(p.name)}</code></figcaption></figure>"
            for p in others
        )
        sections.append(_Section("other-figures", "Other figures", figures))
    if (path / "tables.txt").is_file():
        text = html.escape((path / "tables.txt").read_text(encoding="utf-8"))
        sections.append(
            _Section(
                "terminal",
                "Terminal output (tables.txt)",
                f"<details><summary>show</summary><pre>{text}</pre></details>",
            )
        )
    sections.append(_Section("files", "Files in the results folder", _files_list(path)))
    complete = (path / MARKER).is_file()
    badge = (
        '<span class="badge">complete</span>'
        if complete
        else f'<span class="badge warn">incomplete: no {MARKER}</span>'
    )
    contents = "".join(
        f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in (*headings, *sections)
    )
    extra = "".join(
        f'<section><h2 id="{s.anchor}">{html.escape(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"CarbonEdge reproduction {path.resolve().name}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>CarbonEdge reproduction report</h1>"
        f'<p class="meta">Results folder <code>{html.escape(str(path.resolve()))}</code> '
        f"{badge} · rendered {generated} by <code>carbonedge report</code></p>"
        f'<nav><h2 id="contents">Contents</h2><ul>{contents}</ul></nav>'
        f"<main>{report}{extra}</main></body></html>\n"
    )


def write_html_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of results folder ``folder`` to ``out`` (default
    ``<folder>/report.html``); returns the file written."""
    html_text = render_html_report(folder)
    target = Path(out) if out is not None else Path(folder) / HTML_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html_text, encoding="utf-8")
    return target
