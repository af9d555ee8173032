"""Processing's pure domain logic (no I/O): the case and its lifecycle, the workflow rules, the
working calendar and the deadline engine, who may act, and why a use case refuses (`errors.py`)."""
