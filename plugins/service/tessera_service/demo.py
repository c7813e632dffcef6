"""Demo data of the service plugin."""

from typing import Any


async def load(ctx: Any) -> None:
    return None
