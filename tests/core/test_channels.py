import threading
import time

from installation.core.channels import DropOldestQueue, LatestSlot


def test_latest_slot_newest_wins_and_counts_overwrites():
    slot: LatestSlot[int] = LatestSlot("frames")
    assert slot.get() is None
    for i in range(5):
        slot.put(i)
    assert slot.get() == 4
    st = slot.stats()
    assert (st.written, st.read, st.dropped) == (5, 1, 4)
    # Reading again does not count as another read of new data, nor a drop.
    assert slot.get() == 4
    slot.put(5)
    assert slot.stats().dropped == 4


def test_latest_slot_wait_newer_wakes_on_put():
    slot: LatestSlot[str] = LatestSlot("prompt")
    _, v0 = slot.get_with_version()
    threading.Timer(0.05, slot.put, args=("hello",)).start()
    value, v1 = slot.wait_newer(v0, timeout=2.0)
    assert value == "hello" and v1 == v0 + 1
    # Nothing newer: returns after the timeout with the same version.
    value, v2 = slot.wait_newer(v1, timeout=0.05)
    assert (value, v2) == ("hello", v1)


def test_drop_oldest_queue_keeps_newest_and_counts_drops():
    q: DropOldestQueue[int] = DropOldestQueue("audio", maxsize=3)
    results = [q.put(i) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert q.drain() == [2, 3, 4]
    st = q.stats()
    assert (st.written, st.read, st.dropped) == (5, 3, 2)


def test_drop_oldest_queue_get_times_out_and_wakes():
    q: DropOldestQueue[int] = DropOldestQueue("events", maxsize=2)
    t0 = time.monotonic()
    assert q.get(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, q.put, args=(7,)).start()
    assert q.get(timeout=2.0) == 7


def test_drop_oldest_queue_many_writers_lose_nothing_but_drops():
    q: DropOldestQueue[int] = DropOldestQueue("burst", maxsize=100)

    def writer(base):
        for i in range(1000):
            q.put(base + i)

    threads = [threading.Thread(target=writer, args=(k * 10000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = q.stats()
    assert st.written == 4000
    assert len(q) == 100
    assert st.dropped == 3900
