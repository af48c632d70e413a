"""Is this a plausible mammogram? Cheap checks on what the crop stage reads anyway.

The NYU models expect a 16-bit PNG of 12- to 16-bit values with a zero (black) background around a
brighter breast: the crop thresholds at zero and the window search counts non-zero pixels. An image
that breaks these assumptions is still cropped and predicted - the user may know better - but the run
says so, per image, in ``warnings.csv`` and in the report. The checks and their thresholds:

* **all white** - at least :data:`MAX_SATURATED_FRACTION` of the pixels sit at the image's maximum (or
  every pixel has the same value): an over-exposed, blank or mis-scaled image;
* **inverted polarity** - fewer than :data:`MIN_ZERO_FRACTION` of the pixels are zero *and* the median of
  the pixels along the image's four edges (mostly background in a mammogram) is at least
  :data:`INVERTED_EDGE_LEVEL` of the maximum: a bright background, typically MONOCHROME1 data that was
  not inverted;
* **no zero background** - fewer than :data:`MIN_ZERO_FRACTION` of the pixels are zero (but the edges
  are not bright): background noise or an offset, so the crop cannot separate breast from background;
* **8-bit data** - an 8-bit PNG, a 16-bit PNG whose values never exceed 255, or one with at most
  :data:`MAX_8BIT_LEVELS` distinct grey levels (8-bit data rescaled to 16 bits).

On the reference mammograms and the synthetic data at least 20% of the pixels are zero, the edges'
median is 0, at most 0.05% of the pixels are at the maximum and there are thousands of grey levels, so
none of these fire there.
"""

from __future__ import annotations

import numpy as np

MAX_SATURATED_FRACTION = 0.9
MIN_ZERO_FRACTION = 0.01
INVERTED_EDGE_LEVEL = 0.5
MAX_8BIT_LEVELS = 256


def plausibility_warnings(image: np.ndarray) -> list[str]:
    """Why ``image`` (2-D, as stored) does not look like a mammogram the models expect; empty if it does."""
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        return []
    found = []
    maximum = int(image.max())
    zero_fraction = float(np.count_nonzero(image == 0)) / image.size
    saturated = float(np.count_nonzero(image == maximum)) / image.size
    if maximum > 0 and (saturated >= MAX_SATURATED_FRACTION or int(image.min()) == maximum):
        # Nothing else says more about such an image.
        return [f"all white: {saturated:.0%} of the pixels are at the maximum value {maximum}"]
    if zero_fraction < MIN_ZERO_FRACTION:
        edges = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
        edge_level = float(np.median(edges))
        if maximum > 0 and edge_level >= INVERTED_EDGE_LEVEL * maximum:
            found.append(f"inverted polarity: the background is bright (median edge value {edge_level:g} of "
                         f"maximum {maximum}) and only {zero_fraction:.1%} of the pixels are zero; was "
                         "MONOCHROME1 data left uninverted?")
        else:
            found.append(f"no zero background: only {zero_fraction:.1%} of the pixels are zero, so the crop cannot "
                         "separate the breast from the background")
    if image.dtype == np.uint8:
        found.append("8-bit PNG: the models expect 16-bit images of 12- to 16-bit values")
    elif maximum <= 255:
        found.append(f"8-bit data in a 16-bit PNG: the values never exceed {maximum}")
    elif image.dtype == np.uint16:
        levels = int(np.count_nonzero(np.bincount(image.ravel(), minlength=1)))
        if levels <= MAX_8BIT_LEVELS:
            found.append(f"only {levels} distinct grey levels: 8-bit data rescaled to 16 bits?")
    return found
