// pgJDBC with its default URL (jdbc:postgresql://host:port/db): extended
// protocol, server-prepared statements after prepareThreshold (5) uses,
// and its own SET extra_float_digits after login.
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;

public class JdbcCheck {
    static final String HOST = System.getenv("MG_HOST"), PORT = System.getenv("MG_PORT"), DB = System.getenv("MG_DB");
    static final String USER_A = System.getenv("MG_USER_A"), USER_B = System.getenv("MG_USER_B"), PASSWORD = System.getenv("MG_PASSWORD");
    static final boolean TENANT = "1".equals(System.getenv("MG_TENANT"));
    static final String RUN = System.getenv("MG_RUN");
    static final String URL = "jdbc:postgresql://" + HOST + ":" + PORT + "/" + DB;
    static final String[] SETS = {
        "SET extra_float_digits = 3", "SET client_min_messages TO 'warning'", "SET standard_conforming_strings = on",
        "SET intervalstyle = iso_8601", "SET SESSION timezone TO 'UTC'", "SET TIME ZONE 'UTC'",
        "SET application_name = 'mg-client-check'", "SET search_path TO public"};
    static final String[] SHOWS = {"extra_float_digits", "client_min_messages", "IntervalStyle", "TimeZone", "application_name", "search_path"};
    static final String TYPES_SQL = "SELECT NULL::text AS n, '\\x00ff10'::bytea AS b, '2020-01-02 03:04:05.678+00'::timestamptz AS ts, '{\"a\": [1, 2]}'::jsonb AS j";

    static void out(String k, Object v) { System.out.println(k + "=" + v); }

    static Connection connect(String user) throws SQLException { return DriverManager.getConnection(URL, user, PASSWORD); }

