#!/usr/bin/env python3
"""Checks an analyze report's figures as a reader needs them: every SVG parses as XML, has a
title, numbered ticks and a label on both axes, never the text 'nan' or 'inf' as a number;
heatmaps have a colour bar with numbers, line plots one legend entry per head, the frontier
labelled points; index.html shows every figure file and no missing one.
Usage: check_report_figures.py REPORT_DIR HEADS [--frontier]"""
import os
import re
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def classes(el):
    return (el.get("class") or "").split()


def texts(root, group, cls):
    out = []
    for g in root.iter():
        if group in classes(g):
            out += [e.text or "" for e in g.iter() if cls in classes(e)]
    return out


def check(path, heads):
    errors = []
    raw = open(path, encoding="utf-8").read()
    root = ET.fromstring(raw)
    if root.tag != NS + "svg":
        errors.append("root is not <svg>")
    if re.search(r"\b(nan|inf)\b", raw, re.IGNORECASE):
        errors.append("'nan' or 'inf' written")
    if not [e for e in root.iter() if "title" in classes(e) and (e.text or "").strip()]:
        errors.append("no title")
    for axis in ("x-axis", "y-axis"):
        ticks = texts(root, axis, "tick-label")
        if len(ticks) < 2 or not all(re.fullmatch(r"-?[0-9.]+(e[-+][0-9]+)?", t) for t in ticks):
            errors.append(f"{axis}: numbered ticks expected, got {ticks}")
        if not [t for t in texts(root, axis, "axis-label") if t.strip()]:
            errors.append(f"{axis}: no label")
    name = os.path.basename(path)
    if name == "density_map.svg" or name.startswith("mass_"):
        bar = texts(root, "colorbar", "tick-label")
        if len(bar) < 2 or not texts(root, "colorbar", "axis-label"):
            errors.append(f"colour bar with ticks and a label expected, got {bar}")
    if name.startswith("recall_layer"):
        entries = texts(root, "legend", "legend-label")
        if len(entries) != heads or not all(e.startswith("head ") for e in entries):
            errors.append(f"{heads} legend entries 'head N (...)' expected, got {entries}")
    if name == "frontier.svg" and not texts(root, "points", "point-label"):
        errors.append("no labelled points")
    return [f"{path}: {e}" for e in errors]


def main():
    report, heads = sys.argv[1], int(sys.argv[2])
    figures = sorted(f for f in os.listdir(os.path.join(report, "figures")) if f.endswith(".svg"))
    errors = []
    if not figures:
        errors.append("no SVG figures")
    if ("--frontier" in sys.argv) != ("frontier.svg" in figures):
        errors.append("frontier.svg expected" if "--frontier" in sys.argv else "unexpected frontier.svg")
    for f in figures:
        errors += check(os.path.join(report, "figures", f), heads)
    html = open(os.path.join(report, "index.html"), encoding="utf-8").read()
    shown = set(re.findall(r'src="figures/([^"]+)"', html))
    if shown != set(figures):
        errors.append(f"index.html shows {sorted(shown)}, figures/ holds {figures}")
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
