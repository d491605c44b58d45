"""What the browser tests share: Debian's Chromium (never a browser downloaded by playwright) and a free port."""
import os
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# screenshots go to a scratch folder; ARCHDAL_SCREENSHOTS=reports/screenshots refreshes the README's (tracked) ones
SCREENSHOTS = Path(os.environ.get("ARCHDAL_SCREENSHOTS") or Path(os.environ.get("TMPDIR", "/tmp")) / "archdal-screenshots")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]


def chromium() -> str:
    "Path of Debian's Chromium, installed with `make chromium` if missing; skip only if that fails (fail where CI is set)."
    if not CHROMIUM.exists():
        result = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "chromium", "SUDO=sudo -n"],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if not CHROMIUM.exists():
            reason = (f"{CHROMIUM} is absent and `make chromium` could not install it (Debian's `apt-get install -y "
                      f"chromium` needs root or password-less sudo, and the network): "
                      f"{(result.stdout + result.stderr).strip()[-400:]}")
            if os.environ.get("CI"): pytest.fail(reason)  # in CI the browser tests must run
            pytest.skip(reason)
    return str(CHROMIUM)


def free_port() -> int:
    "A TCP port on localhost that nothing listens on now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
