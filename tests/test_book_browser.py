"""The book, opened in a real browser: every chapter loads, every image decodes, nothing shows a
traceback or an error; screenshots of the landing page and of the LOO chapter's error curves.

The book is built from ``published/`` (``./reproduce.sh --skip-install --book``) into a temporary
folder, or taken as built from ``$DEEPNNK_BOOK`` (e.g. ``results/book``). It is served on
localhost and opened in headless Chromium through selenium, with Debian's ``chromium`` and
``chromium-driver`` (``apt-get install chromium chromium-driver``; selenium is in the ``book``
extra). Without them the test skips, saying why; with ``DEEPNNK_REQUIRE_BROWSER=1`` (as CI sets
when it could install them) it fails instead. Screenshots go to ``results/book/screenshots/``
(``$DEEPNNK_SCREENSHOTS``). Run it with::

    DEEPNNK_REQUIRE_BROWSER=1 .venv/bin/python -m pytest -m browser tests/test_book_browser.py
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("DEEPNNK_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("DEEPNNK_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOTS = Path(
    os.environ.get("DEEPNNK_SCREENSHOTS") or ROOT / "results" / "book" / "screenshots"
)
REQUIRE = "DEEPNNK_REQUIRE_BROWSER"
PUBLISHED = Path(os.environ.get("DEEPNNK_PUBLISHED") or ROOT / "published")
# Chromium offline and alone: no first-run, sync, component or background fetches.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1800",
]
# What a failed cell or a failed build shows: a traceback, an exception's name, an "Error:" line.
ERROR_TEXT = re.compile(r"Traceback|\b\w+Error\b|\bError\b")


def _skip_or_fail(reason: str):
    if os.environ.get(REQUIRE, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE} is set, so this fails instead of skipping)")
    pytest.skip(f"browser test skipped: {reason}")


def chapters() -> list[str]:
    """The pages of the book in reading order, from published/_toc.yml (without ".md")."""
    toc = (ROOT / "published" / "_toc.yml").read_text()
    return ["index", *re.findall(r"^\s*- file:\s*(\S+)", toc, re.M)]


def _html_root(folder: Path) -> Path | None:
    for candidate in (folder / "_build" / "html", folder / "html", folder):
        if (candidate / "index.html").is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def book() -> Path:
    """The folder of the built book's HTML (index.html and one page per chapter)."""
    given = os.environ.get("DEEPNNK_BOOK")
    if given:
        html = _html_root(Path(given))
        if html is None:
            pytest.fail(f"DEEPNNK_BOOK={given} holds no built book (./reproduce.sh --book)")
        yield html
        return
    jupyter_book = Path(sys.prefix) / "bin" / "jupyter-book"
    try:
        import jupyter_server_mathjax  # noqa: F401  (the book's MathJax)
    except ImportError:
        jupyter_book = None
    if jupyter_book is None or not jupyter_book.exists():
        _skip_or_fail("the book extra is not installed: pip install -e '.[book]'")
    out = Path(tempfile.mkdtemp(prefix="deepnnk-book-"))
    env = {**os.environ, "DEEPNNK_BOOK": str(out), "DEEPNNK_VENV": sys.prefix}
    run = subprocess.run(
        ["bash", str(ROOT / "reproduce.sh"), "--skip-install", "--book"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"./reproduce.sh --book failed:\n{run.stdout}\n{run.stderr}"
    yield _html_root(out)
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def server(book):
    """The book served over HTTP on localhost; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log in the test output
        pass


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Debian's chromedriver (selenium-manager downloads nothing)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        _skip_or_fail(
            f"{' and '.join(missing)} not found: apt-get install -y chromium chromium-driver"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip_or_fail("selenium is not installed: pip install -e '.[book]'")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="deepnnk-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, url: str):
    """Load ``url``, make every image load now (no lazy loading), wait until all have settled."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    driver.execute_script("for (const i of document.images) i.loading = 'eager';")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete)")
    )


def _broken_images(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)"
    )


@pytest.mark.parametrize("page", chapters())
def test_page_loads_with_images_and_no_error(page, browser, book, server):
    html = book / f"{page}.html"
    assert html.is_file(), (
        f"{page} is not in the book: is published/paper/{page}/{page}.ipynb there? "
        "(./reproduce.sh --publish, then --book)"
    )
    _open(browser, f"{server}/{page}.html")
    assert browser.title, f"{page}: the page has no title"
    main = browser.find_elements("css selector", "main, article")
    assert main and main[0].text.strip(), f"{page}: the page shows no content"
    broken = _broken_images(browser)
    assert not broken, f"{page}: images that did not load: {broken}"
    text = browser.find_element("tag name", "body").text
    shown = [m.group(0) for m in ERROR_TEXT.finditer(text)]
    assert not shown, f"{page}: the page shows {sorted(set(shown))}"
    assert _math_typeset(browser), f"{page}: math shown as raw TeX (MathJax did not load)"


def _math_typeset(driver, timeout: float = 30) -> bool:
    """True once no visible text shows TeX delimiters, i.e. MathJax (served with the book, not
    fetched from a CDN) has typeset every formula."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def raw(d):
        text = d.find_element("tag name", "body").text
        return "\\(" not in text and "\\[" not in text and "$$" not in text

    try:
        WebDriverWait(driver, timeout).until(raw)
    except TimeoutException:
        return False
    return True


def test_screenshots(browser, book, server):
    """The landing page, and the LOO chapter scrolled to its error-curve figure."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _open(browser, f"{server}/index.html")
    landing = SCREENSHOTS / "landing.png"
    assert browser.save_screenshot(str(landing))

    _open(browser, f"{server}/02_loo_generalization.html")
    # The book names an image by the SHA-256 of its bytes, which are those of the figure file
    # (test_published checks it): find the error curves by their files' hashes (k = 50, the
    # paper's, first); else take the first image after the section on the error curves.
    folder = PUBLISHED / "paper" / "02_loo_generalization"
    files = sorted(folder.glob("error_curves*.png"), key=lambda p: "k50" not in p.name)
    hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    figure = browser.execute_script(
        """
        const hashes = arguments[0];
        for (const h of hashes) {
            const img = [...document.images].find(i => i.src.includes(h));
            if (img) return img;
        }
        const heads = [...document.querySelectorAll('h1, h2, h3')];
        const head = heads.find(
            h => /error curve|error against epoch|tracks the test error/i.test(h.textContent));
        if (!head) return null;
        return [...document.images].find(
            i => head.compareDocumentPosition(i) & Node.DOCUMENT_POSITION_FOLLOWING) || null;
        """,
        hashes,
    )
    assert figure is not None, "02: no error-curve figure after the section on the error curves"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", figure)
    width = browser.execute_script("return arguments[0].naturalWidth", figure)
    assert width > 0, "02: the error-curve figure did not load"
    shot = SCREENSHOTS / "02_loo_error_curves.png"
    assert browser.save_screenshot(str(shot))
    assert landing.stat().st_size > 10_000 and shot.stat().st_size > 10_000
