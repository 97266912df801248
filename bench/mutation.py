"""Test strength of the core modules, measured by mutation testing (mutmut). Prints a table.

    .venv/bin/python bench/mutation.py tokens          # one module (a few minutes)
    .venv/bin/python bench/mutation.py queue outcomes  # several, one after another, one table
    .venv/bin/python bench/mutation.py all --timeout 1800  # every core module, 30 min cap each
    .venv/bin/python bench/mutation.py --list          # the modules and the tests run on each

Each module is measured in its own scratch copy of the working tree (tracked and
untracked-but-not-ignored files, so it measures what a fresh clone would hold plus
your edits), with a ``[tool.mutmut]`` section written for that module only: mutmut
mutates that one file (flipped comparisons, numbers +1, swapped ``and``/``or``,
changed strings, dropped arguments, ``return None``...) and, for each mutant,
runs the tests of the module's own test files that reach the mutated function.
A mutant is *killed* when some test fails, *survived* when all pass, *timed out*
when the tests run 15 times longer than unmutated.

Equivalent mutants (ones no test can tell apart, e.g. a changed cache size) are
listed in ``EQUIVALENT`` below with the reason, and counted apart: the score is
``killed / (mutants - equivalent)``. Not part of CI: a module takes minutes on two
cores, so ``--max-children`` defaults to 1 and the run is bounded by ``--timeout``.
mutmut mutates inside functions only: module constants (the token version byte,
signature length) are held by the golden tests in tests/test_tokens.py instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Module:
    path: str  # the file mutated
    tests: tuple[str, ...]  # the test files run against its mutants
    skip: tuple[str, ...] = ()  # tests left out of the mutation run, for time (said in the table)


_SWEEP = "tests/test_timetable_sweep.py"
MODULES: dict[str, Module] = {
    "tokens": Module(
        "dripline/tokens.py",
        ("tests/test_tokens.py", "tests/test_tokens_return_path.py", "tests/test_serve_tokens.py"),
    ),
    "retry": Module("sender/retry.py", ("tests/test_sender_retry.py",)),
    "timetable": Module(
        "dripline/timetable.py",
        (
            "tests/test_timetable.py",
            "tests/test_timetable_holidays.py",
            # The full 30-zone sweep takes a minute per surviving mutant: three zones of it.
            f"{_SWEEP}::test_due_times_match_the_reference[America/Chicago]",
            f"{_SWEEP}::test_due_times_match_the_reference[Australia/Lord_Howe]",
            f"{_SWEEP}::test_due_times_match_the_reference[America/Santiago]",
            f"{_SWEEP}::test_reference_moves_a_missing_time_forward_and_takes_the_first_of_two",
            f"{_SWEEP}::test_chicago_midnight_after_spring_forward_weekend_is_monday",
        ),
    ),
    "slots": Module(
        "dripline/_slots.py",
        ("tests/test_slots.py", "tests/test_render_fastpath.py", "tests/test_render_standards.py"),
        # The two property tests (500 rendered examples) cost a minute per mutant.
        skip=(
            "tests/test_render_fastpath.py::test_fast_path_matches_full_render",
            "tests/test_render_standards.py::test_every_message_is_standards_clean_on_both_paths",
        ),
    ),
    "dispatch": Module(
        "dripline/dispatch.py",
        (
            "tests/test_dispatch.py",
            "tests/test_dispatch_outcomes.py",
            "tests/test_dispatch_resilience.py",
            "tests/test_dispatch_deadlines.py",
            "tests/test_dispatch_budget.py",
            # In-process passes that reach tracked links, A/B variants and skipped steps.
            "tests/test_store_results.py",
            "tests/test_experiments.py",
            "tests/test_experiments_winner.py",
            "tests/test_conditions.py",
            "tests/test_plan_renames.py",
        ),
        # Each waits out real relay deadlines or a runaway template (5-8 s): 40 s per
        # surviving mutant. The refused-connection test (3 s) stays for the relay-down path.
        skip=(
            "tests/test_dispatch_budget.py::test_sigterm_while_a_template_runs_away_stops_the_pass_at_once",
            "tests/test_dispatch_budget.py::test_a_runaway_step_is_deferred_and_other_campaigns_still_go",
            "tests/test_dispatch_deadlines.py::test_a_relay_that_stalls_after_the_data_costs_three_deadlines_not_hours",
            "tests/test_dispatch_deadlines.py::test_a_greeting_trickled_byte_by_byte_is_given_up_after_three_connections",
        ),
    ),
    "queue": Module(
        "dripline/store/_queue.py",
        (
            "tests/test_store_queue.py",
            "tests/test_store_queue_worker.py",
            "tests/test_store_leases.py",
            "tests/test_store_outcomes.py",  # a claim carries the first attempt's time
        ),
    ),
    "outcomes": Module(
        "dripline/store/_outcomes.py",
        ("tests/test_store_outcomes.py", "tests/test_store_queue.py", "tests/test_dispatch.py"),
    ),
    "fastwrite": Module(
        "dripline/store/_fastwrite.py",
        ("tests/test_store_fastwrite.py", "tests/test_store_queue.py"),
    ),
}

# Mutants no test can tell from the original, with the reason. Keys are mutmut's
# mutant names (``module.x_function__mutmut_N``); a name that no longer exists
# (the code moved on) is reported, so the list cannot silently go stale.
_LOST = (
    "a lost connection is recognised twice (the dialect's is_disconnect, then the failing "
    "ROLLBACK); the PostgreSQL kill test fails only if both are broken. Masked, not "
    "untested: on a session ended by the server psycopg's rollback() raises 'the "
    "connection is lost' (checked on PostgreSQL 2026-11-30: is_disconnect(err, None, "
    "cursor) is False there, and the ROLLBACK fallback still marks it lost); only a live "
    "connection raising an error whose text mimics a disconnect would tell them apart"
)
_SUPPRESS = "closing a cursor or invalidating a dead connection has never raised here"
_NONE_START = "str.rfind(x, None, end) is str.rfind(x, 0, end)"
_START_ONE = (
    "a closing mark at index 0 has no opening mark before it: both sides of the > are -1 either way"
)
_NONE_SLICE = "s[None:i] is s[0:i]"
_EMPTY_PIECE = "an empty piece kept in the list adds nothing when the pieces are joined"
_NO_X = (
    "rstrip('XX=XX') also strips a final 'X', but 19 bytes in base32 end in a character "
    "whose last two bits are zero (A, E, I, ...), never X"
)
_SQL_CASE = "unquoted SQL names (columns, aliases, functions) are case-insensitive"
_CODEC = "codec names are case-insensitive: 'UTF-8'/'ASCII' is the same codec"
_CLOSED = (
    "shutdown(wait=False): close() runs after the pass has waited for every send it "
    "submitted, so there is nothing left to wait for"
)
EQUIVALENT: dict[str, str] = {
    "dripline.tokens.x__b64__mutmut_7": _CODEC,
    "dripline.tokens.xǁTokenSignerǁ__init____mutmut_13": _CODEC,
    "dripline.tokens.xǁTokenSignerǁcampaign_tag__mutmut_9": _CODEC,
    "dripline.tokens.xǁTokenSignerǁsign__mutmut_4": _CODEC,
    "dripline.tokens.xǁTokenSignerǁverify__mutmut_46": _CODEC,
    "dripline.timetable.xǁTimetableǁregion_for__mutmut_7": (
        "parse_region upper-cases the country code itself (check_country)"
    ),
    "dripline.timetable.xǁTimetableǁdue_plan__mutmut_4": (
        "enrolled_utc only meets aware datetimes (astimezone, >): any zone is the same instant"
    ),
    "dripline.timetable.xǁTimetableǁnext_send_day__mutmut_3": (
        "366 vs 367 tries: no real calendar has a year of holidays; the bound is a safety net"
    ),
    "dripline.store._fastwrite.xǁ_Compiledǁ__init____mutmut_9": (
        "the bind processors of the column types used (DateTime, String, Integer) ignore "
        "the dialect argument once dialect_impl() has chosen the type"
    ),
    **{
        f"dripline.store._fastwrite.xǁFastWriterǁ_transaction_once__mutmut_{n}": _LOST
        for n in (16, 17, 18, 26, 27)
    },
    "dripline.store._fastwrite.xǁFastWriterǁ_transaction_once__mutmut_31": _SUPPRESS,
    "dripline.store._fastwrite.xǁFastWriterǁ_discard_connection__mutmut_3": _SUPPRESS,
    "dripline.store._fastwrite.xǁFastWriterǁ_discard_connection__mutmut_2": (
        "a connection not invalidated is still detected dead by the pool's pre-ping "
        "before anyone else gets it"
    ),
    **{f"dripline._slots.x__context_at__mutmut_{n}": _NONE_START for n in (2, 12, 25, 34, 43, 53)},
    **{f"dripline._slots.x__context_at__mutmut_{n}": _START_ONE for n in (19, 40, 60)},
    **{
        f"dripline._slots.xǁSlottedStepǁbuild__mutmut_{n}": (
            "the template name given to rewrite_slots only labels a reason in "
            "SlotTable.dynamic_reasons, which is only ever tested for emptiness (never shown)"
        )
        for n in (16, 26, 31, 32, 38, 43, 44, 50, 55, 56)
    },
    **{
        f"dripline._slots.xǁSlottedStepǁ_value__mutmut_{n}": (
            "the plain-Python getter is a speed-up that gives exactly Jinja's answer "
            "(plain_getter): skipping it evaluates the same expression in Jinja"
        )
        for n in (1, 5)
    },
    **{
        f"dripline._slots.xǁSlottedStepǁbuild__mutmut_{n}": (
            "no plain getter (plain_getter given no environment or no expression answers "
            "None): Jinja evaluates the same expression, which the getter only speeds up"
        )
        for n in (103, 104)
    },
    "dripline._slots.xǁSlottedStepǁbuild__mutmut_87": (
        "undefined_to_none=None: Jinja only tests it for truth, as it does False"
    ),
    "dripline._slots.x__split__mutmut_2": _NONE_SLICE,
    "dripline._slots.x__parts__mutmut_2": _NONE_SLICE,
    "dripline._slots.x__split__mutmut_21": _EMPTY_PIECE,
    "dripline._slots.x__split_text__mutmut_33": _EMPTY_PIECE,
    "dripline.tokens.xǁTokenSignerǁ_verp_pad__mutmut_11": (
        "int.from_bytes defaults to big-endian since Python 3.11 (the oldest supported)"
    ),
    "dripline.tokens.xǁTokenSignerǁreturn_path_token__mutmut_24": _CODEC,
    "dripline.tokens.xǁTokenSignerǁread_return_path_token__mutmut_24": _CODEC,
    "dripline.tokens.xǁTokenSignerǁreturn_path_token__mutmut_25": _NO_X,
    "dripline.tokens.xǁTokenSignerǁread_return_path_token__mutmut_25": _NO_X,
    "dripline.dispatch.xǁ_RelayWatchǁ__init____mutmut_4": (
        "paused starts None instead of False: both falsy, and it is only ever tested for truth"
    ),
    "dripline.dispatch.xǁ_RelayWatchǁ__init____mutmut_6": (
        "_last starts '' instead of None: a sentinel either way, no send outcome is either"
    ),
    "dripline.dispatch.xǁ_RelayWatchǁnote__mutmut_15": (
        "getattr default None instead of False for the last attribute: falsy either way"
    ),
    "dripline.dispatch.xǁ_RelayWatchǁnote__mutmut_6": (
        "getattr default None instead of False: both falsy, then `or` asks the next attribute"
    ),
    **{
        f"dripline.dispatch.xǁDispatcherǁ__init____mutmut_{n}": (
            "a default batch or chunk size +1 (500, 64): a size, like a cache's; dripline run "
            "passes --batch, and the tests that depend on a size pass their own"
        )
        for n in (1, 2)
    },
    **{
        f"dripline.dispatch.xǁDispatcherǁ__init____mutmut_{n}": (
            "a first pass has nothing to recover: the worker has no id, so recover() returns"
        )
        for n in (13, 14)
    },
    **{
        f"dripline.dispatch.xǁDispatcherǁ__init____mutmut_{n}": (
            "held steps are computed on the first pass whatever these start as: _held_seen "
            "(None or '') never equals a (generation, version) pair, and _commit is reset "
            "at every pass"
        )
        for n in (17, 18, 20, 21)
    },
    **{
        f"dripline.dispatch.xǁDispatcherǁ_dispatch_due__mutmut_{n}": (
            "_commit reset to '' instead of None, _clean to None instead of False: set "
            "before any send reads it / falsy either way"
        )
        for n in (10, 15)
    },
    "dripline.dispatch.xǁDispatcherǁ_dispatch_due__mutmut_4": (
        "the files generation counting by 2: it is only compared for change"
    ),
    "dripline.dispatch.xǁDispatcherǁ_dispatch_due__mutmut_3": (
        "the files generation counting down instead of up: it is only compared for change"
    ),
    **{
        f"dripline.dispatch.xǁDispatcherǁ_is_last__mutmut_{n}": (
            "last_step only lets the store look: it completes an enrollment only when no "
            "delivery of it is pending (store._outcomes._complete), so calling a step that "
            "has later rows 'last' changes nothing, and a row numbered like the last (`>`) "
            "whose identity is not the last still has the last one pending"
        )
        for n in (7,)
    },
    "dripline.dispatch.xǁDispatcherǁ_render__mutmut_35": (
        "a skipped step's outcome without last_step (True, the default): as with _is_last "
        "#7, the store completes an enrollment only when none of its deliveries is "
        "pending, so a skipped step with later steps pending completes nothing"
    ),
    "dripline.dispatch.xǁDispatcherǁ_render__mutmut_110": (
        "the subject recorded for an A/B send when the message has none ('XXXX' for ''): "
        "every message has a Subject, the variant's text, which check refuses empty"
    ),
    **{
        f"dripline.dispatch.xǁDispatcherǁ_render__mutmut_{n}": (
            "the outcome of a render cancelled by SIGTERM: RenderCancelled comes only once "
            "the stop event is set, and _send_batch then hands the whole chunk back "
            "untried without recording its render outcomes, so this one is never read"
        )
        for n in (111, 112, 115, 116)
    },
    "dripline.dispatch.xǁPassReportǁclose_step_deferrals__mutmut_8": (
        "the step deferrals left None once closed: nothing reads them after (a pass "
        "closes them last, and the next pass has a report of its own)"
    ),
    "dripline.dispatch.xǁDispatcherǁ__init____mutmut_19": (
        "the held steps' last look starting as '' rather than None: either differs from "
        "every (generation, version) pair, so the first pass looks"
    ),
    "dripline.dispatch.xǁDispatcherǁ__init____mutmut_22": (
        "the campaign commit starting as '' rather than None: each pass sets it to None "
        "before its first claim"
    ),
    "dripline.dispatch.xǁDispatcherǁ_dispatch_due__mutmut_16": (
        "the clean flag set to None rather than False mid-pass: only its truth is read"
    ),
    **{
        f"dripline.dispatch.xǁDispatcherǁ_dispatch_due__mutmut_{n}": (
            "the campaign's commit looked up for every batch (first left true, or None): "
            "the same commit each time within a pass, slower only"
        )
        for n in (30, 31)
    },
    **{
        f"dripline.dispatch.xǁDispatcherǁ_dispatch_due__mutmut_{n}": (
            "a pass that ended normally not marked clean (None, False): the next pass runs "
            "store.recover() first, which finds none of this worker's rows claimed or "
            "sending after a clean pass and changes nothing, slower only"
        )
        for n in (51, 52)
    },
    "dripline.dispatch.xǁDispatcherǁ_judge_ready_tests__mutmut_8": (
        "`and` for `or`: a campaign with click tracking but no winner_after is looked at "
        "too, and its judge() records nothing (the decision needs winner_after), slower only"
    ),
    "dripline.dispatch.xǁDispatcherǁ_settle__mutmut_4": (
        "the result of settling nothing: never asked for, as each delivery of a chunk is "
        "either ready or has an outcome, and the last call is guarded by `if outcomes`"
    ),
    "dripline.dispatch.xǁDispatcherǁ_send_batch__mutmut_49": (
        "return instead of break once stopped after rendering a chunk: the chunk sent "
        "before was waited for just above, so the loop's tail has nothing to wait for, "
        "and the finally block hands everything back either way"
    ),
    "dripline.dispatch.xǁDispatcherǁ_send_batch__mutmut_69": (
        "in_flight.pop without a default: every result arrives once, for a delivery put "
        "in in_flight before its chunk was submitted, so the key is always there"
    ),
    "dripline.dispatch.xǁDispatcherǁ_outcome__mutmut_32": (
        "a sent outcome without last_step (True, the default): as with _is_last #7, the "
        "store completes an enrollment only when none of its deliveries is pending"
    ),
    "dripline.dispatch.xǁDispatcherǁ_is_last__mutmut_8": (
        "the library answers from the campaign it loaded to render this very delivery in the "
        "same pass: it cannot fail to load between the render and the outcome"
    ),
    **{
        f"dripline.dispatch.xǁDispatcherǁ_sender_thread__mutmut_{n}": (
            "more than one sending thread: _send_batch waits for a chunk's send_many before "
            "it submits the next, so one runs at a time whatever the pool's size"
        )
        for n in (3, 5, 7)
    },
    **{
        f"dripline.dispatch.xǁDispatcherǁ_sender_thread__mutmut_{n}": (
            "the sending thread's name (its prefix): seen only in a debugger or a thread dump"
        )
        for n in (4, 6, 8, 9)
    },
    **{
        f"dripline.dispatch.xǁDispatcherǁ_tracking__mutmut_{n}": (
            "an open image URL given while [tracking] opens is off: the compiled step has no "
            "open image slot then (render.CompiledStep only adds it when opens is on), so "
            "the URL is never used"
        )
        for n in (6, 22, 24)
    },
    "dripline.dispatch.xǁDispatcherǁ_tracking__mutmut_7": (
        "links None instead of () for a step without tracked URLs: the renderer takes "
        "`recipient.links or self.tracked_urls`, the same for both"
    ),
    **{
        f"dripline.dispatch.xǁDispatcherǁ_tracking__mutmut_{n}": (
            "the link positions cache missed on purpose (get(None), or None): the store is "
            "asked again and gives the same stable positions, slower only"
        )
        for n in (9, 10)
    },
    "dripline.dispatch.xǁDispatcherǁ_tracking__mutmut_14": (
        "the per-step link positions cache storing None: every delivery then reads the "
        "positions again (store.link_positions returns the same stable positions), slower only"
    ),
    "dripline.dispatch.xǁDispatcherǁclose__mutmut_2": _CLOSED,
    "dripline.dispatch.xǁDispatcherǁclose__mutmut_3": _CLOSED,
    "dripline.dispatch.xǁDispatcherǁclose__mutmut_4": (
        "close() is a dispatcher's last call (runtime.dispatcher_for): no pass looks at "
        "_sending after it"
    ),
    **{
        f"dripline.store._outcomes.x__rows_changed__mutmut_{n}": (
            "the fallback for a driver without a row count: sqlite3 and psycopg 3 always "
            "give one for UPDATE"
        )
        for n in (13, 15, 16)
    },
    "dripline.store._outcomes.x_settle__mutmut_12": (
        "`missed = ...` for the first kind added: missed is still the empty list there"
    ),
    **{
        f"dripline.store._outcomes.x_settle__mutmut_{n}": (
            "None instead of [] for a kind without outcomes: _sent and _simple return [] "
            "for either (`if not outcomes`)"
        )
        for n in (27, 55, 57)
    },
    **{
        f"dripline.store._outcomes.x__sent__mutmut_{n}": (
            "which of the two PostgreSQL statements records one sent row: both write the "
            "same columns of the same rows (the one-row form only saves the arrays)"
        )
        for n in (4, 5)
    },
    **{
        f"dripline.store._outcomes.x__sent__mutmut_{n}": (
            "zip without strict=True: the row and the columns always have 8 items, strict "
            "only checks it"
        )
        for n in (28, 31, 32)
    },
    **{f"dripline.store._outcomes.x__sent__mutmut_{n}": _SQL_CASE for n in (20, 42, 44, 55, 57)},
    "dripline.store._outcomes.x__sent__mutmut_65": (
        "`=` instead of `+=` on the recorded count: _sent adds to it first, while it is 0"
    ),
    "dripline.store._outcomes.x__sent__mutmut_70": (
        "asking which rows did not become 'sent' when the count says all did: none"
    ),
    "dripline.store._outcomes.x__sent__mutmut_73": "_unheld does not use its worker_id",
    "dripline.store._outcomes.x__simple__mutmut_42": "_unheld does not use its worker_id",
    "dripline.store._outcomes.x__simple__mutmut_39": (
        "asking which rows did not reach their status when the count says all did: none"
    ),
    **{f"dripline.store._outcomes.x__attempt__mutmut_{n}": _SQL_CASE for n in (13, 14)},
    "dripline.store._outcomes.x_settle__mutmut_25": (
        "_sent returns [] for no outcomes, whether given [] or None"
    ),
    "dripline.store._outcomes.xǁ_Sqlǁ__init____mutmut_4": (
        "'?' placeholders on PostgreSQL too: every statement goes through q(), which turns "
        "them into %s there"
    ),
    **{
        f"dripline.store._outcomes.xǁ_Sqlǁ__init____mutmut_{n}": (
            "_Sql.mark is never read (every statement goes through q() and any_of())"
        )
        for n in (2, 3, 5, 6, 7)
    },
    "dripline.store._outcomes.xǁ_Sqlǁtime__mutmut_3": (
        "time(None) is never asked on SQLite: every outcome that writes a time carries it "
        "(a sent one its sent_at, a deferred one its next_at)"
    ),
    **{
        f"dripline.store._queue.xǁSqlDeliveryQueueǁsettle__mutmut_{n}": (
            "a naive `now` passed on naive: to_db_time keeps naive times as they are (UTC), "
            "which is what tagging them UTC then converting gives"
        )
        for n in (20, 21)
    },
    **{
        f"dripline.store._queue.xǁSqlDeliveryQueueǁ_claim__mutmut_{n}": (
            "`me` keeps a worker from taking itself for dead; the same claim renews its "
            "lease first (a third of it passed, so surely when it ran out) and its process "
            "is alive: it is never found dead, named or not"
        )
        for n in (10, 13)
    },
    "dripline.store._queue.xǁSqlDeliveryQueueǁ_claimable__mutmut_25": (
        "cancelling without `status = 'scheduled'`: the rows were read 'scheduled' in this "
        "same transaction and locked by it (FOR UPDATE SKIP LOCKED; SQLite has one writer)"
    ),
    "dripline.store._queue.xǁSqlDeliveryQueueǁ_claim__mutmut_37": (
        "`claimed and len(rows) < limit`: a read that claimed some of a full page reads "
        "again in the same transaction and claims up to `limit` (what cancelled rows left "
        "room for) instead of returning a short batch; dispatch claims until a claim comes "
        "back empty, so the same rows go out in the same pass in the same order, in fewer "
        "(fuller) claims: only the number of reads differs"
    ),
    "dripline.store._queue.xǁSqlDeliveryQueueǁ_claimable__mutmut_15": (
        "`<=` keeps the last of two scheduled rows of one enrollment with the same step "
        "number: there are never two. An enrollment's rows are made together, one per step "
        "of one version of the files (numbers 1..N), and only `dripline apply` renumbers "
        "them, every row by identity to its distinct position, cancelling removed steps' "
        "rows in the same transaction (plan._apply)"
    ),
    "dripline.store._queue.xǁSqlDeliveryQueueǁhold__mutmut_4": (
        "forgetting the last set held only rebuilds the same filter on the next call"
    ),
    "dripline.store._queue.xǁSqlDeliveryQueueǁ__init____mutmut_27": (
        "_renewed_at starting '' instead of None: it is set when the worker registers, "
        "before anything reads it (settle refuses a worker that never claimed, a "
        "heartbeat before the first claim returns)"
    ),
    "dripline.store._queue.xǁSqlDeliveryQueueǁ__init____mutmut_23": (
        "no last set held to start with (None for the empty set): the first hold() builds "
        "its filter either way, from the same unfiltered query"
    ),
    **{
        f"dripline.store._queue.xǁSqlDeliveryQueueǁscheduled_steps__mutmut_{n}": (
            "a join without its ON clause: SQLAlchemy infers the same one from the foreign key"
        )
        for n in (6, 8)
    },
    **{
        f"dripline.tokens.xǁTokenSignerǁcampaign_tag__mutmut_{n}": (
            "the per-signer cache of campaign tags (a speed-up, like a cache size): a miss, "
            "a slot that stays empty or a bound of 1025 only recomputes the same HMAC"
        )
        for n in (1, 2, 16, 17, 18)
    },
    "dripline.tokens.xǁTokenSignerǁcampaign_tag__mutmut_13": _CODEC,
    **{
        name: "digest names are case-insensitive: hashlib/OpenSSL's 'SHA256' is 'sha256'"
        for name in (
            "dripline.tokens.xǁTokenSignerǁcampaign_tag__mutmut_15",
            "dripline.tokens.xǁTokenSignerǁ_signature__mutmut_8",
        )
    },
    "dripline.tokens.x_split_verp_address__mutmut_3": (
        "the return path split at its first '@' instead of its last: verp_address refuses "
        "a return path with two, so no bounce address was ever made from one"
    ),
    "dripline.tokens.x_split_verp_address__mutmut_7": (
        "a bounce address with two '@' gives None (mutant) or a 'token' holding an '@' "
        "(original); no return-path token holds one (base32), so it is unmatched either way"
    ),
    "dripline.tokens.x__strict_unb64__mutmut_14": (
        "'=' * (len % 4) instead of (-len % 4) pads 3 where 1 is needed; Python's base64 "
        "decoder ignores surplus padding, and the canonical re-encoding check follows"
    ),
}

# `mutmut show` for many mutants in one process (one process per mutant takes minutes).
_SHOW = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
names = json.load(sys.stdin)
print(json.dumps({n: get_diff_for_mutant(n, path=find_mutant(n).path) for n in names}))
"""
_LINE = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>.+)$")


