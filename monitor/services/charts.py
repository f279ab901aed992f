"""The digest chart: posts per hour of the period and the last 14 days, as one PNG.

Rendered with matplotlib's Agg backend (no display, no GUI toolkit) from the
figures of :mod:`monitor.services.digest`, so the email, the preview and
``/stats`` show exactly the same picture.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from monitor.services.digest import Digest  # noqa: E402

BAR_COLOUR = "#1f4e79"
TODAY_COLOUR = "#c55a11"


def digest_chart_png(digest: Digest) -> bytes:
    """Two bar charts stacked: posts per local hour, and posts per day over 14 days."""
    # Fixed margins: an automatic layout engine costs more than the drawing itself.
    figure = Figure(figsize=(8, 5.2), dpi=100)
    figure.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.1, hspace=0.55)
    hourly_axes, daily_axes = figure.subplots(2, 1)

    hour_labels = [bucket.label for bucket in digest.hourly]
    hourly_axes.bar(range(len(hour_labels)), [b.posts for b in digest.hourly], color=BAR_COLOUR)
    hourly_axes.set_xticks(range(len(hour_labels)), hour_labels, rotation=90, fontsize=7)
    hourly_axes.set_title(f"Posts per hour, {digest.period.label} ({digest.timezone})", fontsize=10)
    hourly_axes.yaxis.set_major_locator(MaxNLocator(integer=True))

    long_range = len(digest.daily) > 366
    day_labels = [bucket.label if long_range else bucket.label[5:] for bucket in digest.daily]
    colours = [BAR_COLOUR] * (len(day_labels) - 1) + [TODAY_COLOUR]
    daily_axes.bar(range(len(day_labels)), [b.posts for b in digest.daily], color=colours)
    # A long range keeps one label in every ``step`` days, so they stay legible.
    step = max(1, -(-len(day_labels) // 31))
    ticks = list(range(0, len(day_labels), step))
    daily_axes.set_xticks(ticks, [day_labels[i] for i in ticks], rotation=45, fontsize=7)
    first, last = digest.daily[0].label, digest.daily[-1].label
    daily_axes.set_title(f"Posts per day, {first} to {last}", fontsize=10)
    daily_axes.yaxis.set_major_locator(MaxNLocator(integer=True))

    for axes in (hourly_axes, daily_axes):
        axes.spines[["top", "right"]].set_visible(False)
        axes.tick_params(axis="y", labelsize=8)
    if digest.incomplete:
        figure.suptitle("Incomplete: some sources were not watched all day", color=TODAY_COLOUR)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
