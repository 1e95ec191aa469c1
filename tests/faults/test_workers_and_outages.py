"""Workers under faults, against a PostgreSQL of their own and the emulator behind a proxy:
kill -9 mid multipart upload, a database restart under running workers, S3 outages shorter
and longer than the retry budget. After each, the exact-delivery check (tests/faults/
delivery.py) and the process check: every worker alive, or exited non-zero."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx
import pytest

from byob.demo.emulator import LocalAws
from tests.faults.world import World, build_world
from tests.support import holds_for, pg_exec, wait_for

pytestmark = pytest.mark.integration

TENANTS = 6
ROWS = 60_000  # per tenant and round: two files, the first a multipart upload of two parts


@pytest.fixture(scope="module")
def world(_aws_server: LocalAws) -> Iterator[World]:
    _aws_server.reset()
    _aws_server.enforce_iam(False)
    with build_world(_aws_server, TENANTS) as built:
        yield built


@pytest.fixture(autouse=True)
def no_leftover_workers(world: World) -> Iterator[None]:
    yield
    world.kill_workers()


def test_kill_9_mid_multipart_upload_five_times(world: World) -> None:
    world.add_rows(ROWS)
    world.trigger_all()
    rng = random.Random(20261202)
    kills = 0
    while kills < 5:
        # One job at a time: the kill lands in the first file of the job that just started,
        # and a retry starts that file again, so every round sees a new upload.
        victim = world.start_worker(f"kill{kills}", concurrency=1)
        world.wait_new_upload()
        time.sleep(rng.uniform(0, 0.3))
        victim.kill()
        assert victim.wait(timeout=10) == -9
        world.workers.remove(victim)
        kills += 1
    world.start_worker("survivor")
    # Killed workers' jobs are stalled (no heartbeat): requeued and finished by the survivor.
    world.wait_all_done(timeout=240)
    world.check_workers_alive()
    world.check_delivery()
    assert world.jobs("failed") == 0
    assert world.stop_workers() == [0]


def test_database_restart_under_running_workers_and_server(world: World) -> None:
    world.add_rows(ROWS)
    steady = [world.start_worker("steady0"), world.start_worker("steady1")]
    impatient = world.start_worker("impatient", worker_outage_seconds="3")
    base_url, server = world.start_server()  # its scheduler dispatches every tenant now
    wait_for(world.scheduled, timeout=60, what="the scheduler to dispatch every connection")
    wait_for(lambda: world.jobs("doing") > 0, timeout=60, what="a job to start")
    world.cluster.stop()
    # The impatient worker gives up after 3 s without its database: exit status 1.
    assert impatient.wait(timeout=60) == 1
    assert "stayed out of reach" in world.log("impatient")
    world.workers.remove(impatient)
    time.sleep(2)
    world.cluster.start()
    holds_for(lambda: all(w.poll() is None for w in steady), 5, what="the workers to live on")
    world.wait_all_done(timeout=240)
    world.check_workers_alive()
    world.check_delivery()
    assert "database reachable again" in world.log("steady0") + world.log("steady1")

    # The server lived on too: it answers, and its scheduler dispatches the next slot.
    assert server.poll() is None
    assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200
    world.add_rows(ROWS // 10)
    before = world.succeeded_transfers()
    pg_exec(world.state_url, "UPDATE connections SET last_slot = NULL")
    wait_for(world.scheduled, timeout=60, what="the scheduler to dispatch after the restart")
    world.wait_every_connection_transferred(after=before, timeout=240)
    world.check_delivery()
    assert "state store reachable again" in (world.root / "server.log").read_text()
    world.workers.remove(server)
    server.terminate()  # uvicorn shuts down gracefully, then re-raises the signal
    assert server.wait(timeout=60) in (0, -15)
    for name, worker in zip(("steady0", "steady1"), steady, strict=True):
        assert worker.poll() is None, f"{name} exited {worker.poll()}: {world.log(name)[-3000:]}"
    assert world.stop_workers() == [0, 0]


@pytest.mark.parametrize(
    ("outage", "gives_up"), [(3.0, False), (25.0, True)], ids=["shorter", "longer"]
)
def test_s3_outage(world: World, outage: float, gives_up: bool) -> None:
    """Shorter than the retry budget: the jobs' retries deliver everything. Longer: the jobs
    fail for good, their transfers say so, and the next run delivers the rest exactly once."""
    world.add_rows(ROWS)
    world.start_worker("s3", transfer_max_attempts="2" if gives_up else "6")
    world.trigger_all()
    world.wait_new_upload()
    world.proxy.down()
    time.sleep(outage)
    world.proxy.up()
    world.wait_all_done(timeout=240)
    world.check_workers_alive()
    if gives_up:
        assert world.jobs("failed") > 0
        world.trigger_all()  # the next scheduled run, now
        world.wait_all_done(timeout=240)
    world.check_delivery()
    assert world.stop_workers() == [0]
