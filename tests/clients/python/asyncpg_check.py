"""asyncpg with its defaults: client_encoding='utf-8' in the startup
packet, prepared statements for everything, the pool's reset query on
release."""
import asyncio
import datetime
import json

import asyncpg

from common import *  # noqa: F401,F403


async def main():
    out("version", asyncpg.__version__)
    c0 = await asyncpg.connect(host=HOST, port=PORT, database=DB, user=USER_A, password=PASSWORD)
    out("connect.params", await c0.fetchval("SELECT 1"))
    await c0.close()
    c = await asyncpg.connect(url(USER_A))
    out("connect.url", await c.fetchval("SELECT 1"))

    total = 0
    for i in range(10):
        total += await c.fetchval("SELECT $1::int + $2::int", i, 1)
    out("params", total)

    r = await c.fetchrow(TYPES_SQL)
    out("types", f"{r['n']}|{bytes(r['b']).hex()}|{r['ts'].isoformat()}|{r['j']}")
    r2 = await c.fetchrow("SELECT $1::bytea, $2::jsonb, $3::timestamptz", b"\x01\x02", json.dumps({"k": "v"}), r["ts"])
    out("types.params", f"{bytes(r2[0]).hex()}|{r2[1]}|{r2[2].isoformat()}")

    try:
        async with c.transaction():
            await c.execute("INSERT INTO scratch (v) VALUES ($1)", RUN + "-rb")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    n = await c.fetchval("SELECT count(*) FROM scratch WHERE v = $1", RUN + "-rb")
    async with c.transaction():
        await c.execute("INSERT INTO scratch (v) VALUES ($1)", RUN + "-ok")
    m = await c.fetchval("SELECT count(*) FROM scratch WHERE v = $1", RUN + "-ok")
    await c.execute("DELETE FROM scratch WHERE v LIKE $1", RUN + "%")
    out("tx", f"rolled back {n}, committed {m}")

    try:
        await c.fetchval("SELECT 1/0")
    except asyncpg.PostgresError as e:
        out("error", e.sqlstate)
    out("error.recovered", await c.fetchval("SELECT 2"))

    chunks = []

    async def sink(data):
        chunks.append(bytes(data))
    await c.copy_from_query("SELECT g FROM generate_series(1, 3) g", output=sink)
    out("copy", b"".join(chunks).decode().strip().replace("\n", ","))

    async with c.transaction():
        vals = [r[0] async for r in c.cursor("SELECT g FROM generate_series(1, 5) g", prefetch=2)]
    out("cursor", ",".join(map(str, vals)))

    await c.execute("SET statement_timeout = '200ms'")
    try:
        await c.execute("SELECT pg_sleep(3)")
    except asyncpg.PostgresError as e:
        out("statement_timeout", e.sqlstate)
    await c.execute("RESET statement_timeout")
    try:
        await c.execute("SELECT pg_sleep(3)", timeout=0.3)
        out("cancel", "not cancelled")
    except asyncio.TimeoutError:
        out("cancel", "timeout")
    out("cancel.recovered", await c.fetchval("SELECT 3"))

    for s in SETS:
        await c.execute(s)
    for name in SHOWS:
        out("show." + name, await c.fetchval("SELECT current_setting($1)", name))
    await c.execute("RESET ALL")
    out("reset_all", await c.fetchval("SHOW extra_float_digits"))

    got = asyncio.Queue()
    listener = await asyncpg.connect(url(USER_A))
    await listener.add_listener("mg_events", lambda conn, pid, ch, payload: got.put_nowait(f"{ch}:{payload}"))
    await c.execute("NOTIFY mg_events, 'p1'")
    try:
        out("notify", await asyncio.wait_for(got.get(), 5))
    except asyncio.TimeoutError:
        out("notify", "timeout")
    if TENANT:
        heard = asyncio.Queue()
        other = await asyncpg.connect(url(USER_B))
        await other.add_listener("mg_events", lambda conn, pid, ch, payload: heard.put_nowait(payload))
        await c.execute("NOTIFY mg_events, 'secret-a'")
        try:
            out("tenant.cross_notify", await asyncio.wait_for(heard.get(), 0.5))
        except asyncio.TimeoutError:
            out("tenant.cross_notify", "none")
        await other.close()
    await listener.close()
    await c.close()

    # The pool: its release runs the reset query (pg_advisory_unlock_all,
    # CLOSE ALL, UNLISTEN *, RESET ALL).
    pools = [await asyncpg.create_pool(url(u), min_size=1, max_size=4) for u in (USER_A, USER_B)]
    results = [[], []]

    async def work(i):
        for _ in range(5):
            async with pools[i].acquire() as pc:
                async with pc.transaction():
                    results[i].append(await pc.fetchval("SELECT string_agg(name, ',' ORDER BY name) FROM contacts"))

    await asyncio.gather(*(work(i % 2) for i in range(8)))
    out("pool", f"{len(results[0])}+{len(results[1])}")
    if TENANT:
        out("tenant.pool_a", ",".join(sorted(set(map(str, results[0])))))
        out("tenant.pool_b", ",".join(sorted(set(map(str, results[1])))))
        for i, key in enumerate(("tenant.a_names", "tenant.b_names")):
            out(key, await pools[i].fetchval("SELECT string_agg(name, ',' ORDER BY name) FROM contacts"))
    for p in pools:
        await p.close()


if __name__ == "__main__":
    asyncio.run(main())
