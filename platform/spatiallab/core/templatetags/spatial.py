from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def duration(value) -> str:
    """A timedelta or seconds as people read it: '45 s', '3 min 20 s', '2 h 05 min'; '–' when unknown."""
    if value is None or value == "":
        return "–"
    seconds = int(round(value.total_seconds() if isinstance(value, timedelta) else float(value)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
