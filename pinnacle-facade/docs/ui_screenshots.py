"""Screenshots of ``pinnacle ui`` for the facade README (``bash scripts/ui-screenshots``).

Builds the demo deployment (``pinnacle demo`` on the embedded default, in a temporary
directory), serves it with ``pinnacle ui`` on a free loopback port, and saves one PNG per main
page (overview, component, lineage, jobs, table) with Playwright driving Debian's
``/usr/bin/chromium`` into ``pinnacle-facade/docs/ui/``. Fails if a PNG is 200 KB or more, or
all of them 1 MB or more: they are committed as documentation.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright._impl._api_structures import Clip

OUT = Path(__file__).resolve().parent / "ui"
CHROMIUM = Path("/usr/bin/chromium")
MODEL = "iris-petal-width"
#: (file name, path on the server): the main pages of the demo deployment.
PAGES = [
    ("overview", "/"),
    ("component", f"/component?type=model&id={MODEL}"),
    ("lineage", "/lineage"),
    ("jobs", "/jobs"),
    ("table", "/table?name=outputs__iris_petal_width"),
]
#: Wide enough for the demo's whole lineage graph; long pages are cut at MAX_HEIGHT.
WIDTH = 1320
MAX_HEIGHT = 900
MAX_PNG = 200_000
MAX_TOTAL = 1_000_000


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    """Wait until ``url`` answers, or fail with what the server said."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - our http://127.0.0.1 URL
            return
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise SystemExit(
                    f"pinnacle ui exited with {proc.returncode}:\n{out}{err}"
                ) from None
            if time.monotonic() > deadline:
                raise SystemExit(f"pinnacle ui did not answer {url} within {seconds} s") from None
            time.sleep(0.2)


def main() -> int:
    if not CHROMIUM.exists():
        print("needs Debian's chromium: apt-get install chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    exe = str(Path(sys.executable).parent / "pinnacle")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINNACLEDB_")}
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pinnacle-ui-shots-") as tmp:
        print(f"+ pinnacle demo (in {tmp})", flush=True)
        subprocess.run(  # noqa: S603 - our own console script, no shell
            [exe, "demo"], cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(  # noqa: S603 - our own console script, no shell
            [exe, "ui", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(base + "/api/overview", server)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                try:
                    page = browser.new_page(viewport={"width": WIDTH, "height": 400})
                    for name, path in PAGES:
                        page.goto(base + path)
                        page.wait_for_load_state("networkidle")
                        height = int(page.evaluate("document.documentElement.scrollHeight"))
                        clip: Clip = {
                            "x": 0,
                            "y": 0,
                            "width": WIDTH,
                            "height": min(height, MAX_HEIGHT),
                        }
                        page.screenshot(path=str(OUT / f"{name}.png"), full_page=True, clip=clip)
                finally:
                    browser.close()
        finally:
            server.terminate()
            server.communicate(timeout=15)
    total = 0
    ok = True
    for name, _ in PAGES:
        size = (OUT / f"{name}.png").stat().st_size
        total += size
        ok = ok and size < MAX_PNG
        print(f"{OUT / f'{name}.png'}  {size / 1000:.0f} KB")
    print(f"total {total / 1000:.0f} KB")
    if not ok or total >= MAX_TOTAL:
        print(f"too large: each PNG must stay under {MAX_PNG} B, all under {MAX_TOTAL} B")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
