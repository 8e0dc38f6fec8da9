"""The ``omnirm`` command line: a thin Typer layer over the library.

Modules here import only typer/click/rich at module level; torch and transformers are imported
inside the commands that need them, so ``--help``, ``--version`` and completion stay fast.
"""
