"""POST /wsexec/files and /wsexec/files/fetch over real sshd (internal-sftp) and workers: files land whole, with their
mode, never over an existing one unless asked; fetched files come back; the content leaves Redis once delivered."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from tests.helpers import PASSWORDS, Api, WorkerProcesses, wait_finished
from wsexec.config import Settings
from wsexec.files.routes import FORM_OVERHEAD
from wsexec.store import Store
from wsexec.testing import RedisServer


@pytest.fixture
def remote_dir(ssh_user: str) -> Iterator[Path]:
    """A directory of the login user's (the 'remote' host is this machine), removed afterwards."""
    account = pwd.getpwnam(ssh_user)
    path = Path(tempfile.mkdtemp(prefix="files-", dir=account.pw_dir))
    os.chown(path, account.pw_uid, account.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def upload(api: Api, content: bytes, path: Path | str, query: str = "?wait=30", **fields: Any) -> Any:
    """POST /files as curl -F would: content as a file part, the rest as plain fields (instance=1 by default)."""
    fields.setdefault("instance", "1") if "target_tag" not in fields else None
    data = {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in fields.items()}
    data["path"] = str(path)
    data["content"] = (io.BytesIO(content), "upload.bin")
    return api.post(f"/files{query}", data=data, content_type="multipart/form-data")


def uploads_in_redis(redis_server: RedisServer) -> list[bytes]:
    return list(Redis.from_url(redis_server.url).scan_iter(match="wsexec:upload:*"))


def leftovers(directory: Path) -> list[str]:
    """Temporary files an upload left behind (there must never be any)."""
    return [name for name in os.listdir(directory) if ".wsexec-" in name]


def test_upload_to_one_instance(api: Api, instance: dict[str, Any], workers: WorkerProcesses, remote_dir: Path,
                                ssh_user: str, redis_server: RedisServer, store: Store) -> None:
    workers.start(1)
    content = b"hello\x00binary\xff\n" * 1000
    response = upload(api, content, remote_dir / "hello.bin")
    assert response.status_code == 201, response.json
    task = response.json
    assert (task["kind"], task["state"], task["rc"], task["error"]) == ("upload", "DONE", 0, None), task
    assert task["size"] == len(content) and task["sha256"] == hashlib.sha256(content).hexdigest()
    assert task["path"] == str(remote_dir / "hello.bin") and task["mode"] == "0644" and task["overwrite"] is False
    assert task["script"] is None and task["name"] == f"upload {remote_dir / 'hello.bin'}" and task["tag"] == "files"
    written = remote_dir / "hello.bin"
    assert written.read_bytes() == content
    assert stat.S_IMODE(written.stat().st_mode) == 0o644 and written.stat().st_uid == pwd.getpwnam(ssh_user).pw_uid
    assert leftovers(remote_dir) == [] and uploads_in_redis(redis_server) == []  # delivered: gone from Redis
    # where it was written first, for a reaper to remove if the worker had died (below)
    assert store.get_task(task["id"])["temporary"].startswith(f"{remote_dir}/.hello.bin.wsexec-")
    listed = api.get("/tasks?kind=upload").json
    assert [t["id"] for t in listed["results"]] == [task["id"]] and api.get("/tasks?kind=script").json["count"] == 0
    audit = api.get("/audit").json["results"][0]
    assert audit["action"] == "file.upload" and audit["detail"]["path"] == str(written)
    assert audit["detail"]["sha256"] == task["sha256"]


@pytest.fixture
def two_web(api: Api, instance: dict[str, Any]) -> list[int]:
    """Two ACTIVE instances tagged web (both reach the test sshd) and one DEACTIVATE instance that is not targeted."""
    same = {key: instance[key] for key in ("ip", "port", "user")}
    ids = [api.patch(f"/instances/{instance['id']}", json={"tag": "web"}).json["id"]]
    ids.append(api.created("/instances", {**same, "tag": "web"})["id"])
    api.created("/instances", {**same, "tag": "web", "state": "DEACTIVATE"})
    return ids


def test_upload_to_a_tag_is_a_batch(api: Api, two_web: list[int], workers: WorkerProcesses, remote_dir: Path,
                                    redis_server: RedisServer) -> None:
    workers.start(1)
    response = upload(api, b"fleet\n", remote_dir / "fleet.conf", target_tag="web", overwrite=True, mode="0600")
    assert response.status_code == 201, response.json
    tasks = response.json
    assert sorted(t["instance"] for t in tasks) == two_web and len({t["batch"] for t in tasks}) == 1
    assert [(t["state"], t["rc"]) for t in tasks] == [("DONE", 0)] * 2, tasks
    batch = api.get(f"/batches/{tasks[0]['batch']}").json
    assert batch["states"]["DONE"] == 2 and batch["finished"]
    assert (remote_dir / "fleet.conf").read_bytes() == b"fleet\n"
    assert stat.S_IMODE((remote_dir / "fleet.conf").stat().st_mode) == 0o600
    assert leftovers(remote_dir) == [] and uploads_in_redis(redis_server) == []


def test_two_uploads_racing_for_one_new_file_one_wins(api: Api, two_web: list[int], workers: WorkerProcesses,
                                                      remote_dir: Path) -> None:
    """Both destinations are the same file here: without overwrite exactly one writes it, the other refuses."""
    workers.start(1)
    tasks = upload(api, b"first\n", remote_dir / "once", target_tag="web").json
    assert sorted(t["state"] for t in tasks) == ["ABORT", "DONE"], tasks
    (refused,) = [t for t in tasks if t["state"] == "ABORT"]
    assert "overwrite is false" in refused["error"]  # found before the transfer, or by the rename (link(2)) after
    assert (remote_dir / "once").read_bytes() == b"first\n" and leftovers(remote_dir) == []


def test_existing_file_is_not_overwritten(api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                          remote_dir: Path) -> None:
    workers.start(1)
    existing = remote_dir / "keep.txt"
    existing.write_bytes(b"old\n")
    task = upload(api, b"new\n", existing).json
    assert (task["state"], task["rc"]) == ("ABORT", None), task
    assert task["error"] == (f"{existing} already exists on {instance['user']}@{instance['ip']}:{instance['port']} "
                             "and overwrite is false: nothing was written")
    assert existing.read_bytes() == b"old\n" and leftovers(remote_dir) == []


def test_overwrite_replaces_atomically_keeping_the_mode(api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                                        remote_dir: Path, ssh_user: str) -> None:
    workers.start(1)
    existing = remote_dir / "app.conf"
    existing.write_bytes(b"old\n")
    existing.chmod(0o640)
    account = pwd.getpwnam(ssh_user)
    os.chown(existing, account.pw_uid, account.pw_gid)
    with existing.open("rb") as reader:  # a reader of the old file keeps the old file: it was renamed over
        task = upload(api, b"new\n", existing, overwrite=True).json
        assert (task["state"], task["rc"], task["mode"]) == ("DONE", 0, "0640"), task
        assert reader.read() == b"old\n"
        assert os.fstat(reader.fileno()).st_ino != existing.stat().st_ino
    assert existing.read_bytes() == b"new\n" and stat.S_IMODE(existing.stat().st_mode) == 0o640
    assert leftovers(remote_dir) == []


@pytest.mark.parametrize("mode, expected", [("0750", 0o750), ("600", 0o600), ("4755", 0o4755)])
def test_mode_is_applied(api: Api, instance: dict[str, Any], workers: WorkerProcesses, remote_dir: Path, mode: str,
                         expected: int) -> None:
    workers.start(1)
    task = upload(api, b"#!/bin/sh\n", remote_dir / "run.sh", mode=mode).json
    assert (task["state"], task["mode"]) == ("DONE", f"{expected:04o}"), task
    assert stat.S_IMODE((remote_dir / "run.sh").stat().st_mode) == expected


def test_missing_directory_ends_abort(api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                      remote_dir: Path, redis_server: RedisServer) -> None:
    workers.start(1)
    task = upload(api, b"x", remote_dir / "no" / "such.txt").json
    assert task["state"] == "ABORT" and "no such file" in task["error"].lower(), task
    assert uploads_in_redis(redis_server) == []  # every destination has ended: the content went with the last


def test_cancelled_queued_upload_frees_its_content(api: Api, instance: dict[str, Any], remote_dir: Path,
                                                   redis_server: RedisServer) -> None:
    task = upload(api, b"queued", remote_dir / "later", query="").json  # no worker runs: it stays INIT
    assert task["state"] == "INIT" and len(uploads_in_redis(redis_server)) == 1
    assert api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"}).json["state"] == "ABORT"
    assert uploads_in_redis(redis_server) == []


def test_fetch(api: Api, instance: dict[str, Any], workers: WorkerProcesses, remote_dir: Path) -> None:
    workers.start(1)
    content = os.urandom(300_000)
    (remote_dir / "report.bin").write_bytes(content)
    body = {"instance": instance["id"], "path": str(remote_dir / "report.bin")}
    response = api.post("/files/fetch?wait=30", json=body)
    assert response.status_code == 201, response.json
    task = response.json
    assert (task["kind"], task["state"], task["rc"], task["size"]) == ("fetch", "DONE", 0, len(content)), task
    assert task["sha256"] == hashlib.sha256(content).hexdigest()
    got = api.as_user("viewer").get(f"/tasks/{task['id']}/file")
    assert got.status_code == 200 and got.mimetype == "application/octet-stream"
    assert got.data == content and got.headers["X-Wsexec-Sha256"] == task["sha256"]
    assert got.headers["Content-Disposition"] == "attachment; filename=\"report.bin\"; filename*=UTF-8''report.bin"
    missing = api.post("/files/fetch?wait=30", json={"instance": instance["id"], "path": str(remote_dir / "nope")})
    assert missing.json["state"] == "ABORT" and "does not exist" in missing.json["error"]
    refused = api.get(f"/tasks/{missing.json['id']}/file")
    assert refused.status_code == 409 and "ABORT" in refused.json["error"]
    assert refused.json["detail"]["state"] == "ABORT"


def test_file_of_a_task_that_is_no_fetch_or_not_done(api: Api, instance: dict[str, Any]) -> None:
    script = api.create_task(instance)
    assert api.get(f"/tasks/{script['id']}/file").status_code == 404
    assert api.get(f"/tasks/{script['id']}/file").json["detail"] == {"kind": "script"}
    assert api.get("/tasks/999/file").status_code == 404
    queued = api.created("/files/fetch", {"instance": instance["id"], "path": "/etc/hostname"})
    answer = api.get(f"/tasks/{queued['id']}/file")
    assert answer.status_code == 409
    assert answer.json["error"] == f"task {queued['id']} is INIT, not DONE: there is no file"


class TestLimits:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, file_max=1000, fetch_max=1000)

    def test_fetch_over_the_cap_ends_abort(self, api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                           remote_dir: Path) -> None:
        workers.start(1)
        (remote_dir / "big").write_bytes(b"x" * 1001)
        task = api.post("/files/fetch?wait=30", json={"instance": instance["id"], "path": str(remote_dir / "big")}).json
        assert task["state"] == "ABORT" and "larger than WSEXEC_FETCH_MAX (1000 bytes)" in task["error"], task
        assert api.get(f"/tasks/{task['id']}/file").status_code == 409

    def test_upload_over_the_limit_is_413(self, api: Api, instance: dict[str, Any], remote_dir: Path,
                                          redis_server: RedisServer) -> None:
        at_limit = upload(api, b"x" * 1000, remote_dir / "ok", query="")
        assert at_limit.status_code == 201, at_limit.json
        over = upload(api, b"x" * 1001, remote_dir / "big", query="")
        assert over.status_code == 413 and over.json["detail"] == {"file_max": 1000}, over.json
        far_over = upload(api, b"x" * (1000 + FORM_OVERHEAD), remote_dir / "big", query="")
        assert far_over.status_code == 413 and far_over.json["error"] == "request body too large"
        assert len(uploads_in_redis(redis_server)) == 1  # only the one accepted


