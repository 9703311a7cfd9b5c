"""The DuckDB engine: a timing log's lines classified, selected and reduced in SQL, out of core.

`read_log(paths, sel)` is `analysis.ingest.read_log` (the per-record Python reader, the
reference) done by DuckDB: the same `LogRead` — the kept records as columns, every other line
counted under the first reason of `EXCLUDE_REASONS` with its first line numbers, the malformed
ones with their line numbers and reasons — for JSON lines, gzip'd JSON lines (`.gz`, read by
DuckDB itself) and Parquet files of the same fields (a `durations_ms` struct or top-level
numbers). Each line is read as text with its number (`read_csv` with no quoting and a
delimiter no log line holds), its fields pulled out once per line with one `json_extract` of a
list of paths (the values' JSON text, so a number is told from a string as Python tells them
apart), and classified by one CASE in the order of EXCLUDE_REASONS. What SQL is not sure to
read as Python would (a timestamp in a form other than `YYYY-MM-DD[T ]hh:mm[:ss[.ffffff]]`
with `Z`, `±hh:mm` or no offset, or a plain decimal number; a `--where` value that is a
non-integer number, an object or an array, whose JSON text may be written differently) is
sent back to Python: those lines' fields are fetched and `ingest._select` decides them, so the
two readers agree line for line. The detail text of the first malformed lines comes from
`ingest._select` (and orjson, for bad JSON) on those lines alone.

A plain JSON-lines file whose every line is a JSON object is read faster (`_read_fast`):
`read_json` with the text fields typed VARCHAR and the numbers typed JSON (their text, so a
string "12" is no number) and the lines counted apart, the same CASE on its rows, streamed as
Arrow batches in one pass with no table of the lines (the counts, first line numbers and levels
gathered from the batches, the stage columns spilled to files and read back one at a time,
`ingest.SpilledColumns`). A VARCHAR read writes a number, boolean, object or array as its text,
so a text that could be one of those where it decides (`_untyped`) hands the whole read to the
same one with every field typed JSON; that one gives way to the line-by-line read whenever the
two could differ (see `_read_fast`). The line-by-line read (gzip, Parquet, blank or non-object
lines, lines Python decides) still builds a `lines` table and holds every column.

Quantiles per group at given ranks (`values_at_ranks`), counts and time-bin series are SQL
over the kept records (`records` table), so the order-statistic intervals take their bounds
from the database's sort, never from all rows pulled into Python. `BEYOND_ONE_MACHINE_SQL` is
the query docs/analysis.md shows for Parquet on object storage; tests run it.

Differences from the Python reader, by construction rare: a line holding the byte sequence
`DELIM` is cut there (read as bad JSON); a duplicated key is read at its first occurrence
(orjson keeps the last); a line that is not UTF-8 makes DuckDB refuse the file, and the Python
reader is used instead (`read_log_any`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import orjson

from execbench import rundir as rd
from execbench.contract import METRICS

from .ingest import (
    ANY,
    EXCLUDE_REASONS,
    MALFORMED_REASONS,
    MAX_KEPT_PROBLEMS,
    LogRead,
    LogSelection,
    Malformed,
    Table,
    _select,
)

DELIM = "\x1f\x1e\x1d\x1c"  # read_csv's column delimiter: no JSON line holds these raw
_MAX_EXAMPLES = 5  # first line numbers kept per exclusion reason (as ingest.read_log)
ENGINES = ("duckdb", "python")
ENGINE_ENV = "EXECBENCH_ANALYSIS_ENGINE"  # analyze-log's reader: duckdb (default) | python
FAST_ENV = "EXECBENCH_DUCKDB_FAST"  # 0: always the line-by-line classifying read (tests)
TYPED_ENV = "EXECBENCH_DUCKDB_TYPED"  # 0: the fast read takes every field as JSON text

# The query of docs/analysis.md, "Beyond one machine": exact p50/p90/p95/p99 of executor_ms per
# flow and mode over Parquet files partitioned by day (hive layout, day=YYYY-MM-DD/), wherever
# DuckDB can read them ({source}: a local glob, or s3://bucket/timings/*/*.parquet with httpfs).
BEYOND_ONE_MACHINE_SQL = """\
SELECT flow, mode, count(*) AS n,
       quantile_disc(executor_ms, [0.5, 0.9, 0.95, 0.99]) AS p50_p90_p95_p99
FROM read_parquet('{source}', hive_partitioning = true)
WHERE status = 'success' AND day BETWEEN '{first_day}' AND '{last_day}'
GROUP BY flow, mode
ORDER BY flow, mode"""


def connect(threads: int | None = None, memory_limit: str | None = None):
    """A DuckDB connection: UTC, file order kept, no progress bar, `memory_limit` (default 40%
    of RAM, or EXECBENCH_DUCKDB_MEMORY) past which its operators spill to a temporary
    directory."""
    import duckdb

    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.execute("SET TimeZone = 'UTC'")
    # a query past 2 s would draw DuckDB's progress bar on stdout, into analyze-log's output
    # (and into analysis_bench's child's JSON line, which it then could not parse)
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    limit = memory_limit or os.environ.get("EXECBENCH_DUCKDB_MEMORY")
    if limit:
        con.execute(f"SET memory_limit = '{limit}'")
    return con


def _q(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def _path(key: str) -> str:
    """A JSONPath to a top-level key (any characters)."""
    return "$." + orjson.dumps(key).decode()


def _jtype(col: str) -> str:
    """SQL: the JSON value's kind from its text ('s' string, 'n' number, 'o' object, 'a' array,
    'b' boolean, 'z' null; NULL when absent): its first character tells."""
    return (f"CASE WHEN {col} IS NULL THEN NULL WHEN {col} = 'null' THEN 'z' "
            f"WHEN starts_with({col}, '\"') THEN 's' WHEN starts_with({col}, '{{') THEN 'o' "
            f"WHEN starts_with({col}, '[') THEN 'a' WHEN {col} IN ('true', 'false') THEN 'b' "
            "ELSE 'n' END")


_TEXT = "VARCHAR"  # the typed read's type of the fields read as text


def _untyped(col: str) -> str:
    """SQL: a VARCHAR read of a JSON value (`col`) may not have been a string: DuckDB writes a
    number (any form, NaN and Infinity too), a boolean, an object or an array as its text, and
    every such text casts to a number, is `true`/`false` or starts with `{` or `[`. False: it
    was a string, and the text is that string."""
    return (f"({col} IN ('true', 'false') OR {col}[1] IN ('{{', '[') OR ({col}[1] IN "
            f"{_NUM_START} AND TRY_CAST({col} AS DOUBLE) IS NOT NULL))")


# the first characters of every number's text (NaN and Infinity in any case, as read_json
# takes them): a failed cast is slow (~0.15 s a million), so only these are cast
_NUM_START = "(" + ", ".join(f"'{c}'" for c in "-0123456789nNiI") + ")"


def _may_be_untyped(v: str) -> bool:
    """Python's `_untyped`, wider (float() takes more than DuckDB's cast): a value a typed
    VARCHAR read could confuse with a non-string's text."""
    if v in ("true", "false") or v[:1] in ("{", "["):
        return True
    try:
        float(v)
    except ValueError:
        return False
    return True


