"""Demo data of the marketing plugin."""

from typing import Any


async def load(ctx: Any) -> None:
    return None
