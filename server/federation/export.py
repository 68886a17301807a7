"""Reports people can hand in: the comparison of a month or quarter and one enterprise's
indicators, as tables (``comparison_table``, ``enterprise_table``) written as CSV or XLSX
(openpyxl), the figures in percent (two decimals) exactly as the API's ratios x 100."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook

from .indicators import INDICATORS

Table = tuple[list[str], list[list[Any]]]
DEFINITIONS = {
    "equipment_digitalization_rate": "digital production equipment / all production equipment "
                                     "(生产设备数字化率)",
    "networking_rate": "equipment that published data within the networked window / all "
                       "production equipment (设备联网率)",
    "key_process_nc_rate": "key-process equipment under numerical control / all key-process "
                           "equipment (关键工序数控化率)",
    "oee": "availability x performance x quality, from summed times and counts (设备综合效率)",
    "availability": "actual production time / planned busy time (时间开动率)",
    "performance": "ideal cycle time x parts / actual production time (性能开动率)",
    "quality": "good parts / all parts (合格品率)",
    "data_completeness": "time with data / time expected, of the digital equipment "
                         "(数据完整率)",
}
PUBLISHED = ("equipment_digitalization_rate", "key_process_nc_rate")


def percent(v: float | None) -> float | None:
    return None if v is None else round(v * 100, 2)


def _pp(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def comparison_table(doc: dict[str, Any]) -> Table:
    """One row per enterprise, then the pooled and the mean row (``indicators.period_doc``)."""
    header = ["id", "name", "period", *(f"{i}_percent" for i in INDICATORS),
              *(f"{i}_gap_to_{w}_pp" for i in PUBLISHED for w in ("regional", "national_target"))]
    rows = []
    for r in [*doc["enterprises"],
              {"id": "pooled", "name": doc["pooled"]["note"], **doc["pooled"]},
              {"id": "mean_of_enterprises", "name": doc["mean_of_enterprises"]["note"],
               **doc["mean_of_enterprises"]}]:
        rows.append([r["id"], r["name"], doc["period"], *(percent(r[i]) for i in INDICATORS),
                     *(_pp(r["gaps"][i][f"to_{w}_pp"]) for i in PUBLISHED
                       for w in ("regional", "national_target"))])
    return header, rows


def enterprise_table(doc: dict[str, Any], enterprise: str) -> Table:
    """One row per indicator of one enterprise, beside the cluster's and published figures."""
    row = next(r for r in doc["enterprises"] if r["id"] == enterprise)
    header = ["indicator", "definition", "period", "value_percent", "cluster_pooled_percent",
              "cluster_mean_percent", "regional_percent", "regional_as_of",
              "national_target_percent", "national_target_as_of", "gap_to_regional_pp",
              "gap_to_national_target_pp", "data_completeness_percent"]
    rows = []
    for i in INDICATORS:
        fig = doc["published"].get(i, {})
        reg, tgt = fig.get("regional"), fig.get("national_target")
        gap = row["gaps"].get(i, {})
        rows.append([i, DEFINITIONS[i], doc["period"], percent(row[i]),
                     percent(doc["pooled"][i]), percent(doc["mean_of_enterprises"][i]),
                     reg and reg["value_percent"], reg and reg["as_of"],
                     tgt and tgt["value_percent"], tgt and tgt["as_of"],
                     _pp(gap.get("to_regional_pp")), _pp(gap.get("to_national_target_pp")),
                     percent(row["data_completeness"])])
    return header, rows


def to_csv(table: Table) -> bytes:
    """UTF-8 with a BOM, so spreadsheet programs read the Chinese definitions right."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(table[0])
    w.writerows([["" if v is None else v for v in r] for r in table[1]])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(table: Table, title: str) -> bytes:
    """The table on a first sheet, the definitions on a second."""
    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append(table[0])
    for r in table[1]:
        ws.append(r)
    ws.freeze_panes = "A2"
    defs = wb.create_sheet("definitions")
    defs.append(["indicator", "definition"])
    for k, v in DEFINITIONS.items():
        defs.append([k, v])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
