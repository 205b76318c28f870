import av
import numpy as np
import pytest

from engine.errors import VideoError
from engine.video import VideoLimits, load_video, sample_indices, write_video


def test_sample_indices_are_segment_centres():
    assert sample_indices(132, 8) == [8, 24, 41, 57, 74, 90, 107, 123]
    assert sample_indices(16, 4) == [2, 6, 10, 14]
    assert sample_indices(3, 8) == [0, 1, 2]  # fewer frames than asked: each once
    assert sample_indices(0, 8) == []


def test_load_real_video_shapes_and_meta(sample_video):
    frames, meta = load_video(sample_video, num_frames=8)
    assert frames.shape == (8, 720, 1280, 3) and frames.dtype == np.uint8
    assert (meta.width, meta.height, meta.total_frames) == (1280, 720, 132)
    assert meta.fps == pytest.approx(25.0)
    assert meta.duration_s == pytest.approx(132 / 25)
    assert meta.sampled_indices == sample_indices(132, 8)


def test_sampled_frames_are_the_frames_at_those_indices(sample_video):
    import decord

    frames, meta = load_video(sample_video, num_frames=4)
    every = decord.VideoReader(str(sample_video)).get_batch(list(range(132))).asnumpy()
    np.testing.assert_array_equal(frames, every[meta.sampled_indices])


def test_resize_shorter_side(sample_video):
    frames, _ = load_video(sample_video, num_frames=2, resize=112)
    assert frames.shape == (2, 112, 200, 3)


def test_write_then_read_roundtrip_h264(tmp_path):
    rng = np.random.default_rng(0)
    x = np.repeat(rng.integers(0, 255, (6, 1, 1, 3), dtype=np.uint8), 64, axis=1).repeat(96, axis=2)
    path = write_video(x, tmp_path / "out.mp4", fps=6)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
    frames, meta = load_video(path, num_frames=6)
    assert frames.shape == (6, 64, 96, 3) and meta.total_frames == 6
    # flat colours survive lossy coding closely
    assert np.abs(frames.astype(int) - x.astype(int)).mean() < 6


def test_odd_sizes_are_padded_and_tiny_widths_still_decode(tmp_path):
    x = np.full((3, 33, 47, 3), 128, dtype=np.uint8)
    frames, _ = load_video(write_video(x, tmp_path / "odd.mp4", fps=3), num_frames=3)
    assert frames.shape == (3, 34, 48, 3)


@pytest.fixture
def bad_videos(tmp_path, sample_video):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    data = sample_video.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    audio_only = tmp_path / "audio.mp4"
    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for _ in range(5):
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return {"text": text, "empty": empty, "truncated": truncated, "audio": audio_only}


@pytest.mark.parametrize(
    "case,message",
    [
        ("text", "not a readable video"),
        ("empty", "video file is empty"),
        ("truncated", "not a readable video|corrupt or truncated"),
        ("audio", "not a readable video|no frames"),
    ],
)
def test_bad_files_raise_one_clear_error(bad_videos, case, message):
    with pytest.raises(VideoError, match=message) as info:
        load_video(bad_videos[case])
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="video not found"):
        load_video(tmp_path / "nope.mp4")


def test_truncated_after_a_valid_header_is_caught(tmp_path):
    # faststart puts the index first: the header parses, the frame data is cut.
    x = np.random.default_rng(1).integers(0, 255, (40, 64, 64, 3), dtype=np.uint8)
    path = write_video(x, tmp_path / "fs.mp4", fps=10)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError, match="not a readable video|corrupt or truncated"):
        load_video(path, num_frames=8)


@pytest.mark.parametrize(
    "limits,message",
    [
        (VideoLimits(max_side=640), "the limit is 640 px"),
        (VideoLimits(max_duration_s=2), "the limit is 2 s"),
        (VideoLimits(max_bytes=1000), "the limit is 0 MB"),
        (VideoLimits(max_frames=100), "the limit is 100"),
    ],
)
def test_limits(sample_video, limits, message):
    with pytest.raises(VideoError, match=message):
        load_video(sample_video, limits=limits)
