"""omnirm inside other engines: :mod:`omnirm.integrations.ray` (Ray Data)."""
