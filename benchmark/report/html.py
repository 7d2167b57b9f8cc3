"""A self-contained HTML report: one file, images and audio embedded as base64, sortable tables
with a small inline script, no external resources (works offline, no CDN).

The inline script also records JavaScript errors into ``#js-status`` (``data-errors``) and the
number of images that decoded (``data-images-ok``), so a headless browser can check the page.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.report.tables import PaperTable

CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#ffffff;--soft:#f6f8fa;--accent:#0072B2}
*{box-sizing:border-box}
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg);
 margin:0;line-height:1.5}
header{background:linear-gradient(135deg,#0b3d62,#0072B2);color:#fff;padding:28px 40px}
header h1{margin:0 0 6px 0;font-size:28px}
header p{margin:2px 0;opacity:.9}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:8px 40px;z-index:5;
 font-size:14px;white-space:nowrap;overflow-x:auto}
nav a{margin-right:16px;color:var(--accent);text-decoration:none}
main{max-width:1180px;margin:0 auto;padding:16px 40px 60px}
h2{border-bottom:1px solid var(--line);padding-bottom:6px;margin-top:42px}
h3{margin-top:28px}
.note{background:#fff8c5;border:1px solid #d4a72c66;padding:10px 14px;border-radius:6px;margin:14px 0}
.muted{color:var(--muted);font-size:13px}
table.data{border-collapse:collapse;margin:10px 0 6px;font-size:13.5px;font-variant-numeric:tabular-nums}
table.data th,table.data td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right}
table.data th:first-child,table.data td:first-child{text-align:left}
table.data th{background:var(--soft);cursor:pointer;user-select:none;position:relative}
table.data th:after{content:" \\2195";color:#aaa;font-size:11px}
table.data th.asc:after{content:" \\2191";color:var(--fg)}
table.data th.desc:after{content:" \\2193";color:var(--fg)}
table.data tr:hover td{background:#f0f6ff}
td .ci{color:var(--muted);font-size:11.5px;margin-left:3px}
td sup{color:#b35900;font-weight:bold}
td.best{font-weight:700}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:middle}
figure{margin:18px 0 30px}
figure img{max-width:100%;border:1px solid var(--line);border-radius:6px;background:#fff}
figcaption{color:var(--muted);font-size:13px;margin-top:6px}
.audio-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:10px 18px;margin:10px 0 24px}
.audio-grid div{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.audio-grid audio{width:100%;height:34px;margin-top:4px}
details{margin:10px 0}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:12px;overflow:auto;font-size:12px}
"""

