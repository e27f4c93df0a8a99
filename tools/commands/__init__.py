"""One module per `whatsapp-handler` subcommand (discovered by tools/cli.py)."""
