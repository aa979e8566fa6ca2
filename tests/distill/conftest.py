"""Fairness metrics for the study test: jaxsparse.fairness when it exists, else fairlearn's same-named functions."""

import sys
import types

import pytest


@pytest.fixture
def fairness_metrics(monkeypatch):
    try:
        from jaxsparse.fairness import demographic_parity_difference, equalized_odds_difference  # noqa: F401

        return "jaxsparse"
    except ImportError:
        # jaxsparse.fairness is written in parallel; fall back to fairlearn ONLY here, never in the library.
        from fairlearn import metrics

        stub = types.ModuleType("jaxsparse.fairness")
        stub.demographic_parity_difference = metrics.demographic_parity_difference
        stub.equalized_odds_difference = metrics.equalized_odds_difference
        monkeypatch.setitem(sys.modules, "jaxsparse.fairness", stub)
        return "fairlearn"
