"""Video decoding (decord) with uniform frame sampling, and an mp4/h264 writer (PyAV).

Every failure that comes from the file itself surfaces as one `VideoError` with a one-line message;
nothing from decord or PyAV leaks out.

Decoded pixels are bounded here, in the one decode path every route shares (issue 24 item 1: a 1.8 MB
16-frame 4096x4096 clip decoded to 805 MB, +2.6 GB per viewer call): each frame is decoded at most at
`VideoLimits.max_frame_pixels` (HD; the decoder scales, aspect kept), one request's frames together at most
`max_request_pixels` (frames shrink to fit, down to MIN_SIDE px; beyond that the request is refused in one
line), and the frames alive in this process at most `max_app_pixels` (`DECODED`: a decode waits up to
`app_wait_s` for room, then is refused in one line). The models, evaluators and the viewer need far less
than HD per frame.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotations.errors import first_line
from annotations.files import atomic_path
from engine.errors import VideoError
from engine.types import VideoMeta

#: The one frame count (training's data.num_frames, the Studio's for mining, evaluation and the app, the CLIs'
#: --num-frames): the paper does not state how many frames VidPrompter reads; 8, the count its group's
#: VideoCLIP-XL and VILA-1.5's video recipe use. Change it in one place: the training config's data.num_frames
#: travels to the loop's mining and evaluation, and `--num-frames` sets it for the app and the CLIs.
DEFAULT_NUM_FRAMES = 8


@dataclass
class VideoLimits:
    """What we refuse to decode, so one upload cannot take the machine down."""

    max_bytes: int = 2 * 1024**3
    """Largest file accepted (bytes)."""
    max_duration_s: float = 3600.0
    """Longest video accepted (seconds)."""
    max_side: int = 8192
    """Largest width or height accepted (pixels)."""
    max_frames: int = 1_000_000
    """Most frames a container may claim."""
    max_frame_pixels: int = 1280 * 720
    """Largest decoded frame (width x height): bigger videos are scaled down while decoding, aspect kept."""
    max_request_pixels: int = 64 * 1280 * 720
    """Most pixels one call decodes (frames x width x height): frames shrink to fit, else it is refused."""
    max_app_pixels: int = 256 * 1280 * 720
    """Most pixels of decoded frames alive in this process at once (about 700 MB of RGB)."""
    app_wait_s: float = 30.0
    """How long a decode waits for others' frames to be freed before it is refused."""

    def __post_init__(self) -> None:
        sizes = (self.max_bytes, self.max_duration_s, self.max_side, self.max_frames, self.max_frame_pixels)
        if min(*sizes, self.max_request_pixels, self.max_app_pixels) <= 0 or self.app_wait_s < 0:
            raise ValueError("video limits must be positive")


#: Smallest side a frame is shrunk to so that a request fits its pixel budget.
MIN_SIDE = 32


class DecodedPixels:
    """The pixels of decoded frames alive in this process: taken before a decode, given back when the frames
    array is garbage-collected (weakref.finalize), so the count is what is really held."""

    def __init__(self) -> None:
        self.in_use = 0
        self._cond = threading.Condition()

    def take(self, pixels: int, limits: VideoLimits) -> None:
        """Wait (up to limits.app_wait_s) until `pixels` fit under limits.max_app_pixels; VideoError otherwise."""
        deadline = time.monotonic() + limits.app_wait_s
        with self._cond:
            while self.in_use + pixels > limits.max_app_pixels:
                left = deadline - time.monotonic()
                if left <= 0 or pixels > limits.max_app_pixels:
                    raise VideoError(
                        f"the server is decoding other videos ({self.in_use / 1e6:.0f} of "
                        f"{limits.max_app_pixels / 1e6:.0f} megapixels in use); try again in a minute"
                    )
                self._cond.wait(left)
            self.in_use += pixels

    def give(self, pixels: int) -> None:
        with self._cond:
            self.in_use = max(0, self.in_use - pixels)
            self._cond.notify_all()

    def hold(self, frames: np.ndarray, pixels: int) -> np.ndarray:
        """`frames`, whose `pixels` are given back when it (and every view of it) is freed."""
        weakref.finalize(frames, self.give, pixels)
        return frames


#: This process's decoded-pixel account (one per process: the machine's memory is what it guards).
DECODED = DecodedPixels()


def sample_indices(total: int, num_frames: int) -> list[int]:
    """Uniform sampling: the centre frame of each of `num_frames` equal segments.

    With fewer frames than asked for, every frame is returned once (no duplicates).
    """
    if total <= 0:
        return []
    n = min(num_frames, total)
    return [min(total - 1, int((i + 0.5) * total / n)) for i in range(n)]


