# This folder is a job repo's code, tested inside a baked repo (tests/test_mlflow_story.py),
# with the job's own requirements: the template's test run does not collect it.
collect_ignore = ["test_main.py"]
