"""Monitoring and feedback: the request store, cost rollups, drift, quality signals, alerts and feedback.

The gateway hands every request record to a batched sink (:mod:`llmops.serving.records`); this package
stores them, rolls up their cost, measures how prompts and completions drift, scores each answer's quality,
raises alerts, and turns feedback on production traffic into the next dataset version.
"""