GARBAGE = [
    pytest.param({"content_type": "multipart/form-data", "data": b"junk"}, 422, id="no-boundary"),
    pytest.param({"content_type": "multipart/form-data; boundary=xyz", "data": b"--xyz\r\nnot a part"}, 422,
                 id="broken-parts"),
    pytest.param({"json": {"content": "x", "path": "/tmp/x", "instance": 1}}, 415, id="json"),
]


@pytest.mark.parametrize("request_kwargs, status", GARBAGE)
def test_garbage_bodies(api: Api, instance: dict[str, Any], request_kwargs: dict[str, Any], status: int) -> None:
    response = api.post("/files", **request_kwargs)
    assert response.status_code == status, response.data
    assert set(response.json) == {"error", "detail"}


BAD_FIELDS = [
    pytest.param({"path": "relative/x"}, "path", id="relative-path"),
    pytest.param({"path": "/tmp/../etc/x"}, "path", id="dotdot"),
    pytest.param({"path": "/tmp/dir/"}, "path", id="trailing-slash"),
    pytest.param({"mode": "0999"}, "mode", id="not-octal"),
    pytest.param({"mode": "rwx"}, "mode", id="symbolic-mode"),
    pytest.param({"overwrite": "maybe"}, "overwrite", id="overwrite"),
    pytest.param({"target_tag": "web"}, "instance", id="instance-and-tag"),
    pytest.param({"instance": "x"}, "instance", id="instance-not-int"),
    pytest.param({"script": "rm -rf /"}, "script", id="unknown-field"),
    pytest.param({"user": "Root!"}, "user", id="bad-user"),
]


