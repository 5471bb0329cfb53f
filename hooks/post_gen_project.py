"""Remove what the answers switched off, then say what to do next."""

import shutil
from pathlib import Path

SLUG = "{{ cookiecutter.project_slug }}"
IMAGE = "{{ cookiecutter.__image }}"
TEMPLATES_PROJECT = "{{ cookiecutter.ci_templates_project }}"


def remove_extra_ca_certificates():
    shutil.rmtree("certs")


def print_next_steps():
    print(f"""
Your job repo is ready in ./{SLUG}

Next steps:
  1. Put your code in main.py (one function per step) and your packages in requirements.txt.
     Try it:  cd {SLUG} && make dev && make test && python main.py --help
  2. Create an empty GitLab project and push:
       git init -b main && git add . && git commit -m "Start {SLUG}"
       git remote add origin <your GitLab project URL> && git push -u origin main
  3. In GitLab > Settings > CI/CD > Variables, add (masked, protected):
       NEXUS_USER, NEXUS_PASSWORD  (push to Nexus, install from the Nexus PyPI)
       AIRFLOW_DAGS_TOKEN          (project access token of the airflow-dags repo, write_repository)
     and protect the tags v*  (Settings > Repository > Protected tags).
  4. Release:  git tag v{{ cookiecutter.version }} && git push --tags
     CI pushes {IMAGE}:{{ cookiecutter.version }} and syncs dags/{SLUG}.py to Airflow.
  5. In Airflow, open the DAG '{SLUG}' and press Trigger.
  The shared CI jobs come from the GitLab project {TEMPLATES_PROJECT}.
""")


def main():
    if not {{ cookiecutter.extra_ca_certificates }}:
        remove_extra_ca_certificates()
    print_next_steps()


main()