def _project_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [Path(p) for p in listed.split("\0") if p and (ROOT / p).is_file()]


# A pytest plugin written into the scratch copy: mutmut hands pytest the tests that reach
# the mutated function in no set order; run them fastest first (durations from mutmut's own
# clean run), so a killed mutant usually costs one short test (-x stops at the first failure).
# It also gives each pytest run (each mutant) a PostgreSQL schema of its own: with
# --max-children 2, two mutants of one module are tested at once, and in one schema the
# tests of one would drop the other's tables mid-test and count false kills.
_ORDER_PLUGIN = """
import json
import os
import re
from pathlib import Path

_PG = "DRIPLINE_TEST_POSTGRES_URL"


def pytest_collection_modifyitems(items):
    stats = Path("mutmut-stats.json")  # the run's working directory is mutants/
    if stats.is_file():
        durations = json.loads(stats.read_text()).get("duration_by_test", {})
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


def _schema_sql(url, statement):
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def pytest_configure(config):
    url = os.environ.get(_PG, "")
    match = re.search(r"search_path%3D(\\w+)", url)
    if match is None:
        return
    schema = f"{match.group(1)}_{os.getpid()}"
    _schema_sql(url, f"CREATE SCHEMA IF NOT EXISTS {schema}")
    config.dripline_schema = (url, schema)
    os.environ[_PG] = url.replace(match.group(0), f"search_path%3D{schema}")


def pytest_unconfigure(config):
    url, schema = getattr(config, "dripline_schema", (None, None))
    if url is not None:
        os.environ[_PG] = url
        _schema_sql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
"""


