"""The browser half of the production smoke test (.ci/smoke_production.sh starts the site).

Headless chromium logs in to a running Loupe, labels one item from the keyboard, asks for a label
export (done by the Celery worker), and loads every main page. It fails on any page or sub-resource
(stylesheet, script, image, XHR) that answers 4xx/5xx or does not load, and on any console error.

    .venv/bin/python .ci/smoke_check.py --base http://127.0.0.1:8000 --password ... \
        --staff admin --staff-password ... --annotator demo-annotator
"""

import argparse
import re
import shutil
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


class Problems:
    """Everything that went wrong in one browser context, by the page that was being checked."""

    def __init__(self, context):
        self.where = "(before the first page)"
        self.found = []
        context.on("response", self._response)
        context.on("requestfailed", self._failed)

    def watch(self, page):
        page.on(
            "console",
            lambda msg: msg.type == "error" and self.add(f"console error: {msg.text} ({msg.location.get('url', '')})"),
        )
        page.on("pageerror", lambda exc: self.add(f"script error: {exc}"))

    def add(self, what):
        self.found.append(f"{self.where}: {what}")

    def _response(self, res):
        if res.status >= 400:
            self.add(f"{res.status} {res.request.resource_type} {res.url}")

    def _failed(self, req):
        if req.failure == "net::ERR_ABORTED" and req.resource_type == "other":
            return  # the favicon, fetched after the page loaded, cancelled when the check moves on
        self.add(f"failed {req.resource_type} {req.url}: {req.failure}")


def login(page, base, username, password):
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def open_session(browser, base, username, password):
    """A fresh browser context logged in as `username`, its page, and the problems it will record."""
    context = browser.new_context()
    problems = Problems(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems.watch(page)
    print(f"as {username}:", flush=True)
    login(page, base, username, password)
    return context, page, problems


def load(page, problems, base, path):
    """Open one page and wait until its scripts and the requests they make have settled."""
    problems.where = path
    response = page.goto(base + path)
    page.wait_for_load_state("networkidle")
    if response is None or response.status >= 400:
        problems.add(f"the page answered {response.status if response else 'nothing'}")
    if not page.evaluate("[...document.styleSheets].some(s => s.cssRules.length > 0)"):
        problems.add("no stylesheet applied")
    print(f"  {response.status if response else '---'} {path}", flush=True)


def first_link(page, pattern):
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    return next((h for h in hrefs if re.fullmatch(pattern, h)), None)


def label_one_item(page, problems, base, project_id):
    """Label the first item served with the first label's hotkey; the stored count goes up by one."""
    problems.where = f"/projects/{project_id}/label (labeling)"
    page.goto(f"{base}/projects/{project_id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    before = int(page.locator("#done-today").inner_text().replace(",", ""))
    shown = page.locator("#item-ext").inner_text()
    page.keyboard.press("1")
    page.wait_for_function(f"document.querySelector('#done-today').innerText.replace(/,/g, '') === '{before + 1}'")
    page.reload()
    page.wait_for_load_state("networkidle")
    after = int(page.locator("#done-today").inner_text().replace(",", ""))
    if after != before + 1:
        problems.add(f"labeling {shown} with key 1 was not stored ({before} -> {after} today)")
    print(f"  labeled {shown} from the keyboard ({before} -> {after} done today)", flush=True)


def export_through_the_worker(page, problems, base, project_id, timeout):
    """Ask for a label snapshot as the export page's button does, and wait for the worker to build it."""
    problems.where = f"/projects/{project_id}/export (export by the worker)"
    token = page.evaluate("document.cookie.match(/csrftoken=([^;]+)/)?.[1] || ''") or page.locator(
        "input[name=csrfmiddlewaretoken]"
    ).first.get_attribute("value")
    res = page.request.post(
        f"{base}/api/projects/{project_id}/exports",
        data={"format": "jsonl"},
        headers={"X-CSRFToken": token, "Referer": f"{base}/projects/{project_id}/export"},
    )
    if res.status != 202:
        problems.add(f"POST exports answered {res.status}: {res.text()[:300]}")
        return
    export_id = res.json()["id"]
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = page.request.get(f"{base}/api/exports/{export_id}").json().get("status")
        if status in ("done", "failed"):
            break
        page.wait_for_timeout(250)
    if status != "done":
        problems.add(f"export {export_id} is {status!r} after {timeout}s: is the Celery worker consuming?")
        return
    download = page.request.get(f"{base}/api/exports/{export_id}/download")
    if download.status != 200:
        problems.add(f"export download answered {download.status}")
    print(f"  export {export_id} built by the worker ({len(download.body())} bytes)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--staff", required=True, help="a staff login (sees every project and the admin)")
    parser.add_argument("--staff-password", required=True)
    parser.add_argument("--annotator", required=True, help="a member who labels")
    parser.add_argument("--password", required=True, help="the annotator's password")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--worker-timeout", type=float, default=60)
    args = parser.parse_args()
    base = args.base.rstrip("/")
    problems_all = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)

        annotator_ctx, page, problems = open_session(browser, base, args.annotator, args.password)
        project_id = page.locator("[data-project-id]").first.get_attribute("data-project-id")
        label_one_item(page, problems, base, project_id)
        problems_all += problems.found
        annotator_ctx.close()

        staff_ctx, page, problems = open_session(browser, base, args.staff, args.staff_password)
        pages = (
            ["/", f"/projects/{project_id}/"]
            + [
                f"/projects/{project_id}/{name}"
                for name in ("label", "review", "quality", "delay", "datasets", "export")
            ]
            + ["/bugs", "/bugs/digests", "/triage", "/api/docs", "/admin/"]
        )
        found = {}
        for path in pages:
            load(page, problems, base, path)
            if path == "/bugs":
                found["bug"] = first_link(page, r"/bugs/\d+")
            if path.endswith("/datasets"):
                found["failures"] = first_link(page, r"/evaluations/\d+/datasets/\d+/failures")
            if path == "/bugs/digests":
                found["digest"] = first_link(page, r"/bugs/digests/\d+")
        for what, path in found.items():
            if path:
                load(page, problems, base, path)
            else:
                print(f"  (no {what} page linked: skipped)", flush=True)
        export_through_the_worker(page, problems, base, project_id, args.worker_timeout)
        problems_all += problems.found
        staff_ctx.close()
        browser.close()

    if problems_all:
        print("\nPROBLEMS:", *problems_all, sep="\n  ", flush=True)
        return 1
    print("browser check: every page and sub-resource loaded, no console error", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
