"""whatsapp-handler's common package: settings, data access, the pure core and adapters."""