@pytest.mark.parametrize("fields, field", BAD_FIELDS)
def test_bad_fields_are_422(api: Api, instance: dict[str, Any], fields: dict[str, Any], field: str) -> None:
    body = {"instance": "1", "path": "/tmp/x", **fields}
    response = upload(api, b"x", body.pop("path"), query="", **body)
    assert response.status_code == 422, response.json
    assert field in response.json["detail"], response.json


def test_content_is_required_once(api: Api, instance: dict[str, Any]) -> None:
    missing = api.post("/files", data={"instance": "1", "path": "/tmp/x"}, content_type="multipart/form-data")
    assert missing.status_code == 422 and "content" in missing.json["detail"]
    twice = api.post("/files", data={"instance": "1", "path": ["/tmp/x", "/tmp/y"], "content": "x"},
                     content_type="multipart/form-data")
    assert twice.status_code == 422 and twice.json["detail"] == {"path": ["given more than once"]}
    as_text = api.post("/files", data={"instance": "1", "path": "/tmp/x", "content": "plain text"},
                       content_type="multipart/form-data")
    assert as_text.status_code == 201 and as_text.json["size"] == len("plain text")


def test_viewer_may_not_upload_or_fetch(api: Api, instance: dict[str, Any]) -> None:
    viewer = api.as_user("viewer")
    assert upload(viewer, b"x", "/tmp/x", query="").status_code == 403
    assert viewer.post("/files/fetch", json={"instance": 1, "path": "/tmp/x"}).status_code == 403


