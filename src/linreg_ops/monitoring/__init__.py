"""The monitoring wing: how the rows a model sees drift from the rows it was trained on.

- ``profile``: the training rows' reference profile, stored with every version.
- ``stats``: mergeable statistics of new rows, in constant memory (``record``, ``scan``).
- ``drift``: PSI, KS, Wasserstein, range and mean shift per column; the prediction's drift
  attributed exactly to the features.
- ``served``: the statistics of the rows a service scored, one file per worker, merged.

It sits below inference (the service records what it scores) and imports only storage and
the root: never training, quantization, scikit-learn or SciPy.
"""

__all__ = ["drift", "profile", "served", "stats"]
