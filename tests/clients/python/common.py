"""Shared by the Python driver checks: the environment the Go harness sets
and the output format (one `key=value` line per check)."""
import os
import sys

HOST = os.environ["MG_HOST"]
PORT = int(os.environ["MG_PORT"])
DB = os.environ["MG_DB"]
USER_A = os.environ["MG_USER_A"]
USER_B = os.environ["MG_USER_B"]
PASSWORD = os.environ["MG_PASSWORD"]
TENANT = os.environ.get("MG_TENANT") == "1"
RUN = os.environ["MG_RUN"]  # unique per driver and target, for scratch rows

# The settings drivers and ORMs send after connecting, as the issue lists
# them, and what is read back.
SETS = [
    "SET extra_float_digits = 3",
    "SET client_min_messages TO 'warning'",
    "SET standard_conforming_strings = on",
    "SET intervalstyle = iso_8601",
    "SET SESSION timezone TO 'UTC'",
    "SET TIME ZONE 'UTC'",
    "SET application_name = 'mg-client-check'",
    "SET search_path TO public",
]
SHOWS = ["extra_float_digits", "client_min_messages", "IntervalStyle", "TimeZone", "application_name", "search_path"]

TYPES_SQL = ("SELECT NULL::text AS n, '\\x00ff10'::bytea AS b, "
             "'2020-01-02 03:04:05.678+00'::timestamptz AS ts, '{\"a\": [1, 2]}'::jsonb AS j")


def url(user):
    return f"postgresql://{user.replace(':', '%3A')}:{PASSWORD}@{HOST}:{PORT}/{DB}"


def out(key, value):
    print(f"{key}={value}", flush=True)


def fail(key, exc):
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or type(exc).__name__
    out(key, f"error {code}")
    print(f"# {key}: {exc!r}", file=sys.stderr)
