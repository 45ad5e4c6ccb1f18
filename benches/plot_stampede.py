#!/usr/bin/env python3
"""Plot the stampede bench: download success per second, straight at the
origin vs through lifeboat, with lifeboat's mode as a band and the offered
load as a grey line. Reads target/bench-results/stampede-timeline.csv
(written by `cargo bench --bench stampede`), writes docs/stampede.svg.
No dependencies: the SVG is written by hand."""
import csv
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
src = root / "target/bench-results/stampede-timeline.csv"
out = root / (sys.argv[1] if len(sys.argv) > 1 else "docs/stampede.svg")
rows = list(csv.DictReader(src.open()))
if not rows:
    sys.exit(f"{src}: no data; run `cargo bench --bench stampede` first")

W, H, L, R, T, B = 860, 380, 60, 70, 40, 60
pw, ph = W - L - R, H - T - B
n = len(rows)
max_offered = max(int(r["offered"]) for r in rows) or 1
x = lambda i: L + pw * (i + 0.5) / n
y = lambda v: T + ph * (1 - v)
mode_colour = {"normal": "#ffffff", "degraded": "#fde2e2", "recovering": "#fff4d6"}

parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="system-ui,sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="#fff"/>',
         f'<text x="{L}" y="22" font-size="15" font-weight="600">Release-day stampede: downloads that succeeded, per second</text>']
for i, r in enumerate(rows):
    parts.append(f'<rect x="{L + pw * i / n:.1f}" y="{T}" width="{pw / n + 0.5:.1f}" height="{ph}" fill="{mode_colour.get(r["lifeboat_mode"], "#fff")}"/>')
for v in (0, 0.25, 0.5, 0.75, 1.0):
    parts.append(f'<line x1="{L}" x2="{L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
    parts.append(f'<text x="{L - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{int(v * 100)}%</text>')
offered = " ".join(f"{x(i):.1f},{T + ph * (1 - int(r['offered']) / max_offered):.1f}" for i, r in enumerate(rows))
parts.append(f'<polyline points="{offered}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
parts.append(f'<text x="{L + pw + 6}" y="{T + 4}" fill="#777">{max_offered} req/s</text>')
for key, colour, label in (("direct_primary_success", "#c0392b", "straight at the origin"), ("lifeboat_primary_success", "#1e6fd9", "through lifeboat")):
    pts = [f"{x(i):.1f},{y(float(r[key])):.1f}" for i, r in enumerate(rows) if r[key]]
    parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
for i in range(0, n, 5):
    parts.append(f'<text x="{x(i):.1f}" y="{T + ph + 18}" text-anchor="middle">{i}s</text>')
ly = H - 18
legend = [("#1e6fd9", "through lifeboat"), ("#c0392b", "straight at the origin"), ("#999", "offered load (right scale)")]
for k, (colour, label) in enumerate(legend):
    lx = L + k * 200
    parts.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2.5"/><text x="{lx + 30}" y="{ly}">{label}</text>')
parts.append(f'<rect x="{L + 600}" y="{ly - 11}" width="14" height="10" fill="#fde2e2"/><text x="{L + 620}" y="{ly}">degraded</text>')
parts.append(f'<rect x="{L + 690}" y="{ly - 11}" width="14" height="10" fill="#fff4d6"/><text x="{L + 710}" y="{ly}">recovering</text>')
parts.append("</svg>")
out.write_text("\n".join(parts) + "\n")
print(f"wrote {out}")
