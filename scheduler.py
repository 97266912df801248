"""The dripline timetable: ``python scheduler.py`` is ``dripline run``.

One APScheduler interval job claims due deliveries from the store, renders them
through the per-step fast path and hands them to the configured sender. (The
store and the dispatch job arrive with the timetable issue; until then this
entry point runs the same CLI.)
"""

from __future__ import annotations

import sys

from dripline.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
