"""A MongoDB wire-protocol server (mongoeco, in memory) for running the built functions locally.

python3.13 serve.py HOST PORT     # serves mongodb://HOST:PORT until SIGTERM/SIGINT; prints the URI
"""

import asyncio
import signal
import sys

from mongoeco.wire import AsyncMongoEcoProxyServer


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncMongoEcoProxyServer(host=host, port=port) as server:
        print(server.address.uri, flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
