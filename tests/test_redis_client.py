"""The service's Redis client: every serving thread on a connection of its own."""

from __future__ import annotations

import threading

from shared.adapters.redis_client import redis_client
from shared.settings import Settings
from tests.conftest import Services


def test_each_thread_keeps_its_own_connection(services: Services) -> None:
    client = redis_client(
        Settings(redis_url=services.redis_url, database_url="postgresql://u@127.0.0.1/d")
    )
    seen: dict[int, list[int]] = {}
    all_asked = threading.Barrier(4)

    def ids(name: int) -> None:
        seen[name] = [int(client.client_id()) for _ in range(3)]
        all_asked.wait(5)  # every thread alive (holding its connection) at once
        seen[name].append(int(client.client_id()))

    try:
        threads = [threading.Thread(target=ids, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        client.close()

    assert sorted(len(values) for values in seen.values()) == [4] * 4
    assert all(len(set(values)) == 1 for values in seen.values())  # one connection each
    assert len({values[0] for values in seen.values()}) == 4  # and no two share one


def test_scripts_and_pipelines_work_across_threads(services: Services) -> None:
    client = redis_client(
        Settings(redis_url=services.redis_url, database_url="postgresql://u@127.0.0.1/d")
    )
    key = f"{services.redis_prefix}per-thread"
    incr = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")

    def work() -> None:
        for _ in range(50):
            incr(keys=[key], args=[1])
            pipeline = client.pipeline(transaction=False)
            pipeline.incrby(key, 1)
            pipeline.execute()

    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert int(client.get(key)) == 4 * 50 * 2
    finally:
        client.delete(key)
        client.close()