JS = r"""
(function(){
  function status(){return document.getElementById('js-status');}
  window.addEventListener('error',function(e){var s=status();if(!s)return;
    var n=parseInt(s.getAttribute('data-errors')||'0')+1;s.setAttribute('data-errors',String(n));
    s.textContent+=' [error] '+(e.message||'resource error');},true);
  function val(td){var v=td.getAttribute('data-sort');if(v===null)v=td.textContent.trim();
    var f=parseFloat(v);return isNaN(f)?{n:false,v:v.toLowerCase()}:{n:true,v:f};}
  function sortTable(th){var table=th.closest('table');var idx=Array.prototype.indexOf.call(th.parentNode.children,th);
    var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
    var asc=!th.classList.contains('asc');
    Array.prototype.forEach.call(th.parentNode.children,function(h){h.classList.remove('asc','desc');});
    th.classList.add(asc?'asc':'desc');
    rows.sort(function(a,b){var x=val(a.cells[idx]),y=val(b.cells[idx]);
      if(x.n&&y.n)return asc?x.v-y.v:y.v-x.v; if(x.n)return -1; if(y.n)return 1;
      return asc?(x.v<y.v?-1:x.v>y.v?1:0):(x.v<y.v?1:x.v>y.v?-1:0);});
    rows.forEach(function(r){body.appendChild(r);});}
  document.addEventListener('DOMContentLoaded',function(){
    document.querySelectorAll('table.data th').forEach(function(th){th.addEventListener('click',function(){sortTable(th);});});
    var s=status(); if(s){s.setAttribute('data-ready','1');}
  });
  window.addEventListener('load',function(){var s=status();if(!s)return;
    var imgs=document.querySelectorAll('img');var ok=0;
    imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0)ok++;});
    s.setAttribute('data-images',String(imgs.length));s.setAttribute('data-images-ok',String(ok));
    s.setAttribute('data-audio',String(document.querySelectorAll('audio').length));
    s.setAttribute('data-loaded','1');});
})();
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def wav_data_uri(x: np.ndarray, sr: int = 16000, *, max_seconds: float = 8.0) -> str:
    """``data:audio/wav;base64,...`` of a waveform (16-bit PCM, peak-limited, trimmed)."""
    import soundfile as sf

    y = np.asarray(x, dtype=np.float64)[: int(max_seconds * sr)]
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _num(v: Any, fmt: str) -> tuple[str, str]:
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "–", ""
        return format(v, fmt), repr(float(v))
    if isinstance(v, (int, np.integer)):
        return str(v), str(int(v))
    return ("–" if v is None else str(v)), ""


def frame_table_html(df: pd.DataFrame, *, floatfmt: str = ".3f", palette: Optional[dict] = None,
                     formats: Optional[dict[str, str]] = None) -> str:
    """A sortable HTML table of a DataFrame (colour swatch before known system names)."""
    formats = formats or {}
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row):
            text, key = _num(v, formats.get(c, floatfmt))
            sw = ""
            if palette and c == "system" and str(v) in palette:
                sw = f'<span class="swatch" style="background:{palette[str(v)]}"></span>'
            ds = f' data-sort="{esc(key)}"' if key else ""
            cells.append(f"<td{ds}>{sw}{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def paper_table_html(t: PaperTable, palette: Optional[dict] = None) -> str:
    """A sortable HTML rendering of a :class:`PaperTable` (counts and CI in each cell's tooltip)."""
    head = "<th>System</th>" + "".join(f"<th>{esc(c)}</th>" for c in t.columns) + "<th>n</th>"
    rows = []
    info = {}
    if not t.long.empty:
        for r in t.long.itertuples(index=False):
            info[(r.system, r.column)] = r
    for s in t.systems:
        sw = f'<span class="swatch" style="background:{palette[s]}"></span>' if palette and s in palette else ""
        cells = [f"<td>{sw}{esc(t.row_label(s))}</td>"]
        for c in t.columns:
            m, h, b = t.cell(s, c)
            mk = t.markers.loc[s, c]
            v = t.mean.loc[s, c]
            tip = f"{s}, {c}: mean {m}, 95% CI ±{h}"
            r = info.get((s, c))
            if r is not None:
                tip += f"; n={int(r.n)}, NaN={int(r.n_nan)}, failed={int(r.n_failed)}, median={r.median:.3f}"
            ds = f' data-sort="{float(v)!r}"' if np.isfinite(v) else ""
            cls = ' class="best"' if b else ""
            sup = f"<sup>{esc(mk)}</sup>" if mk else ""
            ci = f'<span class="ci">±{esc(h)}</span>' if h != "–" else ""
            cells.append(f'<td{cls}{ds} title="{esc(tip)}">{esc(m)}{sup}{ci}</td>')
        cells.append(f'<td data-sort="{int(t.counts.loc[s, "n"])}">{esc(t.count_text(s))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="muted">{esc(t.legend())}</p>')


@dataclass
class HtmlReport:
    """Accumulates sections and renders one self-contained HTML page."""

    title: str
    subtitle: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    toc: list[tuple[str, str]] = field(default_factory=list)

    def section(self, title: str) -> None:
        anchor = "s" + str(len(self.toc) + 1)
        self.toc.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{esc(title)}</h2>')

    def heading(self, title: str) -> None:
        self.parts.append(f"<h3>{esc(title)}</h3>")

    def para(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{esc(text)}</p>")

    def note(self, text: str) -> None:
        self.parts.append(f'<div class="note">{esc(text)}</div>')

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def figure(self, png: Path, caption: str = "") -> None:
        alt = caption or Path(png).stem
        self.parts.append(f'<figure><img alt="{esc(alt)}" src="{png_data_uri(png)}">'
                          f"<figcaption>{esc(caption)}</figcaption></figure>")

    def audio_grid(self, clips: list[tuple[str, np.ndarray]], sr: int = 16000) -> None:
        items = [f'<div><b>{esc(lab)}</b><audio controls preload="none" src="{wav_data_uri(x, sr)}"></audio></div>'
                 for lab, x in clips]
        self.parts.append('<div class="audio-grid">' + "".join(items) + "</div>")

    def details(self, summary: str, content: str) -> None:
        self.parts.append(f"<details><summary>{esc(summary)}</summary><pre>{esc(content)}</pre></details>")

    def json_details(self, summary: str, obj: Any) -> None:
        self.details(summary, json.dumps(obj, indent=2, default=str))

    def render(self) -> str:
        nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in self.toc)
        sub = "".join(f"<p>{esc(s)}</p>" for s in self.subtitle)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(self.title)}</title><style>{CSS}</style><script>{JS}</script></head><body>"
            f"<header><h1>{esc(self.title)}</h1>{sub}</header><nav>{nav}</nav><main>"
            + "\n".join(self.parts)
            + '<p class="muted">Generated by avfusion-bench <code>benchmark.report</code>. '
            'Self-contained: no external resources.</p>'
            '<div id="js-status" data-errors="0" style="display:none"></div>'
            "</main></body></html>\n"
        )

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path


