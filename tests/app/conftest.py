"""Fixtures of the reader-app tests: a small synthetic study with a real AI run, live servers, HTTP readers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the reader app needs the 'app' extra (pip install 'mammoscreen[app]')")

import httpx  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402

from mammoscreen.app.study import add_reader, create_study  # noqa: E402

N_EXAMS = 5
SYNTH_SEED = 3
NEW_PASSWORD = "correct-horse-battery-7"


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """Every test that needs the study (``study_inputs``: a real gmic_demo run of 20 images, ~10 s on 2 cores
    before the first test) is ``slow``: the fast loop leaves the reader app's study tests to CI."""
    here = Path(__file__).parent
    for item in items:
        if "study_inputs" in getattr(item, "fixturenames", ()) and here in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def study_inputs(tmp_path_factory) -> dict[str, Path]:
    """Six synthetic exams (scale 0.25) and a real ``mammoscreen run`` of the bundled gmic_demo with maps."""
    from mammoscreen.data.synth import SynthOptions, generate_exams
    from mammoscreen.engine import PredictOptions
    from mammoscreen.models.factory import PredictorRequest
    from mammoscreen.workflows.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("reader_app_inputs")
    exams = generate_exams(N_EXAMS, root / "data", seed=SYNTH_SEED,
                           options=SynthOptions(scale=0.25, p_benign=0.3, p_malignant=0.5), progress=False)
    labels = [e.cancer_label[f"{s}_malignant"] for e in exams for s in ("left", "right")]
    assert 3 <= sum(labels) <= len(labels) - 3, f"synthetic seed gives too few of one class: {labels}"
    run_pipeline(root / "data" / "images", root / "data" / "exam_list.pkl", root / "run",
                 [PredictorRequest("gmic_demo", "official")],
                 options=PredictOptions(save_maps=True, progress=False), log=lambda m: None)
    return {"images": root / "data" / "images", "exam_list": root / "data" / "exam_list.pkl", "run": root / "run",
            "root": root}


@pytest.fixture
def make_study(tmp_path, study_inputs):
    """make_study(**options) -> an open StudyHandle in a fresh directory (closed after the test)."""
    handles = []

    def make(directory: str = "study", **options):
        options.setdefault("ai_run", study_inputs["run"])
        options.setdefault("washout_days", 0)
        options.setdefault("seed", 11)
        handle = create_study(tmp_path / directory, study_inputs["images"], study_inputs["exam_list"],
                              log=lambda m: None, **options)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.close()


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """The app under uvicorn in a thread of this process, on a free port of 127.0.0.1."""

    def __init__(self, app) -> None:
        import uvicorn

        self.socket = free_socket()
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.socket.close()


@pytest.fixture
def serve_study():
    """serve_study(handle, **app_options) -> a running LiveServer (stopped after the test)."""
    from mammoscreen.app.web import create_app

    servers = []

    def start(handle, **options):
        server = LiveServer(create_app(handle, **options)).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


class ServerProcess:
    """``mammoscreen reader-app serve`` as a child process (for crash tests and the load test)."""

    def __init__(self, study_dir: Path) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mammoscreen", "reader-app", "serve", str(study_dir), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, f"the server exited: {self.process.stderr.read().decode()[-2000:]}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start within 60 s"
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush - as a crash or an out-of-memory kill."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


class ReaderClient:
    """A person in front of the app, spoken to over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=60)
        self.csrf = None

    def close(self) -> None:
        self.http.close()

    def login(self, name: str, password: str) -> httpx.Response:
        page = self.http.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        return self.http.post("/login", data={"name": name, "password": password, "login_token": token})

    def page_csrf(self, path: str = "/") -> str:
        page = self.http.get(path, follow_redirects=True)
        assert page.status_code == 200, (path, page.status_code)
        self.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return self.csrf

    def first_login(self, name: str, one_time: str, new: str = NEW_PASSWORD) -> None:
        response = self.login(name, one_time)
        assert response.status_code == 303 and response.headers["location"] == "/password", response.text
        csrf = self.page_csrf("/password")
        response = self.http.post("/password", data={"csrf_token": csrf, "current": one_time, "new": new, "again": new},
                                  headers={"origin": str(self.http.base_url).rstrip("/")})
        assert response.status_code == 303, response.text
        self.page_csrf("/")

    def sessions(self) -> list[int]:
        return [int(s) for s in re.findall(r'href="/read/(\d+)"', self.http.get("/").text)]

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf or "", **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def case(self, session: int, position: int) -> httpx.Response:
        return self.api("GET", f"/api/sessions/{session}/cases/{position}")

    def answer(self, session: int, position: int, phase: str, left: int, right: int, birads=("1", "1"),
               marks=(), elapsed_ms: int = 1000) -> httpx.Response:
        body = {"phase": phase, "left": {"score": left, "birads": birads[0]},
                "right": {"score": right, "birads": birads[1]}, "marks": list(marks), "elapsed_ms": elapsed_ms}
        return self.api("POST", f"/api/sessions/{session}/cases/{position}/answer", json=body)

    def complete(self, session: int) -> httpx.Response:
        return self.api("POST", f"/api/sessions/{session}/complete")


# Argon2 parameters of the test accounts' passwords: the server verifies a hash with the parameters stored in
# it, so cheap hashes keep logins fast in tests without changing what the server does (new passwords still get
# the full-strength default).
QUICK_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def set_password(handle, name: str, password: str = NEW_PASSWORD) -> str:
    """Give ``name`` a known, non-temporary password directly in the database (test set-up only)."""
    from sqlalchemy import select

    from mammoscreen.app.db import Reader

    with handle.db.write() as s:
        reader = s.scalar(select(Reader).where(Reader.name == name))
        reader.password_hash, reader.password_temporary = QUICK_HASHER.hash(password), False
    return password


@pytest.fixture
def readers(make_study, serve_study):
    """(study handle, server, {name: logged-in ReaderClient}) for readers r1, r2 and administrator 'coord'."""
    clients = []

    def setup(names=("r1", "r2"), admin="coord", server_options=None, **options):
        handle = make_study(**options)
        for name in names:
            add_reader(handle, name)
        if admin:
            add_reader(handle, admin, "admin")
        server = serve_study(handle, **(server_options or {}))
        out = {}
        for name in [*names, *([admin] if admin else [])]:
            client = ReaderClient(server.url)
            assert client.login(name, set_password(handle, name)).status_code == 303
            client.page_csrf("/")
            clients.append(client)
            out[name] = client
        return handle, server, out

    yield setup
    for client in clients:
        client.close()
