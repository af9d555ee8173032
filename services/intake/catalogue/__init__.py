"""The procedure catalogue shipped with intake: `units.csv` and `procedures.json` (see README.md).

Read through `services.intake.adapters.shipped_catalogue.load_catalogue`.
"""
