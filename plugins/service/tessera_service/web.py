"""Web pages of the service plugin."""

HANDLERS: list[object] = []
