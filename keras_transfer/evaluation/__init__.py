"""Evaluation: test metrics, plots, `report.md`, comparison of runs and the
transferability estimators."""
