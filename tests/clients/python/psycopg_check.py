"""psycopg 3 and psycopg_pool with their defaults (prepare_threshold 5,
no autocommit)."""
import select
import threading
import time

import psycopg
import psycopg_pool

from common import *  # noqa: F401,F403


def conninfo(user):
    return psycopg.conninfo.make_conninfo(host=HOST, port=PORT, dbname=DB, user=user, password=PASSWORD)


def wait_notifies(conn, timeout, want):
    """psycopg 3.1's notifies() has no timeout: wait for the socket, then
    let a query read what arrived (notify handlers see it)."""
    got = []
    conn.add_notify_handler(got.append)
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        select.select([conn.fileno()], [], [], max(0, deadline - time.monotonic()))
        conn.execute("SELECT 1")
    return got


def main():
    out("version", psycopg.__version__)
    # Connect: keyword form and URL form.
    with psycopg.connect(conninfo(USER_A)) as c:
        out("connect.params", c.execute("SELECT 1").fetchone()[0])
    c = psycopg.connect(url(USER_A))
    out("connect.url", c.execute("SELECT 1").fetchone()[0])
    c.commit()

    # Parameterised queries past the prepare threshold (5).
    total = 0
    for i in range(10):
        total += c.execute("SELECT %s::int + %s::int", (i, 1)).fetchone()[0]
    c.commit()
    out("params", total)

    r = c.execute(TYPES_SQL).fetchone()
    out("types", f"{r[0]}|{bytes(r[1]).hex()}|{r[2].isoformat()}|{r[3]}")
    r = c.execute("SELECT %s::bytea, %s::jsonb, %s::timestamptz", (b"\x01\x02", psycopg.types.json.Jsonb({"k": "v"}), r[2])).fetchone()
    out("types.params", f"{bytes(r[0]).hex()}|{r[1]}|{r[2].isoformat()}")
    c.commit()

    # Transactions with rollback.
    with c.transaction(force_rollback=True):
        c.execute("INSERT INTO scratch (v) VALUES (%s)", (RUN + "-rb",))
    n = c.execute("SELECT count(*) FROM scratch WHERE v = %s", (RUN + "-rb",)).fetchone()[0]
    with c.transaction():
        c.execute("INSERT INTO scratch (v) VALUES (%s)", (RUN + "-ok",))
    m = c.execute("SELECT count(*) FROM scratch WHERE v = %s", (RUN + "-ok",)).fetchone()[0]
    c.execute("DELETE FROM scratch WHERE v LIKE %s", (RUN + "%",))
    c.commit()
    out("tx", f"rolled back {n}, committed {m}")

    # Errors and recovery on the same connection.
    try:
        c.execute("SELECT 1/0")
    except psycopg.Error as e:
        out("error", e.sqlstate)
        c.rollback()
    out("error.recovered", c.execute("SELECT 2").fetchone()[0])
    c.commit()

    # COPY out.
    with c.cursor() as cur:
        with cur.copy("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT") as cp:
            data = b"".join(bytes(b) for b in cp)
    c.commit()
    out("copy", data.decode().strip().replace("\n", ","))

    # Server-side (named) cursor.
    with c.cursor(name="mgcur") as cur:
        cur.itersize = 2
        cur.execute("SELECT g FROM generate_series(1, 5) g")
        out("cursor", ",".join(str(r[0]) for r in cur))
    c.commit()

    # Statement timeout and cancel.
    c.autocommit = True
    c.execute("SET statement_timeout = '200ms'")
    try:
        c.execute("SELECT pg_sleep(3)")
    except psycopg.Error as e:
        out("statement_timeout", e.sqlstate)
    c.execute("RESET statement_timeout")
    timer = threading.Timer(0.3, c.cancel)
    timer.start()
    try:
        c.execute("SELECT pg_sleep(3)")
        out("cancel", "not cancelled")
    except psycopg.Error as e:
        out("cancel", e.sqlstate)
    out("cancel.recovered", c.execute("SELECT 3").fetchone()[0])

    # The settings drivers send, then read back.
    for s in SETS:
        c.execute(s)
    for name in SHOWS:
        out("show." + name, c.execute("SELECT current_setting(%s)", (name,)).fetchone()[0])
    c.execute("RESET ALL")
    out("reset_all", c.execute("SHOW extra_float_digits").fetchone()[0])

    # LISTEN/NOTIFY (autocommit, as psycopg's documentation says).
    listener = psycopg.connect(url(USER_A), autocommit=True)
    listener.execute("LISTEN mg_events")
    c.execute("NOTIFY mg_events, 'p1'")
    got = wait_notifies(listener, 5, 1)
    out("notify", ",".join(f"{n.channel}:{n.payload}" for n in got) or "timeout")
    if TENANT:
        other = psycopg.connect(url(USER_B), autocommit=True)
        other.execute("LISTEN mg_events")
        c.execute("NOTIFY mg_events, 'secret-a'")
        heard = wait_notifies(other, 0.5, 1)
        out("tenant.cross_notify", ",".join(n.payload for n in heard) or "none")
        other.close()
    listener.close()
    c.close()

    # The driver's pool: two tenants, eight workers, pools of four, against
    # a proxy pool smaller than the client count.
    def work(pool, results):
        for _ in range(5):
            with pool.connection() as pc:
                with pc.transaction():
                    results.append(pc.execute("SELECT string_agg(name, ',' ORDER BY name) FROM contacts").fetchone()[0])

    pools = [psycopg_pool.ConnectionPool(url(u), min_size=1, max_size=4, open=True) for u in (USER_A, USER_B)]
    results = [[], []]
    threads = [threading.Thread(target=work, args=(pools[i % 2], results[i % 2])) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in pools:
        p.close()
    out("pool", f"{len(results[0])}+{len(results[1])}")
    if TENANT:
        out("tenant.pool_a", ",".join(sorted(set(map(str, results[0])))))
        out("tenant.pool_b", ",".join(sorted(set(map(str, results[1])))))
        with psycopg.connect(url(USER_A)) as a, psycopg.connect(url(USER_B)) as b:
            out("tenant.a_names", a.execute("SELECT string_agg(name, ',' ORDER BY name) FROM contacts").fetchone()[0])
            out("tenant.b_names", b.execute("SELECT string_agg(name, ',' ORDER BY name) FROM contacts").fetchone()[0])


if __name__ == "__main__":
    main()
