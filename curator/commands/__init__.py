"""One module per CLI command of the curator layer (imported lazily by :mod:`curator.cli`)."""
