"""The browser client in a real browser: Debian's chromium, headless, through chromium-driver (selenium),
with a fake microphone that plays espeak-ng speech. The page captures it with an AudioWorklet, streams it
to `streamer serve` and shows the captions."""

import shutil
import time

import numpy as np
import pytest

from streamer.sources.ffmpeg import read_audio

from helpers import espeak, speech_file, start_server, wav_of

SENTENCE = "elevene leser bøker på biblioteket"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    folder = tmp_path_factory.mktemp("browser")
    speech = read_audio(str(espeak(SENTENCE, folder / "speech.wav")))
    mic = folder / "mic.wav"
    # speech after a second of silence, then silence (the file loops)
    wav_of(np.concatenate([np.zeros(16000, np.int16), speech, np.zeros(48000, np.int16)]), mic)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required",
                 f"--user-data-dir={folder / 'profile'}", "--window-size=1000,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def test_the_page_captions_the_microphone(tiny_nb, browser, tmp_path):
    from selenium.webdriver.common.by import By

    server = start_server(tiny_nb)
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        assert "streamer" in browser.title
        browser.find_element(By.ID, "start").click()
        deadline, shown = time.time() + 60, ""
        while time.time() < deadline:
            shown = browser.find_element(By.ID, "captions").text
            if "biblioteket" in browser.find_element(By.ID, "finals").text.lower():
                break
            time.sleep(0.5)
        state = browser.find_element(By.ID, "state").text
        screenshot = tmp_path / "captions.png"
        browser.save_screenshot(str(screenshot))
        print(f"screenshot of the page with captions: {screenshot}")
        assert "biblioteket" in browser.find_element(By.ID, "finals").text.lower(), (shown, state)
        assert "elevene" in shown.lower() and state == "captioning"
        assert screenshot.stat().st_size > 10_000
        assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None  # no error shown
        browser.find_element(By.ID, "stop").click()
        deadline = time.time() + 30
        while "finished" not in browser.find_element(By.ID, "state").text and time.time() < deadline:
            time.sleep(0.2)
        assert "finished" in browser.find_element(By.ID, "state").text
    finally:
        assert server.stop() == 0


def test_the_page_captions_a_local_file(tiny_nb, browser, tmp_path):
    from selenium.webdriver.common.by import By

    clip = espeak("kongen åpnet stortinget i dag", tmp_path / "file.wav")
    server = start_server(tiny_nb)
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        browser.find_element(By.ID, "file").send_keys(str(clip))
        deadline = time.time() + 60
        while "finished" not in browser.find_element(By.ID, "state").text and time.time() < deadline:
            time.sleep(0.3)
        assert "finished" in browser.find_element(By.ID, "state").text
        assert "Stortinget" in browser.find_element(By.ID, "finals").text  # the written form: a name's capital
    finally:
        assert server.stop() == 0


def test_the_viewer_page_rolls_up_the_broadcast_beside_the_video(tiny_nb, browser, tmp_path):
    """`serve --ingest`: the viewer page shows two roll-up lines of the broadcast, and the video it is given."""
    import functools
    import http.server
    import subprocess
    import threading

    from selenium.webdriver.common.by import By

    ingest = speech_file(tmp_path, lead_s=3.0)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=10:duration=5",
                    "-c:v", "libvpx", "-b:v", "200k", str(tmp_path / "video.webm")], check=True)
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    server = start_server(tiny_nb, "--ingest", ingest, "--ingest-realtime")
    try:
        video = f"http://127.0.0.1:{files.server_address[1]}/video.webm"
        browser.get(f"http://127.0.0.1:{server.port}/viewer?video={video}")
        deadline, lines = time.time() + 60, []
        while time.time() < deadline:
            lines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#rollup .line")]
            if any("regjeringen" in line.lower() for line in lines):
                break
            time.sleep(0.3)
        screenshot = tmp_path / "viewer.png"
        browser.save_screenshot(str(screenshot))
        print(f"screenshot of the viewer page: {screenshot}")
        assert any("regjeringen" in line.lower() for line in lines), lines
        assert 1 <= len(lines) <= 2  # roll-up: two lines at most
        assert browser.find_element(By.ID, "video").is_displayed()
        assert browser.find_element(By.ID, "video").get_attribute("src") == video
    finally:
        files.shutdown()
        assert server.stop() == 0
