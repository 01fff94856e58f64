"""The ``vllm`` engine's command line: ``vllm serve`` on a materialized registry version.

vLLM needs GPUs, so the gateway does not import it: it starts ``vllm serve`` as a supervised process on a
loopback port (``serving/supervisor.py``) and drives it as an OpenAI-compatible upstream. Engine options of
a route become ``vllm serve`` flags (``tensor_parallel_size=2`` → ``--tensor-parallel-size 2``, ``True`` →
the bare flag, ``False`` → ``--no-…``), so every vLLM option passes through without this module knowing it.
A few are the supervisor's or the registry's to decide and are refused: where it listens, which model and
under which name it serves, and ``trust_remote_code`` (the registry never runs code from a model).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from llmops.errors import InvalidInput
from llmops.serving.deployments.schemas import OptionValue

#: Options that configure this module, not vLLM.
OWN_OPTIONS = ("command", "ready_timeout")
#: vLLM flags the supervisor sets itself or the platform forbids.
RESERVED = ("host", "port", "model", "served_model_name", "trust_remote_code", "uds", "headless")
DEFAULT_COMMAND = "vllm"


def vllm_argv(model_dir: Path, *, served_name: str, port: int, options: Mapping[str, OptionValue]) -> list[str]:
    """``vllm serve`` for ``model_dir`` on 127.0.0.1:``port`` with the route's engine options as flags."""
    reserved = sorted(k for k in options if k.replace("-", "_") in RESERVED)
    if reserved:
        raise InvalidInput(
            f"engine option {', '.join(reserved)} is set by the platform for the vllm engine "
            "(it listens on a loopback port it chooses, serves the route's registry version under the "
            "deployment's name, and never runs code from a model)",
            details={"field": "engine_options"},
        )
    command = str(options.get("command", DEFAULT_COMMAND))
    argv = [*shlex.split(command), "serve", str(model_dir)]
    argv += ["--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port)]
    for key in sorted(options):
        if key in OWN_OPTIONS:
            continue
        value = options[key]
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + key.replace("_", "-"))
        else:
            argv += [flag, str(value)]
    return argv
