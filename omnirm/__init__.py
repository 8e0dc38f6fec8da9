"""omnirm: omni-modal reward modelling with free-form preferences.

Importing the package is cheap on purpose: nothing here pulls in torch or transformers, so the
command line's ``--help``, ``--version`` and completion stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
