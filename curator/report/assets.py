"""The HTML report's stylesheet and page frame (inline: the report is one self-contained file).

Light and dark themes follow the reader's system setting. No fonts, images or scripts are loaded from anywhere.
"""

from __future__ import annotations

from html import escape

CSS = """
:root {
  --bg: #f6f7f9; --card: #ffffff; --ink: #1d2330; --muted: #667085; --line: #e4e7ec;
  --accent: #4f6bed; --accent-soft: #e8edff;
  --error: #d92d20; --error-soft: #fee4e2; --warning: #b54708; --warning-soft: #fef0c7;
  --info: #475467; --info-soft: #eef2f6; --ok: #067647; --ok-soft: #dcfae6;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #12151c; --card: #1b202a; --ink: #e6e9ef; --muted: #98a2b3; --line: #2c3340;
    --accent: #7b93ff; --accent-soft: #26305a;
    --error: #f97066; --error-soft: #55160c; --warning: #fdb022; --warning-soft: #4e3505;
    --info: #b0b8c6; --info-soft: #2c3340; --ok: #47cd89; --ok-soft: #053321;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif; }
header.top { background: var(--card); border-bottom: 1px solid var(--line); padding: 18px 32px 0; }
header.top h1 { margin: 0; font-size: 22px; letter-spacing: -0.01em; }
header.top .sub { color: var(--muted); margin: 2px 0 12px; word-break: break-all; }
nav { display: flex; gap: 4px; flex-wrap: wrap; position: sticky; top: 0; z-index: 5; background: var(--card);
  border-bottom: 1px solid var(--line); padding: 6px 28px; }
a { color: var(--accent); }
nav a { color: var(--muted); text-decoration: none; padding: 5px 10px; border-radius: 6px; font-weight: 500; }
nav a:hover { background: var(--accent-soft); color: var(--accent); }
main { max-width: 1240px; margin: 0 auto; padding: 20px 32px 60px; }
section { margin: 0 0 28px; }
h2 { font-size: 18px; margin: 26px 0 12px; display: flex; align-items: center; gap: 10px; }
h3 { font-size: 15px; margin: 0; display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; }
.stat .n { font-size: 26px; font-weight: 650; line-height: 1.2; font-variant-numeric: tabular-nums; }
.stat .l { color: var(--muted); font-size: 12.5px; }
.stat.error .n { color: var(--error); } .stat.warning .n { color: var(--warning); } .stat.ok .n { color: var(--ok); }
.verdict { margin-top: 12px; padding: 12px 16px; border-radius: 10px; border: 1px solid var(--line);
  background: var(--card); }
.verdict.bad { border-left: 4px solid var(--error); } .verdict.meh { border-left: 4px solid var(--warning); }
.verdict.good { border-left: 4px solid var(--ok); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12.5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.badge.error { background: var(--error-soft); color: var(--error); }
.badge.warning { background: var(--warning-soft); color: var(--warning); }
.badge.info { background: var(--info-soft); color: var(--info); }
.badge.keeper { background: var(--ok-soft); color: var(--ok); }
.badge.kept { background: var(--ok-soft); color: var(--ok); }
.badge.dropped { background: var(--error-soft); color: var(--error); }
.badge.count { background: var(--info-soft); color: var(--ink); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.groups { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; margin-top: 14px; align-items: start; }
.groups .wide { grid-column: 1 / -1; }
.group { margin: 0 0 16px; }
.groups .group { margin: 0; }
.group > .msg { color: var(--muted); margin: 4px 0 10px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(172px, 1fr)); gap: 12px; }
.item { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.item .img { height: 130px; display: flex; align-items: center; justify-content: center; background: #0000000d; }
.item img { width: 100%; height: 130px; object-fit: contain; display: block; }
.item .cap { padding: 6px 8px 8px; }
.item .name { font-weight: 600; font-size: 12.5px; word-break: break-all; }
.item .why { font-size: 12px; color: var(--muted); margin-top: 2px; display: -webkit-box; -webkit-line-clamp: 3;
  -webkit-box-orient: vertical; overflow: hidden; }
.item .ev { margin-top: 4px; font-size: 11.5px; overflow-wrap: anywhere; }
.item .ev .k { color: var(--muted); }
.placeholder { color: var(--muted); font-size: 12px; padding: 10px; text-align: center; }
.clusters { display: grid; grid-template-columns: repeat(auto-fill, minmax(400px, 1fr)); gap: 14px; align-items: start; }
.cluster { align-items: flex-start; display: flex; gap: 12px; overflow-x: auto; padding-bottom: 4px; }
.cluster .item { min-width: 172px; max-width: 172px; }
.cluster .item.keeper { border: 2px solid var(--ok); }
.cluster .item.dropped { opacity: 0.78; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
.chart { max-width: 100%; height: auto; display: block; }
.chart .lbl { font-size: 12px; fill: var(--ink); } .chart .val { font-size: 11px; fill: var(--muted); }
.chart .axis { stroke: var(--line); } .chart .threshold { stroke: var(--error); stroke-dasharray: 4 3; stroke-width: 1.5; }
.chart .thr { font-size: 11px; fill: var(--error); }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
@media (max-width: 900px) { .two, .groups { grid-template-columns: 1fr; } main { padding: 16px; } }
details { margin-top: 8px; }
details > summary { cursor: pointer; color: var(--accent); font-weight: 600; margin: 6px 0; }
.more { margin-top: 10px; font-size: 12.5px; color: var(--muted); word-break: break-all; }
ul.advice { margin: 0; padding-left: 18px; } ul.advice li { margin: 4px 0; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 20px; }
"""


def page(title: str, subtitle: str, nav: list[tuple[str, str]], body: str) -> str:
    """The whole HTML document. ``title``/``subtitle`` and the nav labels are escaped here; ``body`` is trusted
    markup built by the report (which escapes its own user strings)."""
    links = "".join(f'<a href="#{escape(anchor)}">{escape(label)}</a>' for anchor, label in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="dreamcurate">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><h1>{escape(title)}</h1><div class="sub">{escape(subtitle)}</div></header>'
        f"<nav>{links}</nav><main>{body}</main>"
        "<footer>Written by dreamcurate. This file is self-contained: no network, no scripts.</footer>"
        "</body></html>\n"
    )