def _typed_eligible(sel: LogSelection) -> bool:
    """The typed read gives the JSON-text read's answer for this selection when the metric's
    top-level key is none of the fields read as text (one key, one type) and the component and
    endpoint wanted are no non-string's text (a number 5 would read as '5' and match
    --component 5, which Python does not). Lines it cannot be sure of it hands over
    (`_classify_sql`'s 'tx'); EXECBENCH_DUCKDB_TYPED=0 never takes it."""
    if os.environ.get(TYPED_ENV) == "0":
        return False
    wants = [w for w in (sel.component, sel.endpoint) if w not in (None, ANY)]
    return (sel.metric not in {"component", "endpoint", sel.flow_field, rd.T_STATUS,
                               rd.T_MODE, *sel.ts_fields, *(k for k, _ in sel.where)}
            and not any(_may_be_untyped(w) for w in wants))


def _num(col: str) -> str:
    """SQL: a JSON number's value as DOUBLE, NULL for anything else (a string's text keeps
    its quotes, so it does not cast)."""
    return f"TRY_CAST({col} AS DOUBLE)"


def _str(col: str) -> str:
    """SQL: a JSON string's value (NULL for anything else): the text inside the quotes, or,
    with an escape in it, json_extract_string's reading."""
    return (f"CASE WHEN starts_with({col}, '\"') THEN CASE WHEN contains({col}, '\\') THEN "
            f"json_extract_string({col}, '$') ELSE {col}[2:-2] END END")


def _good(num: str) -> str:
    """SQL: a number (a column of _num) that is finite and non-negative (ingest's metric)."""
    return f"coalesce(isfinite({num}) AND {num} >= 0, false)"


