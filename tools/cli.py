"""`whatsapp-handler`: the operator and developer command line.

Each subcommand is a module in tools/commands/ exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; modules import their heavy
dependencies inside ``run`` so `whatsapp-handler --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import tools.commands
from shared.settings import SettingsError


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="whatsapp-handler", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules: dict[str, object] = {}
    for info in sorted(pkgutil.iter_modules(tools.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"tools.commands.{info.name}")
        name = getattr(module, "NAME", info.name.replace("_", "-"))
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        modules[name] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    module = modules[args.command]
    try:
        return int(module.run(args))  # type: ignore[attr-defined]
    except SettingsError as error:
        print(f"whatsapp-handler: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
