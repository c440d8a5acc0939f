from tests.conftest import wait_finished


def test_roundtrip(api, instance, workers):
    r = api.post("/tasks", json={"name": "n", "tag": "t", "instance": instance["id"], "script": "echo hi; echo err >&2; exit 3"})
    assert r.status_code == 201, r.json
    workers.start(1)
    task = wait_finished(api, r.json["id"])
    print(task)
    assert task["state"] == "DONE", task
    assert task["stdout"] == "hi\n"
    assert task["stderr"] == "err\n"
    assert task["rc"] == 3
