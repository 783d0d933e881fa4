"""A PNG of a report.html's first screen as the browser test sees it (offline Chromium through Playwright):
how docs/report.png, the README's picture, is made.

    python tools/report_screenshot.py OUT/report.html docs/report.png [--height 1100]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from browser import offline_page  # noqa: E402  (the tests' own launcher: same flags, same offline routing)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page")
    parser.add_argument("png")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1100)
    args = parser.parse_args()
    with offline_page(args.page, width=args.width, height=args.height) as (page, seen):
        if seen["requests"] or seen["errors"]:
            sys.exit(f"{args.page}: {seen}")
        page.screenshot(path=args.png)
    from PIL import Image
    with Image.open(args.png) as im:  # a palette PNG: a fraction of the size, the page's few colours kept
        im.convert("RGB").quantize(colors=128).save(args.png, optimize=True)
    print(f"wrote {args.png} ({os.path.getsize(args.png) // 1024} kB)")


if __name__ == "__main__":
    main()