def _check_file(path: Path, limits: VideoLimits) -> None:
    if not path.exists():
        raise VideoError(f"video not found: {path}")
    if not path.is_file():
        raise VideoError(f"not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"video file is empty: {path.name}")
    if size > limits.max_bytes:
        raise VideoError(f"video is {size / 1e6:.0f} MB; the limit is {limits.max_bytes / 1e6:.0f} MB")


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr():
    """Silence fd 2 while decord runs: its C++ LOG(ERROR) lines bypass Python and would reach users
    beside our one-line error. Serialised, since fd 2 is process-wide."""
    with _STDERR_LOCK:
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _probe(path: Path) -> tuple[int, int]:
    """Cheap header check with PyAV (no decode): (width, height) of the first video stream (0, 0 when the
    header does not say); not a container, or no video stream -> VideoError."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"not a readable video: {path.name} has no video stream")
            codec = container.streams.video[0].codec_context
            return int(codec.width or 0), int(codec.height or 0)
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"not a readable video: {path.name} ({_first_line(exc)})") from None


def _open_reader(path: Path, resize: tuple[int, int] | None):
    import decord  # imported here: only needed to decode

    # ffmpeg's own log lines ("moov atom not found") would reach users beside our one-line error.
    decord.logging.set_level(decord.logging.QUIET)

    kwargs = {"ctx": decord.cpu(0), "num_threads": 1}
    if resize is not None:
        kwargs.update(width=resize[0], height=resize[1])
    try:
        with _quiet_stderr():
            return decord.VideoReader(str(path), **kwargs)
    except Exception as exc:  # decord raises DECORDError/RuntimeError with multi-line C++ traces
        raise VideoError(f"not a readable video: {path.name} ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    # decord prefixes "[12:00:00] /path/to/file.cc:83: "; users need the message, not the C++ location.
    return re.sub(r"^\[[\d:]+\]\s+\S+:\d+:\s*", "", first_line(exc, limit=None))[:160]


def _check_side(width: int, height: int, limits: VideoLimits) -> None:
    if max(width, height) > limits.max_side:
        raise VideoError(f"video is {width}x{height}; the limit is {limits.max_side} px per side")


def _meta(reader, path: Path, limits: VideoLimits, size: tuple[int, int]) -> VideoMeta:
    """The file's metadata; `size` is its native (width, height) from the header (0, 0: read a frame)."""
    total = len(reader)
    if total <= 0:
        raise VideoError(f"video has no frames: {path.name}")
    if total > limits.max_frames:
        raise VideoError(f"video claims {total} frames; the limit is {limits.max_frames}")
    width, height = size
    if not (width and height):  # a header without a size: one frame tells (the reader is already scaled down)
        height, width = reader[0].shape[:2]
    fps = float(reader.get_avg_fps() or 0.0) or 24.0
    duration = total / fps
    if duration > limits.max_duration_s:
        raise VideoError(f"video is {duration:.0f} s long; the limit is {limits.max_duration_s:.0f} s")
    _check_side(width, height, limits)
    return VideoMeta(str(path), fps, duration, int(width), int(height), total)


def _resize_arg(resize: int | tuple[int, int] | None, width: int, height: int) -> tuple[int, int] | None:
    """An int resizes the shorter side (keeping aspect, even sizes); a tuple is (width, height)."""
    if resize is None or isinstance(resize, tuple):
        return resize
    scale = resize / min(height, width)
    return _even(width * scale), _even(height * scale)


def _pixels(n: int) -> str:
    return f"{n / 1e6:.0f} megapixels" if n >= 1e6 else f"{n:,} pixels"


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def decode_size(
    width: int, height: int, frames: int, resize: int | tuple[int, int] | None, limits: VideoLimits
) -> tuple[int, int] | None:
    """The (width, height) to decode `frames` frames of a width x height video at: what `resize` asks for,
    scaled down (aspect kept) to max_frame_pixels and to the request's share of max_request_pixels; None:
    the native size fits. VideoError when the frames would have to shrink below MIN_SIDE px."""
    target = _resize_arg(resize, width, height) or (width, height)
    budget = min(limits.max_frame_pixels, limits.max_request_pixels // max(1, frames))
    w, h = target
    if w * h > budget:
        scale = math.sqrt(budget / (w * h))
        w, h = _even(w * scale - 1), _even(h * scale - 1)  # -1: rounding must not step over the budget
        if min(w, h) < MIN_SIDE or w * h > budget:
            raise VideoError(
                f"{frames} frames do not fit the decode budget (the limit per request is "
                f"{_pixels(limits.max_request_pixels)}, frames at least {MIN_SIDE} px a side); "
                "ask for fewer frames"
            )
    return None if (w, h) == (width, height) and resize is None else (w, h)


def load_video(
    path: str | os.PathLike,
    num_frames: int = DEFAULT_NUM_FRAMES,
    resize: int | tuple[int, int] | None = None,
    limits: VideoLimits | None = None,
) -> tuple[np.ndarray, VideoMeta]:
    """Decode `num_frames` uniformly sampled frames.

    Returns frames uint8 (T, H, W, 3) RGB, T = min(num_frames, total frames), and the metadata
    (size is the file's native size; frames are resized when `resize` is given).
    """
    if num_frames < 1:
        raise VideoError(f"num_frames must be >= 1, got {num_frames}")
    limits = limits or VideoLimits()
    path = Path(path)
    _check_file(path, limits)
    size = _probe(path)
    if all(size):
        _check_side(*size, limits)  # before anything is decoded
    # Sized from the header (a frame count the header may not know: the cap is per asked-for frame).
    target = decode_size(*size, num_frames, resize, limits) if all(size) else None
    reader = _open_reader(path, target)
    meta = _meta(reader, path, limits, size)
    if not all(size):  # no size in the header: decoded at the native size unless the budget says otherwise
        target = decode_size(meta.width, meta.height, num_frames, resize, limits)
        if target is not None:
            reader = _open_reader(path, target)
    meta.sampled_indices = sample_indices(meta.total_frames, num_frames)
    w, h = target or (meta.width, meta.height)
    pixels = len(meta.sampled_indices) * w * h
    DECODED.take(pixels, limits)
    try:
        frames = _decode(reader, path, meta.sampled_indices, target)
    except BaseException:
        DECODED.give(pixels)
        raise
    return DECODED.hold(frames, pixels), meta


def _decode(reader, path: Path, indices: list[int], target: tuple[int, int] | None) -> np.ndarray:
    try:
        with _quiet_stderr():
            frames = reader.get_batch(indices).asnumpy()
    except Exception as exc:  # truncated files fail here, after a valid header; so do tiny widths in decord
        frames = _decode_with_av(path, indices, target, reason=_first_line(exc))
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise VideoError(f"video decoded to no frames: {path.name}")
    return np.ascontiguousarray(frames, dtype=np.uint8)


def _decode_with_av(path: Path, indices: list[int], size: tuple[int, int] | None, reason: str) -> np.ndarray:
    """Fallback decoder (PyAV, sequential): decord rejects some valid files (e.g. widths under 64 px).

    Raises VideoError when the wanted frames are not all there (a truncated file)."""
    import av

    wanted, frames = set(indices), {}
    try:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    w, h = size or (frame.width, frame.height)
                    frames[i] = frame.to_ndarray(format="rgb24", width=w, height=h)
                if i >= indices[-1]:
                    break
    except Exception as exc:
        reason = _first_line(exc)
    if len(frames) != len(wanted):
        raise VideoError(f"video is corrupt or truncated: {path.name} ({reason})")
    return np.stack([frames[i] for i in indices])


def sampled_fps(num_sampled: int, meta: VideoMeta) -> float:
    """Frame rate that plays `num_sampled` sampled frames over the source clip's duration (>= 1 fps),
    so an 8-frame sample of a 4 s clip lasts 4 s in a player."""
    return max(1.0, num_sampled / max(meta.duration_s, 1e-6))


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """Write uint8 RGB frames (T, H, W, 3) as browser-playable mp4 (h264, yuv420p, faststart).

    Odd widths/heights are padded by one pixel (yuv420p needs even sizes).
    """
    import av  # PyAV wheels bundle ffmpeg with libx264

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise VideoError(f"write_video needs frames shaped (T, H, W, 3), got {frames.shape}")
    frames = _pad_even(frames.astype(np.uint8, copy=False))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=max(1, round(fps)))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # mbtree=0: x264's macroblock-tree rate control gave different bytes for the same small frames from one
        # write to the next (tests/engine/t2v/test_backend.py); without it the same frames make the same file.
        stream.options = {"crf": "20", "preset": "veryfast", "x264-params": "mbtree=0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_video_atomic(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """:func:`write_video` through a temp file beside `path` and a rename (annotations.files.atomic_path): a reader
    sees the old file or the whole new one; a failed write leaves no partial clip and `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".part.mp4") as tmp:  # .mp4: PyAV picks the container by suffix
        write_video(frames, tmp, fps=fps)
    return path


def _pad_even(frames: np.ndarray) -> np.ndarray:
    t, h, w, c = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    out = np.zeros((t, h + h % 2, w + w % 2, c), dtype=np.uint8)
    out[:, :h, :w] = frames
    return out