TEST_TIMEOUT = 60  # seconds one test may take in a mutation run (see _scratch_copy)


def _scratch_copy(module: Module, into: Path) -> None:
    for relative in _project_files():
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    (into / "mutation_order.py").write_text(_ORDER_PLUGIN)
    tests = [t for t in module.tests if (into / t.split("::")[0]).exists()]
    deselect = [arg for test in module.skip for arg in ("--deselect", test)]
    # A mutant that makes a loop spin (a chunk position that never advances) would hold
    # its child until mutmut's CPU limit, 15 times the tests' own time (12 minutes for
    # dispatch.py); pytest-timeout fails the test that hangs after TEST_TIMEOUT seconds, so
    # the mutant is killed at once. No test of a list comes near it unmutated.
    pytest_args = ["-p", "no:cacheprovider", "-p", "mutation_order", "-x", "-q"]
    pytest_args += ["--timeout", str(TEST_TIMEOUT), "--timeout-method", "thread", *deselect]
    pyproject = (into / "pyproject.toml").read_text()
    pyproject = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", pyproject)
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["dripline", "sender"]\n'
        f'only_mutate = ["{module.path}"]\n'
        'also_copy = ["scheduler.py", "campaigns", "templates", "docs", "mutation_order.py"]\n'
        f"pytest_add_cli_args_test_selection = {tests!r}\n"
        f"pytest_add_cli_args = {pytest_args!r}\n"
        "use_git_change_detection = false\n"
    ).replace("'", '"')
    (into / "pyproject.toml").write_text(pyproject)


