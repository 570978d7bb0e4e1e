"""Human review in a real browser (Debian Chromium + Playwright) against the real review server.

A realism session answered by keyboard, a curation page answered by clicks, a server killed mid-session
and restarted, the report checked against a computation by hand, the curated export, and the refusals.
"""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, files_under, run_entry

TRIALS = 10


@pytest.fixture(scope="module")
def dataset(session_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("review") / "ds"
    done = run_entry("generate.py", f"run_id={session_runs.run_ids['dcgan']}", f"out={out}", "num_samples=40",
                     "format=npz", "progress=false", "card.eval_samples=0", "memorization.enabled=false",
                     root=session_runs.root)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


class Server:
    """``python review.py ...`` in its own process, at the URL it prints."""

    def __init__(self, root: Path, *args: str) -> None:
        env = {**os.environ, "SYNTHSET_ROOT": str(root)}
        env.pop("MLFLOW_TRACKING_URI", None)
        self.proc = subprocess.Popen([sys.executable, str(REPO / "review.py"), *args], cwd=root, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        printed = []
        for line in self.proc.stdout:  # log lines may come first; the URL line says where to go
            printed.append(line)
            match = re.search(r"(http://\S+)", line)
            if match:
                break
        else:
            raise AssertionError("the review server printed no URL:\n" + "".join(printed)[-3000:])
        self.url, _, query = match.group(1).partition("?")
        self.url = self.url.rstrip("/")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/" + (f"?{query}" if query else ""), timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the review server did not answer")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromium") and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield launched
        launched.close()


def rows(dataset: Path, query: str) -> list[tuple]:
    with sqlite3.connect(dataset / "review.sqlite") as db:
        return db.execute(query).fetchall()


def answer_by_keyboard(page, count: int, start: int = 0) -> list[str]:
    """Press F (real) on even trials and J (fake) on odd ones; returns the answers given."""
    given = []
    for i in range(start, start + count):
        page.get_by_text(f"trial {i + 1} of {TRIALS}").wait_for(timeout=30_000)
        key = "f" if i % 2 == 0 else "j"
        page.keyboard.press(key)
        given.append("real" if key == "f" else "fake")
    return given


def test_a_realism_session_by_keyboard_survives_a_killed_server(session_runs, dataset: Path, browser, tmp_path: Path) -> None:
    server = Server(session_runs.root, f"dataset={dataset}", f"trials={TRIALS}", "mode=realism")
    page = browser.new_page(viewport={"width": 900, "height": 640})
    try:
        page.goto(server.url + "/")
        page.fill("#rater", "alice")
        page.click("#start-realism")
        given = answer_by_keyboard(page, 4)
        page.get_by_text(f"trial 5 of {TRIALS}").wait_for(timeout=30_000)
        if os.environ.get("SYNTHSET_DOCS_SCREENSHOT_REVIEW"):  # how docs/review.png is made
            page.wait_for_function("document.getElementById('sample')?.complete", timeout=10_000)
            page.screenshot(path=os.environ["SYNTHSET_DOCS_SCREENSHOT_REVIEW"])
    finally:
        server.kill()  # mid-session
    assert len(rows(dataset, "SELECT * FROM realism WHERE rater='alice'")) == 4

    server = Server(session_runs.root, f"dataset={dataset}", f"trials={TRIALS}", "mode=realism", "exposure_ms=300")
    try:
        page.goto(server.url + "/")
        page.fill("#rater", "alice")
        page.click("#start-realism")  # the same rater comes back to the same session, at trial 5
        given += answer_by_keyboard(page, TRIALS - 4, start=4)
        score = page.locator("#score").inner_text(timeout=30_000)
        page.goto(server.url + "/")  # a second rater, whose session hides each image after 300 ms
        page.fill("#rater", "carol")
        page.click("#start-realism")
        # ``?.``: the start page has no #sample until the trial replaces it; a throwing predicate is not retried
        page.wait_for_function("document.getElementById('sample')?.classList.contains('hidden')", timeout=10_000)
    finally:
        server.stop()
    answered = rows(dataset, "SELECT position, kind, answer, correct FROM realism WHERE rater='alice' ORDER BY position")
    assert [answer for _, _, answer, _ in answered] == given
    right = sum(kind == answer for _, kind, answer, _ in answered)
    assert all(correct == (kind == answer) for _, kind, answer, correct in answered)
    assert f"You judged {right} of {TRIALS} images correctly" in score
    kinds = [kind for _, kind, _, _ in answered]
    assert kinds.count("real") == kinds.count("fake") == TRIALS // 2  # half generated, half real test images


def test_a_curation_page_by_clicks(session_runs, dataset: Path, browser) -> None:
    server = Server(session_runs.root, f"dataset={dataset}", "mode=curation")
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(server.url + "/")
        page.fill("#rater", "bob")
        page.click("#start-curation")
        cards = page.locator(".card")
        cards.first.wait_for(timeout=30_000)
        assert cards.count() == 4  # class 0 of 40 balanced images
        for i, verdict in enumerate(["ok", "wrong class", "defective", "ok"]):
            cards.nth(i).get_by_role("button", name=verdict, exact=True).click()
            page.wait_for_function(f"document.querySelectorAll('.card')[{i}].className !== 'card '")
    finally:
        server.stop()
    verdicts = rows(dataset, "SELECT item, label, verdict FROM curation WHERE rater='bob' ORDER BY item")
    assert [v for _, _, v in verdicts] == ["ok", "wrong_class", "defective", "ok"]
    assert {label for _, label, _ in verdicts} == {0}


def test_the_report_matches_a_computation_by_hand_and_goes_into_the_card(session_runs, dataset: Path) -> None:
    done = run_entry("review.py", f"dataset={dataset}", "report=true", root=session_runs.root)
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads((dataset / "synthset.json").read_text())
    human = card["human_evaluation"]
    trials = rows(dataset, "SELECT kind, correct FROM realism")
    by_hand = 1 - sum(c for _, c in trials) / len(trials)
    assert human["realism"]["error_rate"]["rate"] == pytest.approx(by_hand)
    fakes = [c for k, c in trials if k == "fake"]
    assert human["realism"]["error_rate_generated"]["rate"] == pytest.approx(1 - sum(fakes) / len(fakes))
    low, high = human["realism"]["error_rate"]["low"], human["realism"]["error_rate"]["high"]
    assert low <= by_hand <= high and high - low > 0
    assert human["curation"]["per_class"]["0"]["rejection_rate"] == pytest.approx(0.5)
    readme = (dataset / "README.md").read_text()
    assert "## Human evaluation" in readme and "HYPE" in readme and "| 0 | 4 | 2 | 50.0 % |" in readme
    assert human["run_id"]


def dataset_state(folder: Path) -> dict:
    """The folder's files, leaving out sqlite's transient journal files beside review.sqlite."""
    return {k: v for k, v in files_under(folder).items() if not k.endswith(("-wal", "-shm"))}


def test_export_drops_the_rejected_images_and_leaves_the_source_alone(session_runs, dataset: Path, tmp_path: Path) -> None:
    before = dataset_state(dataset)
    target = tmp_path / "curated"
    done = run_entry("review.py", f"dataset={dataset}", f"export={target}", root=session_runs.root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert dataset_state(dataset) == before
    card = json.loads((target / "synthset.json").read_text())
    assert card["spec"]["num_samples"] == 38 and card["class_counts"]["0"] == 2
    assert "curated by 1 raters" in (target / "README.md").read_text()
    from synthset.generation.readers import load_card, read_dataset

    assert len(read_dataset(target, load_card(target))[0]) == 38


def test_requests_outside_the_dataset_folder_or_without_the_token_are_refused(session_runs, dataset: Path) -> None:
    server = Server(session_runs.root, f"dataset={dataset}", "mode=curation", "token=secret")
    base = server.url
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/files/synthset.json")
        assert refused.value.code == 401
        assert urllib.request.urlopen(base + "/files/synthset.json?token=secret").status == 200
        for bad in ("/files/../synthset.json", "/files/%2E%2E/%2E%2E/etc/passwd", "/files//etc/passwd",
                    "/files/..%2F..%2Fetc%2Fpasswd", "/image/fake/99999"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + bad + "?token=secret")
            assert refused.value.code in (403, 404) and "root:" not in refused.value.read().decode()
    finally:
        server.stop()


def test_an_unlabeled_dataset_is_curated_per_image_only(root: Path) -> None:
    assert run_entry("train.py", "model=dcgan", "model.width=8", "trainer.max_steps=4", "trainer.enable_progress_bar=false",
                     "callbacks.sample_grid.every_n_steps=100", root=root).returncode == 0
    out = root / "unlabeled"
    assert run_entry("generate.py", "num_samples=12", f"out={out}", "progress=false", "card.eval_samples=0",
                     root=root).returncode == 0
    server = Server(root, f"dataset={out}", "mode=curation")
    try:
        page = urllib.request.urlopen(server.url + "/curation?rater=dana&label=-1").read().decode()
        assert page.count('data-verdict="defective"') == 12 and 'data-verdict="wrong_class"' not in page
        form = urllib.parse.urlencode({"rater": "dana", "item": 0, "verdict": "wrong_class"}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + "/curation/verdict", data=form)
        assert refused.value.code == 400
    finally:
        server.stop()


def free_port_in_use():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_bad_review_input_is_one_sentence(session_runs, dataset: Path, tmp_path: Path) -> None:
    taken = free_port_in_use()
    try:
        cases = [([f"dataset={tmp_path}"], "is not a synthset dataset"),
                 ([f"dataset={dataset}", f"port={taken.getsockname()[1]}"], "cannot be used"),
                 ([f"dataset={dataset}", "host=0.0.0.0"], "needs an access token"),
                 ([f"dataset={dataset}", "mode=vote"], "mode=vote is unknown"),
                 ([f"dataset={dataset}", "trials=1"], "trials=1 must be an integer of at least 2")]
        for args, fragment in cases:
            result = run_entry("review.py", *args, root=session_runs.root)
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert result.returncode == 2 and len(errors) == 1 and fragment in errors[0], result.stderr[-2000:]
    finally:
        taken.close()
