"""Deployments: named endpoints whose routes (version, engine, weight, mode) change by revisions."""