@dataclass
class Result:
    name: str
    statuses: dict[str, str]  # mutant name -> mutmut status
    seconds: float
    diffs: dict[str, str]
    capped: bool = False  # stopped at --timeout: some mutants were never tried

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.statuses.values() if s in statuses)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _run_mutmut(command: list[str], scratch: Path, env: dict[str, str], timeout: float) -> bool:
    """Run mutmut within ``timeout`` seconds; False when it was stopped at the cap.

    mutmut forks a child per mutant: it runs in its own process group, so stopping it at
    the cap stops those children too. Its output goes to ``mutmut.log`` in the scratch copy
    (``tail -f`` it to follow a long run).
    """
    log_path = scratch / "mutmut.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            return False
        finally:  # this script interrupted (Ctrl-C, SIGTERM): leave no mutmut behind
            if process.poll() is None:
                _stop_group(process)
    if returncode != 0:  # e.g. the unmutated tests fail, an --only name matches nothing
        output = log_path.read_text(errors="replace")
        tail = [line[-200:] for line in output.strip().splitlines()[-8:]]
        print(f"mutmut exited {returncode}:", *tail, sep="\n  ")
        # No table: a row of zeros would read as a measured 0%.
        raise SystemExit(f"Error: mutmut failed (exit {returncode}), so nothing was measured")
    return True