_ISO = (r"^\d{4}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
        r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$")
_DEC = r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"


def _source(paths: list[Path]) -> str:
    """SQL: every line of every file with (fi, line_no, line, cut): the line's text (NULL when
    empty), `cut` true when the delimiter was in it. Parquet rows are their JSON text."""
    parts = []
    for fi, p in enumerate(paths):
        if p.suffix == ".parquet" or p.is_dir():
            src = str(p / "**" / "*.parquet") if p.is_dir() else str(p)
            parts.append(
                f"SELECT {fi} AS fi, row_number() OVER () AS line_no, to_json(t)::VARCHAR "
                f"AS line, false AS cut FROM read_parquet({_q(src)}) t")
            continue
        comp = "gzip" if p.suffix == ".gz" else "none"
        # one column, not strict (a strict parser refuses a `\r` before some line ends): a
        # line holding DELIM would be read up to it (the module's docstring)
        parts.append(
            f"SELECT {fi} AS fi, row_number() OVER () AS line_no, line, false AS cut "
            f"FROM read_csv({_q(str(p))}, columns = {{'line': 'VARCHAR'}}, "
            f"header = false, delim = {_q(DELIM)}, quote = '', escape = '', "
            f"auto_detect = false, strict_mode = false, new_line = '\\r\\n', "
            f"compression = '{comp}')")
    return " UNION ALL ".join(parts)


def _fields(sel: LogSelection, metric_keys) -> dict[str, str]:
    """Column name -> JSONPath of every field the selection reads."""
    f = {"j_component": _path("component"), "j_endpoint": _path("endpoint"),
         "j_flow": _path(sel.flow_field), "j_status": _path(rd.T_STATUS),
         "j_mode": _path(rd.T_MODE), "j_metric": _path(sel.metric),
         "j_dmetric": _path(rd.T_DURATIONS) + "." + orjson.dumps(sel.metric).decode()}
    for i, k in enumerate(sel.ts_fields):
        f[f"j_ts{i}"] = _path(k)
    for i, (k, _) in enumerate(sel.where):
        f[f"j_where{i}"] = _path(k)
    for i, k in enumerate(metric_keys[1:]):
        f[f"j_stage{i}"] = _path(rd.T_DURATIONS) + "." + orjson.dumps(k).decode()
    return f


def _ident(name: str) -> str:
    """A SQL identifier (any characters)."""
    return '"' + name.replace('"', '""') + '"'


def _top_keys(sel: LogSelection) -> list[str]:
    """The top-level keys the selection reads (the durations object apart), each once."""
    return list(dict.fromkeys(("component", "endpoint", sel.flow_field, rd.T_STATUS, rd.T_MODE,
                               sel.metric, *sel.ts_fields, *(k for k, _ in sel.where))))


def _fast_eligible(paths: list[Path], sel: LogSelection) -> bool:
    """The fast read applies to plain JSON-lines files whose keys DuckDB can name apart
    (its identifiers ignore case) and none of which is the durations object itself."""
    keys = _top_keys(sel)
    low = {k.lower() for k in keys}
    return (all(p.suffix not in (".gz", ".parquet") and not p.is_dir() for p in paths)
            and len(low) == len(keys) and rd.T_DURATIONS.lower() not in low)


def _fast_source(paths: list[Path], sel: LogSelection, metric_keys, numbered: bool = True,
                 typed: bool = False) -> str:
    """SQL: every line of every file as (fi, line_no, line, cut, d_present, j_*) from DuckDB's
    `read_json` with the fields typed JSON (their text, a number told from a string), the
    durations a STRUCT of JSON fields. Only for files every line of which is a JSON object
    (`read_json` fails otherwise) and that many rows as the file has lines (the caller checks);
    a JSON null reads as absent, the one difference from `json_extract`, so the lines where
    that could decide differently are left to the slow read (`_classify_sql`'s 'py').
    `numbered` False: line_no NULL (the streaming read numbers the rows itself: a
    `row_number() OVER ()` runs the whole query above it on one thread). `typed`: the fields
    read as text (component, endpoint, flow, status, mode, times, --where) typed VARCHAR, the
    numbers still JSON (see `_typed_eligible`)."""
    keys = _top_keys(sel)
    dkeys = list(dict.fromkeys(metric_keys))
    dtype = "STRUCT(" + ", ".join(f"{_ident(k)} JSON" for k in dkeys) + ")"
    cols = ("{" + ", ".join(f"{_q(k)}: {_q(_TEXT if typed and k != sel.metric else 'JSON')}"
                            for k in keys)
            + f", {_q(rd.T_DURATIONS)}: {_q(dtype)}}}")
    d = _ident(rd.T_DURATIONS)

    def top(k):
        return f"{_ident(k)}::VARCHAR"

    def dur(k):
        return f"{d}.{_ident(k)}::VARCHAR"

    sel_cols = {"j_component": top("component"), "j_endpoint": top("endpoint"),
                "j_flow": top(sel.flow_field), "j_status": top(rd.T_STATUS),
                "j_mode": top(rd.T_MODE), "j_metric": top(sel.metric),
                "j_dmetric": dur(sel.metric)}
    for i, k in enumerate(sel.ts_fields):
        sel_cols[f"j_ts{i}"] = top(k)
    for i, (k, _) in enumerate(sel.where):
        sel_cols[f"j_where{i}"] = top(k)
    for i, k in enumerate(metric_keys[1:]):
        sel_cols[f"j_stage{i}"] = dur(k)
    proj = ", ".join(f"{e} AS {n}" for n, e in sel_cols.items())
    line_no = "row_number() OVER ()" if numbered else "NULL::BIGINT"
    parts = [f"SELECT {fi} AS fi, {line_no} AS line_no, NULL::VARCHAR AS line, "
             f"false AS cut, {d} IS NOT NULL AS d_present, {proj} "
             f"FROM read_json({_q(str(p))}, format = 'newline_delimited', records = 'true', "
             f"columns = {cols})" for fi, p in enumerate(paths)]
    return " UNION ALL ".join(parts)


def count_lines(path: Path) -> int | None:
    """The lines of a file as the slow read counts them (a last line without its newline
    counts), or None when a carriage return stands alone somewhere (the slow read may split
    there, `read_json` does not)."""
    n = cr = crlf = 0
    last = b""
    buf = bytearray(1 << 22)
    # numpy's count of a byte is ~4x bytes.count's; a carriage return is looked for with
    # find (memchr) and counted only in a block that has one
    view = np.frombuffer(buf, dtype=np.uint8)
    with open(path, "rb", buffering=0) as fh:
        while k := fh.readinto(buf):
            n += int(np.count_nonzero(view[:k] == 10))
            c = buf.count(b"\r", 0, k) if buf.find(b"\r", 0, k) >= 0 else 0
            if c or last == b"\r":
                cr += c
                crlf += buf.count(b"\r\n", 0, k) + (last == b"\r" and buf[0] == 10)
            last = bytes(buf[k - 1:k])
    if cr != crlf:
        return None
    return n + (last not in (b"", b"\n"))


def _classify_sql(paths: list[Path], sel: LogSelection, metric_keys, fast: bool = False,
                  texts: bool = True, numbered: bool = True, typed: bool = False) -> str:
    """SQL of every line with its reason (NULL: a record; 'py': Python decides) and fields.
    Layered so each field's kind, number and string are computed once a line. `fast`: the
    lines from `_fast_source` (every one a JSON object), where 'py' also marks a line whose
    reading may hang on a JSON null (read as absent there). `typed` (with `fast`): the text
    fields read typed VARCHAR, their values compared as they come; 'tx' marks a line where
    such a value may have been a number, boolean, object or array (`_untyped`) and that
    decides (the flow, the status, a --where value, the mode of a record, a time in no form
    SQL reads): the JSON-text read has to say."""
    typed = typed and fast
    fields = _fields(sel, metric_keys)
    names = list(fields)
    plist = "[" + ", ".join(_q(p) for p in fields.values()) + "]"
    unpack = ", ".join(f"j[{i + 1}]::VARCHAR AS {n}" for i, n in enumerate(names))
    want_c = sel.component if sel.component not in (None, ANY) else None
    want_e = sel.endpoint if sel.endpoint not in (None, ANY) else None
    n_stage = len(metric_keys) - 1
    ts_cols = [f"j_ts{i}" for i in range(len(sel.ts_fields))]
    # typed: a JSON null reads as absent, and the text 'null' is a string's
    present = (lambda c: c) if typed else (lambda c: f"NULLIF({c}, 'null')")
    first_ts = ("coalesce(" + ", ".join(present(c) for c in ts_cols) + ")"
                if len(ts_cols) > 1 else present(ts_cols[0]))
    ts_field = "CASE " + " ".join(f"WHEN {present(c)} IS NOT NULL THEN {i}"
                                  for i, c in enumerate(ts_cols)) + " END"
    # layer 2: kinds, strings and numbers, once each
    if typed:
        l2 = ["j_flow AS s_flow", "j_status AS s_status", "j_mode AS s_mode"]
    else:
        l2 = [f"{_jtype('j_flow')} AS k_flow", f"{_str('j_flow')} AS s_flow",
              "starts_with(j_status, '\"') AS st_ok", f"{_str('j_status')} AS s_status",
              f"{_str('j_mode')} AS s_mode"]
    l2 += ["coalesce(j_dmetric, j_metric) AS v_metric", f"{first_ts} AS v_ts",
           f"{ts_field} AS ts_i"]
    for col in ("j_component", "j_endpoint"):
        l2.append(f"{col} AS s_{col[2:]}" if typed else f"{_str(col)} AS s_{col[2:]}")
    for i in range(len(sel.where)):
        col = f"j_where{i}"
        if typed:  # a non-integer number's text, an object's or an array's: maybe not a string
            l2.append(f"({col}[1] IN ('{{', '[') OR ({col}[1] IN {_NUM_START} AND TRY_CAST("
                      f"{col} AS DOUBLE) IS NOT NULL AND NOT regexp_matches({col}, "
                      f"'^-?\\d+$'))) AS x_where{i}")
        else:
            l2.append(f"{_jtype(col)} AS k_where{i}")
            l2.append(f"{_str(col)} AS s_where{i}")
    for i in range(n_stage):
        l2.append(f"{_num(f'j_stage{i}')} AS n_stage{i}")
    # layer 3: the metric's number, the timestamp's kind, string and forms (typed: a string's,
    # or a number's text, which reads as the number does)
    l3 = [f"{_num('v_metric')} AS n_metric"]
    l3 += (["CASE WHEN v_ts IS NOT NULL THEN 's' END AS k_ts", "v_ts AS s_ts"] if typed
           else [f"{_jtype('v_ts')} AS k_ts", f"{_str('v_ts')} AS s_ts"])
    # a number's text only is cast (any other JSON text casts to NULL, more slowly)
    l4 = [f"CASE WHEN k_ts = 's' THEN regexp_matches(s_ts, {_q(_ISO)}) END AS iso_ok",
          f"CASE WHEN k_ts = 'n' THEN {_num('v_ts')} END AS n_ts"]
    # the two forms exclude each other: the decimal one is tried only where the ISO one fails
    l4b = [(f"CASE WHEN k_ts = 's' AND NOT iso_ok THEN regexp_matches(s_ts, {_q(_DEC)}) END "
            "AS dec_ok")]
    l5 = ["coalesce(n_ts, CASE WHEN dec_ok THEN TRY_CAST(s_ts AS DOUBLE) END) AS x_ts"]
    l6 = [("CASE WHEN x_ts IS NOT NULL THEN CASE WHEN abs(x_ts) > 1e11 THEN x_ts / 1000.0 "
          "ELSE x_ts END WHEN iso_ok THEN epoch_us(TRY_CAST(s_ts AS TIMESTAMPTZ)) / 1000000.0 "
          "END AS ts")]
    l7 = [("CASE WHEN k_ts = 's' AND NOT dec_ok AND NOT iso_ok THEN 'py' "
          "WHEN coalesce(isfinite(ts), false) THEN 'ok' ELSE 'bad' END AS ts_state")]
    case = [] if fast else [
        ("WHEN line IS NULL OR trim(line, ' ' || chr(9) || chr(10) || chr(13) || chr(11) "
         "|| chr(12)) = '' THEN 'blank_line'"),
        "WHEN cut OR j IS NULL THEN 'bad_json'",
        "WHEN ltrim(line, ' ' || chr(9) || chr(13))[1] <> '{' THEN 'not_an_object'"]
    for want, col, explicit, other, absent in (
            (want_c, "j_component", sel.component_explicit, "other_component", "no_component"),
            (want_e, "j_endpoint", sel.endpoint_explicit, "other_endpoint", "no_endpoint")):
        if want is None:
            continue
        # typed: a non-string reads as its text, never the one wanted (_typed_eligible)
        missing = f"{col} IS NULL" if typed else f"({col} IS NULL OR {col} = 'null')"
        if explicit:
            case.append(f"WHEN {missing} THEN '{absent}'")
        case.append(f"WHEN NOT {missing} AND coalesce(s_{col[2:]} <> {_q(want)}, true) "
                    f"THEN '{other}'")
    for i, (_, v) in enumerate(sel.where):
        col, k = f"j_where{i}", f"k_where{i}"
        # a non-integer number, an object or an array: its JSON text as orjson writes it is
        # Python's to say
        if fast and v == "null":  # a null matches, an absent field does not
            case.append(f"WHEN {col} IS NULL THEN 'py'")
        if typed:  # a string, an integer or a boolean: compared by its text, as in JSON
            case.append(f"WHEN {col} IS NOT NULL AND x_where{i} THEN 'tx'")
            case.append(f"WHEN {col} IS NULL OR {col} <> {_q(v)} THEN 'where_mismatch'")
            continue
        case.append(f"WHEN {col} IS NOT NULL AND ({k} IN ('o', 'a') OR ({k} = 'n' AND "
                    f"NOT regexp_matches({col}, '^-?\\d+$'))) THEN 'py'")
        case.append(f"WHEN {col} IS NULL OR (CASE WHEN {k} = 's' THEN s_where{i} ELSE {col} "
                    f"END) <> {_q(v)} THEN 'where_mismatch'")
    if typed:
        case.append("WHEN j_flow IS NULL THEN 'no_flow'")
        case.append(f"WHEN {_untyped('j_flow')} THEN 'tx'")
        case.append("WHEN j_status IS NULL THEN 'no_status'")
        case.append(f"WHEN {_untyped('j_status')} THEN 'tx'")
    else:
        case.append("WHEN coalesce(k_flow NOT IN ('s', 'n'), true) THEN 'no_flow'")
        case.append("WHEN k_flow = 'n' THEN 'py'")  # a number's text: orjson's to write
        case.append("WHEN NOT coalesce(st_ok, false) THEN 'no_status'")
    if fast:  # durations without the metric read from the top level; with it null, not
        case.append("WHEN d_present AND j_dmetric IS NULL AND j_metric IS NOT NULL THEN 'py'")
    case.append(f"WHEN NOT {_good('n_metric')} THEN 'no_metric'")
    # typed: a string in another form is Python's, as in JSON; a non-string's text the JSON's
    case.append("WHEN v_ts IS NOT NULL AND ts_state = 'py' THEN "
                + (f"CASE WHEN {_untyped('v_ts')} THEN 'tx' ELSE 'py' END" if typed else "'py'"))
    if sel.need_ts:
        case.append("WHEN v_ts IS NULL THEN 'no_timestamp'")
        case.append("WHEN ts_state = 'bad' THEN 'bad_timestamp'")
    if typed:  # a record's mode: a string, else none
        case.append(f"WHEN j_mode IS NOT NULL AND {_untyped('j_mode')} THEN 'tx'")
    stage_cols = "".join(
        f", CASE WHEN reason IS NULL AND {_good(f'n_stage{i}')} THEN n_stage{i} END AS s{i}"
        for i in range(n_stage))
    # the fields' texts are kept for the lines Python decides or describes, the line's text
    # for the ones that are not JSON objects; a record keeps its values only
    keep = "reason IN ('py', " + ", ".join(f"'{r}'" for r in MALFORMED_REASONS) + ")"
    text_cols = "".join(f",\n       CASE WHEN {keep} THEN {n} END AS {n}" for n in names) \
        if texts else ""  # `texts` False: the reason and the records' values only
    layers = [l2, l3, l4, l4b, l5, l6, l7]
    ctes = "".join(f",\nl{i + 2} AS (SELECT *, {', '.join(cols)} FROM l{i + 1})"
                   for i, cols in enumerate(layers))
    last = f"l{len(layers) + 1}"
    if fast:
        head = f"l1 AS ({_fast_source(paths, sel, metric_keys, numbered, typed)})"
    else:
        head = f"""src AS ({_source(paths)}),
l1 AS (SELECT fi, line_no, line, cut, j, {unpack}
       FROM (SELECT *, CASE WHEN line IS NOT NULL AND NOT cut
                       THEN try(json_extract(line, {plist})) END AS j FROM src))"""
    return f"""
WITH {head}{ctes},
c AS (SELECT *, CASE {' '.join(case)} END AS reason FROM {last})
SELECT fi, line_no, reason, cut,
       CASE WHEN reason IN ('bad_json', 'not_an_object') THEN line END AS line,
       CASE WHEN reason IS NULL THEN s_flow END AS flow,
       CASE WHEN reason IS NULL THEN s_status END AS status,
       CASE WHEN reason IS NULL THEN s_mode END AS mode,
       CASE WHEN reason IS NULL AND ts_state = 'ok' THEN ts END AS ts,
       CASE WHEN reason IS NULL AND ts_state = 'ok' THEN ts_i END AS ts_i,
       CASE WHEN reason IS NULL THEN n_metric END AS metric{stage_cols}{text_cols}
FROM c"""


def _python_record(row: dict, sel: LogSelection, metric_keys):
    """A line's fields (their JSON texts) as the object `ingest._select` reads: the same
    decision and detail as the whole line would give."""
    o: dict = {}

    def put(key, text):
        if text is not None:
            o[key] = orjson.loads(text)

    put("component", row["j_component"])
    put("endpoint", row["j_endpoint"])
    for i, (k, _) in enumerate(sel.where):
        put(k, row[f"j_where{i}"])
    put(sel.flow_field, row["j_flow"])
    put(rd.T_STATUS, row["j_status"])
    put(rd.T_MODE, row["j_mode"])
    put(sel.metric, row["j_metric"])
    d = {}
    if row["j_dmetric"] is not None:
        d[sel.metric] = orjson.loads(row["j_dmetric"])
    for i, k in enumerate(metric_keys[1:]):
        if row.get(f"j_stage{i}") is not None:
            d[k] = orjson.loads(row[f"j_stage{i}"])
    if d or row["j_dmetric"] is not None:
        o[rd.T_DURATIONS] = d
    for i, k in enumerate(sel.ts_fields):
        put(k, row[f"j_ts{i}"])
    return o


def _decide(o: dict, sel: LogSelection):
    want_c = sel.component if sel.component not in (None, ANY) else None
    want_e = sel.endpoint if sel.endpoint not in (None, ANY) else None
    return _select(o, want_c, sel.component_explicit, want_e, sel.endpoint_explicit,
                   sel.where, sel.flow_field, sel.metric, sel.ts_fields, sel.need_ts,
                   rd.T_DURATIONS)


def _bad_line_detail(line: str | None, cut: bool) -> tuple[str, str]:
    """(reason, detail) of a line SQL found not to be a JSON object, as ingest.read_log says."""
    raw = (line or "").encode()
    if cut:
        raw += DELIM.encode()
    try:
        o = orjson.loads(raw.strip())
    except orjson.JSONDecodeError as exc:
        return "bad_json", f"invalid JSON ({str(exc).split(':')[0]})"
    return "not_an_object", f"not a JSON object ({type(o).__name__})"


def read_log(paths, sel: LogSelection, con=None) -> LogRead:
    """`ingest.read_log` on DuckDB (see the module's docstring): the same LogRead."""
    paths = [Path(p) for p in paths]
    con = con or connect()
    metric_keys = tuple(dict.fromkeys((sel.metric, *METRICS)))
    read = _read_fast(con, paths, sel, metric_keys)
    if read is not None:
        return read
    sql = _classify_sql(paths, sel, metric_keys)
    con.execute(f"CREATE OR REPLACE TEMP TABLE lines AS {sql}")
    # lines SQL could not decide: Python does, from their fields
    py = con.execute("SELECT * FROM lines WHERE reason = 'py'").fetchdf() \
        if con.execute("SELECT count(*) FROM lines WHERE reason = 'py'").fetchone()[0] else None
    if py is not None:
        _resolve_in_python(con, py, sel, metric_keys)
    return _collect(con, paths, sel, metric_keys)


# rc: 0 a record, i + 1 the i-th of these ('py': Python decides; 'tx': the typed read cannot)
_STREAM_REASONS = (*EXCLUDE_REASONS, "py", "tx")
STREAM_BATCH = 1 << 20  # rows per Arrow batch of the streaming read
PROBE_ROWS = 1 << 14  # the first rows classified before a whole read, to choose it
_RC_PY, _RC_TX = _STREAM_REASONS.index("py") + 1, _STREAM_REASONS.index("tx") + 1


class _GiveWay(Exception):
    """The fast read cannot give what the line-by-line one would: use that one."""


class _Unordered(Exception):
    """The stream's rows did not come in file and line order: read again, sorted."""


class _Untyped(Exception):
    """The typed read met a value that may not be the string it read: read the JSON texts."""


def _read_fast(con, paths, sel, metric_keys) -> LogRead | None:
    """The LogRead from `read_json` (`_fast_source`), streamed, when every line of every file
    is a JSON object that reads as the slow path would; None (nothing read) when `read_json`
    refuses a line (bad JSON, not an object, a duplicated key, a durations value that is not
    an object), a file's rows are not its lines (blank lines), or a line is left to Python.

    One pass, no table of the lines: the classification's rows come as Arrow batches of the
    records' numbers (the reason a code, the categorical fields' text only for records), and
    the counts per file and reason, the first line numbers, the levels (by first appearance)
    and the columns are gathered from the batches; the stage columns go to files of raw
    doubles (`ingest.SpilledColumns`), read back one at a time, so memory holds the time, the
    metric and the codes of every record, not every stage. The first malformed lines' detail
    comes from a second query, LIMIT MAX_KEPT_PROBLEMS, only when there are any. The lines of
    each file are counted (`count_lines`) in a thread meanwhile.

    The text fields are read typed VARCHAR first (`_typed_eligible`; `read_json`'s own
    reading, no JSON text written and parsed again) and the whole read starts over on the
    JSON texts when a line's value may not have been a string (`_Untyped`); the first
    PROBE_ROWS lines, classified first, choose the read that will not have to give way."""
    import duckdb

    if os.environ.get(FAST_ENV) == "0" or not _fast_eligible(paths, sel):
        return None
    from concurrent.futures import ThreadPoolExecutor

    reads = (True, False) if _typed_eligible(sel) else (False,)
    with ThreadPoolExecutor(1) as pool:
        counted = pool.submit(lambda: [count_lines(p) for p in paths])
        try:
            got = None
            for typed in reads:
                seen = _probe(con, paths, sel, metric_keys, typed)
                if "py" in seen:
                    raise _GiveWay
                if "tx" in seen:
                    continue
                try:
                    try:
                        got = _stream(con, paths, sel, metric_keys, ordered=False, typed=typed)
                    except _Unordered:
                        got = _stream(con, paths, sel, metric_keys, ordered=True, typed=typed)
                except _Untyped:
                    continue
                break
        except (duckdb.Error, _GiveWay):
            counted.result()
            return None
        lines = counted.result()
    if got is None or None in lines or [f["lines"] for f in got.files] != lines:
        return None
    return got


def _probe(con, paths, sel, metric_keys, typed: bool) -> set:
    """The reasons of the first PROBE_ROWS lines' classification (by the typed read or the
    JSON-text one)."""
    cls = _classify_sql(paths, sel, metric_keys, fast=True, texts=False, numbered=False,
                        typed=typed)
    return {r for (r,) in con.execute(
        f"SELECT DISTINCT reason FROM (SELECT reason FROM ({cls}) LIMIT {PROBE_ROWS})"
    ).fetchall()}


def _stream(con, paths, sel, metric_keys, *, ordered: bool, typed: bool = False) -> LogRead:
    import contextlib
    import shutil
    import tempfile

    import pyarrow.compute as pc

    from .ingest import SpilledColumns

    n_stage = len(metric_keys) - 1
    # unordered: no line numbers from SQL (see _fast_source); the rows come in file order
    # (DuckDB keeps a scan's insertion order, preserve_insertion_order), so a row's line
    # number is its place among its file's rows, counted here; a file index going back
    # (the UNION ALL's parts interleaved) reads again, numbered and sorted
    cls = _classify_sql(paths, sel, metric_keys, fast=True, texts=False, numbered=ordered,
                        typed=typed)
    rlist = "[" + ", ".join(_q(r) for r in _STREAM_REASONS) + "]"
    stage_cols = "".join(f", s{i}" for i in range(n_stage))
    sql = (f"SELECT fi::SMALLINT AS fi, line_no, coalesce(list_position({rlist}, reason), 0)"
           f"::UTINYINT AS rc, flow, status, mode, coalesce(ts, 'NaN'::DOUBLE) AS ts, "
           f"ts_i::TINYINT AS ts_i, metric{stage_cols} FROM ({cls})"
           + (" ORDER BY fi, line_no" if ordered else ""))
    n_r = len(_STREAM_REASONS) + 1
    per_file = np.zeros((len(paths), n_r), dtype=np.int64)
    examples: dict[int, list[tuple[int, int]]] = {}  # rc -> the first (fi, line_no)s
    cat_names = (rd.T_STATUS, rd.T_FLOW, rd.T_MODE)
    levels: dict[str, list[str]] = {k: [] for k in cat_names}
    index: dict[str, dict[str, int]] = {k: {} for k in cat_names}
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("ts", "metric", "fi", *cat_names)}
    ts_count = np.zeros(len(sel.ts_fields), dtype=np.int64)
    ts_first = np.full(len(sel.ts_fields), np.iinfo(np.int64).max)
    tmp = tempfile.mkdtemp(prefix="execbench-stages-")
    stage_keys = list(metric_keys[1:])
    stage_files = {k: Path(tmp) / f"s{i}.f64" for i, k in enumerate(stage_keys)}
    stage_counts = dict.fromkeys(stage_keys, 0)
    n = 0
    last_key = -1
    seen = np.zeros(len(paths), dtype=np.int64)  # rows of each file so far (unordered)
    try:
        with contextlib.ExitStack() as stack:
            handles = [stack.enter_context(open(stage_files[k], "wb")) for k in stage_keys]
            reader = con.sql(sql).to_arrow_reader(STREAM_BATCH)
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                fi = _np(batch.column("fi"))
                if ordered:
                    line_no = _np(batch.column("line_no"))
                else:
                    if fi[0] < last_key >> 40 or (len(fi) > 1 and (np.diff(fi) < 0).any()):
                        raise _Unordered
                    line_no = np.empty(len(fi), dtype=np.int64)
                    for f in np.unique(fi).tolist():
                        at = np.flatnonzero(fi == f)
                        line_no[at] = seen[f] + 1 + np.arange(len(at))
                        seen[f] += len(at)
                key = fi.astype(np.int64) << 40 | line_no
                if key[0] <= last_key or (len(key) > 1 and not (np.diff(key) > 0).all()):
                    raise _GiveWay if ordered else _Unordered
                last_key = int(key[-1])
                rc = _np(batch.column("rc"))
                per_file += np.bincount(fi.astype(np.int64) * n_r + rc,
                                        minlength=per_file.size).reshape(per_file.shape)
                if (rc == _RC_PY).any():
                    raise _GiveWay  # a line Python decides: the line-by-line read does
                if (rc == _RC_TX).any():
                    raise _Untyped
                rec = rc == 0
                if not rec.all():
                    for r in np.unique(rc[~rec]).tolist():
                        have = examples.setdefault(r, [])
                        if len(have) < _MAX_EXAMPLES:
                            at = np.flatnonzero(rc == r)[:_MAX_EXAMPLES - len(have)]
                            have += list(zip(fi[at].tolist(), line_no[at].tolist()))
                idx = np.flatnonzero(rec) if not rec.all() else None
                sub = batch if idx is None else batch.take(idx)
                m = sub.num_rows
                if m == 0:
                    continue
                for name in cat_names:
                    enc = pc.dictionary_encode(sub.column(name))
                    codes, valid = _buffer(enc.indices)
                    lut = np.empty(len(enc.dictionary) + 1, dtype=np.int16)
                    lut[-1] = -1
                    for j, v in enumerate(enc.dictionary.to_pylist()):  # first appearance order
                        if v not in index[name]:
                            index[name][v] = len(levels[name])
                            levels[name].append(v)
                        lut[j] = index[name][v]
                    if valid is not None:
                        codes = np.where(valid, codes, len(lut) - 1)
                    chunks[name].append(lut[codes.astype(np.int64)])
                # copies: a view would keep the whole Arrow batch alive
                chunks["ts"].append(np.array(_np(sub.column("ts")), dtype=np.float64))
                chunks["metric"].append(np.array(_np(sub.column("metric")), dtype=np.float64))
                chunks["fi"].append(_np(sub.column("fi")).astype(np.int8))
                ts_i = sub.column("ts_i")
                if ts_i.null_count < m:
                    t = _np(ts_i)
                    for i in range(len(sel.ts_fields)):
                        hit = np.flatnonzero(t == i)
                        if len(hit):
                            ts_count[i] += len(hit)
                            ts_first[i] = min(ts_first[i], n + int(hit[0]))
                for i, k in enumerate(stage_keys):
                    col = sub.column(f"s{i}")
                    stage_counts[k] += m - col.null_count
                    handles[i].write(_f64(_np(col)).tobytes())
                n += m
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = []
    excluded = dict.fromkeys(EXCLUDE_REASONS, 0)
    for fi_, p in enumerate(paths):
        row = per_file[fi_]
        ex = {r: int(row[i + 1]) for i, r in enumerate(EXCLUDE_REASONS) if row[i + 1]}
        for r, c in ex.items():
            excluded[r] += c
        files.append({"path": str(p), "lines": int(row.sum()), "records": int(row[0]),
                      "excluded": ex})
    ex_lines = {_STREAM_REASONS[r - 1]: [ln for _, ln in v] for r, v in sorted(examples.items())}
    malformed = Malformed()
    malformed.count = sum(excluded[r] for r in MALFORMED_REASONS)
    if malformed.count:
        _malformed_examples(con, _classify_sql(paths, sel, metric_keys, fast=True), paths, sel,
                            metric_keys, malformed)

    def cat(name, dtype):
        parts = chunks.pop(name)
        return np.concatenate(parts).astype(dtype, copy=False) if parts \
            else np.empty(0, dtype=dtype)

    ts = cat("ts", np.float64)
    metric = cat("metric", np.float64)
    cats = {k: cat(k, np.int16) for k in cat_names}
    file_index = cat("fi", np.int8)
    order = np.argsort(ts_first, kind="stable")
    ts_used = {sel.ts_fields[i]: int(ts_count[i]) for i in order if ts_count[i]}
    floats = SpilledColumns({sel.metric: metric}, stage_files, stage_counts, n, directory=tmp)
    lines_total = sum(f["lines"] for f in files)
    table = Table(paths[0], n, {"ts": ts}, floats, cats, levels, malformed, lines_total,
                  excluded["blank_line"])
    return LogRead(table, {k: v for k, v in excluded.items() if v},
                   {r: ex_lines[r] for r in EXCLUDE_REASONS if r in ex_lines}, ts_used,
                   file_index, files)


