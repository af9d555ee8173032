"""Intake gateway (tiếp nhận hồ sơ)."""
