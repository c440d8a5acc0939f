"""A real headless Chromium (Debian's chromium and chromium-driver) driven by selenium, for the console's tests:
one browser for the whole session (tests/conftest.py's `browser`), a fresh login per test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import PASSWORDS, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "var" / "screenshots"
WAIT = 30.0  # seconds for the page to show what the test waits for (on 2 busy cores); none is a measured time
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900",
         "--ignore-certificate-errors")  # the nginx tests' self-signed certificate: TLS is not what they test


class Browser:
    """The driver and the few things the tests do with it: open a page, wait for an element or a text, log in."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="wsexec-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.base = ""

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, fragment: str) -> None:
        """The console at base (a gunicorn_url), on a page (#/fragment)."""
        self.driver.get(f"{self.base}/wsexec/ui/#/{fragment}")

    def fresh(self, base: str) -> None:
        """Another test's server: forget the last one's credentials (they lived in its sessionStorage only)."""
        self.base = base
        self.driver.get(f"{base}/wsexec/ui/#/login")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get("about:blank")

    def login(self, user: str, fragment: str = "tasks") -> None:
        self.open("login")
        self.find("#login-user").send_keys(user)
        self.find("#login-password").send_keys(PASSWORDS[user])
        self.find("#login-submit").click()
        self.wait(lambda: self.text("#who") == f"{user} ({user})")
        self.open(fragment)

    def until(self, condition: Callable[[], Any], message: str | Callable[[], str] = "") -> Any:
        """condition()'s first truthy value (elements replaced while looked at count as not yet); the message (or
        what the page shows) only once the time is up, so waiting reads no log it would consume."""
        def check(_: Any) -> Any:
            try:
                return condition()
            except (StaleElementReferenceException, AssertionError):
                return False

        try:
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.05).until(check)
        except TimeoutException:
            said = message() if callable(message) else message
            raise AssertionError(f"not shown within {WAIT} s: {said or 'condition not met'}; error line "
                                 f"{self.text('#error')!r}; page errors {self.console_errors()}") from None

    wait = until

    def find(self, css: str) -> WebElement:
        return self.until(lambda: self.driver.find_element(By.CSS_SELECTOR, css))

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The element's text now, as shown ('' while it is not there); read in one step, so never stale."""
        return self.driver.execute_script(
            "const found = document.querySelector(arguments[0]); return found ? found.innerText : ''", css)

    def wait_text(self, css: str, text: str) -> WebElement:
        return self.until(lambda: text in self.text(css) and self.driver.find_element(By.CSS_SELECTOR, css),
                          lambda: f"{text!r} not in {css}, which shows {self.text(css)!r}")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def console_errors(self) -> list[str]:
        """What the pages logged as errors (CSP violations, exceptions, failed requests) since the last call."""
        try:
            return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]
        except WebDriverException:
            return []

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