def test_unknown_instance_or_tag_is_422(api: Api, instance: dict[str, Any], redis_server: RedisServer) -> None:
    unknown = upload(api, b"x", "/tmp/x", query="", instance="99")
    assert unknown.status_code == 422 and unknown.json["error"] == "instance: instance 99 does not exist"
    no_tag = upload(api, b"x", "/tmp/x", query="", target_tag="nobody")
    assert no_tag.status_code == 422 and "no ACTIVE instance has tag 'nobody'" in no_tag.json["error"]
    fetch = api.post("/files/fetch", json={"instance": 99, "path": "/tmp/x"})
    assert fetch.status_code == 422
    assert uploads_in_redis(redis_server) == []  # refused uploads leave nothing behind


def memory_kib(pid: int, field: str) -> int:
    """A line of /proc/PID/status in KiB: VmRSS (now) or VmHWM (the peak since it was last reset)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def curl_upload(url: str, source: Path, path: Path) -> dict[str, Any]:
    """The README's curl, through real gunicorn: the file streamed from disk, the answer once the task has ended."""
    done = subprocess.run(["curl", "-sS", "-u", f"admin:{PASSWORDS['admin']}", "-F", f"content=@{source}",
                           "-F", "instance=1", "-F", f"path={path}", f"{url}/wsexec/files?wait=240"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LARGE = 64 * 1024 * 1024


def test_large_upload_keeps_the_worker_flat(gunicorn_url: str, instance: dict[str, Any], workers: WorkerProcesses,
                                            remote_dir: Path, tmp_path: Path) -> None:
    """64 MiB go from Redis to SFTP a slice at a time: the worker's peak RSS grows by far less than the file."""
    (worker,) = workers.start(1)
    source, digest = tmp_path / "large.bin", hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(LARGE // (1024 * 1024)):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    (tmp_path / "small.txt").write_bytes(b"warm-up\n")
    warm = curl_upload(gunicorn_url, tmp_path / "small.txt", remote_dir / "warm-up")  # imports, SSH connection
    assert warm["state"] == "DONE", warm
    baseline = memory_kib(worker.pid, "VmRSS")
    Path(f"/proc/{worker.pid}/clear_refs").write_text("5")  # the peak starts again from here
    task = curl_upload(gunicorn_url, source, remote_dir / "large.bin")
    assert (task["state"], task["size"], task["sha256"]) == ("DONE", LARGE, digest.hexdigest()), task
    peak = memory_kib(worker.pid, "VmHWM")
    growth_mib = (peak - baseline) / 1024
    print(f"worker RSS {baseline / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB during a {LARGE >> 20} MiB upload")
    assert growth_mib < 16, f"the worker grew by {growth_mib:.1f} MiB for a {LARGE >> 20} MiB file"
    assert hashlib.sha256((remote_dir / "large.bin").read_bytes()).hexdigest() == digest.hexdigest()


def test_empty_file_and_symlinks(api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                 remote_dir: Path) -> None:
    """An empty file is a file; a symlink at the path counts as existing, and overwrite replaces the link itself."""
    workers.start(1)
    empty = upload(api, b"", remote_dir / "empty").json
    assert (empty["state"], empty["size"]) == ("DONE", 0) and (remote_dir / "empty").read_bytes() == b""
    outside = remote_dir / "target.txt"
    outside.write_bytes(b"target\n")
    (remote_dir / "link").symlink_to(outside)
    (remote_dir / "dangling").symlink_to(remote_dir / "nowhere")
    assert upload(api, b"x", remote_dir / "dangling").json["state"] == "ABORT"
    assert (remote_dir / "dangling").is_symlink() and not (remote_dir / "nowhere").exists()
    replaced = upload(api, b"new\n", remote_dir / "link", overwrite=True).json
    assert replaced["state"] == "DONE", replaced
    assert not (remote_dir / "link").is_symlink() and (remote_dir / "link").read_bytes() == b"new\n"
    assert outside.read_bytes() == b"target\n"


def test_uploads_refuse_an_idempotency_key(api: Api, instance: dict[str, Any]) -> None:
    response = api.post("/files", data={"instance": "1", "path": "/tmp/x", "content": "x"},
                        content_type="multipart/form-data", headers={"Idempotency-Key": "nightly"})
    assert response.status_code == 422 and "Idempotency-Key" in response.json["detail"]


def test_the_reaper_removes_the_temporary_file_of_a_worker_lost_mid_upload(
        api: Api, instance: dict[str, Any], workers: WorkerProcesses, store: Store, remote_dir: Path, ssh_user: str,
        redis_server: RedisServer) -> None:
    """As a worker killed mid-upload leaves it: the task CURRENT under a dead lease, its temporary file recorded."""
    task = upload(api, b"x", remote_dir / "target", query="").json
    assert store.claim(task["id"], "gone-worker", 1)
    temporary = remote_dir / ".target.wsexec-0123456789ab"
    temporary.write_bytes(b"half")
    account = pwd.getpwnam(ssh_user)
    os.chown(temporary, account.pw_uid, account.pw_gid)
    store.tasks.record_temporary(task["id"], str(temporary))
    workers.start(1)  # it reaps the lease
    done = wait_finished(api, task["id"], timeout=20)
    assert (done["state"], done["error"]) == ("ABORT", f"worker lost; its temporary file {temporary} was removed")
    assert os.listdir(remote_dir) == [] and uploads_in_redis(redis_server) == []
