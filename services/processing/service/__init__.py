"""Processing's service layer: the use cases on cases (`cases.py`), the issued result documents
(`results.py`) and the deadline scanner (`scanner.py`)."""
