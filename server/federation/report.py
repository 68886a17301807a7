"""The printable report of a month or quarter (``GET /api/v1/cluster/report``): one HTML
page, in English or Chinese, a bar chart per indicator (inline SVG: prints as it shows,
no script) with each enterprise, the pooled and mean figures, the published figures as
marks, and beside each figure its data completeness; the definitions at the end."""

from __future__ import annotations

from html import escape
from typing import Any

from .export import DEFINITIONS
from .indicators import INDICATORS

WORDS = {
    "en": {"title": "Cluster indicators", "period": "Period", "pooled": "cluster, pooled",
           "mean": "cluster, mean of enterprises", "regional": "regional", "target":
           "national target", "completeness": "data completeness", "definitions":
           "Definitions", "none": "no value", "enterprises": "enterprises"},
    "zh": {"title": "集群指标报告", "period": "期间", "pooled": "集群（合并计算）",
           "mean": "集群（企业平均）", "regional": "地区", "target": "国家目标",
           "completeness": "数据完整率", "definitions": "指标定义", "none": "无数据",
           "enterprises": "企业"},
}
NAMES = {
    "en": {"equipment_digitalization_rate": "Equipment digitalization rate",
           "networking_rate": "Equipment networking rate",
           "key_process_nc_rate": "Key-process NC rate", "oee": "OEE",
           "availability": "Availability", "performance": "Performance",
           "quality": "Quality", "data_completeness": "Data completeness"},
    "zh": {"equipment_digitalization_rate": "生产设备数字化率", "networking_rate": "设备联网率",
           "key_process_nc_rate": "关键工序数控化率", "oee": "设备综合效率 (OEE)",
           "availability": "时间开动率", "performance": "性能开动率", "quality": "合格品率",
           "data_completeness": "数据完整率"},
}
STYLE = """
body{font-family:"Noto Sans CJK SC","Noto Sans",sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:15px;margin:18px 0 4px}section{break-inside:avoid}
table{border-collapse:collapse;font-size:12px}td{padding:1px 6px}td.v{text-align:right}
.c{color:#666}.def{font-size:11px;color:#444}
@media print{body{margin:0}@page{size:A4;margin:14mm}}
"""
W, BAR = 260, 12


def _pct(v: float | None, none: str) -> str:
    return none if v is None else f"{v * 100:.1f} %"


def _bar(v: float | None, marks: list[float], colour: str) -> str:
    """A bar of ``v`` (0..1, capped at the width) with the published figures as ticks."""
    width = 0 if v is None else min(max(v, 0.0), 1.0) * W
    ticks = "".join(f'<line x1="{m / 100 * W:.1f}" x2="{m / 100 * W:.1f}" y1="0" y2="{BAR}" '
                    'stroke="#c00" stroke-width="2"/>' for m in marks)
    return (f'<svg width="{W}" height="{BAR}" role="img"><rect width="{W}" height="{BAR}" '
            f'fill="#eee"/><rect width="{width:.1f}" height="{BAR}" fill="{colour}"/>'
            f"{ticks}</svg>")


def render(doc: dict[str, Any], lang: str, cluster: str) -> str:
    """The page of one ``indicators.period_doc``."""
    w, names = WORDS[lang], NAMES[lang]
    out = [f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
           f"<title>{escape(cluster)} {escape(doc['period'])}</title><style>{STYLE}</style>"
           f"</head><body><h1>{escape(cluster)}: {w['title']}</h1>"
           f"<p>{w['period']}: {escape(doc['period'])} ({doc['first_day']} – "
           f"{doc['last_day']}, {len(doc['enterprises'])} {w['enterprises']})</p>"]
    for ind in INDICATORS:
        fig = doc["published"].get(ind, {})
        marks = [(w["regional"], fig.get("regional")), (w["target"], fig.get("national_target"))]
        ticks = [m["value_percent"] for _, m in marks if m]
        legend = "; ".join(f"{label} {m['value_percent']} % ({escape(m['as_of'])}, "
                           f"{escape(m['region'])})" for label, m in marks if m)
        rows = [(r["name"], r[ind], r["data_completeness"], "#4a7") for r in doc["enterprises"]]
        rows += [(w["pooled"], doc["pooled"][ind], doc["pooled"]["data_completeness"], "#357"),
                 (w["mean"], doc["mean_of_enterprises"][ind],
                  doc["mean_of_enterprises"]["data_completeness"], "#579")]
        out.append(f'<section data-indicator="{ind}"><h2>{names[ind]}</h2>'
                   + (f'<p class="c">{legend}</p>' if legend else "") + "<table>")
        for name, v, comp, colour in rows:
            out.append(f"<tr><td>{escape(name)}</td><td>{_bar(v, ticks, colour)}</td>"
                       f'<td class="v" data-value="{"" if v is None else v}">'
                       f"{_pct(v, w['none'])}</td><td class=\"c\">{w['completeness']} "
                       f"{_pct(comp, w['none'])}</td></tr>")
        out.append("</table></section>")
    out.append(f"<section><h2>{w['definitions']}</h2>")
    out += [f'<p class="def"><b>{names[k]}</b>: {escape(v)}</p>' for k, v in DEFINITIONS.items()]
    out.append("</section></body></html>")
    return "".join(out)
