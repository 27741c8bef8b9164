"""The monitoring wing: how the data a model serves drifts from the data it was trained on.

Empty for now: drift (PSI, KS, attribution; issue 16) lands here. It may import the
inference wing and the root's mergeable ``moments``, never training or scikit-learn.
"""

__all__: list[str] = []
