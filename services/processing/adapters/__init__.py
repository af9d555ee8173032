"""Processing's adapters: the MongoDB case store (`store.py`) and the result documents in GridFS
(`results.py`)."""
