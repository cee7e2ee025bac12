"""The review page: stories awaiting review with their text and moments; approve, reject
(with a note) or edit a scene. Decisions go through `storygen_dagster.reviewing` (audit row,
runless `approved` check evaluation); story_review_sensor launches what follows.

Every request but the sign-in needs the reviewer's session; every post also needs the form's
CSRF token and a same-origin Origin. Inputs are validated before anything is written."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dagster as dg
import jinja2
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from storygen_dagster import reviewing
from storygen_dagster.domain.ids import InvalidStoryId, validate_story_id
from storygen_dagster.domain.models import MAX_SCENES
from storygen_dagster.review_app.security import COOKIE, NAME, Session, Signer, same_origin
from storygen_dagster.storage import reviews
from storygen_dagster.storage.edits import EditError
from storygen_dagster.storage.reviews import MAX_NOTE, ReviewError
from storygen_dagster.storage.writes import StoryNotFound

MAX_FIELD = 4000  # any form value longer than this is refused before it is parsed further
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it Chromium sends "Origin: null" on our own form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def create_app(engine: sa.Engine, instance: dg.DagsterInstance, token: str) -> Starlette:
    signer = Signer(token)
    templates = Jinja2Templates(
        env=jinja2.Environment(
            loader=jinja2.PackageLoader("storygen_dagster.review_app", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
    )

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(
            request, name, {"max_note": MAX_NOTE, **context}, status_code=status, headers=HEADERS
        )

    def refused(request: Request, exc: Refused) -> Response:
        return page(request, "message.html", exc.status, message=exc.message)

    def session_of(request: Request) -> Session | None:
        return signer.session(request.cookies.get(COOKIE))

    async def form_of(request: Request) -> dict[str, str]:
        form = await request.form(max_files=0, max_fields=10)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if any(len(v) > MAX_FIELD for v in values.values()):
            raise Refused(400, f"a field is longer than {MAX_FIELD} characters")
        return values

    async def checked_post(request: Request) -> tuple[Session, str, dict[str, str]]:
        """The reviewer, the story id and the form of a decision post, or Refused."""
        session = session_of(request)
        if session is None:
            raise Refused(403, "sign in with the reviewer token first")
        if not same_origin(request.headers.get("origin"), request.headers.get("host")):
            raise Refused(403, "cross-site form post refused")
        form = await form_of(request)
        if not signer.csrf_ok(session, form.get("csrf", "")):
            raise Refused(403, "the form's CSRF token is missing or wrong: reload the page")
        try:
            story_id = validate_story_id(request.path_params["story_id"])
        except InvalidStoryId as exc:
            raise Refused(400, str(exc)) from exc
        return session, story_id, form

    def done(message: str) -> Response:
        return RedirectResponse(f"/?{urlencode({'done': message})}", status_code=303)

    async def index(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return page(request, "login.html")
        stories = await run_in_threadpool(reviews.awaiting, engine)
        return page(
            request,
            "index.html",
            stories=stories,
            reviewer=session.name,
            csrf=signer.csrf(session),
            done=request.query_params.get("done", "")[:300],
        )

    async def login(request: Request) -> Response:
        form = await form_of(request)
        name = form.get("name", "").strip()
        if not NAME.match(name):
            return page(request, "login.html", 400, error="name: 1-80 letters, digits or .@'-")
        if not signer.token_ok(form.get("token", "")):
            return page(request, "login.html", 403, error="wrong reviewer token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, signer.session_cookie(name), httponly=True, samesite="strict", path="/"
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def decision(request: Request) -> Response:
        try:
            session, story_id, form = await checked_post(request)
            kind = request.path_params["decision"]
            if kind not in ("approve", "reject"):
                raise Refused(404, "no such decision")
            made = await run_in_threadpool(
                reviewing.decide,
                engine,
                instance,
                story_id,
                "approved" if kind == "approve" else "rejected",
                session.name,
                form.get("note"),
            )
        except Refused as exc:
            return refused(request, exc)
        except StoryNotFound as exc:
            return refused(request, Refused(404, str(exc)))
        except ReviewError as exc:
            return refused(request, Refused(409 if "not awaiting" in str(exc) else 400, str(exc)))
        verb = "already " if not made.changed else ""
        return done(f"{story_id}: {verb}{made.decision} by {made.by}")

    async def edit(request: Request) -> Response:
        try:
            session, story_id, form = await checked_post(request)
            try:
                scene = int(form.get("scene_number", ""))
            except ValueError as exc:
                raise Refused(400, "scene_number: a whole number") from exc
            if not 1 <= scene <= MAX_SCENES:
                raise Refused(400, f"scene_number: 1 to {MAX_SCENES}")
            changes = await run_in_threadpool(
                lambda: reviewing.edit_in_review(
                    engine,
                    instance,
                    story_id,
                    session.name,
                    scene_number=scene,
                    text=form.get("text"),
                    moment=form.get("moment") or None,
                )
            )
        except Refused as exc:
            return refused(request, exc)
        except StoryNotFound as exc:
            return refused(request, Refused(404, str(exc)))
        except (ReviewError, EditError) as exc:
            return refused(request, Refused(400, str(exc)))
        fields = ", ".join(c["field"] for c in changes) or "nothing changed"
        return done(f"{story_id} scene {scene}: {fields}")

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/stories/{story_id}/edit", edit, methods=["POST"]),
            Route("/stories/{story_id}/{decision}", decision, methods=["POST"]),
        ]
    )
