"""Hypothesis settings for the property tests: few examples each, a deadline per example (a
hang or a blow-up fails instead of stalling the run), no example database on disk, and
derandomized so a CI run is reproducible. ``HYPOTHESIS_PROFILE=deep`` explores more."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "omnirm",
    max_examples=60,
    deadline=timedelta(seconds=2),
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=2000,
    deadline=timedelta(seconds=2),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "omnirm"))
