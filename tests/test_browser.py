"""A real browser (Debian's chromium, driven by Playwright) uses the app like a visitor: uploads a
real LFW portrait, runs the fast default method twice (the second time on the same upload, whose
file the app has deleted), then a reviewer's audit on LFW and one on their own gallery (a zip
with 5 photos per person); the galleries, plots and metrics must appear. Screenshots go to ``test-output/`` (gitignored).

The browser is the first of ``BROWSERS`` on the PATH; without one the test fails and says how to
install it (``make test`` installs Debian's chromium when it runs as root on a machine without one)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from test_app_api import LFW, few_photos_zip

pytestmark = pytest.mark.browser

OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "sudo apt-get install -y chromium (Debian; Ubuntu: chromium-browser), or run `make test` as root, which installs it"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PORTRAIT = LFW / "Tony_Blair" / "Tony_Blair_0001.jpg"


def wait_for_text(page: Page, selector: str, text: str, timeout_s: float) -> None:
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, text],
                           timeout=timeout_s * 1000)


def run(page: Page, button: str, output: str, timeout_s: float = 600) -> None:
    """Click ``button`` and wait until the run it starts is over: Gradio shows the status tracker of
    each output (here ``output``) from the click until that run's results (or its error) arrive."""
    tracker = f"{output} [data-testid=status-tracker]"
    page.locator(button).click()
    page.wait_for_selector(f"{tracker}:not(.hide)", state="attached", timeout=30_000)
    page.wait_for_selector(f"{tracker}.hide, {tracker} .error", state="attached", timeout=timeout_s * 1000)


def visible_count(page: Page, selector: str) -> int:
    return sum(1 for i in range(page.locator(selector).count()) if page.locator(selector).nth(i).is_visible())


def find_chromium() -> str:
    """The path of the first chromium-like browser on the PATH; the test fails with the install command if there is none."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"no chromium found on the PATH (looked for {', '.join(BROWSERS)}); install it: {INSTALL}", pytrace=False)


def test_forget_me_and_audit_in_chromium(server, tmp_path):
    chromium = find_chromium()
    url, _ = server
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)
        page.locator("#portrait input[type=file]").set_input_files(str(PORTRAIT))
        page.wait_for_selector("#portrait img", timeout=30_000)
        run(page, "#forget-button", "#fm-status")
        wait_for_text(page, "#fm-status", "Done in", 60)
        assert visible_count(page, "#fm-crop img") == 1
        assert visible_count(page, "#fm-before .uc-hit") >= 5 and visible_count(page, "#fm-after .uc-hit") >= 5
        page.wait_for_selector("#fm-bars .js-plotly-plot", state="visible", timeout=60_000)
        assert "retain" in page.locator("#fm-metrics table").first.inner_text()
        assert "deletion only" in page.locator("#fm-metrics").inner_text()  # the search index's states, below the metrics
        assert "Membership inference" in page.locator("#fm-privacy").inner_text()
        page.screenshot(path=str(OUTPUT / "forget-me.png"), full_page=True)
        # again with the same inputs (e.g. to compare another method): Gradio's copy of the photo is gone by now
        run(page, "#forget-button", "#fm-status")
        assert page.locator("[data-testid=status-tracker] .error").count() == 0, "the second run failed"
        assert "Done in" in page.locator("#fm-status").inner_text() and visible_count(page, "#fm-after .uc-hit") >= 5

        page.get_by_role("tab", name="Audit").click()
        page.locator("#audit-button").click()
        wait_for_text(page, "#au-status", "Audit of", 600)
        for plot in ("#au-tsne", "#au-umap", "#au-roc"):  # plotly draws after the outputs arrive
            page.wait_for_selector(f"{plot} .js-plotly-plot", state="visible", timeout=60_000)
        assert "dispersion" in page.locator("#au-table table").first.inner_text()
        assert "deletion only" in page.locator("#au-table").inner_text()  # the gallery index's states, per method
        assert visible_count(page, "#au-galleries .uc-hit") >= 10
        assert "Streisand" in page.locator("#au-privacy").inner_text()
        page.screenshot(path=str(OUTPUT / "audit.png"), full_page=True)
        # a reviewer's own gallery: 10 people with 5 photos each, on the tab's defaults (4 to forget)
        page.get_by_label("Uploaded zip").check()
        page.locator("#au-zip input[type=file]").set_input_files(str(few_photos_zip(tmp_path / "gallery.zip")))
        page.wait_for_selector("#au-zip :text('gallery.zip')", timeout=30_000)
        run(page, "#audit-button", "#au-status")
        assert page.locator("[data-testid=status-tracker] .error").count() == 0, "the audit of the zip gallery failed"
        wait_for_text(page, "#au-status", "Audit of 4 identities on zip", 10)
        assert "dispersion" in page.locator("#au-table table").first.inner_text()
        assert visible_count(page, "#au-galleries .uc-hit") >= 10
        page.screenshot(path=str(OUTPUT / "audit-zip.png"), full_page=True)
        browser.close()
    assert errors == []
