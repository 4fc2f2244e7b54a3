"""A partner's webhook receiver for the webhook benches: HTTP/1.1 keep-alive on asyncio (uvloop), in its own process
so it takes no GIL from the bench that drives the load. Every POST is answered `200 ok` at once.

`python bench/fast_receiver.py [--record]` prints `port <n>` as its first stdout line. With `--record`, each POST
whose body holds a `#seq:<n>#` marker adds the line `<path> <n> <monotonic ns when the body was read>` to stdout
(CLOCK_MONOTONIC is one clock for every process on Linux, so the bench compares it with its own send times).
`GET /count` answers the number of POSTs received so far. SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import time

SEQ = re.compile(rb"#seq:(\d+)#")
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class Receiver:
    def __init__(self, record: bool) -> None:
        self.record = record
        self.count = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, _, header_block = head.partition(b"\r\n")
                method, path = request_line.split(b" ", 2)[:2]
                length, close = 0, False
                for line in header_block.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                body = await reader.readexactly(length) if length else b""
                received = time.monotonic_ns()
                if method == b"GET" and path == b"/count":
                    answer = str(self.count).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer))
                else:
                    self.count += 1
                    writer.write(OK)
                    if self.record and (found := SEQ.search(body)):
                        sys.stdout.write(f"{path.decode()} {int(found[1])} {received}\n")
                        sys.stdout.flush()
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


async def main(record: bool) -> None:
    receiver = Receiver(record)
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="print the arrival of every #seq:<n># body")
    record = parser.parse_args().record
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(record))
    else:
        uvloop.run(main(record))
