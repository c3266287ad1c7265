"""Browser check of the built book (``make check-book``): every chapter opened in headless Chromium.

For each page of ``_toc.yml`` the rendered HTML is served from a local HTTP server (127.0.0.1 only) and
opened in Debian's headless ``chromium`` through its WebDriver (``chromedriver``). The check fails when:
  * a page does not load, or logs an error in the browser console;
  * its math is not typeset: every ``.math`` element must hold a MathJax ``mjx-container``, and no TeX
    error (``mjx-merror``) may appear;
  * one of its images is not displayed, does not decode, or is blank, or a notebook page shows fewer
    output figures than its notebook stores;
  * a notebook page lacks a Colab button to its own notebook in the repository of ``_config.yml``, or the
    notebook itself does not open with its "Open in Colab" link to the same URL, or the notebook's Colab
    install cell installs from another repository;
  * a page requests anything not served by the book itself (the book must work offline);
  * an internal link, image, script or stylesheet of any built page points at a missing file or anchor.
A full-page screenshot of every chapter is saved for people to look at.

    python book/check_html.py _build/html --screenshots ci-artifacts/screenshots
"""

import argparse
import base64
import functools
import http.server
import io
import json
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import yaml
from bs4 import BeautifulSoup
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    "--hide-scrollbars",
]
EXTERNAL = ("http:", "https:", "mailto:", "javascript:", "data:", "tel:")
# console messages that are not the book's fault: the browser asks the test server for /favicon.ico, and
# pydata-sphinx-theme logs an error when the theme mode is not yet in localStorage (a fresh profile)
HARMLESS = ("favicon.ico", "Got invalid theme mode")


