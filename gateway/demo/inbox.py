"""The demo's own notification channel: a local HTTP receiver for Apprise's json://.

So a newcomer sees the whole story with no account anywhere: the committee's
notices are posted here, kept in `notifications.jsonl` beside the demo's other
files, and the live view shows the last few.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

from aiohttp import web


class Inbox:
    def __init__(self, host: str, port: int, path: Path) -> None:
        self.host, self.port, self.path = host, port, path
        self.last: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=3)
        self.count = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The Apprise URL the demo's committee member has."""
        return f"json://{self.host}:{self.port}/committee"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/committee", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        title, message = str(body.get("title", "")), str(body.get("message", ""))
        at = time.time()  # when the demo's inbox got it (demo/ keeps its own time)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"at": at, "title": title, "message": message}) + "\n")
        self.last.append((at, title, message))
        self.count += 1
        return web.Response(text="ok")
