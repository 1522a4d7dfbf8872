"""The digest chart: four small panels of the last days (active members, messages, orders,
revenue) as a PNG, rendered with matplotlib's Agg backend (no display, no pyplot state).

Readable on a phone: a square 1080 px image, large type, one series per panel. Chinese group
names and labels render with a CJK font registered explicitly with matplotlib's font
manager: first the Noto Sans CJK file shipped by the `cvttf-NotoSansCJK-Regular` PyPI package
(a dependency, so `make setup` installs it without root), else a system Noto CJK / WenQuanYi
font (the Docker image installs fonts-noto-cjk). `font_family()` tells which one was found.

matplotlib (with numpy) is imported on the first chart, not when the bot starts: it costs
about 50 MB of resident memory that a bot which never renders a chart should not carry.
"""

from __future__ import annotations

import glob
import io
import logging
import threading
from collections.abc import Sequence
from datetime import date
from functools import lru_cache

log = logging.getLogger(__name__)
_LOCK = threading.Lock()  # matplotlib's font caches are shared: one rendering at a time

SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/**/NotoSansCJK*-Regular.*",
    "/usr/share/fonts/**/NotoSansSC-Regular.*",
    "/usr/share/fonts/**/wqy-microhei.ttc",
    "/usr/share/fonts/**/wqy-zenhei.ttc",
)


def _packaged_font() -> str | None:
    try:
        import cvttf_NotoSansCJK_Regular as package
    except ImportError:
        return None
    try:
        return package.get_TTF_path()
    except FileNotFoundError:
        return None


def _system_font() -> str | None:
    for pattern in SYSTEM_FONTS:
        for path in sorted(glob.glob(pattern, recursive=True)):
            return path
    return None


def _matplotlib():
    """matplotlib on the Agg backend, imported on first use."""
    import matplotlib

    matplotlib.use("Agg")  # no display; pyplot is never used
    return matplotlib


@lru_cache(maxsize=1)
def font_family() -> str | None:
    """Register the CJK font with matplotlib once; its family name, or None if none found."""
    _matplotlib()
    from matplotlib import font_manager

    for path in (_packaged_font(), _system_font()):
        if not path:
            continue
        try:
            font_manager.fontManager.addfont(path)
            name = font_manager.FontProperties(fname=path).get_name()
        except Exception:  # pragma: no cover - an unreadable font file
            log.exception("could not load the CJK font %s", path)
            continue
        log.info("charts use the CJK font %s (%s)", name, path)
        return name
    log.warning("no CJK font found: Chinese text in charts will show as boxes")
    return None


def _families() -> list[str]:
    cjk = font_family()
    return [cjk, "DejaVu Sans"] if cjk else ["DejaVu Sans"]


def render_chart(
    title: str,
    days: Sequence[date],
    panels: Sequence[tuple[str, Sequence[float]]],
    *,
    subtitle: str = "",
) -> bytes:
    """A PNG with one small bar panel per (label, values) pair (up to 4, in a 2×2 grid)."""
    matplotlib = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with _LOCK:
        rc = {"font.family": _families(), "font.size": 17, "axes.unicode_minus": False}
        with matplotlib.rc_context(rc):
            figure = Figure(figsize=(9, 9), dpi=120, layout="constrained")
            FigureCanvasAgg(figure)
            figure.suptitle(title, fontsize=26, parse_math=False)  # "$5 off" is not TeX
            axes = figure.subplots(2, 2)
            positions = list(range(len(days)))
            step = max(len(days) // 4, 1)
            ticks = positions[::-1][::step][::-1]
            for ax, (label, values) in zip(axes.flat, panels, strict=False):
                ax.bar(positions, list(values), color="#2f7ed8", width=0.8)
                if values:
                    ax.bar(positions[-1:], list(values)[-1:], color="#f28f43", width=0.8)
                ax.set_title(label, fontsize=20, parse_math=False)
                ax.set_xticks(ticks, [f"{days[i]:%m-%d}" for i in ticks], fontsize=14)
                ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
                ax.tick_params(axis="y", labelsize=14)
                ax.spines[["top", "right"]].set_visible(False)
                ax.grid(axis="y", alpha=0.3)
            for ax in list(axes.flat)[len(panels) :]:
                ax.set_visible(False)
            if subtitle:
                figure.supxlabel(subtitle, fontsize=15, color="#555555", parse_math=False)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png")
    return buffer.getvalue()
