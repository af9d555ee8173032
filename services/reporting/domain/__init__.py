"""Reporting's pure arithmetic: quarters, per-dossier contributions to counters, indicators."""
