"""Web pages of the knowledge base (filled below)."""

HANDLERS: list[object] = []
