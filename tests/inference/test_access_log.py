"""Request logs written after the answers, gathered per event-loop turn: every line whole,
each write at most PIPE_BUF bytes cut between lines, nothing lost at shutdown; request ids
unique without a system call, in forked workers too."""

import asyncio
import json
import os
import select

from linreg_ops.inference.access_log import AccessLogger, Entry, request_id


def entry(number: int) -> Entry:
    return Entry(request_id(None), "POST", "/invocations", "linreg-ops", 3, number, 200, 0.5, 0)


def test_the_lines_of_one_loop_turn_go_out_together_in_whole_lines_of_at_most_pipe_buf(tmp_path):
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    logger = AccessLogger("json", fd)
    pieces: list[bytes] = []
    real_write = logger._write

    def recording(data: bytes) -> None:
        pieces.append(data)
        real_write(data)

    logger._write = recording  # type: ignore[method-assign]

    async def serve_a_burst() -> int:
        for number in range(500):
            logger.write(entry(number))
        written_before_the_turn = len(pieces)
        await asyncio.sleep(0)  # the loop's next turn: the flush
        return written_before_the_turn

    try:
        assert asyncio.run(serve_a_burst()) == 0, "a line was written before the answer went"
    finally:
        os.close(fd)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["rows"] for line in lines] == list(range(500))
    assert 1 < len(pieces) < 500, "gathered, not one write per line"
    assert all(len(piece) <= select.PIPE_BUF and piece.endswith(b"\n") for piece in pieces)


def test_outside_an_event_loop_a_line_is_written_at_once(tmp_path):
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        AccessLogger("text", fd).write(entry(7))
        assert "rows=7" in path.read_text()
    finally:
        os.close(fd)


def test_flush_writes_what_is_pending(tmp_path):
    """What Service.stop calls at shutdown: lines of the last turn are not lost."""
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    logger = AccessLogger("json", fd)

    async def last_request() -> None:
        logger.write(entry(1))
        logger.flush()
        assert path.read_text().count("\n") == 1

    try:
        asyncio.run(last_request())
    finally:
        os.close(fd)
    assert path.read_text().count("\n") == 1, "flushed once, not twice"


def test_request_ids_are_unique_and_a_forked_worker_draws_its_own_prefix():
    ids = {request_id(None) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then out without running pytest's teardown
        os.write(write, request_id(None).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child[:8] != request_id(None)[:8], "a forked worker shares its parent's prefix"
