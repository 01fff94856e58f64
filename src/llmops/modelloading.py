"""One lock around every transformers model load or construction in the process.

transformers' ``from_pretrained`` switches weight initialisation and weight tying off for the duration of a
load by replacing process-wide attributes — ``PreTrainedModel.tie_weights``, ``PreTrainedModel.init_weights``
and the ``torch.nn.init`` functions (``no_tie_weights``, ``no_init_weights``) — and puts "the originals" back
afterwards. Two loads on different threads interleave: the second saves the first's stand-ins as the originals
and restores them last, so tying and initialisation stay off for the rest of the process. Every model loaded
later comes out with an untied, uninitialised ``lm_head`` (wrong perplexities, NaN), and models built from a
config are not initialised at all. The gateway loads engines on worker threads while other code (the drift
report, training, tests) loads or builds models, so all of them take ``LOAD_LOCK``.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

LOAD_LOCK = threading.RLock()


_installed = False


def serialize_loads() -> None:
    """Make every ``PreTrainedModel.from_pretrained`` of the process take ``LOAD_LOCK`` (idempotent).

    Our own loads take the lock explicitly; this also covers code we do not own that loads models in the same
    process (sentence-transformers, PEFT, tests), so no load can leave transformers' stand-ins installed.
    """
    global _installed
    with LOAD_LOCK:
        if _installed:
            return
        from transformers import PreTrainedModel

        original = PreTrainedModel.from_pretrained.__func__  # type: ignore[attr-defined]

        def from_pretrained(cls: Any, *args: Any, **kwargs: Any) -> Any:
            with LOAD_LOCK:
                return original(cls, *args, **kwargs)

        PreTrainedModel.from_pretrained = classmethod(functools.wraps(original)(from_pretrained))  # type: ignore[method-assign,assignment]
        _installed = True
