"""The Open Inference Protocol (KServe V2, ``/v2/...``) over the same deployments as the OpenAI-compatible API.

``schemas`` holds the request models and tensor metadata, ``binary`` Triton's binary tensor data extension,
``serving`` turns tensors into an OpenAI completion (or embedding) request served by ``OpenAIServing``, so
routing, admission and accounting are shared, ``errors`` the ``{"error": "..."}`` shape, ``routes`` the thin
router.
"""
