"""CLI commands, one module each; every module registers on ``imggate._app.app``."""
