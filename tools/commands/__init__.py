"""One module per `whatsapp-handler` subcommand (discovered by shared/cli.py)."""
