"""Training shared by every engine: the loop, its schedule and checkpoints, the optimizer and
loss table, augmentation, and the framework-free helpers engines use. Engines provide the
primitives of ``harness.plugin.engine`` only."""
