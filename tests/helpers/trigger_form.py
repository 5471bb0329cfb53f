"""Run inside a venv with Playwright: use a DAG's Trigger form in Airflow 3 as a person does.

    python trigger_form.py URL USER PASSWORD DAG_ID SCREENSHOT.png  ->  JSON on stdout

Debian's Chromium, headless. Reports each form field's title, description and
value as shown, whether Trigger is enabled, and the answer to pressing it.
"""

import json
import sys

from airflow_ui import SUBMIT, field_as_shown, open_trigger_dialog, press_trigger
from playwright.sync_api import sync_playwright


def main():
    url, user, password, dag_id, screenshot = sys.argv[1:]
    with sync_playwright() as playwright:
        browser, page, dialog = open_trigger_dialog(playwright, url, user, password, dag_id)
        dialog.locator("[id^=element_]").first.wait_for()
        page.wait_for_load_state("networkidle")
        dialog.screenshot(path=screenshot)
        fields = {}
        for element in dialog.locator("div[role=group] [id^=element_]").all():
            name = element.get_attribute("id").removeprefix("element_")
            fields.setdefault(name, field_as_shown(dialog, name))
        enabled = dialog.locator(SUBMIT).is_enabled()
        answer = press_trigger(page, dialog, dag_id)[1] if enabled else None
        browser.close()
    print(json.dumps({"fields": fields, "trigger_enabled": enabled, "trigger": answer}))


if __name__ == "__main__":
    main()
