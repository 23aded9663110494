"""The option set shared by every command that evaluates (``run``, ``track``, and any later one).

Each option is declared once here (name, type, default, help, help panel); ``evaluation_options``
adds them all to a command, which receives them as one ``EvalOptions`` record and turns it into
a ``RunConfig`` with ``run_config``. So ``run`` and ``track`` cannot drift apart in names,
defaults or help. Only typer is imported here.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

SELECTION = "Selection"
MODEL = "Model"
BACKEND = "Backend"
VLLM = "vLLM"
OUTPUT = "Output"


class VLLMStrategy(str, Enum):
    auto = "auto"
    naive = "naive"


class BackendName(str, Enum):
    hf = "hf"
    vllm = "vllm"
    auto = "auto"
    fake = "fake"


def _opt(*names: str, panel: str, help: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


@dataclass(frozen=True)
class EvalOptions:
    """Every evaluation option a user can give; field = option (``--field-name``)."""

    suite: Annotated[Optional[str], _opt(metavar="NAME", panel=SELECTION, help="Suite name (see 'evalsuite tasks list').")] = None
    tasks: Annotated[Optional[str], _opt(metavar="LIST", panel=SELECTION, help="Comma-separated task names or task YAML files/folders.")] = None
    limit: Annotated[Optional[int], _opt(metavar="N", min=1, panel=SELECTION, help="Only the first N examples of each task.")] = None
    prompts: Annotated[Optional[str], _opt(metavar="LIST", panel=SELECTION, help="Comma-separated prompt variant ids (default: all).")] = None
    shots: Annotated[Optional[int], _opt(metavar="K", min=0, max=64, panel=SELECTION, help="Few-shot examples (overrides the task).")] = None
    seed: Annotated[Optional[int], _opt(metavar="S", panel=SELECTION, help="Seed for few-shot sampling.")] = None
    data_dir: Annotated[Optional[list[Path]], _opt(metavar="DIR", panel=SELECTION, help="Folder holding local data files named by the tasks' "
                                                   "data.local.path (repeatable: each task uses the first that has its file).")] = None
    include: Annotated[Optional[list[Path]], _opt(metavar="DIR", panel=SELECTION, help="Extra folder of task YAML files (repeatable).")] = None
    override_tasks: Annotated[bool, _opt("--override-tasks", panel=SELECTION, help="Let an --include task replace a shipped task of "
                                         "the same name (otherwise an error naming both files).")] = False
    allow_any_path: Annotated[bool, _opt("--allow-any-path", panel=SELECTION, help="Let task data paths leave the task folder / --data-dir.")] = False
    skip_unavailable: Annotated[Optional[bool], _opt("--skip-unavailable/--no-skip", panel=SELECTION,
                                                     help="Skip (and list) tasks without data (default: on for --suite, "
                                                          "off for --tasks).")] = None
    tokenizer: Annotated[Optional[str], _opt(metavar="PATH|ID", panel=MODEL, help="Tokenizer folder or hub id (default: the checkpoint's own, "
                                                               "else the nearest parent folder with tokenizer files).")] = None
    name: Annotated[Optional[str], _opt(metavar="TEXT", panel=MODEL, help="Display name in results and leaderboards (default: series name + "
                                                          "step for checkpoints, else the folder name).")] = None
    device: Annotated[str, _opt(metavar="DEV", panel=MODEL, help="auto, cpu, cuda or cuda:N.")] = "auto"
    dtype: Annotated[str, _opt(metavar="TYPE", panel=MODEL, help="auto, float32, bfloat16 or float16.")] = "auto"
    max_length: Annotated[Optional[int], _opt(metavar="N", min=2, panel=MODEL, help="Override the model's context length.")] = None
    add_bos: Annotated[bool, _opt("--add-bos", panel=MODEL,
                                  help="Start every sequence with BOS (lm-eval's default is no).")] = False
    trust_remote_code: Annotated[bool, _opt("--trust-remote-code", panel=MODEL, help="Allow model code from the checkpoint to run.")] = False
    backend: Annotated[BackendName, _opt(metavar="NAME", panel=BACKEND, help="hf (transformers), vllm, auto (vllm when a GPU and vllm are "
                                                             "present, else hf) or fake (deterministic, for tests).")] = BackendName.auto
    batch_tokens: Annotated[Optional[int], _opt(metavar="N", min=1, panel=BACKEND, help="Token budget per forward batch (default: 1024 "
                                                                           "on CPU, 4096 on GPU).")] = None
    no_packing: Annotated[bool, _opt("--no-packing", panel=BACKEND, help="hf: no tree-masked rows; reuse each prefix's "
                                                                         "KV cache instead.")] = False
    no_prefix_sharing: Annotated[bool, _opt("--no-prefix-sharing", panel=BACKEND,
                                            help="hf: compute every sequence whole (for comparison).")] = False
    no_cache: Annotated[bool, _opt("--no-cache", panel=BACKEND, help="Neither read nor write the request cache.")] = False
    cache_dir: Annotated[Optional[Path], _opt(metavar="DIR", panel=BACKEND, help="Request cache folder (default: $EVALSUITE_CACHE/requests "
                                                                  "or ~/.cache/evalsuite/requests).")] = None
    tensor_parallel_size: Annotated[int, _opt(metavar="N", min=1, panel=VLLM, help="GPUs per model replica.")] = 1
    data_parallel_size: Annotated[int, _opt(metavar="N", min=1, panel=VLLM, help="Engine replicas, one process each (GPUs used: this x "
                                                                    "tensor-parallel-size).")] = 1
    gpu_memory_utilization: Annotated[float, _opt(metavar="F", min=0.05, max=1.0, panel=VLLM, help="Share of GPU memory for the engine.")] = 0.9
    enforce_eager: Annotated[bool, _opt("--enforce-eager", panel=VLLM, help="No CUDA graphs / compilation (faster start).")] = False
    block_size: Annotated[Optional[int], _opt(metavar="N", min=1, panel=VLLM, help="KV-cache block size (prefix-cache hits are whole blocks; "
                                                                      "default: vLLM's, 16 on GPUs, 128 on CPUs).")] = None
    no_prefix_caching: Annotated[bool, _opt("--no-prefix-caching", panel=VLLM, help="Turn vLLM's prefix caching off.")] = False
    vllm_strategy: Annotated[VLLMStrategy, _opt(metavar="NAME", panel=VLLM, help="Scoring strategy; naive (prompt log-probs, no cache "
                                                                 "reuse) is for comparison.")] = VLLMStrategy.auto
    output: Annotated[Path, _opt("--output", "-o", metavar="DIR", panel=OUTPUT, help="Results folder.")] = Path("results")
    progress_every: Annotated[float, _opt(metavar="SEC", min=0.0, panel=OUTPUT, help="Seconds between plain progress lines on stderr when it "
                                                                      "is not a terminal (0: none).")] = 30.0
    quiet: Annotated[bool, _opt("--quiet", "-q", panel=OUTPUT, help="No progress output.")] = False

    def run_config(self, model: str, **extra: Any) -> Any:
        """The ``RunConfig`` these options describe for ``model`` (``extra`` overrides fields)."""
        from evalsuite.runner import RunConfig

        data_dir = list(self.data_dir or [])
        kw: dict[str, Any] = dict(
            model=model, suite=self.suite, tasks=self.tasks, output=self.output, limit=self.limit,
            prompts=[p.strip() for p in self.prompts.split(",") if p.strip()] if self.prompts else None,
            shots=self.shots, seed=self.seed, backend=self.backend.value, device=self.device, dtype=self.dtype,
            batch_tokens=self.batch_tokens, packing=not self.no_packing, max_length=self.max_length, add_bos=self.add_bos,
            data_dir=(data_dir[0] if len(data_dir) == 1 else data_dir) if data_dir else None, include=list(self.include or []),
            override_tasks=self.override_tasks,
            trust_remote_code=self.trust_remote_code, share_prefixes=not self.no_prefix_sharing, allow_any_path=self.allow_any_path,
            use_cache=not self.no_cache, cache_dir=self.cache_dir, skip_unavailable=self.skip_unavailable,
            tensor_parallel_size=self.tensor_parallel_size, gpu_memory_utilization=self.gpu_memory_utilization,
            enforce_eager=self.enforce_eager, data_parallel_size=self.data_parallel_size, block_size=self.block_size,
            enable_prefix_caching=not self.no_prefix_caching, vllm_strategy=self.vllm_strategy.value, tokenizer=self.tokenizer,
            name=self.name, progress_every=self.progress_every,
        )
        kw.update(extra)
        return RunConfig(**kw)


def evaluation_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give command ``fn`` every ``EvalOptions`` option; ``fn`` takes them as its ``opts`` parameter.

    The command's own parameters come first in its help, then the shared ones by panel.
    """
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "opts"]
    hints = {f.name: f.type for f in fields(EvalOptions)}
    resolved = inspect.get_annotations(EvalOptions, eval_str=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=resolved[f.name], default=f.default)
              for f in fields(EvalOptions)]
    taken = {p.name for p in own} & set(hints)
    if taken:
        raise TypeError(f"{fn.__name__}: parameters {sorted(taken)} are shared evaluation options")

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        opts = EvalOptions(**{k: kwargs.pop(k) for k in hints if k in kwargs})
        return fn(*args, opts=opts, **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD else p
              for p in own] + shared
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # typer must read the new signature, not fn's
    return command
