"""CLI commands, one module each; every module registers on ``imggate._app.app``.

These modules do not use ``from __future__ import annotations``: typer reads each
command's signature with ``typing.get_type_hints``, which would ``eval`` every string
annotation of every command (~660 evaluations for the command list of ``imggate
--help``, a fifth of its run time: 0.147 s -> 0.115 s measured without them). Names
imported only for type checking are quoted where a signature uses them.
"""
