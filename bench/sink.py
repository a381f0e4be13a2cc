"""A minimal protocol-level SMTP sink for the benchmark.

aiosmtpd tops out near 1,000 messages/s per core, which would make the relays the bottleneck.
This sink speaks just enough ESMTP (with PIPELINING) to accept mail at line speed and count it.
`XSTAT` answers `250 <messages> <connections>` so the harness can read the count without files.
Run one per process: `python -m bench.sink --port 2701` (`--port 0` picks a free port); it prints
`listening <port>` once it accepts connections, which is what the harness waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

CAPABILITIES = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n250 SMTPUTF8\r\n"


class Stats:
    messages = 0
    connections = 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    Stats.connections += 1
    writer.write(b"220 sink ESMTP ready\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                # Read to the lone dot; readuntil keeps this in C for large bodies.
                await reader.readuntil(b"\r\n.\r\n")
                Stats.messages += 1
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb in (b"EHLO", b"HELO"):
                writer.write(CAPABILITIES)
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                break
            elif verb == b"XSTA":
                writer.write(f"250 {Stats.messages} {Stats.connections}\r\n".encode())
            elif verb == b"XRES":
                Stats.messages = Stats.connections = 0
                writer.write(b"250 reset\r\n")
            else:  # MAIL, RCPT, RSET, NOOP
                writer.write(b"250 2.0.0 ok\r\n")
            if not reader._buffer:  # noqa: SLF001 - flush only when the client's pipeline is drained
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, limit=1 << 22, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    async with server:
        await stop.wait()


def query(host: str, port: int, command: str = "XSTAT") -> tuple[int, int]:
    """Ask a running sink for (messages, connections)."""
    import socket

    with socket.create_connection((host, port), timeout=5) as sock:
        f = sock.makefile("rwb")
        f.readline()
        f.write(command.encode() + b"\r\n")
        f.flush()
        parts = f.readline().split()
        f.write(b"QUIT\r\n")
        f.flush()
    if command == "XSTAT":
        return int(parts[1]), int(parts[2])
    return 0, 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1", "localhost"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        # A [bench] extra; it trims the loop's overhead a little. Plain asyncio takes ~15,000 msg/s here too.
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
