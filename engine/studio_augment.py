"""The Studio's hallucination-augmentation verbs, mixed into `engine.service.Studio` (paper section 3.2).

`hallucinate_text` (response hallucination: 1-5 words swapped, with their offsets), `hallucinate_video` (input
hallucination: frames shuffled, pasted, cropped; both clips written as mp4 for side-by-side players) and
`task_views` (task hallucination: one Task-3 response under the three task instructions, Eq. 12-13).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.hallucination.video import VideoHallucinationConfig
from engine.types import Task

if TYPE_CHECKING:
    import numpy as np


class AugmentationVerbs:
    """Hallucination verbs of the Studio. Needs `load_frames` from the Studio (its frame count)."""

    if TYPE_CHECKING:  # the Studio's (engine.service)

        def load_frames(self, video: str | Path, num_frames: int | None = None) -> tuple[np.ndarray, Any]: ...

    # -- hallucination augmentations (engine.hallucination) -------------------------------------
    def hallucinate_text(
        self, text: str, min_words: int | None = None, max_words: int | None = None, seed: int = 0
    ) -> dict[str, Any]:
        """{"text", "edits": [{"start","end","original","replacement","category"}]} (offsets into `text`);
        min/max_words None: TextHallucinationConfig's (the paper's 1-5)."""
        from engine.hallucination import TextHallucinationConfig, hallucinate_text

        config = TextHallucinationConfig()
        config = TextHallucinationConfig(
            min_words=min_words or config.min_words, max_words=max_words or config.max_words
        )
        return hallucinate_text(text, config, seed=seed).to_json()

    def hallucinate_video(
        self,
        video: str | Path,
        out_dir: str | Path,
        shuffle: bool = VideoHallucinationConfig.shuffle,
        paste_ratio: tuple[float, float] | None = VideoHallucinationConfig.paste_ratio,
        crop_keep: tuple[float, float] | None = VideoHallucinationConfig.crop_keep,
        num_frames: int | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Sample frames, perturb them, write both as mp4 for side-by-side players.

        Returns {"original": path, "perturbed": path, "frames": (T,H,W,3) uint8, "perturbed_frames": ...,
        "ops": [...]}.
        """
        from engine.hallucination import VideoHallucinationConfig, hallucinate_frames
        from engine.video import sampled_fps, write_video_atomic

        frames, meta = self.load_frames(video, num_frames)
        config = VideoHallucinationConfig(shuffle=shuffle, paste_ratio=paste_ratio, crop_keep=crop_keep)
        perturbed, ops = hallucinate_frames(frames, config, seed=seed)
        # One new folder per call: two users' clip.mp4 at the same seed must never share (or tear) a file.
        out = Path(out_dir) / uuid.uuid4().hex
        stem = f"{Path(video).stem[:64]}-s{seed}"
        fps = sampled_fps(len(frames), meta)
        return {
            "original": str(write_video_atomic(frames, out / f"{stem}-original.mp4", fps)),
            "perturbed": str(write_video_atomic(perturbed, out / f"{stem}-perturbed.mp4", fps)),
            "frames": frames,
            "perturbed_frames": perturbed,
            "ops": ops,
        }

    def task_views(self, short_prompt: str, response: str) -> list[dict[str, Any]]:
        """The same Task-3 response under the three task instructions (Eq. 12-13 displacements)."""
        from engine.tasks import instruction

        return [
            {
                "task": int(t),
                "instruction": instruction(t, short_prompt if t.needs_prompt else None),
                "response": response,
            }
            for t in Task
        ]
