"""Training shared by every engine: augmentation parameters (and the loop)."""
