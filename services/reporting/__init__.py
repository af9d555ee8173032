"""Reporting (báo cáo thống kê)."""
