"""matplotlib, set up once for files (no display), and the colours every plot shares."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import BinaryIO

KEPT_COLOR = "#3b7dd8"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reason_colors(reasons: list[str]) -> dict[str, tuple]:
    """A colour per drop reason, in the order given: tab20 without its blues (kept is blue), the dark
    shades first, then the light ones, 18 distinct colours."""
    tab20 = pyplot().get_cmap("tab20").colors
    palette = [tab20[i] for i in (*range(2, 20, 2), *range(3, 20, 2))]
    return {r: palette[i % len(palette)] for i, r in enumerate(reasons)}


def save(fig, target: str | Path | BinaryIO, layout: bool = True) -> None:
    """Write the figure as a PNG (to a path or a file object) and close it."""
    if layout:
        fig.tight_layout()
    fig.savefig(target, format="png", dpi=110, metadata={"Software": None})
    pyplot().close(fig)


def png_base64(fig, layout: bool = True) -> str:
    """The figure as a base64 PNG, for an <img src="data:..."> of a one-file page."""
    buffer = io.BytesIO()
    save(fig, buffer, layout)
    return base64.b64encode(buffer.getvalue()).decode()
