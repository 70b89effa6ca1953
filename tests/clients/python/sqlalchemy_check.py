"""SQLAlchemy Core and ORM with its default PostgreSQL driver (psycopg2)
and its default pool (QueuePool, reset on return with ROLLBACK)."""
import threading

import sqlalchemy as sa
from sqlalchemy import orm

from common import *  # noqa: F401,F403


Base = orm.declarative_base()


class Scratch(Base):
    __tablename__ = "scratch"
    id = sa.Column(sa.Integer, primary_key=True)
    # The database fills the tenant column from the context
    # (multigres_protect sets the default): the ORM must leave it out.
    tenant_id = sa.Column(sa.Text, server_default=sa.FetchedValue())
    v = sa.Column(sa.Text)


class Contact(Base):
    __tablename__ = "contacts"
    id = sa.Column(sa.Integer, primary_key=True)
    tenant_id = sa.Column(sa.String)
    name = sa.Column(sa.Text)
    email = sa.Column(sa.Text)


def main():
    out("version", sa.__version__)
    eng = sa.create_engine(url(USER_A), future=True)
    eng_params = sa.create_engine(sa.engine.URL.create("postgresql", username=USER_A, password=PASSWORD, host=HOST, port=PORT, database=DB), future=True)
    with eng_params.connect() as c:
        out("connect.params", c.execute(sa.text("SELECT 1")).scalar())
    eng_params.dispose()
    with eng.connect() as c:
        out("connect.url", c.execute(sa.text("SELECT 1")).scalar())
        total = sum(c.execute(sa.text("SELECT CAST(:a AS int) + 1"), {"a": i}).scalar() for i in range(10))
        out("params", total)
        r = c.execute(sa.text(TYPES_SQL)).one()
        out("types", f"{r.n}|{bytes(r.b).hex()}|{r.ts.isoformat()}|{r.j}")
        r2 = c.execute(sa.select(sa.cast(sa.literal(b"\x01\x02", sa.LargeBinary), sa.LargeBinary),
                                 sa.cast(sa.literal({"k": "v"}, sa.JSON), sa.dialects.postgresql.JSONB),
                                 sa.cast(sa.literal(r.ts, sa.DateTime(timezone=True)), sa.DateTime(timezone=True)))).one()
        out("types.params", f"{bytes(r2[0]).hex()}|{r2[1]}|{r2[2].isoformat()}")
        c.rollback()

    with orm.Session(eng, future=True) as s:
        s.add(Scratch(v=RUN + "-rb"))
        s.flush()
        s.rollback()
        n = s.scalar(sa.select(sa.func.count()).select_from(Scratch).where(Scratch.v == RUN + "-rb"))
        s.add(Scratch(v=RUN + "-ok"))
        s.commit()
        m = s.scalar(sa.select(sa.func.count()).select_from(Scratch).where(Scratch.v == RUN + "-ok"))
        s.execute(sa.delete(Scratch).where(Scratch.v.like(RUN + "%")).execution_options(synchronize_session=False))
        s.commit()
        out("tx", f"rolled back {n}, committed {m}")

    with eng.connect() as c:
        try:
            c.execute(sa.text("SELECT 1/0"))
        except sa.exc.DBAPIError as e:
            out("error", e.orig.pgcode)
            c.rollback()
        out("error.recovered", c.execute(sa.text("SELECT 2")).scalar())
        c.rollback()
        out("copy", "n/a")
        res = c.execution_options(stream_results=True, max_row_buffer=2).execute(sa.text("SELECT g FROM generate_series(1, 5) g"))
        out("cursor", ",".join(str(r[0]) for r in res))
        c.rollback()

    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("SET statement_timeout = '200ms'"))
        try:
            c.execute(sa.text("SELECT pg_sleep(3)"))
        except sa.exc.DBAPIError as e:
            out("statement_timeout", e.orig.pgcode)
        c.execute(sa.text("RESET statement_timeout"))
        raw = c.connection.dbapi_connection
        timer = threading.Timer(0.3, raw.cancel)
        timer.start()
        try:
            c.execute(sa.text("SELECT pg_sleep(3)"))
            out("cancel", "not cancelled")
        except sa.exc.DBAPIError as e:
            out("cancel", e.orig.pgcode)
        out("cancel.recovered", c.execute(sa.text("SELECT 3")).scalar())
        for st in SETS:
            c.execute(sa.text(st))
        for name in SHOWS:
            out("show." + name, c.execute(sa.text("SELECT current_setting(:n)"), {"n": name}).scalar())
        c.execute(sa.text("RESET ALL"))
        out("reset_all", c.execute(sa.text("SHOW extra_float_digits")).scalar())
    out("notify", "n/a")
    eng.dispose()

    engines = [sa.create_engine(url(u), pool_size=4, max_overflow=0, future=True) for u in (USER_A, USER_B)]
    results = [[], []]

    def work(i):
        for _ in range(5):
            with orm.Session(engines[i], future=True) as s:
                results[i].append(",".join(sorted(s.scalars(sa.select(Contact.name)).all())))

    threads = [threading.Thread(target=work, args=(i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out("pool", f"{len(results[0])}+{len(results[1])}")
    if TENANT:
        out("tenant.pool_a", ",".join(sorted(set(results[0]))))
        out("tenant.pool_b", ",".join(sorted(set(results[1]))))
        for i, key in enumerate(("tenant.a_names", "tenant.b_names")):
            with orm.Session(engines[i], future=True) as s:
                out(key, ",".join(sorted(s.scalars(sa.select(Contact.name)).all())))
    for e in engines:
        e.dispose()


if __name__ == "__main__":
    main()