def metric_methods(info: dict[str, Any], columns: list[str]) -> list[dict[str, Any]]:
    """What each metric column of the report is (``name``, ``column``, ``definition``, ``package``,
    ``version``): from ``run.json``'s ``metrics`` (recorded at run time, with the versions that
    ran) when present, else from the metric registry's own declarations
    (:func:`benchmark.metrics.metric_provenance`, versions installed now); only the metrics whose
    column is among ``columns`` (the base metric columns present in the results)."""
    recorded = info.get("metrics")
    if isinstance(recorded, list) and recorded:
        return [e for e in recorded if isinstance(e, dict) and e.get("column") in columns]
    from benchmark.metrics import METRICS, metric_provenance

    pesq_mode = str((info.get("spec") or {}).get("metrics", {}).get("pesq_mode", "wb"))
    names = [n for n in METRICS.names() if n != "pesq" and METRICS.get(n).column(pesq_mode) in columns]
    return metric_provenance(names, pesq_mode)


def methods_html(entries: list[dict[str, Any]]) -> str:
    """The report's "Methods" table: one row per metric column with its exact definition and the
    package (and version) that computed it; every metric also has ``input_*`` (the unprocessed
    mixture scored the same way) and ``delta_*`` (estimate minus input)."""
    if not entries:
        return '<p class="muted">No metric columns found.</p>'
    rows = "".join(
        f"<tr><td><code>{esc(e.get('column'))}</code></td><td>{esc(e.get('definition'))}</td>"
        f"<td>{esc(e.get('package') or 'written here')}"
        f"{(' ' + esc(e.get('version'))) if e.get('version') else (' (not installed)' if e.get('package') else '')}</td></tr>"
        for e in entries)
    return ('<p>Every metric is computed on the enhanced signal, on the unprocessed mixture (<code>input_*</code>) and '
            'as their difference (<code>delta_*</code>); a metric that cannot be computed is NaN with a reason, never 0. '
            'Definitions and packages as declared by the metric modules (<code>benchmark/metrics/</code>).</p>'
            '<table class="data"><thead><tr><th>column</th><th>definition</th><th>package</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")
