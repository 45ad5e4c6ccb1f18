#!/usr/bin/env python3
"""Plot the stampede bench in two panels, with lifeboat's mode as a band and
the offered load as a grey line:

1. downloads that succeeded, per second: straight at the origin vs through
   lifeboat with its defaults;
2. pages served per second (goodput): straight at the origin, through
   lifeboat with its defaults, and through lifeboat when the origin halves
   its speed mid-wave, with the limit lifeboat learned (right scale).

Reads target/bench-results/stampede-timeline.csv (written by `cargo bench
--bench stampede`), writes docs/stampede.svg. No dependencies: the SVG is
written by hand."""
import csv
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
src = root / "target/bench-results/stampede-timeline.csv"
out = root / (sys.argv[1] if len(sys.argv) > 1 else "docs/stampede.svg")
rows = list(csv.DictReader(src.open()))
if not rows:
    sys.exit(f"{src}: no data; run `cargo bench --bench stampede` first")

W, L, R, T = 860, 60, 70, 40
PH, GAP, B = 220, 70, 60
H = T + PH + GAP + PH + B
pw = W - L - R
n = len(rows)
num = lambda r, k: float(r[k]) if r.get(k) not in (None, "") else None
max_offered = max(int(r["offered"]) for r in rows) or 1
max_pages = max(max(num(r, k) or 0 for k in ("direct_pages_ok", "lifeboat_pages_ok", "half_pages_ok")) for r in rows) or 1
max_pages = (int(max_pages / 50) + 1) * 50
max_limit = max(max(num(r, k) or 0 for k in ("lifeboat_limit", "half_limit")) for r in rows) or 1
max_limit = (int(max_limit / 4) + 1) * 4
x = lambda i: L + pw * (i + 0.5) / n
mode_colour = {"normal": "#ffffff", "degraded": "#fde2e2", "recovering": "#fff4d6"}

parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="system-ui,sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="#fff"/>']


def panel(top, title, ticks, left_label, lines, right=None):
    y = lambda v: top + PH * (1 - v)
    parts.append(f'<text x="{L}" y="{top - 14}" font-size="15" font-weight="600">{title}</text>')
    for i, r in enumerate(rows):
        parts.append(f'<rect x="{L + pw * i / n:.1f}" y="{top}" width="{pw / n + 0.5:.1f}" height="{PH}" fill="{mode_colour.get(r["lifeboat_mode"], "#fff")}"/>')
    for v, label in ticks:
        parts.append(f'<line x1="{L}" x2="{L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{L - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<text x="14" y="{top + PH / 2:.0f}" transform="rotate(-90 14 {top + PH / 2:.0f})" text-anchor="middle" fill="#555">{left_label}</text>')
    offered = " ".join(f"{x(i):.1f},{y(int(r['offered']) / max_offered):.1f}" for i, r in enumerate(rows))
    parts.append(f'<polyline points="{offered}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    for key, scale, colour, width, dash in lines:
        pts = [f"{x(i):.1f},{y(num(r, key) / scale):.1f}" for i, r in enumerate(rows) if num(r, key) is not None]
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{colour}" stroke-width="{width}"{dashed}/>')
    if right:
        for v in range(0, max_limit + 1, max(1, max_limit // 4)):
            parts.append(f'<text x="{L + pw + 6}" y="{y(v / max_limit) + 4:.1f}" fill="#2e7d32">{v}</text>')
        parts.append(f'<text x="{W - 10}" y="{top + PH / 2:.0f}" transform="rotate(90 {W - 10} {top + PH / 2:.0f})" text-anchor="middle" fill="#2e7d32">{right}</text>')
    for i in range(0, n, 5):
        parts.append(f'<text x="{x(i):.1f}" y="{top + PH + 16}" text-anchor="middle">{i}s</text>')


panel(T + 14, "Downloads that succeeded, per second",
      [(v, f"{int(v * 100)}%") for v in (0, 0.25, 0.5, 0.75, 1.0)], "downloads ok",
      [("direct_primary_success", 1.0, "#c0392b", 2.5, ""), ("lifeboat_primary_success", 1.0, "#1e6fd9", 2.5, "")])
top2 = T + 14 + PH + GAP
panel(top2, "Pages served per second, and the origin limit lifeboat learned",
      [(v / max_pages, str(v)) for v in range(0, max_pages + 1, max(50, max_pages // 4 // 50 * 50))], "pages/s",
      [("direct_pages_ok", max_pages, "#c0392b", 2.5, ""), ("lifeboat_pages_ok", max_pages, "#1e6fd9", 2.5, ""),
       ("half_pages_ok", max_pages, "#8e44ad", 2.5, "6 3"),
       ("lifeboat_limit", max_limit, "#2e7d32", 1.5, ""), ("half_limit", max_limit, "#2e7d32", 1.5, "2 2")],
      right="learned limit")
ly = H - 18
legend = [("#1e6fd9", "lifeboat, defaults"), ("#8e44ad", "half speed from 10 s"), ("#c0392b", "straight at the origin"),
          ("#2e7d32", "learned limit"), ("#999", "offered load")]
lx = L
for colour, label in legend:
    parts.append(f'<line x1="{lx}" x2="{lx + 20}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2.5"/><text x="{lx + 24}" y="{ly}">{label}</text>')
    lx += 34 + 6.4 * len(label)
parts.append(f'<rect x="{W - R - 260}" y="{T - 8}" width="14" height="10" fill="#fde2e2"/><text x="{W - R - 240}" y="{T + 1}">degraded (defaults run)</text>')
parts.append(f'<rect x="{W - R - 90}" y="{T - 8}" width="14" height="10" fill="#fff4d6"/><text x="{W - R - 70}" y="{T + 1}">recovering</text>')
parts.append("</svg>")
out.write_text("\n".join(parts) + "\n")
