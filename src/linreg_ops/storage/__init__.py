"""The storage wing: everything that reads or writes bytes, and nothing that fits or predicts.

- ``tables``: CSV and Parquet files read in blocks (and partitions), prediction files written.
- ``codecs``: the three model kinds and ``metrics.json`` ↔ JSON, with typed schemas.
- ``joblib_codec``: the seed's joblib artifacts (scikit-learn imported only there).
- ``store``: the models folder — the writer lock, immutable versions, atomic publication.
- ``digests``: SHA-256 of bytes and files.
- ``cluster``: the Dask session and an input's partitions, counted on the workers.
"""

__all__ = ["cluster", "codecs", "digests", "joblib_codec", "store", "tables"]