_ARROW_NP = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
             "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
             "float": np.float32, "double": np.float64}


def _buffer(col) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, valid) of a fixed-width Arrow array from its buffers, a view (valid None: no
    nulls; the values at null slots are undefined). Not pyarrow's to_numpy, whose first call
    imports pandas (0.6 s of a 1 M-record report)."""
    dt = np.dtype(_ARROW_NP[str(col.type)])
    bufs = col.buffers()
    n, off = len(col), col.offset
    vals = np.frombuffer(bufs[1], dtype=dt, count=off + n)[off:] if n else np.empty(0, dt)
    if not col.null_count:
        return vals, None
    bits = np.unpackbits(np.frombuffer(bufs[0], dtype=np.uint8), count=off + n,
                         bitorder="little")[off:]
    return vals, bits.astype(bool)


def _np(col) -> np.ndarray:
    """An Arrow column (fixed width) as numpy, nulls as NaN (as floats)."""
    vals, valid = _buffer(col)
    if valid is None:
        return vals
    return np.where(valid, vals.astype(np.float64), np.nan)


def _malformed_examples(con, cls, paths, sel, metric_keys, malformed) -> None:
    """The detail of the first MAX_KEPT_PROBLEMS malformed lines, from their fields' texts;
    `cls` is a query of the classified lines (the fast read's, or the `lines` table's)."""
    mal_list = ", ".join(_q(r) for r in MALFORMED_REASONS)
    cols = ["fi", "line_no", "reason", "cut", "line", *_fields(sel, metric_keys)]
    for row in con.execute(
            f"SELECT {', '.join(cols)} FROM ({cls}) WHERE reason IN ({mal_list}) "
            f"ORDER BY fi, line_no LIMIT {MAX_KEPT_PROBLEMS}").fetchall():
        row = dict(zip(cols, row))
        if row["reason"] in ("bad_json", "not_an_object"):
            _, detail = _bad_line_detail(row["line"], row["cut"])
        else:
            _, detail, _ = _decide(_python_record(row, sel, metric_keys), sel)
        prefix = f"{paths[row['fi']].name}: " if len(paths) > 1 else ""
        malformed.examples.append((row["line_no"], prefix + (detail or row["reason"])))


def _resolve_in_python(con, py, sel, metric_keys) -> None:
    rows = []
    for row in py.to_dict("records"):
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        reason, _, rec = _decide(_python_record(row, sel, metric_keys), sel)
        if reason is not None:
            rows.append((row["fi"], row["line_no"], reason, None, None, None, None, None, None))
            continue
        status, flow, mode, ts, field, value, _ = rec
        ts_i = list(sel.ts_fields).index(field) if field is not None else None
        rows.append((row["fi"], row["line_no"], None, flow, status, mode,
                     None if math.isnan(ts) else ts, ts_i, value))
    con.execute("CREATE OR REPLACE TEMP TABLE py (fi INTEGER, line_no BIGINT, reason VARCHAR, "
                "flow VARCHAR, status VARCHAR, mode VARCHAR, ts DOUBLE, ts_i INTEGER, "
                "metric DOUBLE)")
    con.executemany("INSERT INTO py VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute("""UPDATE lines SET reason = py.reason, flow = py.flow, status = py.status,
                   mode = py.mode, ts = py.ts, ts_i = py.ts_i, metric = py.metric
                   FROM py WHERE lines.fi = py.fi AND lines.line_no = py.line_no""")


def _collect(con, paths, sel, metric_keys) -> LogRead:
    n_stage = len(metric_keys) - 1
    # per file and reason: the count and the first line numbers
    excluded = dict.fromkeys(EXCLUDE_REASONS, 0)
    examples: dict[str, list[int]] = {r: [] for r in EXCLUDE_REASONS}
    files = [{"path": str(p), "lines": 0, "records": 0, "excluded": {}} for p in paths]
    for fi, reason, n in con.execute(
            "SELECT fi, reason, count(*) FROM lines GROUP BY fi, reason").fetchall():
        files[fi]["lines"] += n
        if reason is None:
            files[fi]["records"] += n
            continue
        files[fi]["excluded"][reason] = n
        excluded[reason] += n
    for r in EXCLUDE_REASONS:  # the first line numbers over the files, in file order
        rows = con.execute(f"SELECT line_no FROM lines WHERE reason = {_q(r)} "
                           f"ORDER BY fi, line_no LIMIT {_MAX_EXAMPLES}").fetchall() \
            if excluded[r] else []
        examples[r] = [x for (x,) in rows]
    for f in files:
        f["excluded"] = {k: f["excluded"][k] for k in EXCLUDE_REASONS if k in f["excluded"]}
    malformed = Malformed()
    mal_list = ", ".join(_q(r) for r in MALFORMED_REASONS)
    malformed.count = con.execute(
        f"SELECT count(*) FROM lines WHERE reason IN ({mal_list})").fetchone()[0]
    _malformed_examples(con, "SELECT * FROM lines", paths, sel, metric_keys, malformed)
    # the records, in file order: categorical codes by first appearance
    levels, code_sql = {}, {}
    for name in (rd.T_STATUS, rd.T_FLOW, rd.T_MODE):
        vals = [v for (v,) in con.execute(
            f"SELECT {name} FROM lines WHERE reason IS NULL AND {name} IS NOT NULL "
            f"GROUP BY {name} ORDER BY min(fi * 1e12 + line_no)").fetchall()]
        levels[name] = vals
        lit = "[" + ", ".join(_q(v) for v in vals) + "]::VARCHAR[]" if vals else "[]::VARCHAR[]"
        code_sql[name] = f"(coalesce(list_position({lit}, {name}), 0) - 1)::SMALLINT"
    stage = "".join(f", coalesce(s{i}, 'NaN'::DOUBLE) AS s{i}" for i in range(n_stage))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE records AS SELECT fi, line_no, "
        "coalesce(ts, 'NaN'::DOUBLE) AS ts, ts_i, metric, "
        + ", ".join(f"{code_sql[k]} AS c_{k}" for k in code_sql)
        + f"{stage} FROM lines WHERE reason IS NULL ORDER BY fi, line_no")
    res = con.execute("SELECT * FROM records").fetchnumpy()
    n = len(res["ts"])
    ts_used = {}
    for ts_i, cnt in con.execute("SELECT ts_i, count(*) FROM records WHERE ts_i IS NOT NULL "
                                 "GROUP BY ts_i ORDER BY min(fi * 1e12 + line_no)").fetchall():
        ts_used[sel.ts_fields[ts_i]] = cnt
    floats = {sel.metric: _f64(res["metric"])}
    for i, k in enumerate(metric_keys[1:]):
        floats[k] = _f64(res[f"s{i}"])
    cats = {k: np.asarray(res[f"c_{k}"], dtype=np.int16) for k in code_sql}
    lines_total = sum(f["lines"] for f in files)
    table = Table(paths[0], n, {"ts": _f64(res["ts"])}, floats, cats, levels, malformed,
                  lines_total, excluded["blank_line"])
    return LogRead(table, {k: v for k, v in excluded.items() if v},
                   {k: v for k, v in examples.items() if v}, ts_used,
                   np.asarray(res["fi"], dtype=np.int8), files)


def _f64(a) -> np.ndarray:
    a = np.ma.filled(a, np.nan) if np.ma.isMaskedArray(a) else a
    return np.ascontiguousarray(a, dtype=np.float64)


# ---------------------------------------------------------------- statistics in SQL


def values_at_ranks(con, table: str, value: str, group: str, ranks: dict) -> dict:
    """{(group, rank): value}: the rank-th smallest (1-based) `value` of each group, from the
    database's sort (row_number over the group ordered by the value), for the ranks asked:
    {group: [ranks]}. The order statistics an interval needs, without the rows in Python."""
    want = [(g, int(r)) for g, rs in ranks.items() for r in rs]
    if not want:
        return {}
    con.execute("CREATE OR REPLACE TEMP TABLE want_ranks (g VARCHAR, r BIGINT)")
    con.executemany("INSERT INTO want_ranks VALUES (?, ?)", want)
    rows = con.execute(
        f"SELECT s.g, s.r, s.v FROM (SELECT {group}::VARCHAR AS g, {value} AS v, "
        f"row_number() OVER (PARTITION BY {group} ORDER BY {value}) AS r FROM {table} "
        f"WHERE {value} IS NOT NULL AND NOT isnan({value})) s "
        "JOIN want_ranks w ON s.g = w.g AND s.r = w.r").fetchall()
    return {(g, r): v for g, r, v in rows}


def describe_groups(con, table: str, value: str, group: str) -> dict:
    """`stats.describe` per group in SQL: count, mean, std, min, max and p50/p90/p95/p99 with
    their order-statistic intervals, the quantiles interpolated as numpy's 'linear' from the
    two order statistics around (n - 1) p, the bounds the order statistics at the binomial
    ranks (stats.order_statistic_ranks)."""
    from . import stats

    base = con.execute(
        f"SELECT {group}::VARCHAR, count({value}), avg({value}), stddev_samp({value}), "
        f"min({value}), max({value}) FROM {table} WHERE {value} IS NOT NULL AND NOT "
        f"isnan({value}) GROUP BY {group}").fetchall()
    ranks: dict = {}
    plan: dict = {}
    for g, n, *_ in base:
        rs = set()
        for name, p in stats.QUANTILES.items():
            h = (n - 1) * p
            lo_i, hi_i = math.floor(h) + 1, math.ceil(h) + 1
            lo, hi = stats.order_statistic_ranks(n, p)
            plan[(g, name)] = (h - math.floor(h), lo_i, hi_i, lo, hi)
            rs |= {lo_i, hi_i} | {r for r in (lo, hi) if r is not None}
        ranks[g] = sorted(rs)
    at = values_at_ranks(con, table, value, group, ranks)
    out = {}
    for g, n, mean, std, mn, mx in base:
        d = {"count": int(n), "mean": float(mean), "std": float(std) if n > 1 else None,
             "min": float(mn), "max": float(mx)}
        for name in stats.QUANTILES:
            frac, lo_i, hi_i, lo, hi = plan[(g, name)]
            v = float(np.quantile(np.array([at[(g, lo_i)], at[(g, hi_i)]]), frac))
            d[name] = stats.Estimate(v, None if lo is None else at[(g, lo)],
                                     None if hi is None else at[(g, hi)]).as_dict()
        out[g] = d
    return out


def time_bins(con, table: str, ts: str, value: str, group: str, width_s: float,
              t0: float) -> list[tuple]:
    """Per group and time bin of `width_s` from `t0`: (group, bin start, count, p50, p95) —
    the latency-over-time series, the quantiles numpy's 'linear' (quantile_cont)."""
    return con.execute(
        f"SELECT {group}::VARCHAR AS g, {t0} + floor(({ts} - {t0}) / {width_s}) * {width_s} "
        f"AS b, count(*), quantile_cont({value}, 0.5), quantile_cont({value}, 0.95) "
        f"FROM {table} WHERE NOT isnan({value}) GROUP BY ALL ORDER BY g, b").fetchall()


def read_log_any(paths, sel: LogSelection, engine: str | None = None) -> tuple[LogRead, str]:
    """(LogRead, the engine that read it): DuckDB unless `engine` or EXECBENCH_ANALYSIS_ENGINE
    says python; DuckDB refusing a file (not UTF-8, not readable as lines), or a number it
    reads that orjson does not, falls back to the Python reader, which reads anything."""
    from . import ingest

    engine = engine or os.environ.get(ENGINE_ENV) or "duckdb"
    if engine == "python":
        return ingest.read_log(paths, sel), "python"
    try:
        import duckdb
    except ImportError:
        return ingest.read_log(paths, sel), "python"
    try:
        return read_log(paths, sel), "duckdb"
    except (duckdb.Error, orjson.JSONDecodeError):
        # orjson: a field DuckDB took as a number that orjson refuses (NaN, Infinity, 1e400),
        # met where a line's detail is read from its fields; the whole line is bad JSON
        return ingest.read_log(paths, sel), "python"
