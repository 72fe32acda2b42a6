"""GraphiQL in a real Chromium, offline: from a `corpgraph serve` process, with every host but
127.0.0.1 unresolvable, the page renders, its example runs on the first press of Run, and the
explorer and the docs open. Needs Debian's `chromium` and `chromium-driver`."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.wait import WebDriverWait

from tests.servers import corpgraph_processes

pytestmark = pytest.mark.e2e

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
WAIT_SECONDS = 60  # a busy 2-core machine parses 1.2 MB of JavaScript slowly
RESULT = "return document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue();"
SET_QUERY = (
    "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
    ".setValue(arguments[0]);"
)
SUBSCRIPTION = """subscription AppleFilings {{
  filingAdded(tickers: ["AAPL"], since: "{since}") {{ company {{ ticker }} accessionNumber }}
}}"""
OLDEST_CURSOR = """
const [url, done] = arguments;
const query = '{ company(ticker: "AAPL") { filings(last: 1) { nodes { ingestCursor } } } }';
fetch(url, { method: "POST", headers: { "content-type": "application/json" },
             body: JSON.stringify({ query }) })
  .then(response => response.json())
  .then(answer => done(answer.data.company.filings.nodes[0].ingestCursor));
"""


def chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "Chromium or chromedriver is not installed "
            "(apt-get install chromium chromium-driver): GraphiQL's browser test needs both"
        )
    return browser, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium (nothing stored: a first visit) that resolves 127.0.0.1 only;
    its last screenshot is left in the test's tmp_path."""
    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", OFFLINE):
        options.add_argument(argument)
    options.add_argument("--window-size=1500,950")
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.save_screenshot(str(tmp_path / "graphiql.png"))
        session.quit()


@pytest.fixture(scope="module")
def base(database_url: str, redis_url: str) -> Iterator[str]:
    with corpgraph_processes(1, database_url, redis_url) as hosts:
        yield f"http://{hosts[0]}"


def wait(browser: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(browser, WAIT_SECONDS)


def opened(browser: WebDriver, url: str) -> WebElement:
    """GraphiQL at `url`, rendered: its Run button."""
    browser.get(url)
    run = wait(browser).until(
        shown.element_to_be_clickable((By.CLASS_NAME, "graphiql-execute-button"))
    )
    return run


def result(browser: WebDriver) -> Any:
    text = wait(browser).until(lambda _: browser.execute_script(RESULT))
    return json.loads(text)


def aapl_overview(answer: Any) -> None:
    assert "errors" not in answer, answer
    company = answer["data"]["company"]
    assert (company["ticker"], company["name"]) == ("AAPL", "Apple Inc.")
    accessions = [filing["accessionNumber"] for filing in company["filings"]["nodes"]]
    assert len(accessions) == 3 and all(a.startswith("0000320193-") for a in accessions)


def test_the_example_runs_on_the_first_press_of_run(browser: WebDriver, base: str) -> None:
    opened(browser, f"{base}/graphql").click()
    aapl_overview(result(browser))
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name);"
    )
    assert loaded and all(url.startswith(f"{base}/") for url in loaded), loaded
    opened(browser, f"{base}/graphql").click()  # again, from what GraphiQL stored
    aapl_overview(result(browser))
    assert len(browser.find_elements(By.CLASS_NAME, "graphiql-tab")) == 1


def test_the_explorer_and_the_docs_render(browser: WebDriver, base: str) -> None:
    opened(browser, f"{base}/graphql")
    explorer = wait(browser).until(
        shown.visibility_of_element_located((By.CLASS_NAME, "graphiql-explorer-root"))
    )
    wait(browser).until(lambda _: "companies" in explorer.text)
    assert "_service" not in explorer.text  # federation's fields are not for people
    assert "ticker*: $ticker" in explorer.text  # the example's argument, as the explorer shows it
    browser.find_element(By.CSS_SELECTOR, "[aria-label='Show Documentation Explorer']").click()
    docs = wait(browser).until(
        shown.visibility_of_element_located((By.CLASS_NAME, "graphiql-doc-explorer"))
    )
    wait(browser).until(lambda _: "Query" in docs.text)
    docs.find_element(By.LINK_TEXT, "Query").click()
    wait(browser).until(lambda _: "company" in docs.text and "ticker" in docs.text)


def test_subscriptions_run_over_websocket(browser: WebDriver, base: str) -> None:
    """filingAdded with `since` replays AAPL's filings after its oldest, then waits for more."""
    opened(browser, f"{base}/graphql")
    oldest = browser.execute_async_script(OLDEST_CURSOR, f"{base}/graphql")
    browser.execute_script(SET_QUERY, SUBSCRIPTION.format(since=oldest))
    tab = browser.find_element(By.CLASS_NAME, "graphiql-tab")
    wait(browser).until(lambda _: tab.text == "AppleFilings")  # GraphiQL has read the edit
    browser.find_element(By.CLASS_NAME, "graphiql-execute-button").click()
    answer = result(browser)
    assert "errors" not in answer, answer
    assert answer["data"]["filingAdded"]["company"] == {"ticker": "AAPL"}, answer


def test_an_unreachable_asset_host_is_named(
    browser: WebDriver, database_url: str, redis_url: str
) -> None:
    cdn = "https://cdn.jsdelivr.net/npm"
    with corpgraph_processes(1, database_url, redis_url, graphiql_assets_url=cdn) as hosts:
        browser.get(f"http://{hosts[0]}/graphql")
        problem = wait(browser).until(shown.visibility_of_element_located((By.ID, "problem")))
    assert "GraphiQL could not load" in problem.text
    assert f"{cdn}/react@" in problem.text and "CORPGRAPH_GRAPHIQL_ASSETS_URL" in problem.text
    assert not browser.find_element(By.ID, "graphiql").is_displayed()
