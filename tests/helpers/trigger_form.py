"""Run inside a venv with Playwright: use a DAG's Trigger form in Airflow 3 as a person does.

    python trigger_form.py URL USER PASSWORD DAG_ID SCREENSHOT.png  ->  JSON on stdout

Debian's Chromium, headless. Reports each form field's title, description and
value as shown, whether Trigger is enabled, and the answer to pressing it.
"""

import json
import sys

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",  # this machine has no internet: no update or sync calls
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main():
    url, user, password, dag_id, screenshot = sys.argv[1:]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1700})
        page.goto(f"{url}/auth/login?next=/dags/{dag_id}")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/dags/{dag_id}")
        page.click("[data-testid=trigger-dag-button]")
        dialog = page.get_by_role("dialog")
        dialog.locator("[id^=element_]").first.wait_for()
        page.wait_for_load_state("networkidle")
        dialog.screenshot(path=screenshot)
        fields = {}
        for group in dialog.locator("div[role=group]:has([id^=element_])").all():
            name = group.locator("[id^=element_]").first.get_attribute("id").removeprefix("element_")
            fields[name] = {
                "title": group.locator("label").first.inner_text().replace("*", "").strip(),
                "description": group.locator("[data-part=helper-text]").first.inner_text().strip(),
            }
        submit = dialog.locator("[data-testid=trigger-dag-submit]")
        enabled = submit.is_enabled()
        answer = None
        if enabled:
            posted = f"/api/v2/dags/{dag_id}/dagRuns"
            with page.expect_response(lambda r: r.url.endswith(posted) and r.request.method == "POST") as response:
                submit.click()
            answer = {"status": response.value.status, "sent": json.loads(response.value.request.post_data)}
        browser.close()
    print(json.dumps({"fields": fields, "trigger_enabled": enabled, "trigger": answer}))


if __name__ == "__main__":
    main()
