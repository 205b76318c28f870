"""The transformers side of `engine.models.load_model`: a video LM (AutoModelForImageTextToText + its
processor), a text LM (AutoModelForCausalLM + tokenizer) or a GGUF file (dequantised once into a plain fp32
folder in the cache), from a folder or hub id already resolved by the registry. Nothing here knows presets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotations.files import atomic_dir


def quiet_transformers() -> None:
    """No per-load progress bars on the CLI's stderr or in the app's log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def torch_dtype_for(dtype: str | None, device: str) -> Any:
    """torch dtype by name, else bf16 on CUDA and fp32 on CPU."""
    import torch

    if dtype:
        return getattr(torch, dtype)
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def from_pretrained(
    processor_cls: Any, model_cls: Any, source: str, torch_dtype: Any, local_only: bool, attn: str | None
) -> tuple[Any, Any]:
    """(model, processor or tokenizer) through transformers' Auto classes; attention implementation only when set."""
    processor = processor_cls.from_pretrained(source, local_files_only=local_only)
    kwargs = {"attn_implementation": attn} if attn else {}
    model = model_cls.from_pretrained(source, dtype=torch_dtype, local_files_only=local_only, **kwargs)
    return model, processor


def load_video_lm(
    source: str, torch_dtype: Any, local_only: bool, attn_implementation: str | None = None
) -> tuple[Any, Any]:
    """A video LM: AutoModelForImageTextToText and its AutoProcessor."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return from_pretrained(
        AutoProcessor, AutoModelForImageTextToText, source, torch_dtype, local_only, attn_implementation
    )


def load_text_lm(
    source: str, torch_dtype: Any, local_only: bool, attn_implementation: str | None = None
) -> tuple[Any, Any]:
    """A text LM: AutoModelForCausalLM and its AutoTokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return from_pretrained(AutoTokenizer, AutoModelForCausalLM, source, torch_dtype, local_only, attn_implementation)


def load_gguf(folder: str, gguf_file: str) -> tuple[Any, Any]:
    """(model, tokenizer) from a GGUF file. GGUF loads take ~15 s (dequantisation): dequantise once into a
    plain fp32 folder in the cache, which then reloads in ~1 s through the ordinary path."""
    from engine.tiny_models import cache_root

    plain = cache_root() / f"{Path(gguf_file).stem}-fp32"
    if not (plain / "config.json").exists():
        dequantise_gguf(folder, gguf_file, plain)
    return load_text_lm(str(plain), None, True)


def dequantise_gguf(folder: str, gguf_file: str, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # A GGUF-loaded model cannot save_pretrained: copy its weights into a plain model of the same config.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    try:
        with atomic_dir(out, finished="config.json") as tmp:  # a concurrent loader either wins or finds the folder
            plain.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    except OSError:
        if not (out / "config.json").exists():
            raise
