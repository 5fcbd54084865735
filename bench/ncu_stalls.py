#!/usr/bin/env python3
"""Where two profiled kernels stall, side by side, from Nsight Compute's source page.

Reads `ncu -i REPORT --page source --csv --print-source sass` (a report collected with
`--section SourceCounters`), takes two of its kernels by index (the page lists each launch; ncu
prints some twice), splits each kernel's warp stall samples into the producer warps' code (from
the last EXIT before the first TMA load on) and the consumers', groups them by instruction kind,
and lists the instructions with the most samples, each after the instruction before it (a
sample at a branch after an mbarrier try-wait is time spent waiting on that barrier).

  python3 bench/ncu_stalls.py source.csv --kernels 0,6 [--top 8]
"""
import argparse
import collections
import csv


def read_kernels(path):
    kernels, cur = [], None
    for row in csv.reader(open(path)):
        if row and row[0] == "Kernel Name":
            cur = {"name": row[1], "header": None, "rows": []}
            kernels.append(cur)
        elif cur is not None and cur["header"] is None:
            cur["header"] = {name: i for i, name in enumerate(row)}
        elif cur is not None:
            cur["rows"].append(row)
    return kernels


def kind(sass):
    for key, name in (("SYNCS.PHASECHK", "mbarrier wait"), ("BAR.", "named barrier"),
                      ("HGMMA", "wgmma"), ("WARPGROUP", "wgmma wait/arrive"),
                      ("UTMA", "tma"), ("LDG", "global load")):
        if key in sass:
            return name
    return "other"


def stalls(kernel):
    ix, rows = kernel["header"], kernel["rows"]
    sass = [r[ix["Source"]] for r in rows]
    first_tma = next(i for i, s in enumerate(sass) if "UTMALDG" in s)
    producer = max(i for i in range(first_tma) if "EXIT" in sass[i]) + 1
    reasons = [n for n in ix if n.startswith("stall_") and "Not Issued" not in n]
    total = collections.Counter()
    by_reason = collections.defaultdict(collections.Counter)
    top = []
    for i, r in enumerate(rows):
        samples = float(r[ix["Warp Stall Sampling (All Samples)"]] or 0)
        role = "producer" if i >= producer else "consumer"
        key = (role, kind(sass[i]) if not sass[i].lstrip("@!P0123456789 ").startswith("BRA")
               else "branch (after " + kind(sass[i - 1]) + ")")
        total[key] += samples
        for n in reasons:
            by_reason[key][n[len("stall_"):]] += float(r[ix[n]] or 0)
        top.append((samples, role, i, sass[i].strip(), sass[i - 1].strip() if i else ""))
    return total, by_reason, sorted(top, reverse=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--kernels", default="0,1", help="two indices into the page's kernels")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    kernels = read_kernels(args.csv)
    a, b = (int(x) for x in args.kernels.split(","))
    (ta, ra, topa), (tb, rb, topb) = stalls(kernels[a]), stalls(kernels[b])
    for i in (a, b):
        print(f"kernel {i}: {kernels[i]['name'][:150]}")
    print(f"\n{'role':9} {'where':38} {'kernel ' + str(a):>10} {'kernel ' + str(b):>10}  "
          "main reasons (second kernel)")
    for key in sorted(set(ta) | set(tb), key=lambda k: -tb.get(k, 0)):
        main = ", ".join(f"{n} {v:.0f}" for n, v in rb[key].most_common(3) if v)
        print(f"{key[0]:9} {key[1]:38} {ta.get(key, 0):10.0f} {tb.get(key, 0):10.0f}  {main}")
    print(f"{'total':48} {sum(ta.values()):10.0f} {sum(tb.values()):10.0f}")
    for i, top in ((a, topa), (b, topb)):
        print(f"\nkernel {i}: instructions with the most samples")
        for samples, role, line, sass, prev in top[:args.top]:
            print(f"  {samples:7.0f} {role:8} {line:5d} {sass[:60]:60} after {prev[:50]}")


if __name__ == "__main__":
    main()