    static String one(Connection c, String sql, Object... args) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) ps.setObject(i + 1, args[i]);
            try (ResultSet rs = ps.executeQuery()) { rs.next(); return rs.getString(1); }
        }
    }

    static String hex(byte[] b) { StringBuilder s = new StringBuilder(); for (byte x : b) s.append(String.format("%02x", x)); return s.toString(); }

    public static void main(String[] a) throws Exception {
        out("version", org.postgresql.Driver.getVersion());
        Properties p = new Properties();
        p.setProperty("user", USER_A);
        p.setProperty("password", PASSWORD);
        try (Connection c0 = DriverManager.getConnection(URL, p)) { out("connect.params", one(c0, "SELECT 1")); }
        Connection c = DriverManager.getConnection(URL + "?user=" + java.net.URLEncoder.encode(USER_A, "UTF-8") + "&password=" + PASSWORD);
        out("connect.url", one(c, "SELECT 1"));

        int total = 0;
        try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + ?::int")) {
            for (int i = 0; i < 10; i++) {
                ps.setInt(1, i); ps.setInt(2, 1);
                try (ResultSet rs = ps.executeQuery()) { rs.next(); total += rs.getInt(1); }
            }
        }
        out("params", total);
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(TYPES_SQL)) {
            rs.next();
            out("types", rs.getString(1) + "|" + hex(rs.getBytes(2)) + "|" + rs.getTimestamp(3).toInstant() + "|" + rs.getString(4));
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT ?::bytea, ?::jsonb, ?::timestamptz")) {
            ps.setBytes(1, new byte[]{1, 2}); ps.setString(2, "{\"k\": \"v\"}"); ps.setTimestamp(3, Timestamp.from(java.time.Instant.parse("2020-01-02T03:04:05.678Z")));
            try (ResultSet rs = ps.executeQuery()) { rs.next(); out("types.params", hex(rs.getBytes(1)) + "|" + rs.getString(2) + "|" + rs.getTimestamp(3).toInstant()); }
        }

        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO scratch (v) VALUES (?)")) { ps.setString(1, RUN + "-rb"); ps.executeUpdate(); }
        c.rollback();
        String n = one(c, "SELECT count(*) FROM scratch WHERE v = ?", RUN + "-rb");
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO scratch (v) VALUES (?)")) { ps.setString(1, RUN + "-ok"); ps.executeUpdate(); }
        c.commit();
        String m = one(c, "SELECT count(*) FROM scratch WHERE v = ?", RUN + "-ok");
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM scratch WHERE v LIKE ?")) { ps.setString(1, RUN + "%"); ps.executeUpdate(); }
        c.commit();
        out("tx", "rolled back " + n + ", committed " + m);

        try (Statement st = c.createStatement()) { st.executeQuery("SELECT 1/0"); } catch (SQLException e) { out("error", e.getSQLState()); c.rollback(); }
        out("error.recovered", one(c, "SELECT 2"));
        c.commit();

        java.io.StringWriter w = new java.io.StringWriter();
        new CopyManager(c.unwrap(org.postgresql.core.BaseConnection.class)).copyOut("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT", w);
        c.commit();
        out("copy", w.toString().trim().replace("\n", ","));

        // A server-side cursor: fetch size inside a transaction.
        List<String> vals = new ArrayList<>();
        try (Statement st = c.createStatement()) {
            st.setFetchSize(2);
            try (ResultSet rs = st.executeQuery("SELECT g FROM generate_series(1, 5) g")) { while (rs.next()) vals.add(rs.getString(1)); }
        }
        c.commit();
        out("cursor", String.join(",", vals));

        c.setAutoCommit(true);
        try (Statement st = c.createStatement()) {
            st.execute("SET statement_timeout = '200ms'");
            try { st.execute("SELECT pg_sleep(3)"); } catch (SQLException e) { out("statement_timeout", e.getSQLState()); }
            st.execute("RESET statement_timeout");
        }
        try (Statement st = c.createStatement()) {
            ScheduledExecutorService ex = Executors.newSingleThreadScheduledExecutor();
            ex.schedule(() -> { try { st.cancel(); } catch (SQLException e) { } }, 300, TimeUnit.MILLISECONDS);
            try { st.execute("SELECT pg_sleep(3)"); out("cancel", "not cancelled"); } catch (SQLException e) { out("cancel", e.getSQLState()); }
            ex.shutdown();
        }
        out("cancel.recovered", one(c, "SELECT 3"));

        try (Statement st = c.createStatement()) { for (String s : SETS) st.execute(s); }
        for (String name : SHOWS) out("show." + name, one(c, "SELECT current_setting(?)", name));
        // setTransactionIsolation and setReadOnly send SET SESSION CHARACTERISTICS.
        c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
        c.setReadOnly(true);
        out("isolation", one(c, "SHOW default_transaction_isolation") + "," + one(c, "SHOW default_transaction_read_only"));
        c.setReadOnly(false);
        c.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
        try (Statement st = c.createStatement()) { st.execute("RESET ALL"); }
        out("reset_all", one(c, "SHOW extra_float_digits"));

        Connection listener = connect(USER_A);
        try (Statement st = listener.createStatement()) { st.execute("LISTEN mg_events"); }
        try (Statement st = c.createStatement()) { st.execute("NOTIFY mg_events, 'p1'"); }
        PGNotification[] got = listener.unwrap(PGConnection.class).getNotifications(5000);
        out("notify", got != null && got.length > 0 ? got[0].getName() + ":" + got[0].getParameter() : "timeout");
        if (TENANT) {
            Connection other = connect(USER_B);
            try (Statement st = other.createStatement()) { st.execute("LISTEN mg_events"); }
            try (Statement st = c.createStatement()) { st.execute("NOTIFY mg_events, 'secret-a'"); }
            PGNotification[] heard = other.unwrap(PGConnection.class).getNotifications(500);
            out("tenant.cross_notify", heard != null && heard.length > 0 ? heard[0].getParameter() : "none");
            other.close();
        }
        listener.close();
        c.close();

        // No pool ships with pgJDBC: eight threads over four connections per
        // tenant, taken from a queue as a pool would hand them out.
        List<BlockingQueue<Connection>> pools = new ArrayList<>();
        for (String u : new String[]{USER_A, USER_B}) {
            BlockingQueue<Connection> q = new LinkedBlockingQueue<>();
            for (int i = 0; i < 4; i++) q.add(connect(u));
            pools.add(q);
        }
        List<List<String>> results = List.of(Collections.synchronizedList(new ArrayList<>()), Collections.synchronizedList(new ArrayList<>()));
        ExecutorService ex = Executors.newFixedThreadPool(8);
        List<Future<?>> fs = new ArrayList<>();
        for (int w2 = 0; w2 < 8; w2++) {
            final int i = w2 % 2;
            fs.add(ex.submit(() -> {
                for (int k = 0; k < 5; k++) {
                    Connection pc = pools.get(i).take();
                    try {
                        pc.setAutoCommit(false);
                        results.get(i).add(one(pc, "SELECT string_agg(name, ',' ORDER BY name) FROM contacts"));
                        pc.commit();
                    } finally { pools.get(i).add(pc); }
                }
                return null;
            }));
        }
        for (Future<?> f : fs) f.get();
        ex.shutdown();
        out("pool", results.get(0).size() + "+" + results.get(1).size());
        if (TENANT) {
            out("tenant.pool_a", String.join(",", new TreeSet<>(results.get(0))));
            out("tenant.pool_b", String.join(",", new TreeSet<>(results.get(1))));
            String[] keys = {"tenant.a_names", "tenant.b_names"};
            for (int i = 0; i < 2; i++) {
                Connection pc = pools.get(i).take();
                out(keys[i], one(pc, "SELECT string_agg(name, ',' ORDER BY name) FROM contacts"));
                pc.commit();
                pools.get(i).add(pc);
            }
        }
        for (BlockingQueue<Connection> q : pools) for (Connection pc : q) pc.close();
    }
}
