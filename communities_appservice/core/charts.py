"""Charts the bot sends as images (matplotlib, drawn off-screen).

Names may be Hebrew, Arabic or Chinese. Text is drawn with DejaVu Sans (Latin, Hebrew,
Arabic, Cyrillic, shipped with matplotlib) falling back glyph by glyph to Noto Sans CJK SC
(shipped by `mplfonts`; only its font file is used). matplotlib lays text out left to
right, so right-to-left names are put in visual order first (python-bidi).
"""

from __future__ import annotations

import io
import threading
from importlib import resources

from bidi import get_display

CJK_FONT = "NotoSansCJKsc-Regular.otf"
_ready = threading.Lock()
_fonts: list[str] = []
_glyphs: set[int] = set()  # the code points the fonts can draw


def _setup() -> None:
    """Register the fonts with matplotlib, once."""
    with _ready:
        if _fonts:
            return
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        families = ["DejaVu Sans"]
        files: list[str] = [str(font_manager.findfont("DejaVu Sans"))]
        try:
            path = resources.files("mplfonts") / "fonts" / CJK_FONT
            with resources.as_file(path) as found:
                font_manager.fontManager.addfont(str(found))
                families.append(font_manager.FontProperties(fname=str(found)).get_name())
                files.append(str(found))
        except (ModuleNotFoundError, FileNotFoundError):
            pass  # CJK names then lose their CJK characters; everything else still reads
        for file in files:
            _glyphs.update(FT2Font(file).get_charmap())
        matplotlib.rcParams["font.family"] = families
        _fonts.extend(families)


def shown(text: str) -> str:
    """`text` in the order its characters are drawn (right-to-left runs reversed), without
    what no font can draw (emoji)."""
    _setup()
    drawable = "".join(c for c in text if ord(c) in _glyphs or c.isspace())
    return str(get_display(drawable.strip() or "?"))


def stacked_bars(title: str, labels: list[str], series: dict[str, list[int]], unit: str) -> bytes:
    """A PNG of stacked bars: one bar per label, one segment per series (in order)."""
    _setup()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    bottom = [0] * len(labels)
    for name, values in series.items():
        axes.bar(labels, values, bottom=bottom, label=shown(name))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title(shown(title))
    axes.set_ylabel(unit)
    axes.tick_params(axis="x", labelrotation=45)
    if series:
        axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
