"""Issue 24 item 1: decoded pixels are bounded in engine.video.load_video, the one decode path of every route
(viewer, tasks, grounding and the evaluators, mining, training data, T2V evaluation).

A 1.8 MB, 16-frame 4096x4096 mp4 cost +2.6 GB per /hallucinate_video call (two at once peaked at 6.2 GB):
frames were decoded at full size. Now each frame is decoded at most at VideoLimits.max_frame_pixels (HD),
a request at most max_request_pixels in all (frames shrink to fit, or it is refused in one line), and the
process's live decoded frames at most max_app_pixels (a decode waits for room, then is refused in one line)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from engine.errors import VideoError
from engine.video import DECODED, VideoLimits, load_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def huge_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 frames of 4096x4096 (a flat picture with a moving square): a small file, 805 MB decoded."""
    path = tmp_path_factory.mktemp("huge") / "huge.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 4096
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35"}
        for i in range(16):
            frame = np.full((4096, 4096, 3), 90, dtype=np.uint8)
            frame[200 * i : 200 * i + 400, 300:700] = 230
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_frames_are_decoded_at_most_at_the_frame_budget(huge_video: Path) -> None:
    frames, meta = load_video(huge_video, num_frames=16)
    assert (meta.width, meta.height) == (4096, 4096)  # the file's size, reported as it is
    t, h, w, _ = frames.shape
    assert t == 16 and h == w and h * w <= VideoLimits().max_frame_pixels
    assert frames.nbytes < 50e6  # was 805 MB


def test_peak_memory_of_decoding_the_probe_video_stays_small(huge_video: Path) -> None:
    code = (
        "import json, resource, sys\n"
        "from engine.video import load_video\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "frames, _ = load_video(sys.argv[1], num_frames=16)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'grew_mb': (after - before) / 1024}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(huge_video)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grew = json.loads(done.stdout.strip().splitlines()[-1])["grew_mb"]
    assert grew < 600, f"decoding grew the process by {grew:.0f} MB (was ~2,600 MB)"


def test_a_request_over_its_pixel_budget_shrinks_its_frames(sample_video: Path) -> None:
    limits = VideoLimits(max_request_pixels=8 * 160 * 90)
    frames, _ = load_video(sample_video, num_frames=8, limits=limits)
    assert frames.shape[0] == 8 and frames.shape[1] * frames.shape[2] <= 160 * 90
    assert abs(frames.shape[2] / frames.shape[1] - 16 / 9) < 0.1  # aspect kept


def test_a_request_that_cannot_fit_is_refused_in_one_line(sample_video: Path) -> None:
    limits = VideoLimits(max_request_pixels=8 * 20 * 20)
    with pytest.raises(VideoError) as info:
        load_video(sample_video, num_frames=8, limits=limits)
    message = str(info.value)
    assert "\n" not in message
    assert "8 frames" in message and "the limit per request is" in message and "ask for fewer frames" in message


def test_the_app_wide_budget_waits_for_room_then_refuses_in_one_line(sample_video: Path) -> None:
    gc.collect()
    limits = VideoLimits(max_app_pixels=8 * 1280 * 720 + DECODED.in_use, app_wait_s=0.2)
    held, _ = load_video(sample_video, num_frames=8, limits=limits)
    with pytest.raises(VideoError) as info:
        load_video(sample_video, num_frames=8, limits=limits)
    assert "\n" not in str(info.value) and "decoding other videos" in str(info.value)
    del held
    gc.collect()
    frames, _ = load_video(sample_video, num_frames=8, limits=limits)  # freed frames give their room back
    assert frames.shape[0] == 8
