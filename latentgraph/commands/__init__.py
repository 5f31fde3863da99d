"""Subcommands of the ``latentgraph`` command, one module each.

A subcommand module defines ``HELP`` (a one-line description),
``configure(parser)`` (adds its options to an :class:`argparse.ArgumentParser`)
and ``run(args) -> int`` (does the work, returns the exit status). It imports
heavy dependencies inside ``run`` so that ``latentgraph --help`` stays fast.
:mod:`latentgraph.cli` maps names to modules and imports them lazily.
"""
