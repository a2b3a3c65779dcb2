"""Plotly figures (and one HTML snippet) drawn from :class:`core.explain.Explanation` objects.

Nothing here computes an attribution: every function only draws what a result holds.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from core.explain.result import Explanation
from core.figures.theme import (
    HEATMAP_SCALE,
    MODALITY_COLORS,
    PALETTE,
    diverging_heatmap,
    labelled_bar_range,
    modality_bars,
    styled,
    symmetric_range,
)


def method_label(method: str) -> str:
    """The method's name as figures show it (the registry is imported here, when a figure is
    drawn: it loads Captum and SHAP, which a page without explanations does not need)."""
    from core.explain.registry import method_label as label

    return label(method)


POSITIVE = "#DC2626"
NEGATIVE = "#2563EB"


def modality_bar(explanation: Explanation) -> go.Figure:
    """Horizontal bars of each modality's total attribution (modality Shapley values or sums)."""
    names = list(explanation.modality_totals)
    fig = go.Figure(modality_bars(explanation.modality_totals, "{:+.3f}", "+.4f"))
    fig.update_traces(textposition="outside", textangle=0, cliponaxis=False)  # readable on a short bar too
    label = "Shapley value" if explanation.method == "modality" else f"{method_label(explanation.method)} total"
    room = labelled_bar_range(list(explanation.modality_totals.values()))
    fig.update_layout(
        xaxis={"title": f"{label} of P({explanation.target_name})", "range": room}, yaxis={"autorange": "reversed"}
    )
    return styled(fig, f"Which modality drove '{explanation.target_name}'", height=120 + 45 * len(names))


def interaction_heatmap(explanation: Explanation) -> go.Figure:
    """Pairwise modality Shapley interaction indices (modality method results only)."""
    if explanation.interactions is None:
        raise ValueError("This explanation has no interaction indices (only method='modality' does).")
    names = explanation.interaction_modalities
    matrix = np.asarray(explanation.interactions)
    fig = go.Figure(
        diverging_heatmap(
            matrix,
            names,
            names,
            text=[[f"{v:+.3f}" for v in row] for row in matrix],
            texttemplate="%{text}",
            hovertemplate="%{y} x %{x}: %{z:+.4f}<extra></extra>",
        )
    )
    fig.update_layout(yaxis={"autorange": "reversed"})
    return styled(fig, "Modality interactions (positive: stronger together)", height=320)


def image_overlay(explanation: Explanation, image: np.ndarray, opacity: float = 0.55) -> go.Figure:
    """The original image with the attribution map on top (red: for the class, blue: against).

    Args:
        image: the explained ``uint8 [H, W, 3]`` image (the map has the same H, W).
        opacity: of the heatmap layer, 0..1.
    """
    if explanation.image is None:
        raise ValueError("This explanation has no image attributions.")
    attribution = np.asarray(explanation.image)
    limit = symmetric_range(attribution)
    fig = go.Figure(go.Image(z=np.asarray(image, dtype=np.uint8), hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=attribution,
            colorscale=HEATMAP_SCALE,
            zmin=-limit,
            zmax=limit,
            opacity=opacity,
            colorbar={"title": "attribution"},
            hovertemplate="x %{x}, y %{y}: %{z:+.4f}<extra></extra>",
        )
    )
    height, width = attribution.shape
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    return styled(fig, f"Image regions ({method_label(explanation.method)})", height=380)


def token_html(explanation: Explanation) -> str:
    """The text with each token's background coloured by its score, for ``st.markdown(unsafe_allow_html=True)``."""
    if explanation.tokens is None:
        raise ValueError("This explanation has no token attributions.")
    limit = symmetric_range(np.array([s for _, s in explanation.tokens]))
    spans = []
    for token, score in explanation.tokens:
        strength = min(1.0, abs(score) / limit)
        rgb = (220, 38, 38) if score >= 0 else (37, 99, 235)
        spans.append(
            f'<span title="{score:+.4f}" style="background: rgba({rgb[0]},{rgb[1]},{rgb[2]},{0.85 * strength:.2f});'
            f' padding: 1px 3px; margin: 1px; border-radius: 3px">{html.escape(token)}</span>'
        )
    return '<div style="line-height: 2">' + " ".join(spans) + "</div>"


