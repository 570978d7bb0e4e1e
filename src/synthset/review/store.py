"""Verdicts of human raters, committed to ``review.sqlite`` in the dataset folder as they are given.

A killed server loses no answered trial: every verdict is its own transaction. A repeated answer
(the same trial again, or the same image shown to the same rater in another session) counts once:
the first one.
"""

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DATABASE = "review.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, rater TEXT NOT NULL, seed INTEGER NOT NULL, trials INTEGER NOT NULL,
    exposure_ms INTEGER, created REAL NOT NULL, UNIQUE (rater, seed, trials));
CREATE TABLE IF NOT EXISTS trials (
    session_id INTEGER NOT NULL REFERENCES sessions(id), position INTEGER NOT NULL, kind TEXT NOT NULL,
    item INTEGER NOT NULL, label INTEGER NOT NULL, PRIMARY KEY (session_id, position));
CREATE TABLE IF NOT EXISTS realism (
    session_id INTEGER NOT NULL, position INTEGER NOT NULL, rater TEXT NOT NULL, kind TEXT NOT NULL,
    item INTEGER NOT NULL, label INTEGER NOT NULL, answer TEXT NOT NULL, correct INTEGER NOT NULL,
    answered REAL NOT NULL, PRIMARY KEY (session_id, position));
CREATE TABLE IF NOT EXISTS curation (
    rater TEXT NOT NULL, item INTEGER NOT NULL, label INTEGER NOT NULL, verdict TEXT NOT NULL,
    answered REAL NOT NULL, PRIMARY KEY (rater, item));
"""
ANSWERS = ("real", "fake")
VERDICTS = ("ok", "wrong_class", "defective")


@dataclass(frozen=True)
class Trial:
    position: int
    kind: str  # "real" (a test image) or "fake" (a generated one)
    item: int  # index into the test split or the dataset
    label: int


class VerdictStore:
    """One sqlite file; each call opens its own connection (the server may serve from several threads)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self.connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a verdict is on disk when the rater sees the next trial
            yield db
        finally:
            db.close()

    def open_session(self, rater: str, seed: int, trials: list[Trial], exposure_ms: int | None) -> int:
        """The rater's session for this seed (created with its trial plan the first time)."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM sessions WHERE rater=? AND seed=? AND trials=?",
                             (rater, seed, len(trials))).fetchone()
            if row is None:
                session = db.execute("INSERT INTO sessions (rater, seed, trials, exposure_ms, created) VALUES (?,?,?,?,?)",
                                     (rater, seed, len(trials), exposure_ms, time.time())).lastrowid
                db.executemany("INSERT INTO trials VALUES (?,?,?,?,?)",
                               [(session, t.position, t.kind, t.item, t.label) for t in trials])
            else:
                session = row[0]
            db.execute("COMMIT")
        return session

    def session(self, session_id: int) -> dict:
        with self.connect() as db:
            row = db.execute("SELECT rater, trials, exposure_ms FROM sessions WHERE id=?", (session_id,)).fetchone()
        return {"rater": row[0], "trials": row[1], "exposure_ms": row[2]} if row else {}

    def trial(self, session_id: int, position: int) -> Trial | None:
        with self.connect() as db:
            row = db.execute("SELECT position, kind, item, label FROM trials WHERE session_id=? AND position=?",
                             (session_id, position)).fetchone()
        return Trial(*row) if row else None

    def next_position(self, session_id: int) -> int:
        """The first trial of the session without an answer (the session's length when all are answered)."""
        with self.connect() as db:
            row = db.execute("""SELECT MIN(t.position) FROM trials t LEFT JOIN realism r
                                ON r.session_id = t.session_id AND r.position = t.position
                                WHERE t.session_id=? AND r.position IS NULL""", (session_id,)).fetchone()
            total = db.execute("SELECT trials FROM sessions WHERE id=?", (session_id,)).fetchone()[0]
        return total if row[0] is None else row[0]

    def answer(self, session_id: int, position: int, answer: str) -> None:
        trial, rater = self.trial(session_id, position), self.session(session_id).get("rater")
        if trial is None or answer not in ANSWERS:
            return
        with self.connect() as db:
            db.execute("INSERT OR IGNORE INTO realism VALUES (?,?,?,?,?,?,?,?,?)",
                       (session_id, position, rater, trial.kind, trial.item, trial.label, answer,
                        int(answer == trial.kind), time.time()))

    def session_answers(self, session_id: int) -> list[tuple[str, str]]:
        with self.connect() as db:
            return db.execute("SELECT kind, answer FROM realism WHERE session_id=? ORDER BY position",
                              (session_id,)).fetchall()

    def realism_rows(self) -> list[tuple[str, str, int, int]]:
        """(rater, kind, label, correct) of every answered trial; a rater's repeated image counts once (the first answer)."""
        with self.connect() as db:
            return db.execute("""SELECT rater, kind, label, correct FROM realism WHERE rowid IN
                                 (SELECT MIN(rowid) FROM realism GROUP BY rater, kind, item)
                                 ORDER BY rater, answered""").fetchall()

    def curate(self, rater: str, item: int, label: int, verdict: str) -> None:
        if verdict not in VERDICTS:
            return
        with self.connect() as db:  # a changed mind replaces the rater's own earlier verdict on that image
            db.execute("INSERT OR REPLACE INTO curation VALUES (?,?,?,?,?)", (rater, item, label, verdict, time.time()))

    def curation_rows(self) -> list[tuple[str, int, int, str]]:
        """(rater, item, label, verdict) of every curated image."""
        with self.connect() as db:
            return db.execute("SELECT rater, item, label, verdict FROM curation ORDER BY rater, item").fetchall()

    def verdicts_of(self, rater: str) -> dict[int, str]:
        with self.connect() as db:
            return dict(db.execute("SELECT item, verdict FROM curation WHERE rater=?", (rater,)).fetchall())
