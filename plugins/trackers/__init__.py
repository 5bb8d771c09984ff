"""Built-in experiment trackers: ``mlflow`` and ``tensorboard`` (each an optional extra)."""
