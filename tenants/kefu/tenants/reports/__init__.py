"""Reporting: KPI rollups from the call and agent event logs, historical reports, exports (docs/reports.md)."""
