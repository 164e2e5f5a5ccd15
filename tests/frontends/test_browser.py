"""The web app in a real browser: headless Chromium from Debian (``chromium``,
``chromium-driver``) driven by selenium, against the tiny demo served on a loopback port.

CI installs both packages (``.ci/run``); elsewhere these tests are skipped, saying why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from web_support import BROKEN_PHOTO

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and DRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
    "/usr/bin/chromedriver): apt-get install -y chromium chromium-driver",
)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # the flags a closed network needs (no background connections) and a root CI user needs
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,900"):  # fmt: skip
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(DRIVER)), options=options)
    yield driver
    driver.quit()


def wait_for(browser, css: str, n: int | None = None):
    """The elements matching ``css`` once there are some (``n`` of them, if given)."""

    def found(driver):
        elements = driver.find_elements(By.CSS_SELECTOR, css)
        return elements if elements and (n is None or len(elements) == n) else False

    return WebDriverWait(browser, 15).until(found)


def test_search_click_an_image_and_come_back(browser, live_url, tmp_path):
    browser.get(live_url + "/")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("a dog in a park")
    k = browser.find_element(By.NAME, "k")
    k.clear()
    k.send_keys("6")
    Select(browser.find_element(By.NAME, "images")).select_by_value("all")
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()

    tiles = wait_for(browser, "#results .tile", 6)
    for tile in tiles:  # demo images: the captions show in the photo's place
        placeholder = tile.find_element(By.CSS_SELECTOR, ".placeholder")
        assert placeholder.is_displayed() and len(placeholder.text.splitlines()) >= 5
        assert "image " in tile.find_element(By.CSS_SELECTOR, ".meta").text
    ids = [t.get_attribute("data-image-id") for t in tiles]
    shot = tmp_path / "search.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    tiles[0].find_element(By.TAG_NAME, "a").click()
    similar = wait_for(browser, "#similar .tile")
    assert f"Image {ids[0]}" in browser.find_element(By.TAG_NAME, "h1").text
    assert ids[0] not in [t.get_attribute("data-image-id") for t in similar]
    assert browser.find_elements(By.CSS_SELECTOR, "#tags li")
    assert browser.find_element(By.ID, "rank").text.startswith("Rank 1 of")

    browser.find_element(By.LINK_TEXT, "ResNet descriptors (how it looks)").click()
    wait_for(browser, "#similar .tile")
    assert "descriptor" in browser.current_url

    browser.back()
    browser.back()
    again = wait_for(browser, "#results .tile", 6)
    assert [t.get_attribute("data-image-id") for t in again] == ids


def test_a_photo_that_cannot_load_shows_its_captions(browser, live_url, broken_photo_image):
    browser.get(f"{live_url}/image/{broken_photo_image}")
    tile = wait_for(browser, ".tile.big")[0]
    photo = tile.find_element(By.CSS_SELECTOR, "img.photo")
    assert photo.get_attribute("src") == BROKEN_PHOTO
    WebDriverWait(browser, 15).until(lambda d: "no-photo" in tile.get_attribute("class"))
    assert not photo.is_displayed()
    assert tile.find_element(By.CSS_SELECTOR, ".placeholder").is_displayed()


def test_the_page_runs_no_inline_script(browser, live_url):
    """The CSP forbids inline scripts: a script injected through a query never runs."""
    browser.get(live_url + "/?q=%3Cscript%3Ewindow.owned%3D1%3C%2Fscript%3E+dog")
    wait_for(browser, "#results .tile")
    assert browser.execute_script("return window.owned === undefined")
    assert browser.find_element(By.NAME, "q").get_attribute("value").startswith("<script>")


def test_search_by_an_uploaded_photo(browser, live_url, tmp_path):
    photo = tmp_path / "holiday.jpg"
    pixels = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    browser.get(live_url + "/photo")
    browser.find_element(By.NAME, "photo").send_keys(str(photo))
    k = browser.find_element(By.NAME, "k")
    k.clear()
    k.send_keys("5")
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()
    tiles = wait_for(browser, "#results .tile", 5)
    assert browser.find_elements(By.CSS_SELECTOR, "#tags li")
    assert all(t.find_element(By.CSS_SELECTOR, ".placeholder").is_displayed() for t in tiles)
    assert browser.save_screenshot(str(tmp_path / "photo.png"))


@pytest.fixture
def phone(browser):
    """The browser as a 390 px wide phone for one test."""
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    yield browser
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_every_page_fits_a_phone(phone, live_url, hostile_image):
    """No page is wider than a 390 px phone: no sideways scrolling, nothing cut off."""
    pages = ["/", "/?q=a+dog+in+a+park&k=6", f"/image/{hostile_image}?q=a+dog", "/photo",
             "/about", "/nowhere"]  # fmt: skip
    for path in pages:
        phone.get(live_url + path)
        wait_for(phone, "header nav a")
        width, viewport = phone.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert viewport == 390 and width <= viewport, (path, width)
        about = phone.find_element(By.LINK_TEXT, "About")
        right = phone.execute_script("return arguments[0].getBoundingClientRect().right", about)
        assert right <= viewport, path


def test_a_threshold_of_hundredths_is_accepted(browser, live_url):
    browser.get(live_url + "/")
    browser.find_element(By.NAME, "q").send_keys("a dog")
    browser.find_element(By.NAME, "threshold").send_keys("0.33")
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()
    WebDriverWait(browser, 15).until(lambda d: "threshold=0.33" in d.current_url)
    summary = wait_for(browser, "p.summary")[0].text
    assert "with score ≥ 0.33" in summary


def test_the_photo_page_says_it_is_describing_then_shows_the_photo(browser, live_url, tmp_path):
    photo = tmp_path / "holiday.png"
    Image.new("RGB", (120, 90), (200, 40, 40)).save(photo)
    browser.get(live_url + "/photo")
    browser.find_element(By.NAME, "photo").send_keys(str(photo))
    button = browser.find_element(By.CSS_SELECTOR, "form.search button")
    status = browser.find_element(By.ID, "status")
    assert button.text == "Search" and not status.is_displayed()
    # a listener after the app's holds the form back: the page shows its waiting state
    browser.execute_script(
        "document.querySelector('form.photo').addEventListener('submit', e => e.preventDefault())"
    )
    button.click()
    assert not button.is_enabled() and button.text == "Describing…" and status.is_displayed()
    browser.get(live_url + "/photo")  # again, and this time the form goes
    browser.find_element(By.NAME, "photo").send_keys(str(photo))
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()
    preview = wait_for(browser, "img#preview")[0]
    assert preview.get_attribute("src").startswith("data:image/jpeg;base64,")
    # a thumbnail never enlarges: this 120 x 90 photo shows at its own size
    assert browser.execute_script("return arguments[0].naturalWidth", preview) == 120
    assert wait_for(browser, "#results .tile")
