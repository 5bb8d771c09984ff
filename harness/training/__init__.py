"""Training shared by every engine: the loop, its schedule and checkpoints, the optimizer and
loss table, and augmentation parameters. Framework-free: engines provide primitives only
(see ``harness.training.engine``)."""
