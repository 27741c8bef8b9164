"""The training wing: from rows to one least-squares solution, whatever the engine.

- ``sources``: where training data comes from (California Housing in memory, or files).
- ``split``: the row-hash split that holds out the same rows on every engine.
- ``summary``: what a block of rows contributes, mergeable, with bounded samples.
- ``checks``: what a least-squares fit can use, checked once on every engine's statistics.
- ``solve``: the least-squares solve from the moments, minimum-norm when rank-deficient.
- ``features``: the training features' statistics that quantization needs.
- ``engines``: ``fit``: scikit-learn, streaming or Dask, to one ``Fit``.
"""

__all__ = ["checks", "engines", "features", "solve", "sources", "split", "summary"]
