"""Shared by the browser tests: real Chromium (Debian's package) driven by Playwright against the live server."""

from pathlib import Path

from spatiallab.accounts.management.commands.seed_demo import DEMO_ACCOUNTS
from spatiallab.accounts.roles import Role

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which this machine's
# closed network refuses.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]
CREDENTIALS = {role: (username, password) for username, password, role in DEMO_ACCOUNTS}
TIMEOUT_MS = 30_000


def log_in(page, live_server, role: Role):
    """Logs in through the login form as the demo account of `role` (seed_demo's credentials)."""
    username, password = CREDENTIALS[role]
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]:has-text('Log in')")
    assert "/login/" not in page.url, f"login as {username} failed"


# Marks the page (a full reload loses the mark) and collects htmx's error events.
WATCH_JS = """
() => {
  window.__noReload = true;
  window.__htmxErrors = [];
  for (const name of ["htmx:sendError", "htmx:swapError", "htmx:targetError", "htmx:responseError"]) {
    document.body.addEventListener(name, (event) => window.__htmxErrors.push(name));
  }
}
"""
