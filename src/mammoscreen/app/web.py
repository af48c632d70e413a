"""The web application (Starlette): pages, the reading API, image pixels, administration.

Security, as a hospital's reviewer would check it:

* every route except ``/login`` (and the stylesheet it uses) needs a login; pages redirect to ``/login``,
  API calls answer 401;
* sessions are server-side: the cookie holds a random token (HttpOnly, SameSite=Strict, Secure over TLS),
  the database its SHA-256; sessions expire after 12 hours, or 2 hours without use, and on logout;
* every state-changing request (POST) carries the session's CSRF token (header ``X-CSRF-Token`` or form
  field ``csrf_token``) and, when the browser sends one, an ``Origin`` of this server; the login form uses
  a double-submit token;
* readers reach only their own sessions and answers, never the truth; images are addressed by random
  study-internal identifiers under the reader's own session - URLs carry no file names or paths;
* failed logins are rate-limited per account and per address (kept in the database);
* every answer, login and administrative action is written to the append-only audit table;
* responses carry a strict Content-Security-Policy (no inline scripts, nothing from other origins),
  ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy: same-origin`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import __version__
from ..core.safejson import JSONInputError, loads_json
from . import audit, reading
from .db import Audit, LoginAttempt, Reader, Study, WebSession, utcnow
from .pixels import PixelCache, safe_image_file
from .security import (RateLimit, new_token, password_problem, hash_password, token_hash, tokens_equal,
                       verify_password)
from .study import StudyHandle, describe

SESSION_COOKIE = "ms_session"
LOGIN_COOKIE = "ms_login"
SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE = timedelta(hours=2)
MAX_BODY = 256 * 1024
STATIC_DIR = Path(__file__).parent / "static"
PUBLIC_STATIC = {"app.css"}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".png": "image/png", ".svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class Login:
    """The logged-in person of a request."""

    def __init__(self, reader: Reader, session: WebSession) -> None:
        self.reader = reader
        self.session = session

    @property
    def csrf(self) -> str:
        return self.session.csrf_token


class ReaderApp:
    """The application's state; :meth:`asgi` builds the Starlette app."""

    def __init__(self, study: StudyHandle, *, secure_cookies: bool | None = None,
                 clock: Callable[[], datetime] = utcnow, rate_limit: RateLimit = RateLimit(),
                 pixel_cache_bytes: int | None = None) -> None:
        self.study = study
        self.db = study.db
        self.secure_cookies = secure_cookies
        self.clock = clock
        self.rate_limit = rate_limit
        self.pixels = PixelCache(pixel_cache_bytes) if pixel_cache_bytes else PixelCache()
        settings = study.settings()
        self.images_dir = Path(settings.images_dir)
        self.templates = Environment(loader=PackageLoader("mammoscreen.app", "templates"),
                                     autoescape=select_autoescape(default=True, default_for_string=True))
        self.templates.filters["when"] = describe
        self.static = {p.name: p.read_bytes() for p in STATIC_DIR.iterdir() if p.suffix in STATIC_TYPES}

    # ------------------------------------------------------------------------------------------
    # Plumbing
    # ------------------------------------------------------------------------------------------

    def asgi(self) -> Starlette:
        routes = [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login_submit, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/password", self.password_page, methods=["GET"]),
            Route("/password", self.password_submit, methods=["POST"]),
            Route("/", self.home, methods=["GET"]),
            Route("/read/{session_id:int}", self.read_page, methods=["GET"]),
            Route("/api/sessions/{session_id:int}/cases/{position:int}", self.api_case, methods=["GET"]),
            Route("/api/sessions/{session_id:int}/cases/{position:int}/answer", self.api_answer, methods=["POST"]),
            Route("/api/sessions/{session_id:int}/complete", self.api_complete, methods=["POST"]),
            Route("/api/sessions/{session_id:int}/images/{image_id}/pixels/{level:int}", self.api_pixels,
                  methods=["GET"]),
            Route("/api/sessions/{session_id:int}/images/{image_id}/overlay", self.api_overlay, methods=["GET"]),
            Route("/admin", self.admin_page, methods=["GET"]),
            Route("/admin/export/{fmt}", self.admin_export, methods=["GET"]),
            Route("/admin/readers/{name}/reset-password", self.admin_reset_password, methods=["POST"]),
            Route("/static/{name}", self.static_file, methods=["GET"]),
        ]
        app = Starlette(routes=routes)
        app.add_exception_handler(404, self._not_found)
        app.add_exception_handler(405, self._not_found)
        return SecurityHeaders(app)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "not found"}, status_code=404)
        return self.render(request, "message.html", {"title": "Not found", "message": "There is no such page."},
                           status=404)

    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200,
               login: Login | None = None) -> HTMLResponse:
        page = self.templates.get_template(template).render(
            login=login, csrf=login.csrf if login else "", version=__version__, **context)
        return HTMLResponse(page, status_code=status)

    def ip(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def secure(self, request: Request) -> bool:
        return self.secure_cookies if self.secure_cookies is not None else request.url.scheme == "https"

    def _login_of(self, request: Request) -> Login | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 100:
            return None
        now = self.clock()
        with self.db.read() as s:
            session = s.scalar(select(WebSession).where(WebSession.token_hash == token_hash(token)))
            if (session is None or session.revoked_at is not None or now >= session.expires_at
                    or now - session.last_seen_at > SESSION_IDLE):
                return None
            reader = s.get(Reader, session.reader_id)
        if now - session.last_seen_at > timedelta(minutes=1):
            with self.db.write() as s:
                fresh = s.get(WebSession, session.id)
                fresh.last_seen_at = now
        return Login(reader, session)

    async def login_of(self, request: Request) -> Login | None:
        return await run_in_threadpool(self._login_of, request)

    def check_csrf(self, request: Request, login: Login | None, form: dict[str, str] | None = None) -> bool:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return False
        sent = request.headers.get("x-csrf-token") or (form or {}).get("csrf_token")
        return login is not None and tokens_equal(sent, login.csrf)

    async def body(self, request: Request) -> bytes | None:
        """The request body, or None when it is larger than MAX_BODY."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def form(self, request: Request) -> dict[str, str] | None:
        raw = await self.body(request)
        if raw is None:
            return None
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            return {}
        return {k: v[0] for k, v in parsed.items()}

    def api_error(self, message: str, status: int) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def need_login(self, request: Request, api: bool, role: str | None = None,
                         allow_temporary: bool = False) -> Login | Response:
        login = await self.login_of(request)
        if login is None:
            return self.api_error("log in first", 401) if api else RedirectResponse("/login", 303)
        if login.reader.password_temporary and not allow_temporary:
            return self.api_error("choose your own password first", 403) if api else RedirectResponse("/password", 303)
        if role is not None and login.reader.role != role:
            return self.api_error("not found", 404) if api else self.render(
                request, "message.html", {"title": "Not found", "message": "There is no such page."}, 404, login)
        return login

    # ------------------------------------------------------------------------------------------
    # Login, logout, password
    # ------------------------------------------------------------------------------------------

    async def login_page(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        token = new_token()
        response = self.render(request, "login.html", {"error": error, "login_token": token}, status)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure(request),
                            path="/login")
        return response

    async def login_submit(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return Response("request too large", 413)
        if not tokens_equal(form.get("login_token"), request.cookies.get(LOGIN_COOKIE)):
            return await self.login_page(request, "Your login form expired; please try again.", 403)
        name, password = form.get("name", "").strip()[:64], form.get("password", "")
        result = await run_in_threadpool(self._login, name, password, self.ip(request))
        if result == "blocked":
            return await self.login_page(request, "Too many failed attempts. Wait 15 minutes, or ask the study "
                                                  "coordinator.", 429)
        if result is None:
            return await self.login_page(request, "Wrong name or password.", 401)
        token, temporary = result
        response = RedirectResponse("/password" if temporary else "/", 303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=self.secure(request),
                            path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    def _login(self, name: str, password: str, ip: str) -> tuple[str, bool] | str | None:
        now = self.clock()
        since = self.rate_limit.since(now)
        with self.db.read() as s:
            failures_name = s.scalar(select(func.count()).select_from(LoginAttempt).where(
                func.lower(LoginAttempt.name) == name.lower(), LoginAttempt.at >= since,
                LoginAttempt.success.is_(False)))
            failures_ip = s.scalar(select(func.count()).select_from(LoginAttempt).where(
                LoginAttempt.ip == ip, LoginAttempt.at >= since, LoginAttempt.success.is_(False)))
            reader = s.scalar(select(Reader).where(func.lower(Reader.name) == name.lower()))
        if self.rate_limit.blocked(failures_name, failures_ip):
            with self.db.write() as s:
                audit.record(s, name or "-", "login-blocked", {"name": name}, ip=ip, now=now)
            return "blocked"
        ok = verify_password(reader.password_hash if reader else None, password)
        with self.db.write() as s:
            s.add(LoginAttempt(at=now, name=name, ip=ip, success=ok))
            audit.record(s, name or "-", "login" if ok else "login-failed", {"name": name}, ip=ip, now=now)
            if not ok:
                return None
            token = new_token()
            s.add(WebSession(token_hash=token_hash(token), reader_id=reader.id, csrf_token=new_token(),
                             created_at=now, last_seen_at=now, expires_at=now + SESSION_LIFETIME))
        return token, reader.password_temporary

    async def logout(self, request: Request) -> Response:
        login = await self.login_of(request)
        form = await self.form(request) or {}
        if login is not None:
            if not self.check_csrf(request, login, form):
                return Response("invalid CSRF token", 403)

            def revoke() -> None:
                with self.db.write() as s:
                    s.get(WebSession, login.session.id).revoked_at = self.clock()
                    audit.record(s, login.reader.name, "logout", {}, ip=self.ip(request))

            await run_in_threadpool(revoke)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def password_page(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        login = await self.need_login(request, api=False, allow_temporary=True)
        if isinstance(login, Response):
            return login
        return self.render(request, "password.html", {"error": error, "temporary": login.reader.password_temporary},
                           status, login)

    async def password_submit(self, request: Request) -> Response:
        login = await self.need_login(request, api=False, allow_temporary=True)
        if isinstance(login, Response):
            return login
        form = await self.form(request)
        if form is None or not self.check_csrf(request, login, form):
            return Response("invalid CSRF token", 403)
        current, new, again = form.get("current", ""), form.get("new", ""), form.get("again", "")
        if new != again:
            return await self.password_page(request, "The two new passwords differ.", 400)
        problem = password_problem(new, login.reader.name)
        if problem:
            return await self.password_page(request, f"Choose another password: {problem}.", 400)

        def change() -> bool:
            with self.db.read() as s:
                reader = s.get(Reader, login.reader.id)
            if not verify_password(reader.password_hash, current):
                return False
            hashed = hash_password(new)
            with self.db.write() as s:
                reader = s.get(Reader, login.reader.id)
                reader.password_hash, reader.password_temporary = hashed, False
                for other in s.scalars(select(WebSession).where(WebSession.reader_id == reader.id,
                                                                WebSession.id != login.session.id,
                                                                WebSession.revoked_at.is_(None))):
                    other.revoked_at = self.clock()
                audit.record(s, reader.name, "change-password", {}, ip=self.ip(request))
            return True

        if not await run_in_threadpool(change):
            return await self.password_page(request, "The current password is wrong.", 400)
        return RedirectResponse("/", 303)

    # ------------------------------------------------------------------------------------------
    # Reader pages and API
    # ------------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        login = await self.need_login(request, api=False)
        if isinstance(login, Response):
            return login
        if login.reader.role == "admin":
            return RedirectResponse("/admin", 303)

        def states():
            with self.db.read() as s:
                study = s.get(Study, 1)
                return study, reading.session_states(s, study, login.reader, self.clock())

        study, sessions = await run_in_threadpool(states)
        return self.render(request, "home.html", {"study": study, "sessions": sessions}, login=login)

    async def read_page(self, request: Request) -> Response:
        login = await self.need_login(request, api=False, role="reader")
        if isinstance(login, Response):
            return login
        session_id = request.path_params["session_id"]

        def load():
            with self.db.read() as s:
                study = s.get(Study, 1)
                rs = reading.open_session(s, study, login.reader, session_id, self.clock())
                return study, rs, reading.current_position(s, rs)

        try:
            study, rs, position = await run_in_threadpool(load)
        except reading.AppError as e:
            return self.render(request, "message.html", {"title": "Session not available", "message": str(e)},
                               e.status, login)
        config = {"session": rs.id, "position": min(position, len(rs.case_order)), "n_cases": len(rs.case_order),
                  "design": study.design, "modality": rs.modality}
        return self.render(request, "read.html", {"study": study, "rs": rs, "config": json.dumps(config)},
                           login=login)

    async def _api(self, request: Request, work: Callable[..., Any], *, write: bool = False,
                   body: bool = False) -> Response:
        """Run ``work(session, study, reading_session, login, payload)`` for a logged-in reader's open session."""
        login = await self.need_login(request, api=True, role="reader")
        if isinstance(login, Response):
            return login
        payload = None
        if write:
            raw = await self.body(request)
            if raw is None:
                return self.api_error("request too large", 413)
            if not self.check_csrf(request, login):
                return self.api_error("invalid CSRF token", 403)
            if body:
                try:
                    payload = loads_json(raw, "request body")  # depth- and size-limited
                except JSONInputError:
                    return self.api_error("the body must be JSON", 400)
        session_id = request.path_params["session_id"]

        def run():
            context = self.db.write() if write else self.db.read()
            with context as s:
                study = s.get(Study, 1)
                now = self.clock()
                rs = reading.open_session(s, study, login.reader, session_id, now)
                return work(s, study, rs, login, payload, now)

        try:
            return await run_in_threadpool(run)
        except reading.AppError as e:
            return self.api_error(str(e), e.status)

    async def api_case(self, request: Request) -> Response:
        position = request.path_params["position"]

        def work(s, study, rs, login, _payload, now):
            started = rs.started_at is None
            payload = reading.case_payload(s, study, rs, login.reader, position, now)
            if started:
                audit.record(s, login.reader.name, "start-session", {"session": rs.id, "modality": rs.modality},
                             ip=self.ip(request), now=now)
            return JSONResponse(payload)

        return await self._api(request, work, write=True)  # marks the session started on first view

    async def api_answer(self, request: Request) -> Response:
        position = request.path_params["position"]

        def work(s, study, rs, login, payload, now):
            reading.save_answer(s, study, rs, login.reader, position, payload, now, self.ip(request))

        # The answer commits in a short write transaction; the page's next state is read afterwards.
        saved = await self._api(request, work, write=True, body=True)
        if isinstance(saved, Response):
            return saved

        def next_state(s, study, rs, login, _payload, now):
            return JSONResponse(reading.case_payload(s, study, rs, login.reader, position, now))

        return await self._api(request, next_state)

    async def api_complete(self, request: Request) -> Response:
        def work(s, study, rs, login, _payload, now):
            reading.complete_session(s, rs, login.reader, now, self.ip(request))
            return JSONResponse({"completed": True})

        return await self._api(request, work, write=True)

    async def api_pixels(self, request: Request) -> Response:
        image_id, level = request.path_params["image_id"], request.path_params["level"]

        def work(s, study, rs, login, _payload, now):
            image = reading.image_for_session(s, rs, login.reader, image_id)
            return image

        image = await self._api(request, work)
        if isinstance(image, Response):
            return image
        from .pixels import level_shapes

        shapes = level_shapes(image.rows, image.cols)
        if not 0 <= level < len(shapes):
            return self.api_error("no such level", 404)
        try:
            path = safe_image_file(self.images_dir, image.name)
            blob = await run_in_threadpool(self.pixels.get, image.id, level, path, image.sha256)
        except (OSError, ValueError) as e:
            return self.api_error(f"the image cannot be shown: {e}", 409)
        headers = {"X-Width": str(shapes[level][1]), "X-Height": str(shapes[level][0])}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
        else:
            blob = gzip.decompress(blob)
        return Response(blob, media_type="application/octet-stream", headers=headers)

    async def api_overlay(self, request: Request) -> Response:
        image_id = request.path_params["image_id"]

        def work(s, study, rs, login, _payload, now):
            return reading.image_for_session(s, rs, login.reader, image_id, overlay=True)

        image = await self._api(request, work)
        if isinstance(image, Response):
            return image
        if not re.fullmatch(r"[0-9a-f]{24}\.png", image.overlay or ""):
            return self.api_error("no such overlay", 404)
        path = self.study.overlays_dir / image.overlay
        data = await run_in_threadpool(path.read_bytes)
        return Response(data, media_type="image/png")

    # ------------------------------------------------------------------------------------------
    # Administration
    # ------------------------------------------------------------------------------------------

    async def admin_page(self, request: Request, context: dict[str, Any] | None = None) -> Response:
        login = await self.need_login(request, api=False, role="admin")
        if isinstance(login, Response):
            return login

        def load():
            from .export import progress

            with self.db.read() as s:
                study = s.get(Study, 1)
                rows = progress(s, study, self.clock())
                events = list(s.scalars(select(Audit).order_by(Audit.id.desc()).limit(30)))
                return study, rows, events

        study, rows, events = await run_in_threadpool(load)
        return self.render(request, "admin.html", {"study": study, "readers": rows, "events": events,
                                                   **(context or {})}, login=login)

    async def admin_export(self, request: Request) -> Response:
        login = await self.need_login(request, api=False, role="admin")
        if isinstance(login, Response):
            return login
        fmt = request.path_params["fmt"]
        modality = request.query_params.get("modality")
        from .export import EXPORT_FORMATS, export_bytes

        if fmt not in EXPORT_FORMATS:
            return self.render(request, "message.html", {"title": "Not found", "message": "No such export."}, 404,
                               login)

        def build():
            data, filename, notes = export_bytes(self.db, fmt, modality=modality)
            with self.db.write() as s:
                audit.record(s, login.reader.name, "export", {"format": fmt, "modality": modality, "notes": notes},
                             ip=self.ip(request))
            return data, filename

        try:
            data, filename = await run_in_threadpool(build)
        except ValueError as e:
            return self.render(request, "message.html", {"title": "Export not possible", "message": str(e)}, 409,
                               login)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def admin_reset_password(self, request: Request) -> Response:
        login = await self.need_login(request, api=False, role="admin")
        if isinstance(login, Response):
            return login
        form = await self.form(request)
        if form is None or not self.check_csrf(request, login, form):
            return Response("invalid CSRF token", 403)
        from .errors import StudyError
        from .study import reset_password

        name = request.path_params["name"]
        try:
            password = await run_in_threadpool(reset_password, self.study, name, login.reader.name, self.ip(request))
        except StudyError as e:
            return self.render(request, "message.html", {"title": "Not found", "message": str(e)}, 404, login)
        return self.render(request, "otp.html", {"name": name, "password": password}, login=login)

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static:
            return Response("not found", 404)
        if name not in PUBLIC_STATIC:
            login = await self.need_login(request, api=True, allow_temporary=True)
            if isinstance(login, Response):
                return login
        return Response(self.static[name], media_type=STATIC_TYPES[Path(name).suffix])


class SecurityHeaders:
    """Adds the security headers to every response (a plain ASGI middleware)."""

    HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
               (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
               (b"cache-control", b"no-store"), (b"cross-origin-opener-policy", b"same-origin"),
               (b"cross-origin-resource-policy", b"same-origin")]

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [h for h in self.HEADERS if h[0] not in names]
                if scope.get("scheme") == "https":
                    message["headers"].append((b"strict-transport-security", b"max-age=31536000"))
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(study: StudyHandle, **options: Any) -> SecurityHeaders:
    """The ASGI application of an open study (see :class:`ReaderApp` for the options)."""
    return ReaderApp(study, **options).asgi()
