"""CLIP-style video-text scoring: the shared part (tokenising, truncation flags, video-feature cache).

Score convention (all evaluators, the paper's): ``score = 100 × cos(v, t)`` where ``t`` is the
L2-normalised text feature and ``v`` the L2-normalised video feature. Image models (CLIP, Long-CLIP)
build ``v`` by encoding N sampled frames, L2-normalising each frame feature, averaging, and
L2-normalising the mean (paper section 3.5); VideoCLIP-XL encodes the frames jointly. Real models
land around 20-30 (paper section 4.2).

Texts longer than the text encoder's context (77 tokens for CLIP, 248 for Long-CLIP) are truncated
by the tokenizer; every score carries ``tokens`` and ``truncated`` so callers can say so.
"""

from __future__ import annotations

import abc
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xxhash

from engine.errors import InputError, VideoError

VideoInput = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class TextScore:
    """One text's score against one video, with what the text encoder actually read."""

    value: float
    """100 × cosine similarity."""
    tokens: int
    """Text length in tokens, start/end tokens included."""
    context_length: int
    """Tokens the encoder reads; longer texts were cut to this."""

    @property
    def truncated(self) -> bool:
        return self.tokens > self.context_length


def fit_frames(frames: np.ndarray, n: int) -> np.ndarray:
    """Exactly n frames, uniformly re-indexed (repeats when fewer): for encoders with a fixed frame count."""
    if len(frames) == n:
        return frames
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return frames[idx]


def check_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        shape = getattr(frames, "shape", None)
        raise VideoError(f"frames must be a uint8 array shaped (T, H, W, 3); got {shape}")
    return frames


def video_cache_key(video: VideoInput, num_frames: int) -> str:
    """Path + mtime + size for files (no re-read), a content hash for decoded frames."""
    if isinstance(video, np.ndarray):
        # xxh3-128: ~5 ms for 32 decoded 720p frames (88 MB) where blake2b took ~140 ms, i.e. 14 % of
        # the ViT-B/32 encode it guards. A non-cryptographic hash is enough for a cache key.
        digest = xxhash.xxh3_128(np.ascontiguousarray(video).data.cast("B")).hexdigest()
        return f"frames:{digest}:{video.shape}"
    path = Path(video)
    try:
        st = path.stat()
    except OSError:
        raise VideoError(f"video not found: {path}") from None
    return f"path:{path.resolve()}:{st.st_mtime_ns}:{st.st_size}:{num_frames}"


def resize_crop_normalise(
    frames: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...], crop: bool = True
) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, size, size).

    crop=True: CLIP preprocessing (bicubic resize of the shorter side, centre crop). crop=False: a plain
    bilinear resize to size x size (VideoCLIP-XL's cv2.resize).
    """
    # uint8 channels-last resizing uses torch's vectorised kernels (~20x faster than float) and rounds to
    # uint8 like PIL does.
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8, channels-last
    h, w = x.shape[-2:]
    if crop:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size]
    else:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.float()
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return (x / 255.0 - mean_t) / std_t


class VideoTextEvaluator(abc.ABC):
    """A loaded video-text evaluator: subclasses implement `encode_video` and `encode_tokens`.

    `score(video, texts)` costs one video encode (cached per video) and one batched text encode.
    """

    def __init__(
        self,
        name: str,
        tokenizer: Any,
        context_length: int,
        num_frames: int = 8,
        random_weights: bool = False,
        device: str = "cpu",
        cache_size: int = 64,
    ) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.num_frames = num_frames
        self.random_weights = random_weights
        self.device = device
        self.cache_size = cache_size
        self.stats = {"video_encodes": 0, "cache_hits": 0, "text_batches": 0}
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    # -- subclass hooks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) -> L2-normalised video feature (D,)."""

    @abc.abstractmethod
    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """int tokens (K, context_length) -> raw text features (K, D)."""

    # -- video side -------------------------------------------------------------------------------
    def load_frames(self, video: VideoInput) -> np.ndarray:
        if isinstance(video, np.ndarray):
            return check_frames(video)
        from engine.video import load_video

        return load_video(video, num_frames=self.num_frames)[0]

    def video_feature(self, video: VideoInput, cache_key: str | None = None) -> torch.Tensor:
        """The L2-normalised video feature (D,), from the cache when this video was encoded before."""
        key = cache_key or video_cache_key(video, self.num_frames)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["cache_hits"] += 1
                return self._cache[key]
            with torch.inference_mode():
                feature = self.encode_video(self.load_frames(video))
            self.stats["video_encodes"] += 1
            self._cache[key] = feature
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return feature

    def is_cached(self, key: str) -> bool:
        with self._lock:
            return key in self._cache

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- text side --------------------------------------------------------------------------------
    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts including start and end tokens (what the context length is measured in)."""
        return [len(self.tokenizer.encode(t)) + 2 for t in texts]

    def text_features(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text features (K, D), all K texts in one batch."""
        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            features = self.encode_tokens(tokens).float()
        self.stats["text_batches"] += 1
        return F.normalize(features, dim=-1)

    # -- scoring ----------------------------------------------------------------------------------
    def score_detailed(self, video: VideoInput, texts: list[str], cache_key: str | None = None) -> list[TextScore]:
        texts = _check_texts(texts)
        video_feat = self.video_feature(video, cache_key)  # (D,)
        text_feat = self.text_features(texts)  # (K, D)
        values = (100.0 * text_feat @ video_feat.to(text_feat.device)).tolist()
        counts = self.count_tokens(texts)
        return [TextScore(float(v), n, self.context_length) for v, n in zip(values, counts, strict=True)]

    def score(self, video: VideoInput, texts: list[str], cache_key: str | None = None) -> list[float]:
        """100 × cosine per text. Use `score_detailed` to see which texts were truncated."""
        return [s.value for s in self.score_detailed(video, texts, cache_key)]


def _check_texts(texts: list[str]) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise InputError("no texts to score")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise InputError("cannot score an empty text")
    return texts
