"""psycopg2 with its defaults (client-side parameters, simple protocol,
no autocommit)."""
import select
import threading
import time

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import psycopg2.pool

from common import *  # noqa: F401,F403


def wait_notifies(conn, timeout, want):
    deadline = time.monotonic() + timeout
    while len(conn.notifies) < want and time.monotonic() < deadline:
        if select.select([conn], [], [], max(0, deadline - time.monotonic())) != ([], [], []):
            conn.poll()
    got = list(conn.notifies)
    conn.notifies.clear()
    return got


def main():
    out("version", psycopg2.__version__.split()[0])
    with psycopg2.connect(host=HOST, port=PORT, dbname=DB, user=USER_A, password=PASSWORD) as c0:
        with c0.cursor() as cur:
            cur.execute("SELECT 1")
            out("connect.params", cur.fetchone()[0])
    c = psycopg2.connect(url(USER_A))
    cur = c.cursor()
    cur.execute("SELECT 1")
    out("connect.url", cur.fetchone()[0])
    c.commit()

    total = 0
    for i in range(10):
        cur.execute("SELECT %s::int + %s::int", (i, 1))
        total += cur.fetchone()[0]
    c.commit()
    out("params", total)

    cur.execute(TYPES_SQL)
    r = cur.fetchone()
    out("types", f"{r[0]}|{bytes(r[1]).hex()}|{r[2].isoformat()}|{r[3]}")
    cur.execute("SELECT %s::bytea, %s::jsonb, %s::timestamptz", (psycopg2.Binary(b"\x01\x02"), psycopg2.extras.Json({"k": "v"}), r[2]))
    r = cur.fetchone()
    out("types.params", f"{bytes(r[0]).hex()}|{r[1]}|{r[2].isoformat()}")
    c.commit()

    cur.execute("INSERT INTO scratch (v) VALUES (%s)", (RUN + "-rb",))
    c.rollback()
    cur.execute("SELECT count(*) FROM scratch WHERE v = %s", (RUN + "-rb",))
    n = cur.fetchone()[0]
    cur.execute("INSERT INTO scratch (v) VALUES (%s)", (RUN + "-ok",))
    c.commit()
    cur.execute("SELECT count(*) FROM scratch WHERE v = %s", (RUN + "-ok",))
    m = cur.fetchone()[0]
    cur.execute("DELETE FROM scratch WHERE v LIKE %s", (RUN + "%",))
    c.commit()
    out("tx", f"rolled back {n}, committed {m}")

    try:
        cur.execute("SELECT 1/0")
    except psycopg2.Error as e:
        out("error", e.pgcode)
        c.rollback()
    cur.execute("SELECT 2")
    out("error.recovered", cur.fetchone()[0])
    c.commit()

    import io
    buf = io.StringIO()
    cur.copy_expert("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT", buf)
    c.commit()
    out("copy", buf.getvalue().strip().replace("\n", ","))

    named = c.cursor(name="mgcur")
    named.itersize = 2
    named.execute("SELECT g FROM generate_series(1, 5) g")
    out("cursor", ",".join(str(r[0]) for r in named))
    named.close()
    c.commit()

    c.autocommit = True
    cur.execute("SET statement_timeout = '200ms'")
    try:
        cur.execute("SELECT pg_sleep(3)")
    except psycopg2.Error as e:
        out("statement_timeout", e.pgcode)
    cur.execute("RESET statement_timeout")
    timer = threading.Timer(0.3, c.cancel)
    timer.start()
    try:
        cur.execute("SELECT pg_sleep(3)")
        out("cancel", "not cancelled")
    except psycopg2.Error as e:
        out("cancel", e.pgcode)
    cur.execute("SELECT 3")
    out("cancel.recovered", cur.fetchone()[0])

    for s in SETS:
        cur.execute(s)
    for name in SHOWS:
        cur.execute("SELECT current_setting(%s)", (name,))
        out("show." + name, cur.fetchone()[0])
    cur.execute("RESET ALL")
    cur.execute("SHOW extra_float_digits")
    out("reset_all", cur.fetchone()[0])

    listener = psycopg2.connect(url(USER_A))
    listener.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    listener.cursor().execute("LISTEN mg_events")
    cur.execute("NOTIFY mg_events, 'p1'")
    got = wait_notifies(listener, 5, 1)
    out("notify", ",".join(f"{n.channel}:{n.payload}" for n in got) or "timeout")
    if TENANT:
        other = psycopg2.connect(url(USER_B))
        other.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        other.cursor().execute("LISTEN mg_events")
        cur.execute("NOTIFY mg_events, 'secret-a'")
        heard = wait_notifies(other, 0.5, 1)
        out("tenant.cross_notify", ",".join(n.payload for n in heard) or "none")
        other.close()
    listener.close()
    c.close()

    pools = [psycopg2.pool.ThreadedConnectionPool(1, 4, url(u)) for u in (USER_A, USER_B)]
    results = [[], []]
    sem = [threading.BoundedSemaphore(4), threading.BoundedSemaphore(4)]

    def work(i):
        for _ in range(5):
            with sem[i]:
                pc = pools[i].getconn()
                try:
                    with pc.cursor() as pcur:
                        pcur.execute("SELECT string_agg(name, ',' ORDER BY name) FROM contacts")
                        results[i].append(pcur.fetchone()[0])
                    pc.commit()
                finally:
                    pools[i].putconn(pc)

    threads = [threading.Thread(target=work, args=(i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out("pool", f"{len(results[0])}+{len(results[1])}")
    if TENANT:
        out("tenant.pool_a", ",".join(sorted(set(map(str, results[0])))))
        out("tenant.pool_b", ",".join(sorted(set(map(str, results[1])))))
        for i, key in enumerate(("tenant.a_names", "tenant.b_names")):
            pc = pools[i].getconn()
            with pc.cursor() as pcur:
                pcur.execute("SELECT string_agg(name, ',' ORDER BY name) FROM contacts")
                out(key, pcur.fetchone()[0])
            pc.rollback()
            pools[i].putconn(pc)
    for p in pools:
        p.closeall()


if __name__ == "__main__":
    main()
