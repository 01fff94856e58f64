"""Child-process programs for the integration tests (crash, concurrency and reaper tests).

Each program opens a ``Platform`` from the ``LLMOPS_*`` environment, exactly as a user's job would, and
reports progress on stdout one line at a time so that the parent knows what was acknowledged and when
to kill it. ``process.py`` has the parent-side helpers.
"""
