"""A Kubernetes API server on loopback, for the serving DAG's operators: discovery, server-side apply,
list by label, delete, and the rollout status a controller would report. Standard library only, so an
Airflow venv runs it. It stands in for the cluster's API server, which the tests cannot have; what it
answers follows the API's own rules for the calls the DAG makes (and records each call).

    with FakeCluster(rollout="complete") as cluster:
        cluster.kubeconfig  # a file for KubernetesHook
"""

import json
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GROUPS = {"apps": "apps/v1", "networking.k8s.io": "networking.k8s.io/v1"}
RESOURCES = {  # group version: [(plural, kind)]
    "v1": [("pods", "Pod"), ("services", "Service")],
    "apps/v1": [("deployments", "Deployment")],
    "networking.k8s.io/v1": [("ingresses", "Ingress")],
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def resource_list(group_version):
    resources = []
    for plural, kind in RESOURCES[group_version]:
        resources.append(
            {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": VERBS}
        )
        if kind == "Deployment":
            resources.append(
                {
                    "name": f"{plural}/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def discovery(path):
    """The answers of the discovery paths the client reads before it applies; None for other paths."""
    if path == "/version":
        return {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = [
            {
                "name": name,
                "versions": [{"groupVersion": gv, "version": "v1"}],
                "preferredVersion": {"groupVersion": gv, "version": "v1"},
            }
            for name, gv in GROUPS.items()
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    if path == "/api/v1":
        return resource_list("v1")
    for group_version in GROUPS.values():
        if path == f"/apis/{group_version}":
            return resource_list(group_version)
    return None


def object_path(path):
    """(plural, namespace, name or None, subresource or None) of an object path; None otherwise."""
    parts = path.strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:] if parts[0] == "apis" else None
    if not parts or parts[0] != "namespaces" or len(parts) < 3:
        return None
    return parts[2], parts[1], parts[3] if len(parts) > 3 else None, parts[4] if len(parts) > 4 else None


def matches(labels, selector):
    wanted = dict(pair.split("=", 1) for pair in selector.split(",") if pair)
    return all(labels.get(key) == value for key, value in wanted.items())


class FakeCluster:
    """The objects of one namespace or more, by (plural, namespace, name); `calls` lists (method, path, type)."""

    def __init__(self, rollout="complete", crash_message="", waiting_reason=""):
        self.objects, self.calls, self.lock = {}, [], threading.Lock()
        self.rollout, self.crash_message, self.waiting_reason = rollout, crash_message, waiting_reason
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig", delete=False) as file:
            file.write(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "current-context": "fake",
                        "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                        "users": [{"name": "fake", "user": {"token": "fake"}}],
                        "contexts": [
                            {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}
                        ],
                    }
                )
            )
        self.kubeconfig = file.name
        return self

    def __exit__(self, *exc):
        self.server.shutdown()

    def put(self, plural, body):
        """An object already in the cluster (made by someone else)."""
        meta = body["metadata"]
        self.objects[(plural, meta.get("namespace", "default"), meta["name"])] = body

    def apply(self, plural, namespace, name, body):
        """Server-side apply by one field manager: the object becomes what was applied; a new spec, a new generation."""
        old = self.objects.get((plural, namespace, name))
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        if old is None or old.get("spec") != body.get("spec"):
            generation += 1
        body["metadata"] = {
            **body["metadata"],
            "namespace": namespace,
            "generation": generation,
            "uid": (old or {}).get("metadata", {}).get("uid") or f"uid-{len(self.calls)}",
        }
        self.objects[(plural, namespace, name)] = body
        return body

    def with_status(self, deployment):
        """The Deployment as its controller reports it: rolled out, or stuck with one new pod that never answers."""
        wanted, generation = deployment["spec"].get("replicas", 1), deployment["metadata"]["generation"]
        status = {
            "observedGeneration": generation,
            "replicas": wanted,
            "updatedReplicas": wanted,
            "readyReplicas": wanted,
            "availableReplicas": wanted,
        }
        if self.rollout == "stuck":
            status = {
                "observedGeneration": generation,
                "replicas": wanted + 1,
                "updatedReplicas": 1,
                "readyReplicas": wanted,
                "availableReplicas": wanted,
                "unavailableReplicas": 1,
            }
        return {**deployment, "status": status}

    def pods(self, namespace, selector):
        """The new pod of a stuck rollout: its container crashes (with its last words) or its image is missing."""
        if self.rollout != "stuck":
            return []
        state = {"waiting": {"reason": self.waiting_reason or "CrashLoopBackOff", "message": "back-off"}}
        ended = {"terminated": {"exitCode": 1, "reason": "Error", "message": self.crash_message}}
        last = ended if self.crash_message else {}
        container = {
            "name": "serve",
            "image": "x",
            "imageID": "",
            "ready": False,
            "restartCount": 3,
            "state": state,
            "lastState": last,
        }
        return [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "serve-new", "namespace": namespace},
                "status": {
                    "phase": "Running",
                    "containerStatuses": [container],
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                },
            }
        ]

    def answer(self, method, path, query, content_type, body):
        """(status, JSON) for one request."""
        with self.lock:
            self.calls.append((method, path, content_type))
            found = discovery(path)
            if found is not None:
                return 200, found
            where = object_path(path)
            if where is None:
                return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            plural, namespace, name, sub = where
            if name is None and method == "GET":
                selector = query.get("labelSelector", [""])[0]
                if plural == "pods":
                    items = self.pods(namespace, selector)
                    return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
                items = [
                    obj
                    for (kind, ns, _), obj in sorted(self.objects.items())
                    if kind == plural and ns == namespace and matches(obj["metadata"].get("labels") or {}, selector)
                ]
                return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}
            key = (plural, namespace, name)
            if method == "PATCH" and content_type.startswith("application/apply-patch"):
                return 200, self.apply(plural, namespace, name, json.loads(body))
            if key not in self.objects:
                return 404, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "message": f'{plural} "{name}" not found',
                    "code": 404,
                }
            if method == "DELETE":
                self.objects.pop(key)
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            if method == "GET":
                obj = self.objects[key]
                return 200, self.with_status(obj) if plural == "deployments" else obj
            return 405, {"kind": "Status", "status": "Failure", "code": 405}

    def handler(self):
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def respond(self):
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                query = urllib.parse.parse_qs(url.query)
                content_type = self.headers.get("Content-Type", "")
                status, answer = cluster.answer(self.command, url.path, query, content_type, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = respond

            def log_message(self, *args):
                pass

        return Handler
