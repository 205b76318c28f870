"""Ship a trained LoRA chain as one adapter folder that loads offline over its packaged base preset.

    python -m training ship --checkpoint runs/smollm2-hdpo/train/checkpoints/step-N/model \\
        --out assets/models/smollm2-135m-hdpo [--dtype float16]

A preference run of the loop starts from the SFT checkpoint, so its adapter sits on (base + SFT adapter).
Both are low-rank sums on the same weights: W' = W + s1 B1 A1 + s2 B2 A2 = W + [s1 B1 | s2 B2] [A1 ; A2],
i.e. one LoRA of rank r1 + r2 with scaling 1 (lora_alpha = r), exactly. `fold_chain` builds it; the folder
gets the adapter, the tokenizer files and engine.models.BASE_FILE naming the root preset, so
engine.models.load_model merges it at load (decoding at the base's speed) and never reads the run folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from annotations.files import atomic_dir
from engine.errors import ModelLoadError
from engine.models import ADAPTER_FILE, BASE_FILE, MAX_ADAPTER_CHAIN, PRESETS, adapter_base

WEIGHTS = "adapter_model.safetensors"


def adapter_chain(folder: str | Path) -> tuple[list[Path], str]:
    """(adapter folders from the one nearest the base to `folder`, the root preset name)."""
    chain: list[Path] = []
    current: str | None = str(folder)
    while current is not None and current not in PRESETS:
        path = Path(current)
        if not (path / ADAPTER_FILE).is_file():
            raise ModelLoadError(f"{path} is not a LoRA adapter folder (no {ADAPTER_FILE}) nor a preset")
        chain.insert(0, path)
        if len(chain) > MAX_ADAPTER_CHAIN:
            raise ModelLoadError(f"{folder}: more than {MAX_ADAPTER_CHAIN} adapters stacked")
        current = adapter_base(path)
    if current is None:
        raise ModelLoadError(f"{folder}: the adapter chain names no base preset")
    return chain, current


def _scaling(config: dict[str, Any]) -> float:
    if config.get("use_rslora"):
        raise ModelLoadError("rank-stabilised LoRA adapters are not folded (scaling alpha / sqrt(r))")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ModelLoadError("adapters with per-module ranks or alphas are not folded")
    return float(config["lora_alpha"]) / float(config["r"])


def fold_chain(chain: list[Path]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One adapter (weights by PEFT key, config) equal to the chain merged in order (see the module doc)."""
    configs = [json.loads((p / ADAPTER_FILE).read_text()) for p in chain]
    weights = [load_file(str(p / WEIGHTS)) for p in chain]
    targets = set(configs[0]["target_modules"])
    for c in configs[1:]:
        if set(c["target_modules"]) != targets:
            raise ModelLoadError("adapters with different target modules cannot be folded into one")
    keys = sorted(k.removesuffix(".lora_A.weight") for k in weights[0] if k.endswith(".lora_A.weight"))
    folded: dict[str, torch.Tensor] = {}
    for key in keys:
        a_parts, b_parts = [], []
        for w, c in zip(weights, configs, strict=True):
            a, b = w[f"{key}.lora_A.weight"].float(), w[f"{key}.lora_B.weight"].float()
            a_parts.append(a)  # (r_i, in)
            b_parts.append(b * _scaling(c))  # (out, r_i), scaled so the folded scaling is 1
        folded[f"{key}.lora_A.weight"] = torch.cat(a_parts, dim=0).contiguous()  # (sum r, in)
        folded[f"{key}.lora_B.weight"] = torch.cat(b_parts, dim=1).contiguous()  # (out, sum r)
    rank = sum(int(c["r"]) for c in configs)
    config = {**configs[-1], "r": rank, "lora_alpha": rank, "base_model_name_or_path": None, "lora_dropout": 0.0}
    return folded, config


def ship(checkpoint: str | Path, out: str | Path, dtype: str = "float16", info: dict | None = None) -> Path:
    """Write the folded adapter of `checkpoint`'s chain to `out` (replaced); returns `out`."""
    chain, root = adapter_chain(checkpoint)
    weights, config = fold_chain(chain)
    out = Path(out)
    provenance = {
        "base": root,
        "folded_from": [str(p) for p in chain],
        "rank": config["r"],
        "dtype": dtype,
        **(info or {}),
    }
    with atomic_dir(out) as tmp:
        cast = getattr(torch, dtype)
        save_file({k: v.to(cast) for k, v in weights.items()}, str(tmp / WEIGHTS))
        (tmp / ADAPTER_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / BASE_FILE).write_text(json.dumps(provenance, indent=2))
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
            if (chain[-1] / name).is_file():
                shutil.copy(chain[-1] / name, tmp / name)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m training ship", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a LoRA checkpoint's model folder (step-N/model)")
    p.add_argument("--out", required=True, help="the adapter folder to write (e.g. assets/models/smollm2-135m-hdpo)")
    p.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    p.add_argument("--note", default=None, help="a line of provenance kept in the folder's vidprompter.json")
    args = p.parse_args(argv)
    try:
        out = ship(args.checkpoint, args.out, args.dtype, {"note": args.note} if args.note else None)
    except (ModelLoadError, OSError, KeyError) as exc:
        print(f"error: {exc}")
        return 2
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"shipped {out} ({size:.1f} MiB)")
    return 0
