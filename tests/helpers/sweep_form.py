"""Run inside a venv with Playwright: enter a JSON value (a list of objects) in one field of a DAG's
Trigger form in Airflow 3, as a person does, and press Trigger.

    python sweep_form.py URL USER PASSWORD DAG_ID FIELD VALUE_JSON SCREENSHOT.png  ->  JSON on stdout

Debian's Chromium, headless. Airflow 3 shows an array param whose items are not strings (here
`type: ["null", "array"]`, `items: {"type": "object"}`) as a Monaco JSON editor (`#element_FIELD`),
title in the field's label, description as helper text under the editor. The editor is controlled by
the form: typing key by key is reformatted under the cursor as soon as the text parses (auto-closed
`[` gives `[]`, a valid list), so VALUE_JSON is pasted whole, as a person pasting it would, over the
selected content (an empty VALUE_JSON clears the field). Reports the field's title and description,
whether Trigger is enabled, the answer to pressing it (status and body sent) and the error texts the
dialog shows (after filling, and after the answer when it is not a success).
"""

import json
import sys

from airflow_ui import SUBMIT, field_as_shown, open_trigger_dialog, press_trigger
from playwright.sync_api import sync_playwright

ERRORS = "[data-part=error-text], .chakra-alert__description"  # a field's error under it; the dialog's alert


def shown_errors(dialog):
    return [text.strip() for text in dialog.locator(ERRORS).all_inner_texts() if text.strip()]


def main():
    url, user, password, dag_id, field, value, screenshot = sys.argv[1:]
    with sync_playwright() as playwright:
        clipboard = ["clipboard-read", "clipboard-write"]
        browser, page, dialog = open_trigger_dialog(playwright, url, user, password, dag_id, permissions=clipboard)
        editor = dialog.locator(f"#element_{field} .monaco-editor")
        editor.wait_for()
        page.wait_for_load_state("networkidle")
        shown = field_as_shown(dialog, field)
        editor.click()
        page.keyboard.press("ControlOrMeta+a")
        if value:
            page.evaluate("text => navigator.clipboard.writeText(text)", value)
            page.keyboard.press("ControlOrMeta+v")
        else:
            page.keyboard.press("Delete")
        page.wait_for_timeout(500)  # the form checks the text and re-renders
        dialog.screenshot(path=screenshot)
        errors = shown_errors(dialog)
        enabled = dialog.locator(SUBMIT).is_enabled()
        answer = None
        if enabled:
            response, answer = press_trigger(page, dialog, dag_id)
            if not response.ok:
                try:
                    dialog.locator(ERRORS).first.wait_for(timeout=5000)
                except Exception:  # noqa: BLE001 - nothing shown: report none
                    pass
                errors += [text for text in shown_errors(dialog) if text not in errors]
        browser.close()
    print(json.dumps({"field": shown, "trigger_enabled": enabled, "trigger": answer, "errors": errors}))


if __name__ == "__main__":
    main()
