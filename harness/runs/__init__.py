"""Run folders: their files, the runner that plans them and the worker that trains one."""
