"""Serving: engines behind one interface, and (later) the gateway that puts them behind OpenAI and KServe APIs.

``llmops.serving.engines`` holds the ``Engine`` protocol and its implementations; this package never imports
``training``, ``compression`` or ``evaluation`` (jobs reach serving through its public interfaces).
"""
