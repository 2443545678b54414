from datetime import timedelta

import pytest

from spatiallab.core.templatetags.spatial import duration


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "–"), (0, "0 s"), (44.6, "45 s"), (200, "3 min 20 s"), (timedelta(hours=2, minutes=5), "2 h 05 min"),
     (timedelta(days=1, seconds=59), "24 h 00 min")],
)
def test_duration_reads_like_people_write_it(value, text):
    assert duration(value) == text
