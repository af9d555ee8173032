"""The QR code of the tracking link, as inline SVG (no style attribute: the CSP allows none)."""

from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(text: str, scale: int = 4) -> Markup:
    svg = segno.make(text, error="m").svg_inline(
        scale=scale, dark="#000", light="#fff", title="Mã QR tra cứu hồ sơ"
    )
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="Mã QR tra cứu hồ sơ" ', 1))
