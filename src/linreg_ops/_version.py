"""The package's version, in a module of its own: modules inside linreg_ops read it here, not
from the package's ``__init__``, whose public API imports the stages above them."""

__all__ = ["__version__"]

__version__ = "0.2.0"
