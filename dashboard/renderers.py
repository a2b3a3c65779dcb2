"""One renderer per modality: how an input is previewed and how its attribution is drawn.

Like Captum Insights' ``ImageFeature``/``TextFeature``: the explanation code never knows
how it is drawn, and a page draws any modality through the same two calls.
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.data import Record, record_to_sample
from core.explain import Explanation
from core.figures import explanation as explanation_figures
from core.figures.inputs import audio_preview_figure
from core.io import encode_wav
from core.settings import Limits
from dashboard.markup import escape_markdown
from dashboard.state import CurrentSample

if TYPE_CHECKING:  # the Overview draws records before any model is loaded (torch: 1.5 s to import)
    from core.model import MultimodalClassifier

PLOTLY_CONFIG = {"displaylogo": False}


class ModalityView(ABC):
    """Renders one modality of a sample and of an explanation."""

    modality: str
    title: str

    def present_in(self, sample: CurrentSample) -> bool:
        return sample.decoded.get(self.modality) is not None

    @abstractmethod
    def render_input(self, sample: CurrentSample, key: str) -> None:
        """A preview of the modality as the user gave it."""

    def opacity_control(self, key: str) -> float:
        """The overlay opacity slider shared by the explanations shown side by side."""
        return st.slider(
            "Overlay opacity",
            0.0, 1.0, 0.55, 0.05,
            key=f"{key}_opacity",
            help="How strongly the attribution covers the input (0: input only, 1: attribution only).",
        )

    @abstractmethod
    def render_attribution(
        self, explanation: Explanation, sample: CurrentSample, model: MultimodalClassifier, key: str, opacity: float = 0.55
    ) -> None:
        """The explanation's attribution for this modality, drawn over the input."""


class ImageView(ModalityView):
    modality = "image"
    title = ":material/image: Image"

    def render_input(self, sample: CurrentSample, key: str) -> None:
        image = sample.decoded.image
        st.image(image, caption=f"{image.shape[1]}×{image.shape[0]} px", width=min(320, max(160, image.shape[1] * 4)))

    def render_attribution(
        self, explanation: Explanation, sample: CurrentSample, model: MultimodalClassifier, key: str, opacity: float = 0.55
    ) -> None:
        if explanation.image is None:
            st.caption("No image attribution (the checkpoint does not use images).")
            return
        fig = explanation_figures.image_overlay(explanation, sample.decoded.image, opacity=opacity)
        st.plotly_chart(fig, config=PLOTLY_CONFIG, key=f"{key}_chart")


class TextView(ModalityView):
    modality = "text"
    title = ":material/notes: Text"

    def render_input(self, sample: CurrentSample, key: str) -> None:
        st.markdown(
            f'<div style="border-left: 3px solid #D97706; padding: 6px 12px; background: #FFFBEB; border-radius: 4px">'
            f"{html.escape(sample.decoded.text)}</div>",
            unsafe_allow_html=True,
        )

    def opacity_control(self, key: str) -> float:
        return 1.0  # token colours carry the score; there is nothing to see through

    def render_attribution(
        self, explanation: Explanation, sample: CurrentSample, model: MultimodalClassifier, key: str, opacity: float = 1.0
    ) -> None:
        if explanation.tokens is None:
            st.caption("No text attribution (the checkpoint does not use text).")
            return
        st.markdown(explanation_figures.token_html(explanation), unsafe_allow_html=True)
        st.caption("Red: speaks for the class; blue: against. Hover a word for its score.")


class AudioView(ModalityView):
    modality = "audio"
    title = ":material/graphic_eq: Audio"

    def render_input(self, sample: CurrentSample, key: str) -> None:
        # Played back as decoded (16 kHz mono): what the model hears, whatever was uploaded.
        st.audio(encode_wav(sample.decoded.audio), format="audio/wav")
        st.plotly_chart(audio_preview_figure(sample.decoded.audio), config=PLOTLY_CONFIG, key=f"{key}_preview")

    def render_attribution(
        self, explanation: Explanation, sample: CurrentSample, model: MultimodalClassifier, key: str, opacity: float = 0.55
    ) -> None:
        if explanation.audio is None:
            st.caption("No audio attribution (the checkpoint does not use audio).")
            return
        st.plotly_chart(explanation_figures.audio_overlay(explanation, opacity=opacity), config=PLOTLY_CONFIG, key=f"{key}_chart")
        left, right = st.columns([1, 2])
        with left:
            top_k = st.number_input(
                "Segments to play",
                1, 10, 3,
                key=f"{key}_topk",
                help="How many of the most important time segments (for the explained class) to join into the clip below.",
            )
        from core.explain.audio_highlights import top_audio_segments

        highlights = top_audio_segments(explanation, sample.decoded.audio, k=int(top_k), encoder=model.encoders["audio"])
        with right:
            if highlights.spans:
                st.audio(encode_wav(highlights.clip), format="audio/wav")
                st.caption("Most important segments: " + ", ".join(f"{a:.2f}–{b:.2f} s" for a, b, _ in highlights.spans))
            else:
                st.caption("No time segment speaks for this class.")


VIEWS: list[ModalityView] = [ImageView(), TextView(), AudioView()]
"""Renderers in the order pages show modalities."""


def render_record_card(record: Record, limits: Limits, note: str = "", width: int | str = "stretch") -> DeltaGenerator:
    """A dataset record as a gallery card: image, label, text and an audio player.

    ``note`` (markdown) goes under the heading; the card is returned so callers can add buttons to it.
    ``width``: the card's width in pixels, or ``"stretch"`` to fill its column.
    """
    sample = record_to_sample(record, limits)
    # Few elements per card (a browser page of 24 cards is redrawn on every page change): the
    # lines of text in one markdown block, then the media.
    lines = [f"**{escape_markdown(record.label)}** · {escape_markdown(record.id)} · {record.split}"]
    if note:
        lines.append(note)
    if sample.text is not None:
        lines.append(f":gray[{escape_markdown(sample.text)}]")
    missing = [m for m in ("image", "text", "audio") if getattr(sample, m) is None]
    if missing:
        lines.append(f":gray[missing: {', '.join(missing)}]")
    card = st.container(border=True, width=width)
    with card:
        st.markdown("  \n".join(lines))
        if sample.image is not None:
            st.image(sample.image, width=120)
        if sample.audio is not None:
            st.audio(sample.audio, format="audio/wav" if record.audio.suffix.lower() == ".wav" else None)
    return card
