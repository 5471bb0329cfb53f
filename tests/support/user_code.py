"""A data scientist's own code for the guide's Air Liquide job (tests/user_job: pandas, scikit-learn,
MLflow), put in a baked job repo in place of the example, as its README tells the user to."""

import shutil
from pathlib import Path

USER_JOB = Path(__file__).parents[1] / "user_job"
# Where the generated test_main.py keeps its one test of the example code, which the user replaces.
EXAMPLE_TESTS = "# ---- About the example code"


def with_user_code(repo):
    """main.py, requirements.txt, and the user's tests in place of the one test of the example code."""
    shutil.copy(USER_JOB / "main.py", repo / "main.py")
    shutil.copy(USER_JOB / "requirements.txt", repo / "requirements.txt")
    shutil.copy(USER_JOB / "test_main.py", repo / "tests" / "test_forecast.py")
    generated = (repo / "tests" / "test_main.py").read_text()
    assert EXAMPLE_TESTS in generated
    (repo / "tests" / "test_main.py").write_text(generated[: generated.index(EXAMPLE_TESTS)].rstrip() + "\n")
    return repo
