from piccolo.columns import Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class ProbeMark(Table, tablename="probe_mark"):
    """One row per thing the probe saw: a job run, an event, a demo load."""

    kind = Varchar(length=50)
    party_id = Integer(null=True, default=None)
    detail = Text(default="")
    at = Timestamptz(default=TimestamptzNow())
