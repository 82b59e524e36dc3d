"""The train task, its callbacks, loggers, exact resume and sweep launchers."""