_POSTGRES_ENV = "DRIPLINE_TEST_POSTGRES_URL"
_SCHEMA = "dripline_mutation"


def _own_postgres_schema(env: dict[str, str], module: str) -> None:
    """Point the PostgreSQL tests at a schema of their own in the test database.

    The tests drop and create their tables at each start: run beside the test suite (or
    another checkout's tests) on the same database, the two would wreck each other's
    tables and count false kills. A schema (search_path) keeps them apart without
    needing the right to create a database. One test still reaches across: the fast
    writer's lost-session test ends every other session of the database, so do not
    measure ``fastwrite`` while the suite runs on the same database.
    """
    url = env.get(_POSTGRES_ENV)
    if not url:
        return
    # One schema per module: two modules measured at once (two terminals) keep apart too.
    schema = f"{_SCHEMA}_{module}"
    from sqlalchemy import create_engine, text  # a dripline dependency

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    finally:
        engine.dispose()
    separator = "&" if "?" in url else "?"
    env[_POSTGRES_ENV] = f"{url}{separator}options=-csearch_path%3D{schema}"


def measure(
    name: str, *, max_children: int, timeout: float, keep: bool, only: Sequence[str] = ()
) -> Result:
    module = MODULES[name]
    scratch = Path(tempfile.mkdtemp(prefix=f"dripline-mutation-{name}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    # Tests that start Python subprocesses (claim workers, `dripline run`) import the
    # mutated copy too; the mutant to switch on travels in mutmut's environment variable.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(scratch / "mutants"), env.get("PYTHONPATH", "")) if p
    )
    _own_postgres_schema(env, name)
    started = time.monotonic()
    try:
        _scratch_copy(module, scratch)
        # Made before mutmut starts: Python never looks again into a path entry that was
        # missing at start-up, and PYTHONPATH names this one.
        (scratch / "mutants").mkdir()
        mutmut = [sys.executable, "-m", "mutmut"]
        run = [*mutmut, "run", "--max-children", str(max_children), *only]
        print(f"{name}: mutmut running in {scratch} (log: mutmut.log), cap {timeout:.0f} s")
        finished = _run_mutmut(run, scratch, env, timeout)
        if not finished:
            print(f"{name}: stopped at the {timeout:.0f} s cap; untried mutants are counted")
        listing = subprocess.run(
            [*mutmut, "results", "--all", "true"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        statuses = {
            m["name"]: m["status"] for line in listing.splitlines() if (m := _LINE.match(line))
        }
        unkilled = [m for m, status in statuses.items() if status != "killed"]
        shown = subprocess.run(
            [sys.executable, "-c", _SHOW],
            cwd=scratch,
            env=env,
            input=json.dumps(unkilled),
            capture_output=True,
            text=True,
            check=False,
        )
        diffs = {
            mutant: "\n".join(
                line
                for line in diff.splitlines()
                if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
            )
            for mutant, diff in (json.loads(shown.stdout or "{}")).items()
        }
        return Result(name, statuses, time.monotonic() - started, diffs, not finished)
    finally:
        if keep:
            print(f"{name}: scratch copy kept at {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _revision() -> str:
    """The commit measured, marked when the working tree has changes on top of it."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    return commit.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


_SQL_WORD = re.compile(
    r"\b(SELECT|UPDATE|INSERT|DELETE|WHERE|FROM|JOIN|SET|VALUES|AND|OR|IN|ON|NULL|NOT|ANY|AS|"
    r"BEGIN|COMMIT|ROLLBACK)\b"
)
_SQL_CASE_AUTO = "SQL keywords and unquoted names are case-insensitive; quoted values unchanged"


def _sql_case_only(diff: str) -> bool:
    """True when a mutant only changed the letter case of SQL text, outside quoted values."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    if not removed or len(removed) != len(added):
        return False
    for old, new in zip(removed, added, strict=True):
        if old == new or not _SQL_WORD.search(old):
            return False
        old_parts, new_parts = old.split("'"), new.split("'")
        if len(old_parts) != len(new_parts):
            return False
        for n, (a, b) in enumerate(zip(old_parts, new_parts, strict=True)):
            # Odd parts are inside '...' (SQL values): those must not change at all.
            if (a != b) if n % 2 else (a.lower() != b.lower()):
                return False
    return True


def why_equivalent(mutant: str, diff: str) -> str | None:
    """The reason a surviving mutant cannot be told from the original, if it is known."""
    if mutant in EQUIVALENT:
        return EQUIVALENT[mutant]
    return _SQL_CASE_AUTO if _sql_case_only(diff) else None


def _row(result: Result) -> tuple[str, ...]:
    surviving = [m for m, s in result.statuses.items() if s == "survived"]
    equivalent = [m for m in surviving if why_equivalent(m, result.diffs.get(m, ""))]
    survived = [m for m in surviving if m not in equivalent]
    killed = result.count("killed")
    timed_out = result.count("timeout")
    no_test = result.count("no tests")  # no selected test reaches the mutated function
    untried = result.count("not checked")  # left when the run stopped at the cap
    other = len(result.statuses) - killed - timed_out - len(survived) - len(equivalent)
    other -= no_test + untried  # suspicious, segfault...: counted against the score
    counted = len(result.statuses) - len(equivalent)
    score = 100.0 * (killed + timed_out) / counted if counted else 0.0
    return (
        MODULES[result.name].path,
        str(len(result.statuses)),
        str(killed),
        str(len(survived)),
        str(timed_out),
        str(len(equivalent)),
        str(no_test),
        str(untried) + (" (cap)" if result.capped else ""),
        str(other),
        f"{score:.0f}%",
        # Of the mutants tried (a run stopped at the cap leaves some untried).
        f"{100.0 * (killed + timed_out) / tried:.0f}%" if (tried := counted - untried) else "-",
        f"{result.seconds:.0f}",
    )


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above 0, or a clear error."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "module", nargs="*", metavar="MODULE", help=f"one or more of {', '.join(MODULES)}, all"
    )
    parser.add_argument("--list", action="store_true", help="show the modules and their tests")
    parser.add_argument(
        "--max-children",
        type=_positive(int),
        default=1,
        help="mutants tested at once (default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=1800,
        help="seconds per module at most (default 1800)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies")
    parser.add_argument("--only", nargs="+", default=(), help="only these mutant names")
    args = parser.parse_args()
    # SIGTERM ends this script like Ctrl-C does, so mutmut's process group is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.list:
        for name, module in MODULES.items():
            print(f"{name:10} {module.path:28} {' '.join(module.tests)}")
            for test in module.skip:
                print(f"{'':10} {'':28} left out for time: {test}")
        return

    unknown = [m for m in args.module if m not in (*MODULES, "all")]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)} (see --list)")
    wanted = args.module or ["all"]
    names = list(MODULES) if "all" in wanted else list(dict.fromkeys(wanted))
    commit = _revision()
    begun = datetime.now(UTC)
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results = []
    for n in names:
        result = measure(
            n, max_children=args.max_children, timeout=args.timeout, keep=args.keep, only=args.only
        )
        results.append(result)
        # Each row as soon as it is known (a long run stopped later keeps what it measured).
        load_now = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{n} done at {datetime.now(UTC):%H:%M} UTC, load {load_now}: {_row(result)}")
        sys.stdout.flush()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{begun:%Y-%m-%d %H:%M}-{datetime.now(UTC):%H:%M} UTC, commit {commit}, "
        f"{os.cpu_count()} cores, load average (1, 5, 15 min) {load_before} at the start, "
        f"{load} at the end"
    )
    args_text = " ".join(sys.argv[1:])
    at_once = "one mutant" if args.max_children == 1 else f"{args.max_children} mutants"
    print(f"command: python bench/mutation.py {args_text} (mutmut, {at_once} at a time)")
    header = ("module", "mutants", "killed", "survived", "timed out", "equivalent",
              "no test", "untried", "other", "score", "of tried", "seconds")  # fmt: skip
    _table([header, *(_row(r) for r in results)])
    for result in results:
        for test in MODULES[result.name].skip:
            print(f"{MODULES[result.name].path}: left out for time: {test}")
    equivalents = [
        (_pretty(mutant), _changed_line(r.diffs.get(mutant, "")), reason)
        for r in results
        for mutant, status in r.statuses.items()
        if status == "survived" and (reason := why_equivalent(mutant, r.diffs.get(mutant, "")))
    ]
    if equivalents:
        print("\nEquivalent mutants (not counted):\n")
        _table([("mutant", "changed to", "why no test can tell"), *equivalents])
    for result in results:
        prefix = MODULES[result.name].path.removesuffix(".py").replace("/", ".")
        for mutant in EQUIVALENT:
            untried = result.statuses.get(mutant) == "not checked"  # the cap, or --only
            if mutant.startswith(prefix + ".") and result.statuses.get(mutant) != "survived":
                if untried:
                    continue
                now = result.statuses.get(mutant, "no such mutant now")
                print(f"\nEQUIVALENT lists {mutant}, but it is {now}: update the list")
        for mutant, diff in result.diffs.items():
            if result.statuses[mutant] != "not checked" and not why_equivalent(mutant, diff):
                print(f"\n{mutant} ({result.statuses[mutant]})\n{diff}")


def _pretty(mutant: str) -> str:
    """``dripline.tokens.xǁTokenSignerǁsign__mutmut_4`` -> ``tokens: TokenSigner.sign #4``."""
    module, _, rest = mutant.rpartition(".")
    function, _, number = rest.rpartition("__mutmut_")
    function = function.removeprefix("x_").removeprefix("xǁ").replace("ǁ", ".", 1).rstrip("ǁ")
    return f"{module.rpartition('.')[2]}: {function} #{number}"


def _changed_line(diff: str) -> str:
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+")]
    return f"`{added[0]}`".replace("|", "\\|") if added else "(see mutmut show)"


def _table(rows: list[tuple[str, ...]]) -> None:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
