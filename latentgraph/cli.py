"""The ``latentgraph`` command.

Each subcommand lives in its own module under :mod:`latentgraph.commands`
and is imported only when it is needed (``latentgraph analyze`` imports
:mod:`latentgraph.commands.analyze` and nothing else). A subcommand module
defines three names:

* ``HELP``: a one-line description shown by ``latentgraph --help``;
* ``configure(parser)``: adds the subcommand's options to an
  :class:`argparse.ArgumentParser`;
* ``run(args) -> int``: does the work and returns the exit status.

A subcommand whose module cannot be imported is listed as unavailable, with
the reason, and does not stop the others from working.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence
from importlib import metadata

#: Subcommand name -> module implementing it (imported lazily).
COMMANDS: dict[str, str] = {
    "analyze": "latentgraph.commands.analyze",
    "train": "latentgraph.commands.train",
    "saliency": "latentgraph.commands.saliency",
    "zoo": "latentgraph.commands.zoo",
    "rank": "latentgraph.commands.rank",
}

#: Exit status for a run stopped by bad input (argparse uses the same).
EXIT_BAD_INPUT = 2
#: Exit status for a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_DATEFMT = "%H:%M:%S"

log = logging.getLogger("latentgraph")


def version() -> str:
    """The installed version of the package (``"unknown"`` when not installed)."""
    try:
        return metadata.version("latentgraph")
    except metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module("latentgraph"), "__version__", "unknown"))


def _load(name: str):
    """Import the module of subcommand ``name``; return ``(module, None)`` or
    ``(None, reason)`` when it cannot be imported or lacks the protocol."""
    try:
        module = importlib.import_module(COMMANDS[name])
    except Exception as error:  # a broken subcommand must not break the others
        return None, f"{type(error).__name__}: {error}"
    missing = [attr for attr in ("HELP", "configure", "run") if not hasattr(module, attr)]
    if missing:
        return None, f"module {COMMANDS[name]} lacks {', '.join(missing)}"
    return module, None


def _wanted(argv: Sequence[str]) -> list[str]:
    """The subcommands to import: the one named on the command line, or all
    of them when none is (to list them in the help)."""
    for arg in argv:
        if arg in COMMANDS:
            return [arg]
        if not arg.startswith("-"):
            break
    return list(COMMANDS)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser, with the subcommands that ``argv`` needs."""
    parser = argparse.ArgumentParser(
        prog="latentgraph",
        description="Latent geometry graphs of neural networks: build kNN similarity graphs "
        "of a batch's intermediate representations, measure how classes separate layer by "
        "layer, and train with graph losses.",
        epilog="Run 'latentgraph COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in _wanted(argv):
        module, reason = _load(name)
        if module is None:
            log.debug("subcommand %r unavailable: %s", name, reason)
            sub = subparsers.add_parser(name, help=f"(unavailable: {reason})")
            sub.set_defaults(_unavailable=reason)
            continue
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Send the package's log lines to stderr as ``HH:MM:SS LEVEL logger: message``."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (whitespace and line breaks collapsed).

    Example:
        >>> one_line(ValueError("bad\\n  value"))
        'bad value'
    """
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``latentgraph`` command; returns the exit status.

    Every error is reported as one ``ERROR`` log line, without a traceback
    (``--verbose`` shows it): bad input met while running (``ValueError``,
    ``TypeError``, a missing file) gives exit status 2; a non-finite training
    loss, a file-system error, exhausted memory or any other failure status 1;
    Ctrl-C status 130.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["latentgraph", *argv])
    setup_logging(args.verbose, args.quiet)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if hasattr(args, "_unavailable"):
        log.error("command %r is unavailable: %s", args.command, args._unavailable)
        return 1
    try:
        return int(args._run(args))
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError) as error:
        log.debug("traceback", exc_info=True)
        log.error("%s", one_line(error))
        return EXIT_BAD_INPUT
    except FloatingPointError as error:  # a diverged run: the trainer stops before the bad update
        log.debug("traceback", exc_info=True)
        log.error("%s (lower the learning rate or check the data)", one_line(error))
        return 1
    except KeyboardInterrupt:
        log.debug("traceback", exc_info=True)
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as error:  # permissions, a full disk, a name too long
        log.debug("traceback", exc_info=True)
        log.error("%s", one_line(error))
        return 1
    except MemoryError as error:
        log.debug("traceback", exc_info=True)
        log.error("out of memory%s; try a smaller batch or model", f" ({one_line(error)})" if str(error) else "")
        return 1
    except Exception as error:  # anything else still gets one line; --verbose shows where it came from
        log.debug("traceback", exc_info=True)
        log.error("%s: %s (run with --verbose for the traceback)", type(error).__name__, one_line(error)[:500])
        return 1


if __name__ == "__main__":
    sys.exit(main())
