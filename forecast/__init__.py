"""Bayesian forecasts of Russia's retaliation against Azerbaijan, from claims and coded events."""

__version__ = "0.1.0"
