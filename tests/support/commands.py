"""Running commands and waiting for services, and the rule for what a test lacks."""

import os
import subprocess
import time

import pytest

# .ci/run sets this: there, a test that lacks an engine fails instead of skipping.
REQUIRE_ENGINES = os.environ.get("CONFIANCE_REQUIRE_ENGINES") == "1"


def need(available, reason):
    """Skip (on a laptop) or fail (in CI) when something a test needs is missing."""
    if available:
        return
    if REQUIRE_ENGINES:
        pytest.fail(f"{reason} (CONFIANCE_REQUIRE_ENGINES=1: it must be provisioned here)")
    pytest.skip(reason)


def run(command, cwd=None, env=None, check=True, timeout=600):
    """Run a command, capture its output, and show it all when it fails."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))[:300]} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def wait_until(probe, timeout, every=1.0):
    """The first truthy value `probe` returns; an exception counts as "not yet". TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - a service that is still starting
            last_error = error
        time.sleep(every)
    raise TimeoutError(f"not ready after {timeout} s" + (f": {last_error}" if last_error else ""))