def toc_pages(toc_path):
    """Document names (without suffix) of every page in a jb-book ``_toc.yml``, in reading order."""
    toc = yaml.safe_load(Path(toc_path).read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [p.rsplit(".", 1)[0] if p.endswith((".md", ".ipynb")) else p for p in pages]


def colab_url(config_path, page):
    """The Colab URL a notebook page must link to, from ``_config.yml``'s repository settings."""
    cfg = yaml.safe_load(Path(config_path).read_text())
    repo = cfg["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
    branch = cfg["repository"].get("branch", "main")
    book_path = (cfg["repository"].get("path_to_book") or "").strip("/")
    path = f"{book_path}/{page}.ipynb" if book_path else f"{page}.ipynb"
    colab = cfg["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{repo}/blob/{branch}/{path}"


def check_links(build):
    """Every internal href/src of every built page resolves to a file (and anchor). Returns problems."""
    problems, ids = [], {}

    def anchors(path):
        if path not in ids:
            soup = BeautifulSoup(path.read_text(errors="replace"), "html.parser")
            ids[path] = {t.get("id") for t in soup.find_all(id=True)} | {
                t.get("name") for t in soup.find_all("a", attrs={"name": True})
            }
        return ids[path]

    pages = [p for p in build.rglob("*.html") if "_static" not in p.parts]
    for page in pages:
        soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
        refs = [("a", a.get("href")) for a in soup.find_all("a", href=True)]
        refs += [("img", i.get("src")) for i in soup.find_all("img", src=True)]
        refs += [("script", s.get("src")) for s in soup.find_all("script", src=True)]
        refs += [
            ("link", link.get("href"))
            for link in soup.find_all("link", href=True)
            if "stylesheet" in (link.get("rel") or []) or "icon" in (link.get("rel") or [])
        ]
        for tag, ref in refs:
            if tag in ("script", "link") and ref.startswith(("http:", "https:", "//")):
                problems.append(f"{page.relative_to(build)}: <{tag}> loads {ref} from the network")
                continue
            if ref.startswith(EXTERNAL) or ref.startswith("//"):
                continue
            url, frag = urldefrag(ref)
            target = page if not url else (page.parent / unquote(urlparse(url).path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page.relative_to(build)}: <{tag}> {ref} -> missing file")
            elif frag and target.suffix == ".html" and unquote(frag) not in anchors(target):
                problems.append(f"{page.relative_to(build)}: <{tag}> {ref} -> missing anchor #{frag}")
    return problems, len(pages)


def serve(build):
    """Serve the build folder on 127.0.0.1 (a free port) in a daemon thread; returns (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def browser():
    """Headless Debian chromium driven by Debian's chromedriver (no driver download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        sys.exit("chromium and chromedriver are needed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


MATH_JS = """
const done = arguments[arguments.length - 1];
const report = () => done({
  math: document.querySelectorAll('.math').length,
  untypeset: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length,
  containers: document.querySelectorAll('mjx-container').length,
  errors: [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent),
  mathjax: !!window.MathJax && !!window.MathJax.version, version: window.MathJax && window.MathJax.version,
});
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(report).catch(e => done({failed: String(e)}));
} else { report(); }
"""
FIGURES_JS = "return document.querySelectorAll('.cell_output img, figure img').length"
IMAGES_JS = """
return [...document.querySelectorAll('article img, main img, .bd-article img')].map(i => ({
  src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}));
"""


def check_image(build, page_path, src):
    """The image file decodes, has a nonzero size and is not a single flat colour. Returns a problem or None."""
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        path = (build / page_path).parent / unquote(urlparse(src).path)
        if not path.exists():
            return f"image {src} missing"
        data = path.read_bytes()
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
        return f"image {src} does not decode ({e})"
    if img.width == 0 or img.height == 0:
        return f"image {src} has size {img.size}"
    lo_hi = img.convert("L").getextrema()
    if lo_hi[0] == lo_hi[1]:
        return f"image {src} is blank (one flat colour)"
    return None


def check_pages(build, pages, config, shots, base):
    """Open every page in Chromium; returns (problems, per-page summary lines)."""
    problems, lines = [], []
    driver = browser()
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        for page in pages:
            rel = f"{page}.html"
            if not (build / rel).exists():
                problems.append(f"{rel}: not built")
                continue
            t0 = time.time()
            driver.get(base + rel)
            title = driver.title
            body = driver.find_element("tag name", "body").text
            if "404" in title or not body.strip():
                problems.append(f"{rel}: did not load (title {title!r})")
                continue
            math = driver.execute_async_script(MATH_JS)
            if "failed" in math:
                problems.append(f"{rel}: MathJax failed: {math['failed']}")
            elif math["math"] and not math["mathjax"]:
                problems.append(f"{rel}: {math['math']} math elements but MathJax is not loaded")
            elif math["untypeset"]:
                problems.append(f"{rel}: {math['untypeset']} of {math['math']} math elements not typeset")
            if math.get("errors"):
                problems.append(f"{rel}: TeX errors {math['errors'][:3]}")
            images = driver.execute_script(IMAGES_JS)
            figures = driver.execute_script(FIGURES_JS)
            source_nb = ROOT / f"{page}.ipynb"
            if source_nb.exists():
                stored = json.loads(source_nb.read_text())
                want_figs = sum("image/png" in o.get("data", {}) for c in stored["cells"] for o in c.get("outputs", []))
                if figures < want_figs:
                    problems.append(f"{rel}: shows {figures} output figures, the notebook stores {want_figs}")
            for img in images:
                if not img["complete"] or not img["width"]:
                    problems.append(f"{rel}: image {img['src']} not displayed")
                else:
                    bad = check_image(build, rel, img["src"])
                    if bad:
                        problems.append(f"{rel}: {bad}")
            colab = [
                a.get_attribute("href")
                for a in driver.find_elements("css selector", "a")
                if "colab.research.google.com" in (a.get_attribute("href") or "")
            ]
            if page.startswith("notebooks/"):
                want = colab_url(config, page)
                if want not in colab:
                    problems.append(f"{rel}: no Colab button to {want} (found {colab})")
                if source_nb.exists() and f"[Open in Colab]({want})" not in "".join(stored["cells"][0]["source"]):
                    problems.append(f"{page}.ipynb: its first cell lacks the link [Open in Colab]({want})")
                repo = yaml.safe_load(Path(config).read_text())["repository"]["url"].rstrip("/")
                if source_nb.exists() and f"git clone -q --depth 1 {repo} " not in source_nb.read_text():
                    problems.append(f"{page}.ipynb: its Colab install cell does not install from {repo}")
            resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            outside = sorted({r for r in resources if not r.startswith((base, "data:", "blob:"))})
            if outside:
                problems.append(f"{rel}: requests outside the book (not offline): {outside[:5]}")
            severe = [
                e["message"]
                for e in driver.get_log("browser")
                if e.get("level") == "SEVERE" and not any(h in e["message"] for h in HARMLESS)
            ]
            if severe:
                problems.append(f"{rel}: browser console errors: {severe[:3]}")
            if shots:
                shot = shots / (page.replace("/", "__") + ".png")
                height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 12000)")
                driver.set_window_size(1280, height)  # the whole page in one viewport
                time.sleep(0.3)
                shot.write_bytes(driver.get_screenshot_as_png())
                driver.set_window_size(1280, 1000)
            lines.append(
                f"  {rel:45s} math {math.get('containers', 0):3d}/{math.get('math', 0):3d} typeset, "
                f"{figures:2d} figures ({len(images):2d} images), colab {'yes' if colab else 'no ':3s}, "
                f"{len(resources):3d} local requests, {time.time() - t0:4.1f} s"
            )
    finally:
        driver.quit()
    return problems, lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for full-page screenshots")
    parser.add_argument("--toc", type=Path, default=ROOT / "_toc.yml")
    parser.add_argument("--config", type=Path, default=ROOT / "_config.yml")
    args = parser.parse_args(argv)
    build = args.build.resolve()
    if not (build / "index.html").exists():
        sys.exit(f"{build} holds no built book (run `make book` first)")
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    pages = toc_pages(args.toc)

    link_problems, n_html = check_links(build)
    server, base = serve(build)
    try:
        page_problems, lines = check_pages(build, pages, args.config, args.screenshots, base)
    finally:
        server.shutdown()
    print(f"checked {len(pages)} chapter pages in headless Chromium and the links of {n_html} HTML files:")
    print("\n".join(lines))
    problems = link_problems + page_problems
    if args.screenshots:
        print(f"screenshots in {args.screenshots}")
    if problems:
        print(f"\n{len(problems)} problem(s):", *problems, sep="\n  ")
        return 1
    print("book check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
