"""The benchmarks' record of a measurement: one JSON line, printed, and appended to OUT/NAME
when an output folder is given."""
import json
import os


def log_line(out, name, rec):
    print(json.dumps(rec), flush=True)
    if out:
        with open(os.path.join(out, name), "a") as f:
            f.write(json.dumps(rec) + "\n")