def audio_overlay(explanation: Explanation, opacity: float = 0.6) -> go.Figure:
    """The log-mel spectrogram (grey) with the time x frequency attribution on top; x in seconds.

    Titled like the image's figure ("Audio regions (method)"): a longer title was cut in a third of a page."""
    if explanation.audio is None:
        raise ValueError("This explanation has no audio attributions.")
    times = np.asarray(explanation.audio_times)
    freqs = np.asarray(explanation.audio_freqs)
    attribution = np.asarray(explanation.audio)
    fig = go.Figure()
    if explanation.audio_spectrogram is not None:
        fig.add_trace(
            go.Heatmap(
                z=explanation.audio_spectrogram,
                x=times,
                y=freqs,
                colorscale="Greys",
                reversescale=True,
                showscale=False,
                hovertemplate="%{x:.2f} s, %{y:.0f} Hz: %{z:.1f} dB<extra></extra>",
            )
        )
    fig.add_trace(
        diverging_heatmap(
            attribution,
            times,
            freqs,
            opacity=opacity,
            colorbar={"title": "attribution"},
            hovertemplate="%{x:.2f} s, %{y:.0f} Hz: %{z:+.4f}<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title="time (s)", yaxis_title="frequency (Hz, mel scale)")
    return styled(fig, f"Audio regions ({method_label(explanation.method)})", height=360)


def faithfulness_curves(explanations: list[Explanation]) -> go.Figure:
    """Deletion (solid) and insertion (dashed) curves of each explanation, AUCs in the legend."""
    fig = go.Figure()
    for i, explanation in enumerate(e for e in explanations if e.faithfulness is not None):
        curves = explanation.faithfulness
        color = PALETTE[i % len(PALETTE)]
        name = method_label(explanation.method)
        fig.add_trace(
            go.Scatter(
                x=curves.fractions,
                y=curves.deletion,
                mode="lines+markers",
                line={"color": color},
                name=f"{name} deletion (AUC {curves.deletion_auc:.3f}, random {curves.random_deletion_auc:.3f})",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=curves.fractions,
                y=curves.insertion,
                mode="lines+markers",
                line={"color": color, "dash": "dash"},
                name=f"{name} insertion (AUC {curves.insertion_auc:.3f}, random {curves.random_insertion_auc:.3f})",
            )
        )
    target = explanations[0].target_name if explanations else ""
    fig.update_layout(
        xaxis_title="fraction of features removed / inserted (most attributed first)",
        yaxis_title=f"P({target})",
        yaxis_range=[0, 1],
        legend={"orientation": "h", "y": -0.25},
    )
    return styled(fig, "Faithfulness: deletion should fall fast, insertion rise fast", height=420)


def agreement_figure(shap_result: Explanation, lime_result: Explanation) -> go.Figure:
    """Per modality, SHAP vs LIME segment scores as a scatter, Spearman rho in the legend."""
    from core.explain.quality import agreement

    rho = agreement(shap_result, lime_result)
    fig = go.Figure()
    for modality, value in rho.items():
        fig.add_trace(
            go.Scatter(
                x=shap_result.segment_scores[modality],
                y=lime_result.segment_scores[modality],
                mode="markers",
                marker={"color": MODALITY_COLORS.get(modality, PALETTE[0]), "size": 8, "opacity": 0.8},
                name=f"{modality} (Spearman {value:+.2f})",
                hovertemplate="SHAP %{x:+.4f}, LIME %{y:+.4f}<extra></extra>",
            )
        )
    fig.update_layout(xaxis_title="SHAP value of segment", yaxis_title="LIME weight of segment")
    return styled(fig, "SHAP vs LIME agreement", height=380)


# ---------------------------------------------------------------- static PNG (CLI)
def _diverging_rgb(values: np.ndarray) -> np.ndarray:
    """``[...]`` scores -> ``uint8 [..., 3]``: white at 0, red positive, blue negative."""
    strength = np.clip(values / symmetric_range(values), -1.0, 1.0)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    red, blue = np.array([220.0, 38.0, 38.0]), np.array([37.0, 99.0, 235.0])
    rgb = np.where(strength >= 0, white + strength * (red - white), white - strength * (blue - white))
    return rgb.astype(np.uint8)


def _panel(explanation: Explanation, image: np.ndarray | None, width: int = 720):
    """One PIL panel per explanation: header, modality bars, image/tokens/audio attributions."""
    from PIL import Image, ImageDraw

    blocks: list[Image.Image] = []
    header = Image.new("RGB", (width, 24 + 18 * len(explanation.modality_totals)), "white")
    draw = ImageDraw.Draw(header)
    probability = explanation.probabilities[explanation.target]
    draw.text(
        (8, 4), f"{method_label(explanation.method)}: class '{explanation.target_name}' (p={probability:.3f})", fill="black"
    )
    limit = symmetric_range(np.array(list(explanation.modality_totals.values())))
    for row, (modality, value) in enumerate(explanation.modality_totals.items()):
        y = 24 + 18 * row
        draw.text((8, y), f"{modality:<6} {value:+.4f}", fill="black")
        centre = 360
        length = int(300 * value / limit)
        draw.rectangle(
            [min(centre, centre + length), y + 3, max(centre, centre + length), y + 13],
            fill=MODALITY_COLORS.get(modality, PALETTE[0]),
        )
    blocks.append(header)
    if explanation.image is not None and image is not None:
        side = 240
        base = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB").resize((side, side))
        heat = Image.fromarray(_diverging_rgb(np.asarray(explanation.image))).resize((side, side))
        row_image = Image.new("RGB", (width, side + 8), "white")
        row_image.paste(base, (8, 4))
        row_image.paste(Image.blend(base, heat, 0.6), (16 + side, 4))
        blocks.append(row_image)
    if explanation.tokens is not None:
        text_row = Image.new("RGB", (width, 60), "white")
        draw = ImageDraw.Draw(text_row)
        x, y = 8, 6
        colours = _diverging_rgb(np.array([s for _, s in explanation.tokens] or [0.0]))
        for (token, _), colour in zip(explanation.tokens, colours, strict=False):
            box = draw.textbbox((x, y), token)
            if box[2] > width - 8:
                x, y = 8, y + 20
                box = draw.textbbox((x, y), token)
            draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=tuple(int(c) for c in colour))
            draw.text((x, y), token, fill="black")
            x = box[2] + 8
        blocks.append(text_row)
    if explanation.audio is not None and explanation.audio_spectrogram is not None:
        spectrogram = np.asarray(explanation.audio_spectrogram)
        grey = (spectrogram - spectrogram.min()) / max(np.ptp(spectrogram), 1e-9)
        grey_rgb = (255 - 255 * np.repeat(grey[..., None], 3, axis=2)).astype(np.uint8)
        size = (width - 16, 160)
        base = Image.fromarray(grey_rgb[::-1]).resize(size)
        heat = Image.fromarray(_diverging_rgb(np.asarray(explanation.audio))[::-1]).resize(size)
        audio_row = Image.new("RGB", (width, size[1] + 24), "white")
        audio_row.paste(Image.blend(base, heat, 0.55), (8, 4))
        end = float(explanation.audio_times[-1]) if explanation.audio_times is not None else 0.0
        ImageDraw.Draw(audio_row).text(
            (8, size[1] + 8), f"0 s ... {end:.2f} s (low frequencies at the bottom)", fill="black"
        )
        blocks.append(audio_row)
    panel = Image.new("RGB", (width, sum(b.height for b in blocks)), "white")
    y = 0
    for block in blocks:
        panel.paste(block, (0, y))
        y += block.height
    return panel


def explanation_png(explanations: list[Explanation], image: np.ndarray | None = None) -> bytes:
    """A static PNG of explanations (stacked panels), drawn with PIL; no matplotlib, no browser.

    Args:
        explanations: results to draw, one panel each.
        image: the explained image, for the overlay (``None`` skips it).
    """
    import io

    from PIL import Image

    panels = [_panel(e, image) for e in explanations]
    sheet = Image.new("RGB", (max(p.width for p in panels), sum(p.height for p in panels) + 8 * len(panels)), "white")
    y = 0
    for panel in panels:
        sheet.paste(panel, (0, y))
        y += panel.height + 8
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()
