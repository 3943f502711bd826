"""A small plot of a half-map FSC curve, for the explorer's selection panel."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class FscPlot(FigureCanvasQTAgg):
    """Matplotlib canvas showing one FSC curve against resolution, with the 0.143 line."""

    def __init__(self):
        super().__init__(Figure(figsize=(4.0, 1.9), dpi=100, layout="constrained"))
        self.setMinimumSize(280, 150)

    def show_curve(self, freqs: np.ndarray, curve: np.ndarray, apix: float, threshold: float,
                   resolution: float | None, title: str) -> None:
        """Plot ``curve`` over ``freqs`` (cycles/pixel; shown as 1/Å with voxel ``apix`` Å), the
        ``threshold`` line and, when finite, the ``resolution`` (Å) where the curve crosses it."""
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot()
        ax.plot(freqs[1:] / apix, curve[1:], color="#2a6fdb", lw=1.5)  # shell 0 (the mean) says nothing
        ax.axhline(threshold, color="#888888", lw=0.8, ls="--")
        ax.text(freqs[-1] / apix, threshold, f" {threshold:g}", fontsize=7, color="#555555", va="bottom", ha="right")
        if resolution is not None and np.isfinite(resolution):
            ax.axvline(1.0 / resolution, color="#e05050", lw=0.8)
        ax.set_ylim(-0.1, 1.05)
        ax.set_xlabel("spatial frequency (1/Å)", fontsize=7)
        ax.set_ylabel("FSC", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=8)
        self.draw_idle()
