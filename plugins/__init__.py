"""The built-in plugins of cxr-harness, installed as ``harness_plugins``.

They are registered through the ``harness`` entry-point group, exactly like third-party
plugins; nothing in the core imports them by name.
"""
