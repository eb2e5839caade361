"""A report table as CSV or XLSX (the columns of the JSON answer, in order)."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook


def header_and_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    keys = [c["key"] for c in report["columns"]]
    header = ["period_start", "id", "name", *keys]
    rows = [[row["period_start"], row["id"], row["name"], *(row[k] for k in keys)] for row in report["rows"]]
    return header, rows


def to_csv(report: dict[str, Any]) -> bytes:
    header, rows = header_and_rows(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    # A byte-order mark, so spreadsheet programs read the names (Chinese included) as UTF-8.
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(report: dict[str, Any]) -> bytes:
    header, rows = header_and_rows(report)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=f"{report['dimension']} by {report['interval']}")
    sheet.append([f"Time zone: {report['time_zone']}", f"{report['from']} – {report['to']}"])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
