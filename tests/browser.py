"""Render a page in headless Chromium (Debian's ``chromium``, driven by Playwright) and check it.

Nothing is downloaded: Playwright launches the system browser (``BAYES_SCALING_CHROMIUM`` or
``chromium`` on the PATH). A page fails the check on an uncaught JavaScript error, a console error,
a failed resource request, an image that did not load, or an *empty figure*: an image with almost
no ink, or with no coloured pixels (our figures draw data in colour; an axes-only plot is black,
grey and white).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

#: flags for a closed network (no background connections) and a root user in a container
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MIN_INK = 0.005      # share of pixels that are not near-white
MIN_COLOURED = 0.0005  # share of pixels with a clear hue (data drawn in colour)

IMAGE_STATS_JS = """
() => Array.from(document.images).map((img, i) => {
  const out = {index: i, alt: img.alt, complete: img.complete, width: img.naturalWidth,
               height: img.naturalHeight, ink: 0, coloured: 0, error: null};
  if (!img.complete || img.naturalWidth === 0) return out;
  try {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let ink = 0, col = 0;
    for (let k = 0; k < d.length; k += 4) {
      const r = d[k], g = d[k + 1], b = d[k + 2], a = d[k + 3];
      if (a > 0 && (r < 230 || g < 230 || b < 230)) ink++;
      if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) col++;
    }
    const n = d.length / 4;
    out.ink = ink / n; out.coloured = col / n;
  } catch (e) { out.error = String(e); }
  return out;
})
"""


def find_chromium() -> str | None:
    return os.environ.get("BAYES_SCALING_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageCheck:
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    screenshot: Path | None = None
    #: the text of the headings, paragraphs and table cells visible without scrolling
    first_screen_text: str = ""

    @property
    def problems(self) -> list[str]:
        out = [f"JavaScript error: {e}" for e in self.page_errors]
        out += [f"console error: {e}" for e in self.console_errors]
        out += [f"failed request: {u}" for u in self.failed_requests]
        for im in self.images:
            name = f"image {im['index']} ({im['alt'] or 'no alt'})"
            if not im["complete"] or im["width"] == 0:
                out.append(f"{name} did not load")
            elif im["error"]:
                out.append(f"{name} could not be read: {im['error']}")
            elif im["ink"] < MIN_INK or im["coloured"] < MIN_COLOURED:
                out.append(f"{name} is an empty figure (ink {im['ink']:.4f}, coloured {im['coloured']:.5f})")
        return out


FIRST_SCREEN_JS = """
() => {
  const h = window.innerHeight, out = [];
  for (const el of document.querySelectorAll('h1,h2,p,th,td')) {
    const r = el.getBoundingClientRect();
    if (r.top < h && r.bottom > 0) out.push(el.innerText);
  }
  return out.join('\\n');
}
"""


def check_page(path: Path, screenshot: Path, width: int = 1200, first_screen: Path | None = None) -> PageCheck:
    """Open ``path`` (a local HTML file) offline, collect errors and image statistics, screenshot it (the whole
    page; ``first_screen``: also what shows before any scrolling, with its text)."""
    from playwright.sync_api import sync_playwright

    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium executable (install Debian's chromium or set BAYES_SCALING_CHROMIUM)")
    res = PageCheck()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 900}, offline=True)
            page = context.new_page()
            page.on("pageerror", lambda e: res.page_errors.append(str(e)))
            page.on("console", lambda m: res.console_errors.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: res.failed_requests.append(r.url))
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            res.images = page.evaluate(IMAGE_STATS_JS)
            res.first_screen_text = page.evaluate(FIRST_SCREEN_JS)
            if first_screen is not None:
                page.screenshot(path=str(first_screen), full_page=False)
            page.screenshot(path=str(screenshot), full_page=True)
            res.screenshot = Path(screenshot)
        finally:
            browser.close()
    return res
