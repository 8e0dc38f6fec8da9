"""Preference-data tools: validation, statistics, splitting (and, later, builders)."""
