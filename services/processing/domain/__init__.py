"""Processing's pure domain logic (no I/O): the working calendar and the deadline engine."""
