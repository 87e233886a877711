"""A Hugging Face Hub stand-in on 127.0.0.1: the HTTP endpoints `huggingface_hub` 2.4 calls to publish and read
a dataset, and nothing else. It is the *local stand-in* in the tests; the client talking to it is the real one.

Write path (what `HfApi.create_repo/create_commit/create_tag` send; for "lfs" files the client speaks the LFS batch
protocol only with HF_HUB_DISABLE_XET=1 or without `hf_xet`: the Xet CAS protocol is not implemented here):
  POST /api/repos/create                                  JSON {name, organization, type, visibility}
  POST /api/validate-yaml                                 README.md metadata check before a commit
  GET  /api/datasets/{repo}/refs                          branches / tags / converts
  GET  /api/datasets/{repo}/tree/{rev}[/{path}]           file listing (used by list_repo_files)
  POST /api/datasets/{repo}/preupload/{rev}               -> uploadMode per file: .parquet -> "lfs", else "regular"
  POST /datasets/{repo}.git/info/lfs/objects/batch         LFS batch API (basic transfer) -> upload + verify hrefs
  PUT  /lfs-upload/{oid}   POST /lfs-verify/{oid}           the LFS object store
  POST /api/datasets/{repo}/commit/{rev}                  NDJSON: header, file (base64), lfsFile (oid), deletedFile
  POST /api/datasets/{repo}/tag/{rev}   DELETE .../tag/{tag}
Read path (snapshot_download / hf_hub_download):
  GET  /api/datasets/{repo}/revision/{rev}                info with sha and siblings
  HEAD/GET /datasets/{repo}/resolve/{rev}/{path}          X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size

Model repos (`lidr train --push-to`): create_repo without a type, and the same endpoints under `/api/models/...`,
`/{repo}.git/info/lfs/...` and `/{repo}/resolve/...`.

Everything received is recorded (`requests`, `commits`, `tags`) so tests can assert on it. `fail_next` scripts
transient failures: {"commit": [503]} answers the next commit with 503 once. With `token` set, every request
must carry `Authorization: Bearer <token>` (401 otherwise), as private repos and writes require on the Hub. A wrong
token gets the Hub's 401 "Invalid credentials in Authorization header"; a token in `readers` is valid but owns
nothing: a private repo answers it 404 RepoNotFound, exactly as a missing repo does on the Hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: list[dict] = field(default_factory=list)  # {oid, files: {path: bytes}, lfs: set, message}
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    kind: str = "dataset"  # or "model" (`lidr train --push-to`); one namespace for both kinds here

    def resolve(self, rev: str) -> dict | None:
        oid = self.branches.get(rev) or self.tags.get(rev) or rev
        return next((c for c in self.commits if c["oid"] == oid), None)


class HubServer:
    def __init__(self, token: str | None = None, upload_mode: str = "lfs", readers: set[str] | None = None):
        self.token = token
        self.readers = set(readers or ())  # valid tokens without access to private repos
        self.upload_mode = upload_mode  # "lfs": .parquet files go through LFS (as on the Hub); "regular": all inline
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.auth_seen: list[str | None] = []
        self.fail_next: dict[str, list[int]] = {}
        self.validated: list[str] = []  # README contents sent to /api/validate-yaml
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---------------------------------------------------------------- the endpoints

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None,
                      head: bool = False) -> None:
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                    headers = {"Content-Type": "application/json", **(headers or {})}
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _error(self, status: int, message: str, head: bool = False, extra: dict | None = None) -> None:
                headers = {"X-Error-Message": message, **(extra or {})}
                self._send(status, {"error": message}, headers, head=head)

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():  # streamed uploads
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                path = unquote(url.path)
                body = self._body() if method in ("POST", "PUT", "DELETE") else b""
                with hub.lock:
                    hub.requests.append((method, path))
                    hub.auth_seen.append(self.headers.get("Authorization"))
                presigned = path.startswith("/lfs-")  # like S3 presigned URLs: the href itself is the credential
                auth = self.headers.get("Authorization")
                self.reader = auth is not None and auth.removeprefix("Bearer ") in hub.readers
                if hub.token is not None and not presigned and auth != f"Bearer {hub.token}" and not self.reader:
                    # The Hub's own wording for a rejected token (huggingface_hub tells it from a missing repo by it).
                    message = "Invalid credentials in Authorization header" if auth else "Invalid credentials"
                    return self._error(401, message, head=method == "HEAD")
                for name, pattern, fn in ROUTES:
                    if name[0] != method and not (method == "HEAD" and name[0] == "GET"):
                        continue
                    m = re.fullmatch(pattern, path)
                    if m:
                        failures = hub.fail_next.get(name[1])
                        if failures:
                            status = failures.pop(0)
                            return self._error(status, f"scripted failure {status}")
                        return fn(hub, self, m, body, parse_qs(url.query), method == "HEAD")
                return self._error(404, f"no route for {method} {path}", head=method == "HEAD")

            def do_GET(self):
                self._route("GET")

            def do_HEAD(self):
                self._route("HEAD")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):
                self._route("PUT")

            def do_DELETE(self):
                self._route("DELETE")

        return Handler

    def _repo(self, h, repo_id: str, head: bool = False) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and getattr(h, "reader", False)):
            h._error(404, "Repository not found", head=head, extra={"X-Error-Code": "RepoNotFound"})
            return None
        return repo

    def create_repo(self, h, m, body, q, head):
        data = json.loads(body)
        repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
        kind = data.get("type") or "model"  # the client sends no type for models
        if kind not in ("dataset", "model"):
            return h._error(400, "only datasets and models here")
        prefix = "datasets/" if kind == "dataset" else ""
        if repo_id in self.repos:  # the Hub's 409 body carries the url, which the client reads
            return h._send(409, {"error": f"You already created this {kind} repo",
                                 "url": f"{self.url}/{prefix}{repo_id}"}, {"X-Error-Message": "repo exists"})
        # huggingface_hub 2.4 sends `visibility` ("private" | "public" | ...); older clients sent `private`.
        private = data.get("visibility") == "private" or bool(data.get("private"))
        repo = self.repos[repo_id] = Repo(repo_id, private, kind=kind)
        # Like the Hub, a new repo starts with one commit holding a .gitattributes (LFS patterns).
        attrs = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
        oid = hashlib.sha1(f"{repo_id}-initial".encode()).hexdigest()
        repo.commits.append({"oid": oid, "files": {".gitattributes": attrs}, "lfs": set(),
                             "message": "initial commit", "operations": []})
        repo.branches["main"] = oid
        h._send(200, {"url": f"{self.url}/{prefix}{repo_id}", "name": repo_id})

    def validate_yaml(self, h, m, body, q, head):
        """The Hub checks README.md metadata before a commit; here: it must be a YAML mapping with sane configs."""
        import yaml

        content = json.loads(body)["content"]
        self.validated.append(content)
        errors = []
        front = content.split("---")
        try:
            meta = yaml.safe_load(front[1]) if content.startswith("---") and len(front) > 2 else None
        except yaml.YAMLError as e:
            meta, errors = None, [{"message": f"YAML: {e}"}]
        if not isinstance(meta, dict):
            errors = errors or [{"message": "no YAML metadata block"}]
        else:
            for cfg in meta.get("configs", []):
                if not cfg.get("config_name") or not cfg.get("data_files"):
                    errors.append({"message": f"bad config entry {cfg}"})
        h._send(400 if errors else 200, {"errors": errors, "warnings": []})

    def refs(self, h, m, body, q, head):
        repo = self._repo(h, m["repo"])
        if repo:
            h._send(200, {
                "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches.items()],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in repo.tags.items()],
                "converts": [],
            })

    def _tree_entries(self, commit: dict | None, prefix: str = "", recursive: bool = True) -> list[dict]:
        """Files (and folders) under `prefix`: all of them when recursive, else the immediate children."""
        if commit is None:
            return []
        base = prefix.strip("/")
        files, folders = [], set()
        for path, data in sorted(commit["files"].items()):
            if base and not path.startswith(base + "/"):
                continue
            parts = path[len(base) + 1 if base else 0:].split("/")
            for i in range(1, len(parts)):  # the folders on the way
                if recursive or i == 1:
                    folders.add("/".join(([base] if base else []) + parts[:i]))
            if not recursive and len(parts) > 1:
                continue
            entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_oid(data)}
            if path in commit["lfs"]:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            files.append(entry)
        dirs = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
                for d in sorted(folders)]
        return dirs + files

    def tree(self, h, m, body, q, head):
        repo = self._repo(h, m["repo"])
        if not repo:
            return
        rev = m["rev"]
        commit = repo.resolve(rev)
        if commit is None and not (rev == "main" and not repo.commits):
            return h._error(404, "Invalid rev id", extra={"X-Error-Code": "RevisionNotFound"})
        recursive = (q.get("recursive") or ["false"])[0].lower() in ("1", "true")
        h._send(200, self._tree_entries(commit, m["path"] or "", recursive))

    def info(self, h, m, body, q, head):
        repo = self._repo(h, m["repo"])
        if not repo:
            return
        commit = repo.resolve(m["rev"])
        if commit is None:
            return h._error(404, "Invalid rev id", extra={"X-Error-Code": "RevisionNotFound"})
        h._send(200, {"id": repo.repo_id, "_id": repo.repo_id, "sha": commit["oid"], "private": repo.private,
                      "siblings": [{"rfilename": p} for p in sorted(commit["files"])], "tags": [],
                      "lastModified": "2026-01-01T00:00:00.000Z", "downloads": 0, "likes": 0})

    def preupload(self, h, m, body, q, head):
        if not self._repo(h, m["repo"]):
            return
        files = json.loads(body)["files"]
        h._send(200, {"files": [{"path": f["path"], "uploadMode": "lfs" if self.upload_mode == "lfs" and f["path"].endswith(".parquet") else "regular",
                                 "shouldIgnore": False} for f in files]})

    def lfs_batch(self, h, m, body, q, head):
        data = json.loads(body)
        if data.get("operation") != "upload":
            return h._error(400, "upload only")
        objects = []
        for obj in data["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs:  # already stored: no action (the client skips the upload)
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"},
                                    "verify": {"href": f"{self.url}/lfs-verify/{obj['oid']}"}}
            objects.append(entry)
        h._send(200, {"transfer": "basic", "objects": objects})

    def lfs_upload(self, h, m, body, q, head):
        if hashlib.sha256(body).hexdigest() != m["oid"]:
            return h._error(400, "sha256 mismatch")
        self.lfs[m["oid"]] = body
        h._send(200)

    def lfs_verify(self, h, m, body, q, head):
        h._send(200 if m["oid"] in self.lfs else 404, {"ok": m["oid"] in self.lfs})

    def commit(self, h, m, body, q, head):
        repo = self._repo(h, m["repo"])
        if not repo:
            return
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        parent = repo.resolve(m["rev"])
        files = dict(parent["files"]) if parent else {}
        lfs = set(parent["lfs"]) if parent else set()
        header = {}
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                lfs.discard(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    return h._error(422, f"LFS object {value['oid']} was never uploaded")
                files[value["path"]] = self.lfs[value["oid"]]
                lfs.add(value["path"])
            elif key in ("deletedFile", "deletedFolder"):
                files.pop(value["path"], None)
                lfs.discard(value["path"])
            else:
                return h._error(400, f"unknown commit key {key}")
        oid = hashlib.sha1(f"{repo.repo_id}{len(repo.commits)}{sorted(files)}".encode()).hexdigest()
        repo.commits.append({"oid": oid, "files": files, "lfs": lfs, "message": header.get("summary"),
                             "description": header.get("description", ""), "operations": lines})
        repo.branches[m["rev"]] = oid
        prefix = "datasets/" if repo.kind == "dataset" else ""
        h._send(200, {"commitUrl": f"{self.url}/{prefix}{repo.repo_id}/commit/{oid}", "commitOid": oid,
                      "success": True})

    def commits(self, h, m, body, q, head):
        """The history of a revision, newest first (the Hub's commit listing; one page)."""
        repo = self._repo(h, m["repo"])
        if not repo:
            return
        commit = repo.resolve(m["rev"])
        if commit is None:
            return h._error(404, "Invalid rev id", extra={"X-Error-Code": "RevisionNotFound"})
        history = repo.commits[: repo.commits.index(commit) + 1][::-1]
        h._send(200, [{"id": c["oid"], "authors": [], "date": "2026-01-01T00:00:00.000Z",
                       "title": c.get("message") or "", "message": c.get("description") or ""} for c in history])

    def create_tag(self, h, m, body, q, head):
        repo = self._repo(h, m["repo"])
        if not repo:
            return
        data = json.loads(body)
        commit = repo.resolve(m["rev"])
        if commit is None:
            return h._error(404, "Invalid rev id", extra={"X-Error-Code": "RevisionNotFound"})
        if data["tag"] in repo.tags:
            return h._error(409, "Tag already exists")
        repo.tags[data["tag"]] = commit["oid"]
        h._send(200, {"name": data["tag"]})

    def delete_tag(self, h, m, body, q, head):
        repo = self._repo(h, m["repo"])
        if repo:
            repo.tags.pop(m["tag"], None)
            h._send(200)

    def resolve_file(self, h, m, body, q, head):
        repo = self._repo(h, m["repo"], head=head)
        if not repo:
            return
        commit = repo.resolve(m["rev"])
        if commit is None:
            return h._error(404, "Invalid rev id", head=head, extra={"X-Error-Code": "RevisionNotFound"})
        data = commit["files"].get(m["path"])
        if data is None:
            return h._error(404, "Entry not found", head=head,
                            extra={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit["oid"]})
        headers = {"X-Repo-Commit": commit["oid"], "Content-Type": "application/octet-stream"}
        if m["path"] in commit["lfs"]:
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(data))
        headers["ETag"] = f'"{git_blob_oid(data)}"'
        h._send(200, data, headers, head=head)


_REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    (("POST", "create"), r"/api/repos/create", HubServer.create_repo),
    (("POST", "validate"), r"/api/validate-yaml", HubServer.validate_yaml),
    (("GET", "refs"), rf"/api/datasets/{_REPO}/refs", HubServer.refs),
    (("GET", "tree"), rf"/api/datasets/{_REPO}/tree/(?P<rev>[^/]+)/?(?P<path>.*)", HubServer.tree),
    (("GET", "info"), rf"/api/datasets/{_REPO}/revision/(?P<rev>.+)", HubServer.info),
    (("POST", "preupload"), rf"/api/datasets/{_REPO}/preupload/(?P<rev>.+)", HubServer.preupload),
    (("POST", "lfs"), rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", HubServer.lfs_batch),
    (("PUT", "upload"), r"/lfs-upload/(?P<oid>[0-9a-f]{64})", HubServer.lfs_upload),
    (("POST", "verify"), r"/lfs-verify/(?P<oid>[0-9a-f]{64})", HubServer.lfs_verify),
    (("POST", "commit"), rf"/api/datasets/{_REPO}/commit/(?P<rev>.+)", HubServer.commit),
    (("GET", "commits"), rf"/api/datasets/{_REPO}/commits/(?P<rev>.+)", HubServer.commits),
    (("POST", "tag"), rf"/api/datasets/{_REPO}/tag/(?P<rev>.+)", HubServer.create_tag),
    (("DELETE", "deltag"), rf"/api/datasets/{_REPO}/tag/(?P<tag>.+)", HubServer.delete_tag),
    (("GET", "resolve"), rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", HubServer.resolve_file),
    # Model repos (`lidr train --push-to`): the same handlers under the model URLs (no prefix outside /api).
    (("GET", "refs"), rf"/api/models/{_REPO}/refs", HubServer.refs),
    (("GET", "tree"), rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)/?(?P<path>.*)", HubServer.tree),
    (("GET", "info"), rf"/api/models/{_REPO}/revision/(?P<rev>.+)", HubServer.info),
    (("POST", "preupload"), rf"/api/models/{_REPO}/preupload/(?P<rev>.+)", HubServer.preupload),
    (("POST", "lfs"), rf"/{_REPO}\.git/info/lfs/objects/batch", HubServer.lfs_batch),
    (("POST", "commit"), rf"/api/models/{_REPO}/commit/(?P<rev>.+)", HubServer.commit),
    (("GET", "resolve"), rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", HubServer.resolve_file),
]


if __name__ == "__main__":  # run by hand: python tests/servers/hub_server.py
    import time

    with HubServer() as hub:
        print(hub.url, flush=True)
        while True:
            time.sleep(3600)
