"""The shortest time between two runs of a CronJob schedule (the Kubernetes cron dialect).

A CronJob with `concurrencyPolicy: Allow` starts a run on every tick even while earlier runs go on,
so how many run at once is bounded by its Job's activeDeadlineSeconds over this interval. Fields:
minute hour day-of-month month day-of-week, with lists, ranges, steps, names (jan, mon) and the
@hourly/@daily/@weekly/@monthly/@yearly macros; a day matches when day-of-month or day-of-week does
if both are restricted (cron's rule), else when both match.
"""

from __future__ import annotations

import datetime
import itertools

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTHS = {m: i for i, m in enumerate(MONTH_NAMES, 1)}
WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (low, high, names) per field
FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, MONTHS),
    (0, 7, WEEKDAYS),
)
# Day-of-week and day-of-month patterns repeat within 28 years (the Gregorian weekday cycle, leap
# years included, between century exceptions): long enough to find the closest pair of run days.
SPAN_DAYS = 28 * 366


class ScheduleError(ValueError):
    pass


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    number = names.get(text.lower()) if text.isalpha() else None
    if number is None:
        if not text.isdigit():
            raise ScheduleError(f"{text!r} is not a number or a name")
        number = int(text)
    if not low <= number <= high:
        raise ScheduleError(f"{number} is outside {low}-{high}")
    return number


def _field(text: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    """The values a field matches and whether it is unrestricted (`*` or `?`)."""
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"bad step in {part!r}")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _value(first, low, high, names), _value(last, low, high, names)
        else:
            start = _value(base, low, high, names)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return values, text in ("*", "?")


def min_interval_seconds(schedule: str) -> int:
    """The shortest gap between two consecutive runs, in seconds."""
    text = MACROS.get(schedule.strip().lower(), schedule)
    parts = text.split()
    if len(parts) != 5:
        raise ScheduleError(f"{schedule!r} has {len(parts)} fields; a CronJob schedule has 5")
    (minutes, _), (hours, _), (days, any_day), (months, _), (weekdays, any_weekday) = (
        _field(p, low, high, names) for p, (low, high, names) in zip(parts, FIELDS, strict=True)
    )
    weekdays = {d % 7 for d in weekdays}  # 7 is Sunday too
    times = sorted(h * 60 + m for h, m in itertools.product(hours, minutes))
    within = min((b - a for a, b in itertools.pairwise(times)), default=None)

    def runs_on(day: datetime.date) -> bool:
        if day.month not in months:
            return False
        dom, dow = day.day in days, (day.isoweekday() % 7) in weekdays
        return (dom or dow) if not (any_day or any_weekday) else (dom and dow)

    start = datetime.date(2000, 1, 1)
    run_days = [n for n in range(SPAN_DAYS) if runs_on(start + datetime.timedelta(days=n))]
    if not run_days:
        raise ScheduleError(f"{schedule!r} never runs")
    day_gap = min((b - a for a, b in itertools.pairwise(run_days)), default=None)
    across = None if day_gap is None else day_gap * 24 * 60 - times[-1] + times[0]
    # One run in the whole span (a leap day on a given weekday): no overlap to speak of.
    return min((gap for gap in (within, across) if gap is not None), default=SPAN_DAYS * 24 * 60) * 60
