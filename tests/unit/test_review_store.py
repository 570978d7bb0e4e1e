"""The verdict store: an answer is kept once, and a rater's repeated image counts once in the results."""

from pathlib import Path

from synthset.review.store import Trial, VerdictStore


def test_a_repeated_trial_counts_once(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path / "review.sqlite")
    # The same generated image (item 7) appears twice in one plan, as a long session can draw it again.
    plan = [Trial(0, "fake", 7, 1), Trial(1, "real", 3, 1), Trial(2, "fake", 7, 1)]
    session = store.open_session("ann", 0, plan, None)
    assert store.open_session("ann", 0, plan, None) == session  # coming back reopens the same session
    store.answer(session, 0, "real")
    store.answer(session, 0, "fake")  # a resubmitted form (double click, back button) is ignored
    store.answer(session, 1, "real")
    store.answer(session, 2, "fake")
    assert store.session_answers(session) == [("fake", "real"), ("real", "real"), ("fake", "fake")]
    assert store.next_position(session) == 3
    # Results: image 7 counts once, with its first answer (wrong), beside the real image (right).
    assert sorted(store.realism_rows()) == [("ann", "fake", 1, 0), ("ann", "real", 1, 1)]


def test_an_answer_outside_the_plan_or_the_choices_is_not_stored(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path / "review.sqlite")
    session = store.open_session("ben", 0, [Trial(0, "fake", 1, 0)], 500)
    store.answer(session, 5, "real")
    store.answer(session, 0, "maybe")
    assert store.session_answers(session) == [] and store.session(session)["exposure_ms"] == 500
