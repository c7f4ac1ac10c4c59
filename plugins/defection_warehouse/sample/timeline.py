"""Calendar arithmetic in epoch seconds (UTC) and fast text formatting of timestamps."""

from __future__ import annotations

import calendar
from datetime import date

DAY = 86_400
HOUR = 3_600
MINUTE = 60
_ORD0 = date(1970, 1, 1).toordinal()


def day_ts(d: date) -> int:
    """Epoch seconds of a date's midnight UTC."""
    return (d.toordinal() - _ORD0) * DAY


def ts_date(ts: int) -> date:
    return date.fromordinal(_ORD0 + ts // DAY)


def month_bounds(start: int, step_months: int, until: int) -> list[int]:
    """Billing period boundaries from `start`, every `step_months`, keeping the anchor day.

    Returns b0 = start, b1, ... up to and including the first boundary after `until`,
    so every period [b_k, b_k+1) that starts at or before `until` is complete.
    """
    d = ts_date(start)
    tod = start % DAY
    out = [start]
    k = 0
    while out[-1] <= until:
        k += step_months
        y, m = divmod(d.month - 1 + k, 12)
        y += d.year
        day = min(d.day, calendar.monthrange(y, m + 1)[1])
        out.append((date(y, m + 1, day).toordinal() - _ORD0) * DAY + tod)
    return out


class Calendar:
    """The sample window: `months` calendar months ending with end_date's month."""

    def __init__(self, months: int, end_date: date) -> None:
        idx = end_date.year * 12 + end_date.month - 1 - (months - 1)
        self.start_date = date(idx // 12, idx % 12 + 1, 1)
        self.end_date = end_date
        self.window_start = day_ts(self.start_date)
        self.horizon = day_ts(end_date) + DAY - 1  # end_date 23:59:59 UTC
        self.month_starts: list[int] = []
        self.month_lengths: list[int] = []
        for k in range(months):
            y, m = divmod(idx + k, 12)
            self.month_starts.append(day_ts(date(y, m + 1, 1)))
            self.month_lengths.append(calendar.monthrange(y, m + 1)[1])
        # Month-end days (midnight ts) that are on or before end_date: snapshot days.
        self.month_ends = [
            s + (n - 1) * DAY for s, n in zip(self.month_starts, self.month_lengths, strict=True)
            if s + (n - 1) * DAY <= self.horizon
        ]
        self._lo = self.start_date.toordinal() - _ORD0 - 400
        hi = end_date.toordinal() - _ORD0 + 800
        self._days = [date.fromordinal(_ORD0 + d).isoformat() for d in range(self._lo, hi)]

    def day_str(self, ts: int) -> str:
        i = ts // DAY - self._lo
        if 0 <= i < len(self._days):
            return self._days[i]
        return ts_date(ts).isoformat()

    def crm_ts(self, ts: int) -> str:
        """Text PostgreSQL reads as timestamptz: ``2025-03-04 10:15:00+00``."""
        d, s = divmod(ts, DAY)
        h, s = divmod(s, HOUR)
        m, s = divmod(s, MINUTE)
        i = d - self._lo
        ds = self._days[i] if 0 <= i < len(self._days) else ts_date(ts).isoformat()
        return f"{ds} {h:02d}:{m:02d}:{s:02d}+00"

    def iso_ts(self, ts: int) -> str:
        """ISO 8601 with the UTC offset: ``2025-03-04T10:15:00+00:00``."""
        d, s = divmod(ts, DAY)
        h, s = divmod(s, HOUR)
        m, s = divmod(s, MINUTE)
        i = d - self._lo
        ds = self._days[i] if 0 <= i < len(self._days) else ts_date(ts).isoformat()
        return f"{ds}T{h:02d}:{m:02d}:{s:02d}+00:00"
