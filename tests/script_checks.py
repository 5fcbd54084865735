"""Pass/fail tally shared by the Python test scripts: a failing check prints its name, and
finish() prints the tally and exits non-zero if anything failed."""
import sys

_tally = {"passed": 0, "failed": 0}


def check(name, condition):
    if condition:
        _tally["passed"] += 1
    else:
        _tally["failed"] += 1
        print("FAIL:", name)


def finish(title):
    print(f"{title}: {_tally['passed']} passed, {_tally['failed']} failed")
    sys.exit(1 if _tally["failed"] else 0)
