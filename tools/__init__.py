"""Operator and developer tools: the `whatsapp-handler` CLI, `make dev`'s stack, migrations.

No deployed function imports this package, and no function archive carries it
(tests/terraform/test_packaging.py checks both); it imports ``shared`` freely.
"""
