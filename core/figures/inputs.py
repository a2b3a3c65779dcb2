"""Previews of decoded inputs (drawn, not analysed): the waveform and spectrogram of a clip."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.theme import MODALITY_COLORS, styled
from core.io import SAMPLE_RATE
from core.spectrogram import display_log_mel, frame_seconds, mel_band_centres

MAX_WAVEFORM_POINTS = 4000  # enough for the eye; a 60 s clip has ~1M samples


def audio_preview_figure(waveform: np.ndarray) -> go.Figure:
    """Waveform (top) and log-mel spectrogram (bottom) of a mono 16 kHz clip, sharing the time axis."""
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    step = max(1, len(waveform) // MAX_WAVEFORM_POINTS)
    times = np.arange(0, len(waveform), step) / SAMPLE_RATE
    log_mel = display_log_mel(waveform)
    frame_times = frame_seconds(log_mel.shape[1])
    freqs = mel_band_centres()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.35, 0.65], vertical_spacing=0.06)
    fig.add_trace(
        go.Scatter(x=times, y=waveform[::step], mode="lines", line={"width": 1, "color": MODALITY_COLORS["audio"]},
                   hovertemplate="%{x:.3f} s: %{y:.3f}<extra></extra>", showlegend=False),
        row=1, col=1,
    )
    fig.add_trace(
        go.Heatmap(z=log_mel, x=frame_times, y=freqs, colorscale="Viridis", colorbar={"title": "dB", "len": 0.6, "y": 0.32},
                   hovertemplate="%{x:.2f} s, %{y:.0f} Hz: %{z:.1f} dB<extra></extra>"),
        row=2, col=1,
    )
    fig.update_yaxes(title_text="amplitude", row=1, col=1)
    fig.update_yaxes(title_text="Hz (mel)", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    return styled(fig, f"Waveform and spectrogram ({len(waveform) / SAMPLE_RATE:.2f} s)", height=360)
