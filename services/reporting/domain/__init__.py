"""Reporting's pure domain: quarters, the facts each event adds, per-dossier contributions to
counters, indicators, the report model and its access rule, errors, and the read-model port."""
