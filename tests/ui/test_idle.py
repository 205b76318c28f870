"""An idle app does not spin (issue 24): Gradio's queue polls at QUEUE_POLL_S, not every millisecond."""

from __future__ import annotations

from ui.layout import PROGRESS_POLL_S, QUEUE_POLL_S, quiet_when_idle


def test_the_queue_polls_slowly_when_idle():
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Button("x").click(lambda: None)
    demo.queue()
    assert demo._queue.sleep_when_free < QUEUE_POLL_S  # Gradio's own: 1 ms on Linux
    quiet_when_idle(demo)
    assert demo._queue.sleep_when_free == QUEUE_POLL_S == 0.05
    assert demo._queue.progress_update_sleep_when_free == PROGRESS_POLL_S
