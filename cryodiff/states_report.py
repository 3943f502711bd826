"""``summary.html`` of a states folder: the states table and the plots, readable in any browser.

Plain HTML with the PNGs beside it (``states.png``, and ``state_fsc.png`` with
validated maps), no scripts, so it opens from a cluster's file share as well as
from a laptop.
"""

from __future__ import annotations

import html
from pathlib import Path

#: Columns shown, with their headings; those absent from the rows (no validated maps) are left out.
COLUMNS = (
    ("state", "state"), ("particles", "particles"), ("population", "population"),
    ("population_low", "low"), ("population_high", "high"), ("basin_population", "basin count"), ("dG_kT", "dG (kT)"),
    ("dG_kcal_mol", "dG (kcal/mol)"), ("half_map_resolution_A", "half-map resolution (Å)"),
    ("agreement_resolution_A", "decoded vs map, FSC 0.5 (Å)"), ("decoded_supported", "decoded volume supported"),
    ("support_note", "why not"),
)


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "<b style='color:#c03020'>no</b>"
    if isinstance(value, float):
        return f"{value:.3g}"
    if value is None:
        return "none"
    return html.escape(str(value))


def write_summary(path: str | Path, rows: list[dict], record: dict, images: list[str]) -> None:
    """Write ``path``: a heading with the run, the number of particles and states, the table of
    ``rows`` (:data:`COLUMNS`) and the ``images`` (file names beside it)."""
    columns = [(key, title) for key, title in COLUMNS if rows and key in rows[0]]
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(row[key])}</td>" for key, _ in columns) + "</tr>" for row in rows)
    pictures = "\n".join(f"<p><img src='{html.escape(name)}' style='max-width:100%'></p>" for name in images)
    confidence = 100 * record["confidence"]
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>cryodiff states</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}</style></head>
<body>
<h1>cryodiff states</h1>
<p>Prior {html.escape(str(record["prior"]))}, latents {html.escape(str(record["latents"]))}:
{record["particles"]} particles, {len(rows)} states at bandwidth {record["bandwidth"]:.3g},
{record["unassigned"]} particles unassigned. Populations are fractions of all particles with
{confidence:g} % bootstrap intervals (low, high); dG = -kT ln(p / p_max) at {record["temperature_K"]:g} K.</p>
<table><tr>{head}</tr>
{body}
</table>
{pictures}
</body></html>
"""
    Path(path).write_text(text)
