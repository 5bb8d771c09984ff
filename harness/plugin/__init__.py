"""The plugin contract: what plugins register, the hooks, and the registry."""
