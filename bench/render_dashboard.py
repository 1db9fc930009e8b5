#!/usr/bin/env python3
"""Render the chart's Grafana dashboard to a static HTML page, from real Prometheus data.

This is not Grafana. It reads the dashboard JSON (charts/hubspot-token-operator/dashboards/), runs every
panel's PromQL ``expr`` against a Prometheus HTTP API (``/api/v1/query_range``, and ``/api/v1/query`` for
table panels, which the dashboard marks ``instant``), and draws the panels where their ``gridPos`` puts
them: time series as inline SVG lines, stat panels as big numbers (``lastNotNull``), tables as HTML tables.
Grafana variables are replaced by "match everything" (``$job``/``$namespace`` -> ``.*``), ``$__rate_interval``
by ``1m``. No JavaScript, nothing loaded from the network. Standard library only.

    python bench/render_dashboard.py --prometheus http://127.0.0.1:9090 --minutes 5 --out /tmp/dash/dashboard.html

See docs/dashboard.md for how the picture in docs/images/dashboard.png is made from it.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

DEFAULT_DASHBOARD = Path(__file__).resolve().parent.parent / "charts/hubspot-token-operator/dashboards/hubspot-token-operator.json"

# Grafana's classic palette, in its order.
PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0",
           "#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"]

# Grafana's grid: 24 columns, rows of 30 px with 8 px gaps.
ROW_PX = 30
GAP_PX = 8
HEADER_PX = 132


# --------------------------------------------------------------------------------------------- querying

def substitute(expr: str, variables: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise SystemExit(f"no value for Grafana variable ${name} in {expr!r}; pass --var {name}=...")
        return variables[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def prom_get(base: str, path: str, params: dict) -> dict:
    url = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]


def legend(fmt: str | None, labels: dict[str, str], expr: str) -> str:
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    if labels:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return f"{labels.get('__name__', '')}{{{inner}}}"
    return expr


def num(v: str) -> float | None:
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else f


# --------------------------------------------------------------------------------------------- units

def fmt_value(v: float | None, unit: str | None) -> str:
    if v is None:
        return "-"
    if unit == "s":
        a = abs(v)
        if a == 0:
            return "0 s"
        if a < 1e-3:
            return f"{v * 1e6:.3g} µs"
        if a < 1:
            return f"{v * 1e3:.3g} ms"
        if a < 60:
            return f"{v:.3g} s"
        if a < 3600:
            return f"{v / 60:.3g} min"
        if a < 86400:
            return f"{v / 3600:.3g} hour"
        return f"{v / 86400:.3g} day"
    suffix = " req/s" if unit == "reqps" else ""
    if v == 0:
        return "0" + suffix
    if abs(v) >= 1000:
        return f"{v / 1000:.3g} K{suffix}"
    if float(v).is_integer():
        return f"{int(v)}{suffix}"
    return f"{v:.3g}{suffix}"


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


# --------------------------------------------------------------------------------------------- panels

def esc(s: str) -> str:
    return html.escape(s, quote=True)


def render_timeseries(panel: dict, series: list[dict], w: int, h: int, start: float, end: float) -> str:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    plotted = [s for s in series if any(v is not None for _, v in s["points"])]
    for i, s in enumerate(plotted):  # colours go to the series drawn, as in Grafana
        s["color"] = PALETTE[i % len(PALETTE)]
    if not plotted:
        return '<div class="nodata">No data</div>'
    legend_rows = min(len(plotted), 4)
    legend_h = 17 * math.ceil(len(plotted) / (2 if w > 560 else 1)) if len(plotted) > 4 else 17 * legend_rows
    svg_h = max(h - legend_h - 6, 80)
    left, right, top, bottom = 74, 12, 8, 22
    pw, ph = w - left - right, svg_h - top - bottom
    vals = [v for s in plotted for _, v in s["points"] if v is not None]
    lo, hi = min(0.0, min(vals)), max(vals)
    ticks = nice_ticks(lo, hi if hi > lo else lo + 1)
    lo, hi = ticks[0], ticks[-1]

    def x(t: float) -> float:
        return left + (t - start) / (end - start) * pw

    def y(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    out = [f'<svg width="{w}" height="{svg_h}" viewBox="0 0 {w} {svg_h}">']
    for t in ticks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" class="axis">{esc(fmt_value(t, unit))}</text>')
    span = end - start
    tstep = next(s for s in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if span / s <= 7)
    t = math.ceil(start / tstep) * tstep
    while t <= end:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + ph}" class="grid"/>')
        out.append(f'<text x="{x(t):.1f}" y="{svg_h - 6}" text-anchor="middle" class="axis">'
                   f'{time.strftime("%H:%M:%S", time.gmtime(t))}</text>')
        t += tstep
    for s in plotted:
        segs, cur = [], []
        for ts, v in s["points"]:
            if v is None:
                if cur:
                    segs.append(cur)
                cur = []
            else:
                cur.append(f"{x(ts):.1f},{y(v):.1f}")
        if cur:
            segs.append(cur)
        for seg in segs:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{s["color"]}"/>')
            else:
                out.append(f'<polyline fill="none" stroke="{s["color"]}" stroke-width="1.6" points="{" ".join(seg)}"/>')
    out.append("</svg>")
    out.append('<div class="legend">')
    for s in plotted:
        last = next((v for _, v in reversed(s["points"]) if v is not None), None)
        out.append(f'<span class="li"><i style="background:{s["color"]}"></i>{esc(s["name"])}'
                   f' <b>{esc(fmt_value(last, unit))}</b></span>')
    out.append("</div>")
    return "".join(out)


def render_stat(panel: dict, series: list[dict]) -> str:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    items = []
    for s in series:
        last = next((v for _, v in reversed(s["points"]) if v is not None), None)
        if last is not None:
            items.append((s["name"], last))
    if not items:
        return '<div class="nodata">No data</div>'
    background = panel.get("options", {}).get("colorMode") == "background"
    out = ['<div class="stats">']
    for name, v in items:
        # No thresholds in the JSON: Grafana's defaults apply (green, red from 80).
        color = "#F2495C" if v >= 80 else "#73BF69"
        style = f"background:{color};color:#fff" if background else f"color:{color}"
        out.append(f'<div class="stat" style="{style}"><div class="sname">{esc(name)}</div>'
                   f'<div class="sval">{esc(fmt_value(v, unit))}</div></div>')
    out.append("</div>")
    return "".join(out)


def render_table(panel: dict, rows: list[tuple[dict, float | None]]) -> str:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    if not rows:
        return '<div class="nodata">No data</div>'
    excluded = set()
    for tr in panel.get("transformations", []):
        if tr.get("id") == "organize":
            excluded |= {k for k, v in tr.get("options", {}).get("excludeByName", {}).items() if v}
    cols = sorted({k for labels, _ in rows for k in labels} - excluded)
    out = ['<table><tr>'] + [f"<th>{esc(c)}</th>" for c in cols] + ["<th>Value</th></tr>"]
    for labels, v in rows:
        out.append("<tr>" + "".join(f"<td>{esc(labels.get(c, ''))}</td>" for c in cols)
                   + f'<td class="num">{esc(fmt_value(v, unit))}</td></tr>')
    out.append("</table>")
    return "".join(out)


# --------------------------------------------------------------------------------------------- page

CSS = """
body{margin:0;background:#111217;color:#ccccdc;font:13px/1.35 "DejaVu Sans",Inter,Helvetica,Arial,sans-serif}
.head{padding:14px 16px 0 16px;height:%(hh)spx;box-sizing:border-box}
.head h1{font-size:20px;margin:0 0 4px 0;color:#fff;font-weight:500}
.note{background:#3d2e00;border:1px solid #F2CC0C;color:#ffe58a;padding:6px 10px;border-radius:3px;margin:6px 0;display:inline-block}
.meta{color:#9fa7b3;font-size:12px}
.grid0{position:relative;margin:0 8px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;box-sizing:border-box;overflow:hidden}
.ptitle{height:28px;line-height:28px;padding:0 8px;font-weight:500;color:#fff;font-size:14px;white-space:nowrap}
.ptitle small{color:#8e8e9e;font-weight:400;font-size:11px;margin-left:8px}
.pbody{padding:0 8px 4px 8px}
.nodata{color:#8e8e9e;font-size:16px;text-align:center;padding-top:40px}
.nodata small{display:block;font-size:11px;margin-top:6px}
svg .grid{stroke:#2c3235;stroke-width:1}
svg .axis{fill:#9fa7b3;font-size:11px}
.legend{font-size:11.5px;column-gap:14px;display:flex;flex-wrap:wrap}
.li{margin-right:14px;white-space:nowrap}
.li i{display:inline-block;width:12px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
.li b{color:#fff;font-weight:500;margin-left:4px}
.stats{display:flex;gap:8px;height:100%%}
.stat{flex:1;text-align:center;border-radius:3px;padding-top:14px}
.sname{font-size:14px;color:#ccccdc}
.stat[style*=background] .sname{color:#fff}
.sval{font-size:46px;font-weight:500;line-height:1.2}
table{border-collapse:collapse;width:100%%;font-size:12.5px}
th{text-align:left;color:#6e9fff;border-bottom:1px solid #2c3235;padding:4px 6px;font-weight:500}
td{border-bottom:1px solid #22252b;padding:4px 6px}
td.num{text-align:right}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    ap.add_argument("--prometheus", required=True, help="base URL of the Prometheus HTTP API")
    ap.add_argument("--minutes", type=float, default=5, help="time range: the last N minutes")
    ap.add_argument("--end", type=float, help="end of the range (Unix time; default: now)")
    ap.add_argument("--step", type=float, help="query_range step in seconds (default: range/150, at least 5)")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="a Grafana variable's value (default: job and namespace '.*', __rate_interval '1m')")
    ap.add_argument("--width", type=int, default=1600, help="page width in px")
    ap.add_argument("--subtitle", default="", help="extra text for the header (e.g. what ran)")
    ap.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    ap.add_argument("--summary", type=Path, help="also write a JSON summary: per panel and query, series found")
    args = ap.parse_args()

    dash = json.loads(args.dashboard.read_text())
    variables = {"__rate_interval": "1m", "__interval": "15s", "datasource": "prometheus"}
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "datasource":
            variables[v["name"]] = v.get("allValue") or ".*"
    for kv in args.var:
        k, _, val = kv.partition("=")
        variables[k] = val

    end = args.end or time.time()
    start = end - args.minutes * 60
    step = args.step or max(5.0, round((end - start) / 150))

    col_px = (args.width - 16 - GAP_PX * 23) / 24
    panels_html, summary = [], []
    max_bottom = 0
    for panel in dash["panels"]:
        gp = panel["gridPos"]
        px, py = gp["x"] * (col_px + GAP_PX), gp["y"] * (ROW_PX + GAP_PX)
        pw = gp["w"] * col_px + (gp["w"] - 1) * GAP_PX
        ph = gp["h"] * ROW_PX + (gp["h"] - 1) * GAP_PX
        max_bottom = max(max_bottom, py + ph)
        body_w, body_h = int(pw - 18), int(ph - 36)
        ptype = panel["type"]
        series, rows, psum = [], [], {"id": panel.get("id"), "title": panel["title"], "type": ptype, "targets": []}
        for tgt in panel.get("targets", []):
            expr = substitute(tgt["expr"], variables)
            if ptype == "table" or tgt.get("instant"):
                data = prom_get(args.prometheus, "/api/v1/query", {"query": expr, "time": f"{end:.3f}"})
                for r in data["result"]:
                    rows.append((r["metric"], num(r["value"][1])))
                n = len(data["result"])
            else:
                data = prom_get(args.prometheus, "/api/v1/query_range",
                                {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
                n = 0
                for r in data["result"]:
                    points = sorted(((float(t), num(v)) for t, v in r["values"]), key=lambda p: p[0])
                    has = any(v is not None for _, v in points)
                    n += 1 if has else 0
                    series.append({"name": legend(tgt.get("legendFormat"), r["metric"], expr),
                                   "points": points, "color": PALETTE[len(series) % len(PALETTE)]})
            psum["targets"].append({"refId": tgt.get("refId"), "expr": expr, "series_with_data": n})
        summary.append(psum)
        if ptype == "timeseries":
            inner = render_timeseries(panel, series, body_w, body_h, start, end)
        elif ptype == "stat":
            inner = render_stat(panel, series)
        elif ptype == "table":
            inner = render_table(panel, rows)
        else:
            inner = f'<div class="nodata">panel type {esc(ptype)} is not drawn by this renderer</div>'
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        unit_txt = {"reqps": "requests/s", "s": "seconds"}.get(unit or "", unit or "")
        panels_html.append(
            f'<div class="panel" style="left:{px:.0f}px;top:{py:.0f}px;width:{pw:.0f}px;height:{ph:.0f}px">'
            f'<div class="ptitle">{esc(panel["title"])}<small>{esc(unit_txt)}</small></div>'
            f'<div class="pbody" style="height:{body_h}px">{inner}</div></div>')

    fmt_t = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))  # noqa: E731
    var_txt = ", ".join(f"${v['name']} = All" for v in dash.get("templating", {}).get("list", []) if v.get("type") != "datasource")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(dash['title'])} (static rendering)</title><style>{CSS % {'hh': HEADER_PX}}</style></head><body>"
        f"<div class='head'><h1>{esc(dash['title'])}</h1>"
        "<div class='note'>Rendered by bench/render_dashboard.py from the dashboard JSON's queries against the demo "
        "(not Grafana). Every panel is the dashboard's own PromQL, evaluated by Prometheus.</div>"
        f"<div class='meta'>{esc(fmt_t(start))} to {esc(fmt_t(end))} ({args.minutes:g} min, step {step:g} s) · "
        f"{esc(var_txt)} · dashboard {esc(str(args.dashboard.name))} (uid {esc(dash.get('uid', ''))})</div>"
        f"{'<div class=meta>' + esc(args.subtitle) + '</div>' if args.subtitle else ''}</div>"
        f"<div class='grid0' style='height:{max_bottom + 8:.0f}px'>{''.join(panels_html)}</div></body></html>")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    if args.summary:
        args.summary.write_text(json.dumps({"start": start, "end": end, "step": step, "panels": summary}, indent=2))
    height = int(HEADER_PX + max_bottom + 16)
    for p in summary:
        for t in p["targets"]:
            print(f"{p['title']:<34} {t['refId']}  series with data: {t['series_with_data']}")
    print(f"wrote {args.out} (page height {height}px: use --window-size={args.width},{height})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
