"""A stand-in for the Nexus PyPI: pypiserver on a loopback port, every download, listing and
upload behind htpasswd credentials. Packages it does not hold are redirected to PyPI, as a
Nexus group repository proxies PyPI next to the company's own packages."""

import base64
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from support import ROOT
from support.commands import run, wait_until
from support.engines import free_port
from support.leaks import secret_forms

# pypiserver and twine come with the test tools (requirements-dev.txt), next to this python.
PYPI_SERVER = shutil.which("pypi-server", path=str(Path(sys.executable).parent))


class PrivateIndex:
    """pypiserver with authentication; `url` is where twine uploads, `simple_url()` where pip reads."""

    def __init__(self, folder, user="ci-publisher", password="p@ss:w/rd%"):
        self.folder, self.user, self.password = Path(folder), user, password
        self.url = f"http://127.0.0.1:{free_port()}/"
        self.packages = self.folder / "packages"
        self.log = self.folder / "pypiserver.log"
        self.process = None

    def start(self):
        with warnings.catch_warnings():  # passlib imports the `crypt` module, deprecated since Python 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            from passlib.apache import HtpasswdFile

        self.packages.mkdir(parents=True, exist_ok=True)
        htpasswd = HtpasswdFile(str(self.folder / "htpasswd"), new=True)
        htpasswd.set_password(self.user, self.password)
        htpasswd.save()
        port = urllib.parse.urlsplit(self.url).port
        command = [PYPI_SERVER, "run", "--host", "127.0.0.1", "--port", port, "--passwords", self.folder / "htpasswd"]
        # -v: an access log (paths and statuses, never credentials) that tests read and search for leaks.
        command += ["--authenticate", "download,list,update", "-v", "--log-file", self.log, self.packages]
        self.process = subprocess.Popen(
            [str(part) for part in command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(lambda: self.status("health") == 200, timeout=30, every=0.2)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"pypiserver did not answer at {self.url}:\n{self.log.read_text()}") from None
        return self

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)

    def simple_url(self, credentials=True):
        """pip's index URL; with the credentials percent-encoded in it, as a pip.conf carries them."""
        if not credentials:
            return f"{self.url}simple/"
        login = f"{urllib.parse.quote(self.user, safe='')}:{urllib.parse.quote(self.password, safe='')}"
        return f"{self.url.replace('://', f'://{login}@', 1)}simple/"

    def write_pip_conf(self, path):
        Path(path).write_text(f"[global]\nindex-url = {self.simple_url()}\n")
        return Path(path)

    def upload(self, *files):
        """twine upload, the password in twine's environment only (as the CI job passes it)."""
        env = {**os.environ, "TWINE_USERNAME": self.user, "TWINE_PASSWORD": self.password}
        command = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar"]
        return run([*command, "--repository-url", self.url, *files], env=env)

    def served(self, method_and_path, status):
        """True if the access log has this request with this status, e.g. ("GET /simple/six/", 303)."""
        return f'"{method_and_path} HTTP/1.1" {status}' in self.log.read_text()

    def files(self):
        return sorted(path.name for path in self.packages.iterdir())

    def status(self, path, credentials=False):
        """The HTTP status of a GET of `path` (relative to the index), redirects not followed."""
        request = urllib.request.Request(self.url + path)
        if credentials:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None  # a fallback redirect to PyPI is an answer of the index itself


def build_distributions(project, out_dir, *only):
    """The sdist and wheel (or `--wheel` only) of a project folder; returns the files made.
    uv's build (a cached build environment) is seconds faster than `python -m build`, which the CI job runs."""
    run(["uv", "build", "--quiet", "--out-dir", out_dir, *only, project], timeout=300)
    return sorted([*Path(out_dir).glob("*.whl"), *Path(out_dir).glob("*.tar.gz")])  # uv adds a .gitignore


def write_demo_package(folder, name, version, text):
    """A tiny pure-Python project: `import <module>; <module>.TEXT`."""
    module = name.replace("-", "_")
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(f'__version__ = "{version}"\nTEXT = {text!r}\n')
    (folder / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
description = "A company-only package: it lives in the private index, never on PyPI."
"""
    )
    return folder


# What a test of the index needs around it: pip without this machine's configuration, the secrets
# to look for in logs and images, a copy of package/ to build from.
BUILD_LEFTOVERS = shutil.ignore_patterns("*.egg-info", "__pycache__", ".*_cache", "build", "dist")
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def clean_pip_env(**extra):
    """This environment, but pip reads no configuration file: this machine's pip.conf adds local
    wheel folders that a user's laptop or a CI runner does not have. The index sends what it does not
    hold to pypi.org, over TLS that this network intercepts: the pip of a new venv (23.2 with Python
    3.11; truststore only from pip 24.2) trusts the local CA only through PIP_CERT."""
    env = {name: value for name, value in os.environ.items() if name != "PIP_FIND_LINKS"}
    if SYSTEM_CA_BUNDLE.exists():
        env.setdefault("PIP_CERT", str(SYSTEM_CA_BUNDLE))
    return {**env, "PIP_CONFIG_FILE": os.devnull, **extra}


def leaked(secrets, *texts):
    return sorted(secret for secret in secrets if any(secret in text for text in texts))


def index_secrets(index):
    return secret_forms(index.password, basic_auth=[(index.user, index.password)])


def copy_of_package(folder):
    """package/ without build leftovers, so that a build never writes into this checkout."""
    shutil.copytree(ROOT / "package", folder, ignore=BUILD_LEFTOVERS)
    return folder
