"""The review web app (FastAPI + Jinja2): realism trials (HYPE) and curation pages, verdicts to sqlite.

Images are served by index from memory (``/image/<fake|real>/<i>``); files of the dataset folder by
``/files/<path>``, which refuses anything outside the folder. When a token is set (non-loopback
hosts), every request must carry it (``?token=`` once, then a cookie).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.templating import Jinja2Templates

from synthset.review.stats import plan_trials
from synthset.review.store import VERDICTS, VerdictStore

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TOKEN_COOKIE = "synthset_review_token"
PER_PAGE = 48


@dataclass
class ReviewData:
    """What the app shows: PNG bytes of generated and real images by index, their labels, the folder."""

    name: str
    folder: Path
    class_names: list[str]
    generated_png: Callable[[int], bytes]
    generated_labels: list[int]
    real_png: Callable[[int], bytes] | None
    real_labels: list[int]
    seed: int = 0
    trials: int = 100
    exposure_ms: int | None = None


def refusal(status: int, sentence: str) -> PlainTextResponse:
    return PlainTextResponse(sentence, status_code=status)


def inside(folder: Path, requested: str) -> Path | None:
    """The file ``requested`` names inside ``folder``, or None when it points anywhere else."""
    if requested.startswith(("/", "\\")) or ".." in Path(requested).parts:
        return None
    path = (folder / requested).resolve()
    return path if path.is_relative_to(folder.resolve()) and path.is_file() else None


def create_app(data: ReviewData, store: VerdictStore, token: str | None = None) -> FastAPI:
    app = FastAPI(title=f"synthset review: {data.name}", docs_url=None, redoc_url=None, openapi_url=None)
    add_token_check(app, token)
    add_realism_routes(app, data, store)
    add_curation_routes(app, data, store)
    add_file_routes(app, data)
    return app


def page(request: Request, data: ReviewData, template: str, **context) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, {"data": data, **context})


def add_token_check(app: FastAPI, token: str | None) -> None:
    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token is None:
            return await call_next(request)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
        if given != token:
            return refusal(401, "this review server needs its access token: open the URL it printed (with ?token=...).")
        response = await call_next(request)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response


def add_realism_routes(app: FastAPI, data: ReviewData, store: VerdictStore) -> None:
    """The start page and the realism trials: one image at a time, answered real or fake."""

    @app.get("/", response_class=HTMLResponse)
    def start(request: Request) -> HTMLResponse:
        return page(request, data, "start.html", realism=data.real_png is not None)

    @app.post("/start")
    def begin(rater: str = Form(...), mode: str = Form(...)) -> Response:
        rater = rater.strip()[:80]
        if not rater:
            return refusal(400, "a rater name is needed: type your name on the first page.")
        if mode == "curation":
            return RedirectResponse(f"/curation?rater={rater}&label={0 if data.class_names else -1}", status_code=303)
        if data.real_png is None:
            return refusal(400, "realism needs the real test images, which this server did not load; use mode=curation.")
        trials = plan_trials(data.seed, rater, data.trials, range(len(data.generated_labels)), range(len(data.real_labels)),
                             data.generated_labels, data.real_labels)
        session = store.open_session(rater, data.seed, trials, data.exposure_ms)
        return RedirectResponse(f"/realism/{session}", status_code=303)

    @app.get("/realism/{session}", response_class=HTMLResponse)
    def realism(request: Request, session: int) -> Response:
        info = store.session(session)
        if not info:
            return refusal(404, f"session {session} does not exist; start a new one on the first page.")
        position = store.next_position(session)
        if position >= info["trials"]:
            answers = store.session_answers(session)
            right = sum(kind == answer for kind, answer in answers)
            return page(request, data, "done.html", info=info, right=right, total=len(answers))
        trial = store.trial(session, position)
        return page(request, data, "realism.html", info=info, session=session, trial=trial, position=position)

    @app.post("/realism/{session}/{position}")
    def answer(session: int, position: int, answer: str = Form(...)) -> Response:
        store.answer(session, position, answer)
        return RedirectResponse(f"/realism/{session}", status_code=303)


def add_curation_routes(app: FastAPI, data: ReviewData, store: VerdictStore) -> None:
    """Per-class pages of generated images, each marked ok / wrong class / defective."""

    @app.get("/curation", response_class=HTMLResponse)
    def curation(request: Request, rater: str, label: int = -1, page_number: int = 0) -> Response:
        items = [i for i, lab in enumerate(data.generated_labels) if label < 0 or lab == label]
        shown = items[page_number * PER_PAGE : (page_number + 1) * PER_PAGE]
        verdicts = VERDICTS if data.class_names else tuple(v for v in VERDICTS if v != "wrong_class")
        return page(request, data, "curation.html", rater=rater, label=label, items=shown, page_number=page_number,
                    pages=max(1, -(-len(items) // PER_PAGE)), given=store.verdicts_of(rater), verdicts=verdicts)

    @app.post("/curation/verdict")
    def curate(rater: str = Form(...), item: int = Form(...), verdict: str = Form(...)) -> Response:
        if not 0 <= item < len(data.generated_labels) or verdict not in VERDICTS or (
                verdict == "wrong_class" and not data.class_names):
            return refusal(400, f"verdict {verdict!r} on image {item} is not one this page offers.")
        store.curate(rater.strip()[:80], item, data.generated_labels[item], verdict)
        return JSONResponse({"item": item, "verdict": verdict})


def add_file_routes(app: FastAPI, data: ReviewData) -> None:
    """Images by index from memory, and files inside the dataset folder (nothing outside it)."""

    @app.get("/image/{kind}/{item}")
    def image(kind: str, item: int) -> Response:
        source = {"fake": (data.generated_png, data.generated_labels), "real": (data.real_png, data.real_labels)}.get(kind)
        if source is None or source[0] is None or not 0 <= item < len(source[1]):
            return refusal(404, f"image {kind}/{item} does not exist in this review.")
        return Response(source[0](item), media_type="image/png")

    @app.get("/files/{requested:path}")
    def files(requested: str) -> Response:
        path = inside(data.folder, requested)
        if path is None:
            return refusal(403, f"{requested!r} is not a file inside the dataset folder; only files inside it are served.")
        return FileResponse(path)
