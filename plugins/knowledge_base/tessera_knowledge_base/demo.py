"""Demo data of the knowledge base."""

from typing import Any


async def load(ctx: Any) -> None:
    return None
