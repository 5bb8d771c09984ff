"""Records to pixels: the image cache and the preparation of a suite's data and folds."""
