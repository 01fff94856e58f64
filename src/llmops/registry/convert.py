"""Convert one pickle-based weights file to safetensors: run as a separate process.

``python -m llmops.registry.convert SRC DST``. Only ``torch.load(weights_only=True)`` is used, which
unpickles nothing but tensors and plain containers and refuses every other global, so a malicious
pickle fails here instead of running; the separate process keeps even a crash in the loader away from
the importing process. Tensors that share storage are cloned (safetensors refuses shared storage).
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(src: Path, dst: Path) -> int:
    import torch
    from safetensors.torch import save_file

    state = torch.load(src, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SystemExit(f"{src.name}: not a flat mapping of tensor names to tensors")
    tensors = {str(k): v.detach().clone().contiguous() for k, v in state.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst), metadata={"format": "pt"})
    return len(tensors)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m llmops.registry.convert SRC DST", file=sys.stderr)
        return 2
    try:
        count = convert(Path(argv[0]), Path(argv[1]))
    except SystemExit:
        raise
    except Exception as exc:  # report the loader's refusal in one line for the parent
        print(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    print(f"converted {count} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
