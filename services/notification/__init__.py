"""Notification (thông báo)."""
