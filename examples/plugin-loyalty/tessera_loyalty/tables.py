"""The plugin's tables; names carry the ``loyalty_`` prefix."""

from piccolo.columns import Boolean, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class LoyaltyAward(Table, tablename="loyalty_award"):
    """Points a party earned; they count towards the balance until they expire."""

    party_id = Integer(index=True)
    points = Integer()
    reason = Varchar(length=200, default="")
    awarded_by = Integer(null=True, default=None)
    awarded_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz(default=TimestamptzNow())
    expired = Boolean(default=False)


TABLES = [LoyaltyAward]
