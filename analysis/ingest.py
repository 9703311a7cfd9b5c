"""Streaming JSONL ingest into columnar numpy arrays.

The files are read in blocks and parsed a chunk of lines at a time with orjson, so memory
follows the columns kept (a few float64/int8 arrays per record), never the file's text or a
list of a million dicts. Each chunk first takes a fast path (one orjson call per line, columns
pulled out with list comprehensions, timestamps parsed vectorized); any irregularity in the chunk
(bad JSON, a missing or mistyped field, an odd timestamp) sends that chunk alone through a
per-record path that records each malformed line with its number and keeps the good ones.

Python's cyclic garbage collector is paused while a chunk is parsed: the parsed dicts hold no
cycles, and letting the collector walk hundreds of thousands of fresh containers triples the
parse time.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from execbench import rundir as rd  # the run directory's names (one reader of the format)
from execbench.contract import METRICS  # the shared names (docs/DESIGN.md)

BLOCK_BYTES = 8 << 20
CHUNK_LINES = 32768
MAX_KEPT_PROBLEMS = 200  # line numbers kept verbatim; the count is always exact


class _Irregular(Exception):
    """The fast path met something it does not handle; redo the chunk record by record."""


@dataclass
class Malformed:
    count: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line_no: int, reason: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_KEPT_PROBLEMS:
            self.examples.append((line_no, reason))

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "lines": [{"line": n, "reason": r} for n, r in self.examples],
            "truncated": self.count > len(self.examples),
        }


@dataclass
class Table:
    """Columns of one JSONL file. Categorical columns are int16 codes into `levels[name]`
    (code -1 = field absent)."""

    path: Path | None
    n: int
    times: dict[str, np.ndarray]
    floats: dict[str, np.ndarray]
    cats: dict[str, np.ndarray]
    levels: dict[str, list[str]]
    malformed: Malformed
    lines_read: int = 0
    blank_lines: int = 0

    def code(self, column: str, value: str) -> int:
        try:
            return self.levels[column].index(value)
        except ValueError:
            return -2  # matches nothing

    def values(self, column: str) -> np.ndarray:
        """Decoded categorical column as an object array (None where absent)."""
        lv = np.array([*self.levels[column], None], dtype=object)
        return lv[self.cats[column]]

    def take(self, mask: np.ndarray) -> Table:
        return Table(
            self.path,
            int(np.count_nonzero(mask)) if mask.dtype == bool else len(mask),
            {k: v[mask] for k, v in self.times.items()},
            {k: v[mask] for k, v in self.floats.items()},
            {k: v[mask] for k, v in self.cats.items()},
            self.levels,
            self.malformed,
            self.lines_read,
            self.blank_lines,
        )


class SpilledColumns(Mapping):
    """float64 columns kept in files of raw doubles (a temporary directory, removed with the
    object, or at exit), read back one at a time: `floats` of a Table whose stage columns would otherwise
    all be in memory at once (the DuckDB engine's streaming read). The last column read is
    cached; `pinned` columns stay in memory. `has_values(name)`: any non-NaN value, known
    without reading the column."""

    def __init__(self, pinned: dict[str, np.ndarray], spilled: dict[str, Path],
                 counts: dict[str, int], n: int, directory: str | None = None):
        import shutil
        import weakref

        self._pinned = pinned
        self._spilled = spilled
        self._counts = counts
        self._n = n
        if directory is not None:  # the files' directory, removed with this object
            weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        self._last: tuple[str, np.ndarray] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._pinned:
            return self._pinned[name]
        if self._last is not None and self._last[0] == name:
            return self._last[1]
        path = self._spilled[name]  # KeyError: not a column
        self._last = None  # the previous column freed before the next is read
        a = np.fromfile(path, dtype=np.float64) if self._counts.get(name) \
            else np.full(self._n, np.nan)
        self._last = (name, a)
        return a

    def __iter__(self):
        yield from self._pinned
        yield from (k for k in self._spilled if k not in self._pinned)

    def __len__(self) -> int:
        return len(set(self._pinned) | set(self._spilled))

    def has_values(self, name: str) -> bool:
        if name in self._pinned:
            return bool((~np.isnan(self._pinned[name])).any())
        return bool(self._counts.get(name))


def has_values(floats, name: str) -> bool:
    """A float column holds a value (not only NaN), without reading a spilled one."""
    if isinstance(floats, SpilledColumns):
        return name in floats and floats.has_values(name)
    return name in floats and bool((~np.isnan(floats[name])).any())


@dataclass(frozen=True)
class Schema:
    times: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    cats: tuple[str, ...] = ()
    nested: str | None = None  # name of an object whose keys are float columns
    nested_keys: tuple[str, ...] = ()
    required_cats: tuple[str, ...] = ()
    required_floats: tuple[str, ...] = ()  # top-level or nested
    required_times: tuple[str, ...] = ()
    # true/false fields, kept as float columns: 1.0, 0.0, NaN when absent or not a boolean
    # (an odd value there makes the field unknown, never the record malformed)
    flags: tuple[str, ...] = ()
    # an object whose keys, whatever they are, become float columns (requests.jsonl's
    # `server_metrics`): found as they come; a record without a key is NaN in its column, and
    # an odd value (not a non-negative number, not an object) is NaN too, never malformed
    dynamic: str | None = None


TIMINGS = Schema(
    times=(rd.T_TS,),
    # `replica`, `reason`, `order_id` are not read: nothing in the analysis uses them, and each
    # field pulled out costs ~4% of the parse
    cats=(rd.T_STATUS, rd.T_FLOW, rd.T_MODE),
    nested=rd.T_DURATIONS,
    nested_keys=METRICS,
    required_cats=(rd.T_STATUS, rd.T_FLOW),
    required_floats=("executor_ms",),
)
# client records: only what the analysis uses (their send times are not when a timing log
# places the server records: the client's phase field places each request, and parsing two
# timestamps a line would cost a third)
REQUESTS = Schema(
    floats=(rd.R_LATENCY_MS, rd.R_LATENCY_FROM_INTENDED_MS, rd.R_STATUS),
    cats=(rd.R_OUTCOME, rd.R_FLOW, rd.R_PHASE, rd.R_SERVED_MODE),
    flags=(rd.R_LATE,),  # a late send (docs/loadtests.md); absent in older runs
    required_cats=(rd.R_OUTCOME,),  # a failed request may have no latency (NaN), never no outcome
    dynamic=rd.R_SERVER_METRICS,
)
# a run without a timing log: the client records are the records, placed by their send time
REQUESTS_TIMED = Schema(
    times=(rd.R_SENT_TS, rd.R_INTENDED_TS),
    floats=REQUESTS.floats,
    cats=REQUESTS.cats,
    flags=REQUESTS.flags,
    required_cats=REQUESTS.required_cats,
    dynamic=REQUESTS.dynamic,
)
TIMELINE = Schema(
    times=("ts",),
    cats=("event", "phase", "mode", "group"),  # rd.TIMELINE_FIELDS, and a phase's group
    required_cats=("event",),
    required_times=("ts",),
)


# ---------------------------------------------------------------- timestamps


def _parse_one_time(s) -> float:
    if s is None:
        return math.nan
    if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s):
        # some production logs write epoch numbers: seconds, or milliseconds when that large
        return float(s) / 1000.0 if abs(s) > 1e11 else float(s)
    if not isinstance(s, str):
        raise ValueError(f"timestamp is not a string: {s!r}")  # noqa: TRY004 -- reported as a bad line
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # the contract's times are UTC
    return dt.timestamp()


def parse_times(values: list) -> np.ndarray:
    """ISO-8601 strings -> float seconds since the epoch (UTC); NaN for None.

    Vectorized for the usual forms (`...Z`, `...+00:00`, naive); anything else goes through
    `datetime.fromisoformat` one by one. Raises ValueError on an unparseable value.
    """
    n = len(values)
    if n == 0:
        return np.empty(0)
    if all(type(s) is str for s in values):
        try:
            raw = np.array(values, dtype="S40")
        except UnicodeEncodeError:
            raw = None
        if raw is not None and raw.dtype.itemsize == 40:
            mat = raw.view(np.uint8).reshape(n, 40)
            lens = np.count_nonzero(mat, axis=1)
            if lens.min() >= 19 and lens.max() < 40:
                rows = np.arange(n)
                last = mat[rows, lens - 1]
                zmask = last == ord("Z")
                mat[rows[zmask], lens[zmask] - 1] = 0
                rest = ~zmask
                if rest.any():
                    # "+00:00" is UTC as well; any other offset takes the slow path
                    r = rows[rest]
                    l6 = lens[rest] - 6
                    plus = (l6 >= 19) & (mat[r, np.maximum(l6, 0)] == ord("+"))
                    if plus.any():
                        tail = np.stack([mat[r[plus], l6[plus] + k] for k in range(6)], axis=1)
                        utc = (tail == np.frombuffer(b"+00:00", np.uint8)).all(axis=1)
                        rr, ll = r[plus][utc], l6[plus][utc]
                        for k in range(6):
                            mat[rr, ll + k] = 0
                        plus_other = ~utc
                    else:
                        plus_other = np.zeros(0, bool)
                    if plus_other.any() or (mat[r, np.maximum(lens[rest] - 6, 0)] == ord("-")).any():
                        raw = None  # non-UTC offsets: exact slow path
                if raw is not None:
                    try:
                        dt = raw.astype("datetime64[us]")
                    except ValueError:
                        dt = None
                    if dt is not None:
                        out = dt.astype(np.int64).astype(np.float64) / 1e6
                        return out
    return np.array([_parse_one_time(s) for s in values], dtype=np.float64)


# ---------------------------------------------------------------- chunk parsing


_NUMBER_TYPES = {int, float, type(None)}


def _is_num(v) -> bool:
    t = type(v)
    return (t is float or t is int) and math.isfinite(v)


def _flag(v) -> float:
    return 1.0 if v is True else 0.0 if v is False else math.nan


def _metric(v) -> float:
    """A server metric's value: a finite non-negative number, else NaN (unknown)."""
    t = type(v)
    if (t is float or t is int) and math.isfinite(v) and v >= 0:
        return float(v)
    return math.nan


def _row_function(s: Schema):
    """A compiled `lambda o: (o.get(...), ..., *nested values)` for the schema: the fastest way
    CPython offers to pull a fixed set of fields out of a dict."""
    top = [f"o.get({k!r})" for k in (*s.cats, *s.times, *s.floats, *s.flags)]
    last = f"o.get({s.dynamic!r}), " if s.dynamic else ""  # the dynamic object comes last
    src = "lambda o: (" + "".join(x + ", " for x in top) + last
    if s.nested:
        inner = "".join(f"d.get({k!r}), " for k in s.nested_keys)
        src = (f"lambda o: (lambda d: ({''.join(x + ', ' for x in top)}{inner}{last}))"
               f"(o[{s.nested!r}])")
    else:
        src += ")"
    return eval(src)


class _Builder:
    def __init__(self, schema: Schema):
        self.schema = schema
        self.times: dict[str, list[np.ndarray]] = {k: [] for k in schema.times}
        self.floats: dict[str, list[np.ndarray]] = {
            k: [] for k in (*schema.floats, *schema.flags, *schema.nested_keys)
        }
        self.cats: dict[str, list[np.ndarray]] = {k: [] for k in schema.cats}
        self.maps: dict[str, dict] = {k: {} for k in schema.cats}
        self.n = 0
        self.row = _row_function(schema)
        self.dynamic_keys: list[str] = []  # the dynamic object's keys met so far, in order
        self._fixed = {*schema.floats, *schema.flags, *schema.nested_keys}

    def _column_name(self, key) -> str | None:
        """The column a dynamic key goes to: itself, or `server_<key>` when a fixed column has
        that name (a server metric called `latency_ms` must not overwrite the client's)."""
        if type(key) is not str or not key:
            return None
        return f"server_{key}" if key in self._fixed else key

    def _dynamic_columns(self, objs: list) -> dict[str, np.ndarray]:
        keys: dict = {}
        for d in objs:
            if type(d) is dict:
                for k in d:
                    keys.setdefault(k)
        out = {}
        n = len(objs)
        for k in keys:
            name = self._column_name(k)
            if name is None:
                continue
            out[name] = np.fromiter((_metric(d.get(k)) if type(d) is dict else math.nan
                                     for d in objs), np.float64, n)
        return out

    def _add_dynamic(self, cols: dict[str, np.ndarray], n: int) -> None:
        """Append one chunk's dynamic columns (before self.n counts the chunk): a key met for
        the first time is NaN for every earlier record, a known key the chunk lacks NaN too."""
        for name in cols:
            if name not in self.floats:
                self.floats[name] = [np.full(self.n, math.nan)] if self.n else []
                self.dynamic_keys.append(name)
        for name in self.dynamic_keys:
            self.floats[name].append(cols[name] if name in cols else np.full(n, math.nan))

    def _codes(self, name: str, vals: list, m: dict | None = None) -> np.ndarray:
        m = self.maps[name] if m is None else m
        try:
            return np.fromiter(map(m.__getitem__, vals), np.int16, len(vals))
        except KeyError:
            for v in set(vals):  # new levels are rare: add them and map again
                if v not in m:
                    m[v] = len(m)
            return np.fromiter(map(m.__getitem__, vals), np.int16, len(vals))

    def fast(self, lines: list[bytes]) -> None:
        s = self.schema
        try:
            # one pass: each dict is read while it is hot in the cache and freed at once
            rows = list(map(self.row, map(orjson.loads, lines)))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            raise _Irregular from None
        n = len(rows)
        columns = list(zip(*rows))
        del rows
        cols: dict[str, np.ndarray] = {}
        maps = {}
        pos = 0
        for name in s.cats:
            vals = columns[pos]
            pos += 1
            m = maps[name] = dict(self.maps[name])  # committed only if the chunk is regular
            cols["c:" + name] = self._codes(name, vals, m)
            # a non-string level (or a missing required one) means irregular input
            for v in m:
                if v is None:
                    if name in s.required_cats:
                        raise _Irregular
                elif type(v) is not str:
                    raise _Irregular
        for name in s.times:
            vals = columns[pos]
            pos += 1
            if name in s.required_times and None in vals:
                raise _Irregular
            try:
                cols["t:" + name] = parse_times(vals)
            except (ValueError, TypeError, OverflowError):
                raise _Irregular from None
        for name in (*s.floats, *s.flags, *s.nested_keys):
            vals = columns[pos]
            pos += 1
            if name in s.flags:
                cols["f:" + name] = np.fromiter(map(_flag, vals), np.float64, n)
                continue
            try:
                # numpy would quietly turn "1.5" into a number: sum() refuses strings (and None)
                # at C speed, where a per-value type check would cost a third of the parse
                sum(vals, 0.0)
            except TypeError:
                types = set(map(type, vals))
                if not types <= _NUMBER_TYPES:
                    raise _Irregular from None
                # absent values are NaN: a stage the record did not report
                vals = [math.nan if v is None else v for v in vals]
            except OverflowError:
                raise _Irregular from None
            try:
                arr = np.fromiter(vals, np.float64, n)
            except (ValueError, TypeError, OverflowError):
                raise _Irregular from None
            cols["f:" + name] = arr
        dynamic = self._dynamic_columns(columns[-1]) if s.dynamic else {}
        for name in s.required_floats:
            col = cols["f:" + name]
            if np.isnan(col).any() or (col < 0).any():
                raise _Irregular
        for name in s.nested_keys:
            if (cols["f:" + name] < 0).any():
                raise _Irregular
        self.maps.update(maps)
        for k, v in cols.items():
            kind, name = k[0], k[2:]
            {"c": self.cats, "t": self.times, "f": self.floats}[kind][name].append(v)
        if s.dynamic:
            self._add_dynamic(dynamic, n)
        self.n += n

    def slow(self, lines: list[bytes], line_nos, malformed: Malformed) -> None:
        good: list[dict] = []
        for line_no, line in zip(line_nos, lines):
            reason = self._check(line, good)
            if reason:
                malformed.add(line_no, reason)
        if good:
            self._append_checked(good)

    def _check(self, line: bytes, good: list) -> str | None:
        s = self.schema
        try:
            o = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return f"invalid JSON ({str(exc).split(':')[0]})"
        if type(o) is not dict:
            return f"not a JSON object ({type(o).__name__})"
        rec: dict = {}
        for name in s.cats:
            v = o.get(name)
            if v is not None and type(v) is not str:
                return f"field {name!r} is not a string"
            if v is None and name in s.required_cats:
                return f"missing field {name!r}"
            rec["c:" + name] = v
        for name in s.times:
            v = o.get(name)
            if v is None and name in s.required_times:
                return f"missing field {name!r}"
            try:
                rec["t:" + name] = _parse_one_time(v)
            except (ValueError, TypeError, OverflowError):
                return f"field {name!r} is not an ISO-8601 time"
        for name in s.floats:
            v = o.get(name)
            if v is None:
                v = math.nan
            elif not _is_num(v):
                return f"field {name!r} is not a number"
            rec["f:" + name] = float(v)
        for name in s.flags:
            rec["f:" + name] = _flag(o.get(name))
        if s.dynamic:
            rec["d"] = o.get(s.dynamic)
        if s.nested:
            d = o.get(s.nested)
            if not isinstance(d, dict):
                return f"missing object {s.nested!r}"
            for k in s.nested_keys:
                v = d.get(k)
                if v is None:
                    v = math.nan
                elif not _is_num(v) or v < 0:
                    return f"{s.nested}.{k} is not a non-negative number"
                rec["f:" + k] = float(v)
        for name in s.required_floats:
            v = rec.get("f:" + name, math.nan)
            if math.isnan(v):
                return f"missing field {name!r}"
            if v < 0:
                return f"field {name!r} is negative"
        good.append(rec)
        return None

    def _append_checked(self, recs: list[dict]) -> None:
        for name in self.cats:
            self.cats[name].append(self._codes(name, [r["c:" + name] for r in recs]))
        for name in self.times:
            self.times[name].append(np.array([r["t:" + name] for r in recs], dtype=np.float64))
        for name in self.floats:
            if name in self.dynamic_keys:
                continue
            self.floats[name].append(np.array([r["f:" + name] for r in recs], dtype=np.float64))
        if self.schema.dynamic:
            self._add_dynamic(self._dynamic_columns([r["d"] for r in recs]), len(recs))
        self.n += len(recs)

    def table(self, path, malformed, lines_read, blank) -> Table:
        def cat(parts, dtype):
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        levels: dict[str, list[str]] = {}
        cats: dict[str, np.ndarray] = {}
        for name, m in self.maps.items():
            codes = cat(self.cats[name], np.int16)
            # recode so that None -> -1 and the levels are the strings only
            names = [None] * len(m)
            for v, c in m.items():
                names[c] = v
            lv = [v for v in names if v is not None]
            remap = np.array([-1 if v is None else lv.index(v) for v in names] or [0], np.int16)
            cats[name] = remap[codes] if len(codes) else codes
            levels[name] = lv
        return Table(
            path,
            self.n,
            {k: cat(v, np.float64) for k, v in self.times.items()},
            {k: cat(v, np.float64) for k, v in self.floats.items()},
            cats,
            levels,
            malformed,
            lines_read,
            blank,
        )


def _iter_line_chunks(path: Path, start: int = 0, end: int | None = None):
    """Yield (first_line_no, lines) with at most CHUNK_LINES lines. Line numbers are 1-based and
    relative to the range. The range [start, end) owns the lines that start inside it."""
    line_no = 1
    leftover = b""
    with open(path, "rb") as fh:
        pos = start
        if start > 0:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                skipped = fh.readline()  # the line that began in the previous range
                pos = start + len(skipped)
        while end is None or pos < end:
            size = BLOCK_BYTES if end is None else min(BLOCK_BYTES, end - pos)
            block = fh.read(size)
            if not block:
                break
            pos += len(block)
            buf = leftover + block if leftover else block
            lines = buf.split(b"\n")
            leftover = lines.pop()
            for i in range(0, len(lines), CHUNK_LINES):
                part = lines[i : i + CHUNK_LINES]
                yield line_no, part
                line_no += len(part)
        if leftover and end is not None and pos >= end:
            leftover += fh.readline()  # finish the range's last line
            if leftover.endswith(b"\n"):
                leftover = leftover[:-1]
        if leftover:
            yield line_no, [leftover]


def _read_range(path: Path, schema: Schema, start: int = 0, end: int | None = None) -> Table:
    builder = _Builder(schema)
    malformed = Malformed()
    lines_read = 0
    blank = 0
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for first, lines in _iter_line_chunks(Path(path), start, end):
            lines_read += len(lines)
            if all(lines):
                try:
                    builder.fast(lines)
                    continue
                except _Irregular:
                    pass
            # record by record; blank (or whitespace-only) lines are skipped, not malformed
            ws = [ln.strip() for ln in lines]
            blank += sum(1 for w in ws if not w)
            keep_no = [first + i for i, w in enumerate(ws) if w]
            kept = [ln for ln, w in zip(lines, ws) if w]
            builder.slow(kept, keep_no, malformed)
    finally:
        if was_enabled:
            gc.enable()
    return builder.table(Path(path), malformed, lines_read, blank)


def _merge(parts: list[Table], schema: Schema) -> Table:
    """Concatenate range tables in file order: unify categorical levels, renumber lines."""
    levels: dict[str, list[str]] = {}
    cats: dict[str, np.ndarray] = {}
    for name in schema.cats:
        lv: list[str] = []
        for t in parts:
            lv += [v for v in t.levels[name] if v not in lv]
        levels[name] = lv
        recoded = []
        for t in parts:
            remap = np.array([lv.index(v) for v in t.levels[name]] + [-1], dtype=np.int16)
            recoded.append(remap[t.cats[name]])  # code -1 indexes the trailing -1
        cats[name] = np.concatenate(recoded)
    malformed = Malformed()
    offset = 0
    for t in parts:
        for no, reason in t.malformed.examples:
            malformed.add(no + offset, reason)
        malformed.count += t.malformed.count - len(t.malformed.examples)
        offset += t.lines_read
    return Table(
        parts[0].path,
        sum(t.n for t in parts),
        {k: np.concatenate([t.times[k] for t in parts]) for k in schema.times},
        # a dynamic column one range never met is NaN there
        {k: np.concatenate([t.floats[k] if k in t.floats else np.full(t.n, math.nan)
                            for t in parts])
         for k in dict.fromkeys(k for t in parts for k in t.floats)},
        cats,
        levels,
        malformed,
        sum(t.lines_read for t in parts),
        sum(t.blank_lines for t in parts),
    )


PARALLEL_MIN_BYTES = 64 << 20


def default_workers(path: Path) -> int:
    """Ranges read in parallel by forked processes, for big files on a multi-core machine.
    Only from a single-threaded process: forking a threaded one is unsafe."""
    import os
    import threading

    try:
        size = Path(path).stat().st_size
    except OSError:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import sys

    if size < PARALLEL_MIN_BYTES or threading.active_count() > 1 or not hasattr(os, "fork"):
        return 1
    if "gevent" in sys.modules:  # a gevent-patched process (Locust) must not fork readers
        return 1
    return max(1, min(cpus or 1, 8, size // (PARALLEL_MIN_BYTES // 2)))


def read_jsonl(path: Path, schema: Schema, workers: int | None = None) -> Table:
    path = Path(path)
    workers = default_workers(path) if workers is None else workers
    size = path.stat().st_size
    if workers <= 1 or size == 0:
        return _read_range(path, schema)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    bounds = [size * i // workers for i in range(workers + 1)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers - 1, mp_context=ctx) as pool:
        futures = [pool.submit(_read_range, path, schema, bounds[i], bounds[i + 1])
                   for i in range(1, workers)]
        first = _read_range(path, schema, bounds[0], bounds[1])  # this process does a share
        parts = [first] + [f.result() for f in futures]
    return _merge(parts, schema)


def read_timings(path: Path, workers: int | None = None) -> Table:
    return read_jsonl(path, TIMINGS, workers)


def read_requests(path: Path, workers: int | None = None, *, timed: bool = False) -> Table:
    """requests.jsonl; `timed` also parses the send and intended times (a run without a timing
    log, whose client records are placed by their send time)."""
    return read_jsonl(path, REQUESTS_TIMED if timed else REQUESTS, workers)


def server_metric_names(t: Table) -> list[str]:
    """The `server_metrics` columns of a requests table that hold a value, in the order met."""
    fixed = {*REQUESTS.floats, *REQUESTS.flags}
    return [k for k, v in t.floats.items() if k not in fixed and (~np.isnan(v)).any()]


def read_timeline(path: Path) -> tuple[list[dict], Malformed]:
    """The timeline is small: plain dicts, sorted by time; malformed lines skipped and counted."""
    t = read_jsonl(path, TIMELINE, workers=1)
    events = []
    ev, ph, md, gr = t.values("event"), t.values("phase"), t.values("mode"), t.values("group")
    for i in range(t.n):
        events.append({"ts": float(t.times["ts"][i]), "event": ev[i], "phase": ph[i],
                       "mode": md[i], "group": gr[i]})
    events.sort(key=lambda e: e["ts"])
    return events, t.malformed


def read_provider_events(path: Path) -> list[dict]:
    """`provider_set` events of a timeline with their settings (`{"ts", "phase", "provider"}`),
    in time order. The columnar reader keeps no nested objects, and the timeline is small, so
    this reads it again line by line; lines that do not parse are skipped (the timeline reader
    counts them)."""
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            if rd.EV_PROVIDER_SET.encode() not in line:
                continue
            try:
                e = orjson.loads(line)
                ts = _parse_one_time(e["ts"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if not isinstance(e, dict) or e.get("event") != rd.EV_PROVIDER_SET \
                    or not isinstance(e.get("provider"), dict) or not math.isfinite(ts):
                continue
            out.append({"ts": ts, "phase": e.get("phase"), "provider": e["provider"]})
    out.sort(key=lambda e: e["ts"])
    return out


def read_ledger_samples(path: Path) -> dict | None:
    """The `ledger` events of a timeline (the runner's samples of `GET /admin/ledger` during
    the run) as time-ordered arrays `ts` and `orders_nonterminal`, with what `run_end` says
    about them (`samples`, `failures`, `interval_s`: present when the runner wrote them).
    None when the timeline has no such event (an older runner, sampling off): the analysis
    then reports the non-terminal count at the end only, as before. Samples whose count is not
    a non-negative integer are skipped and counted (`skipped`)."""
    ts: list[float] = []
    counts: list[int] = []
    skipped = 0
    end: dict = {}
    with open(path, "rb") as fh:
        for line in fh:
            is_ledger = f'"{rd.EV_LEDGER}"'.encode() in line
            if not is_ledger and rd.EV_RUN_END.encode() not in line:
                continue
            try:
                e = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += is_ledger
                continue
            if not isinstance(e, dict):
                continue
            if e.get("event") == rd.EV_RUN_END:
                end = e
                continue
            if e.get("event") != rd.EV_LEDGER:
                continue
            n = e.get("orders_nonterminal")
            try:
                t = _parse_one_time(e.get("ts"))
            except (TypeError, ValueError):
                t = math.nan
            if not (_is_num(n) and float(n).is_integer() and n >= 0 and math.isfinite(t)):
                skipped += 1
                continue
            ts.append(t)
            counts.append(int(n))
    if not ts:
        return None
    order = np.argsort(np.asarray(ts), kind="stable")
    out = {"ts": np.asarray(ts, dtype=float)[order],
           "orders_nonterminal": np.asarray(counts, dtype=np.int64)[order],
           "skipped": skipped}
    for key, name in ((rd.RUN_END_LEDGER_SAMPLES, "samples"),
                      (rd.RUN_END_LEDGER_FAILURES, "failures"),
                      (rd.RUN_END_LEDGER_INTERVAL, "interval_s")):
        if _is_num(end.get(key)):
            out[name] = end[key]
    return out


def as_records(req: Table) -> Table:
    """Client records (read with `timed=True`) as the primary table of a run without a timing
    log, row for row: `ts` the send time (the intended time when no send time was written),
    `status` from the outcome (ok -> success, expected_rejection -> rejected, failure -> error),
    `mode` the served mode (absent: the phase's, see analysis/phases.py), and the client's
    latencies and server metrics as its metrics."""
    ts = req.times[rd.R_SENT_TS].copy()
    missing = np.isnan(ts)
    ts[missing] = req.times[rd.R_INTENDED_TS][missing]
    statuses = list(rd.TIMING_STATUSES)
    remap = np.array([statuses.index(rd.STATUS_OF_OUTCOME[o]) if o in rd.STATUS_OF_OUTCOME
                      else -1 for o in req.levels[rd.R_OUTCOME]] + [-1], dtype=np.int16)
    cats = {"status": remap[req.cats[rd.R_OUTCOME]], "flow": req.cats[rd.R_FLOW],
            "mode": req.cats[rd.R_SERVED_MODE]}
    levels = {"status": statuses, "flow": req.levels[rd.R_FLOW],
              "mode": req.levels[rd.R_SERVED_MODE]}
    floats = {k: v for k, v in req.floats.items() if k not in (rd.R_STATUS, rd.R_LATE)}
    return Table(req.path, req.n, {"ts": ts}, floats, cats, levels, req.malformed,
                 req.lines_read, req.blank_lines)


# ---------------------------------------------------------------- a production timing log

# `execbench analyze-log` on a user's own log: records are selected (component, endpoint,
# --where), each excluded line counted by its reason, the timestamp found in whichever of the
# usual fields holds it and read in whichever of the usual forms it has.

LOG_TS_FIELDS = ("ts", "timestamp", "time", "@timestamp")  # tried in this order
DEFAULT_COMPONENT = "python_api"  # the note's timing log (reference/provider-skip-step1.md)
DEFAULT_ENDPOINT = "orders/instant/execute"
ANY = "*"  # --component '*' / --endpoint '*': no selection on that field
EPOCH_MS_ABOVE = 1e11  # an epoch number above this is milliseconds (1e11 s is the year 5138)

# why a line is not a record of the analysis, in the order they are tested (a line is counted
# once, under the first that applies)
EXCLUDE_REASONS = (
    "blank_line",  # empty or whitespace only
    "bad_json",  # not JSON
    "not_an_object",  # JSON, but not an object
    "other_component",  # `component` names another component
    "no_component",  # no `component`, and --component was given
    "other_endpoint",
    "no_endpoint",
    "where_mismatch",  # a --where FIELD=VALUE does not hold (or FIELD is absent)
    "no_flow",  # no flow field (--flow-field), or not a string/number
    "no_status",  # no `status` string
    "no_metric",  # the metric (--metric) absent, not a number, or negative
    "no_timestamp",  # a split (--split-at) needs a time: none of the fields tried is there
    "bad_timestamp",  # the time field holds something that is not a time
)
# the reasons that make a line malformed (it claims to be a record and is not one); the others
# are selections
MALFORMED_REASONS = ("bad_json", "not_an_object", "no_flow", "no_status", "no_metric",
                     "no_timestamp", "bad_timestamp")


@dataclass(frozen=True)
class LogSelection:
    """Which lines of a timing log are records of the analysis, and where their fields are.
    `component`/`endpoint`: the value to keep (ANY or None: any); `*_explicit`: given by the
    user, so a record without the field is excluded (by default it is kept: a log that does not
    name its component is taken to be the executor's). `where`: (field, value) pairs, all must
    hold, compared as text (a number or boolean by its JSON text). `metric`: a `durations_ms`
    key or a top-level number. `ts_field`: None detects the first of LOG_TS_FIELDS present.
    `need_ts`: a record without a usable time is excluded (a split by time needs it)."""

    component: str | None = DEFAULT_COMPONENT
    component_explicit: bool = False
    endpoint: str | None = DEFAULT_ENDPOINT
    endpoint_explicit: bool = False
    where: tuple[tuple[str, str], ...] = ()
    flow_field: str = rd.T_FLOW
    metric: str = "executor_ms"
    ts_field: str | None = None
    need_ts: bool = True

    @property
    def ts_fields(self) -> tuple[str, ...]:
        return (self.ts_field,) if self.ts_field else LOG_TS_FIELDS

    def as_dict(self) -> dict:
        return {"component": self.component if self.component != ANY else None,
                "component_explicit": self.component_explicit,
                "endpoint": self.endpoint if self.endpoint != ANY else None,
                "endpoint_explicit": self.endpoint_explicit,
                "where": [f"{k}={v}" for k, v in self.where], "flow_field": self.flow_field,
                "metric": self.metric, "ts_fields": list(self.ts_fields)}


@dataclass
class LogRead:
    """A log's records as a Table (`ts`, `status`/`flow`/`mode`, the metric and the
    `durations_ms` keys of METRICS) and what was left out: `excluded` {reason: lines}, with the
    first line numbers of each reason in `examples`; `ts_fields` {field: records timed by it};
    `file_index` per record (which of the files read it came from)."""

    table: Table
    excluded: dict[str, int]
    examples: dict[str, list[int]]
    ts_fields: dict[str, int]
    file_index: np.ndarray
    files: list[dict]


def parse_log_time(v) -> float:
    """A log's timestamp as epoch seconds (UTC): ISO 8601 with or without an offset (`Z` too;
    no offset = UTC), or an epoch number in seconds or milliseconds (told apart by magnitude),
    as a number or a numeric string. ValueError for anything else."""
    if isinstance(v, bool) or v is None:
        raise ValueError(f"not a time: {v!r}")
    if isinstance(v, str):
        s = v.strip()
        try:
            x = float(s)
        except ValueError:
            x = None
        if x is None:
            dt = datetime.fromisoformat(s)  # ValueError names the value
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return dt.timestamp()
        v = x
    if isinstance(v, (int, float)):
        x = float(v)
        if not math.isfinite(x):
            raise ValueError(f"not a time: {v!r}")
        return x / 1000.0 if abs(x) > EPOCH_MS_ABOVE else x
    raise ValueError(f"not a time: {v!r}")


def _as_text(v) -> str | None:
    """A field's value as --where compares it: a string as itself, anything else as its JSON
    text (`true`, `200`, `1.5`, `null`)."""
    if type(v) is str:
        return v
    try:
        return orjson.dumps(v).decode()
    except TypeError:
        return None


def _label(v) -> str | None:
    """A categorical field's value: a string, or a number's JSON text (a numeric flow id)."""
    if type(v) is str:
        return v
    if type(v) in (int, float) and not isinstance(v, bool):
        return orjson.dumps(v).decode()
    return None


_MAX_EXAMPLES = 5  # first line numbers kept per exclusion reason


def _open_log(path: Path):
    """A log's bytes: gzip'd when its name ends in .gz."""
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb")


def read_log(paths, sel: LogSelection) -> LogRead:
    """Read one or more timing logs (in order) record by record, applying `sel`. A line is
    either a record or counted under one reason of EXCLUDE_REASONS; the malformed ones are
    also in the table's `malformed` (with their line numbers, and the file's name when several
    files are read)."""
    from array import array

    paths = [Path(p) for p in paths]
    several = len(paths) > 1
    metric = sel.metric
    metric_keys = tuple(dict.fromkeys((metric, *METRICS)))
    floats = {k: array("d") for k in metric_keys}
    ts_out = array("d")
    fidx = array("b")
    cat_names = (rd.T_STATUS, rd.T_FLOW, rd.T_MODE)
    codes = {k: array("h") for k in cat_names}
    maps: dict[str, dict] = {k: {} for k in cat_names}
    excluded = dict.fromkeys(EXCLUDE_REASONS, 0)
    examples: dict[str, list[int]] = {r: [] for r in EXCLUDE_REASONS}
    ts_used: dict[str, int] = {}
    malformed = Malformed()
    files = []
    want_c = sel.component if sel.component not in (None, ANY) else None
    want_e = sel.endpoint if sel.endpoint not in (None, ANY) else None
    where = sel.where
    flow_field = sel.flow_field
    ts_fields = sel.ts_fields
    need_ts = sel.need_ts
    nan = math.nan
    lines_total = 0
    blank_total = 0
    loads = orjson.loads
    durations = rd.T_DURATIONS

    def code(name, v):
        m = maps[name]
        c = m.get(v)
        if c is None:
            if len(m) >= np.iinfo(np.int16).max:
                raise ValueError(f"more than {len(m)} distinct values of {name!r} "
                                 "(categorical columns hold 32767)")
            c = m[v] = len(m)
        return c

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for fi, path in enumerate(paths):
            file_excluded = dict.fromkeys(EXCLUDE_REASONS, 0)
            kept = 0
            line_no = 0
            prefix = f"{path.name}: " if several else ""
            with _open_log(path) as fh:
                for raw in fh:
                    line_no += 1
                    reason, detail = None, None
                    line = raw.strip()
                    if not line:
                        reason = "blank_line"
                    else:
                        try:
                            o = loads(line)
                        except orjson.JSONDecodeError as exc:
                            o = None
                            reason = "bad_json"
                            detail = f"invalid JSON ({str(exc).split(':')[0]})"
                        if reason is None and type(o) is not dict:
                            reason = "not_an_object"
                            detail = f"not a JSON object ({type(o).__name__})"
                    if reason is None:
                        reason, detail, rec = _select(o, want_c, sel.component_explicit,
                                                      want_e, sel.endpoint_explicit, where,
                                                      flow_field, metric, ts_fields, need_ts,
                                                      durations)
                    if reason is not None:
                        excluded[reason] += 1
                        file_excluded[reason] += 1
                        if len(examples[reason]) < _MAX_EXAMPLES:
                            examples[reason].append(line_no)
                        if reason in MALFORMED_REASONS:
                            malformed.add(line_no, prefix + detail)
                        continue
                    status, flow, mode, ts, field, values, d = rec
                    codes[rd.T_STATUS].append(code(rd.T_STATUS, status))
                    codes[rd.T_FLOW].append(code(rd.T_FLOW, flow))
                    codes[rd.T_MODE].append(-1 if mode is None else code(rd.T_MODE, mode))
                    ts_out.append(ts)
                    if field is not None:
                        ts_used[field] = ts_used.get(field, 0) + 1
                    floats[metric].append(values)
                    for k in metric_keys[1:]:
                        v = d.get(k) if d is not None else None
                        floats[k].append(float(v) if (type(v) is float or type(v) is int)
                                         and math.isfinite(v) and v >= 0 else nan)
                    fidx.append(fi)
                    kept += 1
            lines_total += line_no
            blank_total += file_excluded["blank_line"]
            files.append({"path": str(path), "lines": line_no, "records": kept,
                          "excluded": {k: v for k, v in file_excluded.items() if v}})
    finally:
        if was_enabled:
            gc.enable()
    n = len(ts_out)
    levels = {}
    cats = {}
    for name in cat_names:
        levels[name] = list(maps[name])
        cats[name] = np.frombuffer(codes[name], dtype=np.int16).copy() if n else \
            np.empty(0, np.int16)
    table = Table(paths[0], n, {"ts": np.frombuffer(ts_out, dtype=np.float64).copy()
                                if n else np.empty(0)},
                  {k: np.frombuffer(v, dtype=np.float64).copy() if n else np.empty(0)
                   for k, v in floats.items()},
                  cats, levels, malformed, lines_total, blank_total)
    return LogRead(table, {k: v for k, v in excluded.items() if v},
                   {k: v for k, v in examples.items() if v}, ts_used,
                   np.frombuffer(fidx, dtype=np.int8).copy() if n else np.empty(0, np.int8),
                   files)


def _select(o: dict, want_c, c_explicit, want_e, e_explicit, where, flow_field, metric,
            ts_fields, need_ts, durations):
    """(reason, detail, None) for a record left out, else (None, None, fields)."""
    if want_c is not None:
        c = o.get("component")
        if c is None:
            if c_explicit:
                return "no_component", None, None
        elif c != want_c:
            return "other_component", None, None
    if want_e is not None:
        e = o.get("endpoint")
        if e is None:
            if e_explicit:
                return "no_endpoint", None, None
        elif e != want_e:
            return "other_endpoint", None, None
    for k, v in where:
        if k not in o or _as_text(o[k]) != v:
            return "where_mismatch", None, None
    flow = _label(o.get(flow_field))
    if flow is None:
        return "no_flow", (f"missing field {flow_field!r}" if o.get(flow_field) is None
                           else f"field {flow_field!r} is not a string"), None
    status = o.get(rd.T_STATUS)
    if type(status) is not str:
        return "no_status", (f"missing field {rd.T_STATUS!r}" if status is None
                             else f"field {rd.T_STATUS!r} is not a string"), None
    d = o.get(durations)
    if type(d) is not dict:
        d = None
    v = d.get(metric) if d is not None and metric in d else o.get(metric)
    if v is None:
        return "no_metric", f"missing field {metric!r}", None
    if not ((type(v) is float or type(v) is int) and math.isfinite(v) and v >= 0):
        return "no_metric", f"field {metric!r} is not a non-negative number", None
    ts = math.nan
    field = None
    for f in ts_fields:
        raw = o.get(f)
        if raw is not None:
            field = f
            try:
                ts = parse_log_time(raw)
            except (ValueError, TypeError, OverflowError):
                if need_ts:
                    return "bad_timestamp", f"field {f!r} is not a time: {str(raw)[:40]!r}", \
                        None
                field = None
            break
    if field is None and need_ts and math.isnan(ts):
        return "no_timestamp", "no timestamp (tried " + ", ".join(ts_fields) + ")", None
    mode = o.get(rd.T_MODE)
    return None, None, (status, flow, mode if type(mode) is str else None, ts, field,
                        float(v), d)
