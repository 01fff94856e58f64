"""The OpenAI-compatible API (``/v1/...``) in front of the engine manager, shaped as vLLM shapes it.

``schemas`` holds the request models, ``serving`` turns a request into engine calls and response bodies,
``streaming`` the server-sent events, ``errors`` the OpenAI error shape, ``routes`` the thin router.
"""
