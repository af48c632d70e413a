"""Running the reader application under uvicorn."""

from __future__ import annotations

import ipaddress
import sys
from typing import Callable

from .study import open_study
from .web import create_app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(study_dir: str, host: str = "127.0.0.1", port: int = 8000, *, database_url: str | None = None,
          proxy: bool = False, forwarded_allow_ips: str = "127.0.0.1", secure_cookies: bool | None = None,
          log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
    """Serve a study until interrupted (Ctrl+C). Binds to 127.0.0.1 unless told otherwise.

    proxy : trust ``X-Forwarded-Proto``/``-For`` from ``forwarded_allow_ips`` (a TLS reverse proxy on this
        machine): cookies are then marked Secure when the browser reached the proxy over HTTPS.
    secure_cookies : force the Secure flag on (True) or off (False); default: when the request is HTTPS.
    """
    import uvicorn

    study = open_study(study_dir, database_url)
    app = create_app(study, secure_cookies=secure_cookies)
    if not is_loopback(host):
        log(f"warning: serving on {host}, reachable from the network. Put a TLS reverse proxy in front (see "
            "docs/reader_study_app.md) - passwords and images must not travel unencrypted.")
    log(f"reader study {study.settings().name}: http://{host}:{port}/ (Ctrl+C stops)")
    try:
        uvicorn.run(app, host=host, port=port, proxy_headers=proxy,
                    forwarded_allow_ips=forwarded_allow_ips if proxy else None, server_header=False,
                    date_header=True, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    finally:
        study.close()
