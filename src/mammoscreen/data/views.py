"""The four standard screening views, in the official order (exam lists, predictions.csv rows)."""

VIEWS: tuple[str, ...] = ("L-CC", "R-CC", "L-MLO", "R-MLO")
