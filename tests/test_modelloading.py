"""Concurrent model loads leave transformers' weight tying on.

transformers 5 switches tying off during ``from_pretrained`` by replacing ``PreTrainedModel.tie_weights`` and
puts it back afterwards; loads on several threads at once can leave the no-op in place for the rest of the
process (the reference model then loads with a random, untied ``lm_head``). ``serialize_loads`` prevents it.
The loads run in a fresh interpreter: the race needs a process where nothing has serialized loads yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1] / "assets" / "reference-lm"
SCRIPT = """
import json, sys, threading
import torch
from transformers import AutoModelForCausalLM, PreTrainedModel
from llmops.modelloading import serialize_loads

serialize_loads()
tie = PreTrainedModel.tie_weights
barrier = threading.Barrier(8)

def load():
    barrier.wait()
    for _ in range(8):
        AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)

threads = [threading.Thread(target=load) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
with torch.no_grad():
    logits = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
print(json.dumps({
    "tie_weights_intact": PreTrainedModel.tie_weights is tie,
    "tied": model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr(),
    "finite": bool(torch.isfinite(logits).all()),
}))
"""


def test_concurrent_loads_keep_weight_tying() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REFERENCE)], capture_output=True, text=True, timeout=600, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"tie_weights_intact": True, "tied": True, "finite": True}
