"""What the Trigger form helpers share (they run in the Playwright venv, beside this file): Debian's
Chromium, headless, logged in to Airflow 3 as a person, with a DAG's Trigger dialog open."""

import json

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",  # this machine has no internet: no update or sync calls
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SUBMIT = "[data-testid=trigger-dag-submit]"


def open_trigger_dialog(playwright, url, user, password, dag_id, **context_options):
    """(browser, page, dialog): the DAG's Trigger dialog, open."""
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    page = browser.new_context(viewport={"width": 1200, "height": 1700}, **context_options).new_page()
    page.goto(f"{url}/auth/login?next=/dags/{dag_id}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/dags/{dag_id}")
    page.click("[data-testid=trigger-dag-button]")
    return browser, page, page.get_by_role("dialog")


def field_as_shown(dialog, field):
    """A form field's title and description, as the dialog shows them."""
    group = dialog.locator(f"div[role=group]:has(#element_{field})")
    return {
        "title": group.locator("label").first.inner_text().replace("*", "").strip(),
        "description": group.locator("[data-part=helper-text]").first.inner_text().strip(),
    }


def press_trigger(page, dialog, dag_id):
    """Press Trigger: (the response, {"status": its status, "sent": the body the form posted})."""
    posted = f"/api/v2/dags/{dag_id}/dagRuns"
    with page.expect_response(lambda r: r.url.endswith(posted) and r.request.method == "POST") as response:
        dialog.locator(SUBMIT).click()
    return response.value, {"status": response.value.status, "sent": json.loads(response.value.request.post_data)}
