"""One self-contained HTML page from Altair charts, tables and text: Vega, Vega-Lite and vega-embed are
inlined (vl-convert's bundle), so the page opens offline and asks no server for anything. report.html is
built with it; any other page edgekit writes (a history plot, say) uses the same `html_page`.

Charts render as SVG, and each chart's Vega view is kept in ``window.edgekitViews[name]`` so a browser test
(or a curious user in the console) can read the data it drew."""

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from device_bench.errors import EdgekitError


class Html(str):
    """Markup that goes into the page as it is (build it with `heading`, `paragraph`, `preformatted`)."""


@dataclass
class Chart:
    """An Altair chart (or a Vega-Lite spec as a dict); ``name`` keys its view in window.edgekitViews."""
    name: str
    chart: Any


@dataclass
class Table:
    """A sortable table: ``columns`` are (header, key) pairs read from each row dict. A row whose
    ``warnings_key`` holds a non-empty list is marked, and its warnings are listed in a last column."""
    name: str
    columns: Sequence[tuple]
    rows: Sequence[dict]
    warnings_key: Optional[str] = None
    caption: Optional[str] = None
    formats: dict = field(default_factory=dict)  # key -> callable(value) -> text, for cells shown otherwise


Block = Union[Html, Chart, Table]


def heading(text: str, level: int = 2, anchor: Optional[str] = None) -> Html:
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    return Html(f"<h{level}{ident}>{html.escape(text)}</h{level}>")


def paragraph(text: str, css_class: Optional[str] = None) -> Html:
    cls = f' class="{html.escape(css_class)}"' if css_class else ""
    return Html(f"<p{cls}>{html.escape(text)}</p>")


def preformatted(text: str) -> Html:
    return Html(f"<pre>{html.escape(text)}</pre>")


def definition_list(items: Sequence[tuple]) -> Html:
    """(term, value) pairs; values None are left out."""
    return Html("<dl>" + "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                                 for k, v in items if v is not None) + "</dl>")


def vega_bundle() -> str:
    """Vega, Vega-Lite (the version the installed Altair writes) and vega-embed as one script, offline."""
    try:
        import vl_convert
        from altair.utils._importers import vl_version_for_vl_convert
    except ImportError as e:
        raise EdgekitError(f"an HTML page needs altair and vl-convert-python ({e}); "
                           "pip install 'edgekit-tflite[convert]'") from None
    return vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())


def cell_text(value: Any) -> str:
    """What a table cell shows: numbers to 4 significant digits, nothing for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sort_key(value: Any) -> str:
    return "" if value is None else str(value) if not isinstance(value, bool) else str(int(value))


def _table(t: Table) -> str:
    head = "".join(f'<th data-col="{i}" title="{html.escape(key if isinstance(key, str) else header)}">'
                   f"{html.escape(header)}</th>" for i, (header, key) in enumerate(t.columns))
    if t.warnings_key:
        head += '<th class="warnings">warnings</th>'
    body = []
    for row in t.rows:
        warnings = (row.get(t.warnings_key) or []) if t.warnings_key else []
        cells = []
        for _, key in t.columns:
            value = row.get(key)
            text = t.formats[key](value) if key in t.formats and value is not None else cell_text(value)
            cells.append(f'<td data-sort="{html.escape(_sort_key(value))}">{html.escape(text)}</td>')
        if t.warnings_key:
            cells.append('<td class="warnings">' + "".join(f"<div>\u26a0 {html.escape(w)}</div>" for w in warnings)
                         + "</td>")
        body.append(f'<tr{" class=warn" if warnings else ""}>' + "".join(cells) + "</tr>")
    caption = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    return (f'<div class="table-wrap"><table class="sortable" id="{html.escape(t.name)}">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no '</' can close it early)."""
    return json.dumps(value, allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def _spec(chart: Any) -> dict:
    return chart if isinstance(chart, dict) else chart.to_dict()


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .8em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; white-space: nowrap; }
th { background: #eee; cursor: pointer; position: sticky; top: 0; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
td.warnings { text-align: left; white-space: normal; min-width: 24em; color: #8a4b00; }
tr.warn { background: #fff4e0; }
dl { display: grid; grid-template-columns: max-content auto; gap: .15em 1em; font-size: .9em; }
dt { font-weight: 600; } dd { margin: 0; }
.charts { display: flex; flex-wrap: wrap; gap: 2em; }
.note { color: #555; font-style: italic; }
.recommended { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: .5em 1em; }
.undecided { background: #fff4e0; border-left: 4px solid #e65100; padding: .5em 1em; }
"""

# Sorting: click a header; numbers compare as numbers, empty cells go last either way.
SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th[data-col]').forEach(function (th) {
    th.addEventListener('click', function () {
      var col = +th.dataset.col, asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        if (x === '' || y === '') { return (x === '') - (y === ''); }
        var nx = Number(x), ny = Number(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
window.edgekitViews = {};
window.edgekitCharts = Promise.all(Array.prototype.map.call(document.querySelectorAll('div.chart'), function (el) {
  var spec = JSON.parse(document.getElementById(el.id + '-spec').textContent);
  return vegaEmbed(el, spec, {renderer: 'svg', actions: false}).then(function (result) {
    window.edgekitViews[el.dataset.name] = result.view;
  });
}));
"""


def html_page(title: str, blocks: Sequence[Block]) -> str:
    """The page: ``title``, then each block in order (Html as it is, a Chart drawn by Vega-Lite, a Table
    sortable by its headers). Charts side by side: put them in consecutive Chart blocks."""
    parts, in_charts = [], False
    for i, block in enumerate(blocks):
        is_chart = isinstance(block, Chart)
        if is_chart and not in_charts:
            parts.append('<div class="charts">')
        elif in_charts and not is_chart:
            parts.append("</div>")
        in_charts = is_chart
        if isinstance(block, Chart):
            ident = f"chart-{i}"
            parts.append(f'<div class="chart" id="{ident}" data-name="{html.escape(block.name)}"></div>'
                         f'<script type="application/json" id="{ident}-spec">{_script_json(_spec(block.chart))}</script>')
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Html):
            parts.append(str(block))
        else:
            raise TypeError(f"html_page takes Html, Chart or Table blocks, got {type(block).__name__}")
    if in_charts:
        parts.append("</div>")
    bundle = vega_bundle() if any(isinstance(b, Chart) for b in blocks) else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n"
            + (f"<script>{bundle}</script>\n" if bundle else "") +
            f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n" + "\n".join(parts)
            + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
