"""The aiohttp peer: N workers, one file and one SQLite row per image.

python aiohttp_fetch.py BASE_URL PATHS_FILE OUT_DIR CONCURRENCY
"""

import asyncio
import hashlib
import sqlite3
import sys
from pathlib import Path

import aiohttp


async def main(base: str, paths: list[str], out: Path, concurrency: int) -> None:
    db = sqlite3.connect(out / "index.db")
    db.execute("CREATE TABLE images (url TEXT PRIMARY KEY, path TEXT, bytes INT, sha256 TEXT)")
    queue = iter(paths)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for path in queue:
                url = f"{base}/{path}"
                async with session.get(url) as response:
                    data = await response.read()
                target = out / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                row = (url, path, len(data), hashlib.sha256(data).hexdigest())
                db.execute("INSERT INTO images VALUES (?, ?, ?, ?)", row)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    db.commit()
    db.close()


if __name__ == "__main__":
    base_url, paths_file, out_dir, n = sys.argv[1:5]
    lines = Path(paths_file).read_text().split()
    asyncio.run(main(base_url.rstrip("/"), lines, Path(out_dir), int(n)))
