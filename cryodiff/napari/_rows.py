"""Small Qt layout helpers the explorer's panels share."""

from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QLineEdit, QPushButton


def side_by_side(*widgets, stretch: bool = False) -> QHBoxLayout:
    """The widgets side by side (with ``stretch``, packed to the left)."""
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    if stretch:
        layout.addStretch(1)
    return layout


def with_browse_button(edit: QLineEdit, browse, tooltip: str = "choose a folder") -> QHBoxLayout:
    """``edit`` with a narrow "…" button that calls ``browse``."""
    button = QPushButton("…", toolTip=tooltip)
    button.setFixedWidth(28)
    button.clicked.connect(browse)
    layout = side_by_side(edit, button)
    layout.setStretch(0, 1)
    return layout
