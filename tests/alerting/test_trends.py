"""The backlog trend and time to loss on hand-made series: steady drain, steady growth, a spike and
its drain, a stuck consumer, noisy readings and gaps (definitions: README, "Trend and time to loss")."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.alerting import trends

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = 86400
RETENTION = 4 * DAY


def minutes(values, end=T):
    """(time, value) readings one minute apart, the last at `end`."""
    return [(end - timedelta(minutes=len(values) - 1 - i), v) for i, v in enumerate(values)]


def drain(values, end=T, backlog=None):
    return trends.drain(minutes(values, end), values[-1] if backlog is None else backlog, at=end)


# --- the backlog trend ---------------------------------------------------------------------------------


def test_it_reads_a_steady_drain_and_its_eta():
    d = drain([600, 550, 500, 450, 400, 350, 300])
    assert d.rate == pytest.approx(-50) and d.eta_minutes == pytest.approx(6)
    assert d.label == "drains in ~6 min"


def test_it_reads_a_steady_growth():
    d = drain([100, 135, 170, 205, 240])
    assert d.rate == pytest.approx(35) and d.label == "growing +35/min"


def test_it_follows_the_live_backlog_through_a_spike_and_its_drain():
    # Twenty minutes of a spike building (the history), then the drain the live readings show:
    # 894 → 791 → 695 → 589 → 486. The trend is the drain, not the spike behind it.
    history = [200 + 35 * i for i in range(20)]  # up to 865
    live = [894, 791, 695, 589, 486]
    d = drain(history + live)
    assert d.rate == pytest.approx(-102, abs=3) and d.label.startswith("drains in ~")
    # As the spike begins, the trend follows it within the window.
    rising = drain([100] * 20 + [100, 335, 570, 805])
    assert rising.rate == pytest.approx(235, rel=0.05)


def test_the_sign_is_what_the_newest_readings_did():
    # A turn inside the window: the trend is the movement since the turn, whatever came before it.
    assert drain([500, 800, 900, 700, 450]).rate == pytest.approx(-225)
    assert drain([500, 800, 900, 850, 700]).rate == pytest.approx(-100)
    assert drain([900, 600, 500, 650, 950]).rate == pytest.approx(225)
    rng = random.Random(3)
    for _ in range(200):
        values = [rng.randint(0, 2000) for _ in range(6)]
        d = drain(values)
        noise = max(trends.NOISE_MESSAGES, trends.STEP_NOISE * max(values[1:]))
        last_move = next((v - u for u, v in zip(values[-2::-1], values[::-1]) if abs(v - u) > noise), 0)
        assert d.rate == 0 or (d.rate > 0) == (last_move > 0)


def test_a_slow_steady_growth_shows_over_a_longer_window_and_a_finished_drain_does_not():
    # A capped consumer: +2.4/min on ~800, within jitter over 5 minutes, plain over 20.
    slow = drain([750 + 2.4 * i for i in range(25)])
    assert slow.rate == pytest.approx(2.4, rel=0.05) and slow.label == "growing +2/min"
    # A spike drained 10 minutes ago and flat since: steady, not "draining".
    assert drain([900 - 80 * i for i in range(10)] + [180] * 10).label == "steady"


def test_noisy_readings_of_a_steady_backlog_are_steady():
    rng = random.Random(7)
    for _ in range(50):
        values = [1000 + rng.randint(-15, 15) for _ in range(6)]
        assert drain(values).label == "steady"
    assert drain([40, 41, 40, 40]).label == "steady"


def test_an_empty_queue_and_no_readings_say_so():
    assert drain([0, 0, 0]).label == "empty"
    assert trends.drain([], backlog=None, at=T).label == "no data"
    assert trends.drain([], backlog=300, at=T).label == "trend unknown"


def test_a_gap_leaves_the_trend_unknown_rather_than_guessed():
    # The last readings are 30 minutes old: nothing in the live window.
    old = minutes([100, 200, 300, 400], end=T - timedelta(minutes=30))
    d = trends.drain(old, backlog=400, at=T)
    assert d.rate is None and d.label == "trend unknown"
    # One reading missing inside the window changes nothing.
    gappy = [(t, v) for t, v in minutes([600, 550, 500, 450, 400, 350]) if v != 450]
    assert trends.drain(gappy, backlog=350, at=T).rate == pytest.approx(-50)


def test_the_window_widens_for_long_poll_intervals():
    every_ten = [(T - timedelta(minutes=10 * (3 - i)), v) for i, v in enumerate([100, 200, 300, 400])]
    assert trends.drain(every_ten, backlog=400, at=T).rate is None  # one reading in 5 minutes
    assert trends.drain(every_ten, backlog=400, at=T, window_minutes=20).rate == pytest.approx(10)


# --- time to loss ----------------------------------------------------------------------------------------


def ages(values, end=T):
    return minutes(values, end)


def test_a_stuck_consumer_loses_messages_when_the_oldest_reaches_the_retention():
    # The oldest message is 1 h old and ages a minute a minute: it expires in retention − 1 h.
    loss = trends.time_to_loss(ages([3600 - 60 * (9 - i) for i in range(10)]), 4 * 3600, T, queued=500)
    assert loss.known and loss.seconds == pytest.approx(3 * 3600)
    # Read five minutes later without a new reading: five minutes less.
    later = trends.time_to_loss(ages([3600 - 60 * (9 - i) for i in range(10)]), 4 * 3600, T + timedelta(minutes=5), 500)
    assert later.seconds == pytest.approx(3 * 3600 - 300)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9, 1.0, 2.0])
def test_time_to_loss_never_exceeds_what_the_retention_leaves_the_oldest_message(rate):
    age_now = 2 * DAY
    values = [age_now - rate * 60 * (9 - i) for i in range(10)]
    loss = trends.time_to_loss(ages(values), RETENTION, T, queued=10_000)
    assert loss.known and loss.seconds <= RETENTION - age_now + 1e-6


def test_no_loss_in_sight_when_the_backlog_drains_before_the_oldest_expires():
    climbing = ages([3 * DAY + 60 * i for i in range(10)])
    # 894 messages draining at 100/min: empty in 9 minutes, the oldest has most of a day left.
    assert trends.time_to_loss(climbing, RETENTION, T, queued=894, drain_eta_minutes=8.94) == trends.Loss(True)
    # Draining too slowly to beat the retention: the loss stands.
    slow = trends.time_to_loss(climbing, RETENTION, T, queued=894, drain_eta_minutes=3 * 24 * 60)
    assert slow.seconds == pytest.approx(DAY - 540)


def test_no_loss_when_the_age_falls_or_the_queue_is_empty_and_now_when_it_is_past():
    assert trends.time_to_loss(ages([900, 600, 300, 60]), RETENTION, T, queued=50) == trends.Loss(True)
    assert trends.time_to_loss(ages([0, 0, 0]), RETENTION, T, queued=0) == trends.Loss(True)
    assert trends.time_to_loss([], RETENTION, T, queued=0) == trends.Loss(True)
    assert trends.time_to_loss(ages([RETENTION, RETENTION]), RETENTION, T, queued=5) == trends.Loss(True, 0.0)


def test_an_unknown_age_or_retention_is_unknown_not_safe():
    assert trends.time_to_loss([], RETENTION, T, queued=300) == trends.Loss(False)
    assert trends.time_to_loss(ages([60, 120]), None, T, queued=300) == trends.Loss(False)
    stale = ages([3600, 3660], end=T - timedelta(hours=1))  # CloudWatch has said nothing for an hour
    assert trends.time_to_loss(stale, RETENTION, T, queued=300) == trends.Loss(False)


def test_a_single_age_reading_is_read_as_the_oldest_message_still_waiting():
    loss = trends.time_to_loss(ages([DAY]), RETENTION, T, queued=40)
    assert loss.known and loss.seconds == pytest.approx(3 * DAY)
