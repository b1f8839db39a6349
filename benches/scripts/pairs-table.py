#!/usr/bin/env python3
"""Markdown table of benches/pair results: one row per JSON file in DIR, in the order
the pairs ran. Usage: benches/scripts/pairs-table.py DIR"""
import glob
import json
import os
import sys

rows = []
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    with open(path) as f:
        d = json.load(f)
    rows.append((os.path.getmtime(path), d))
rows.sort(key=lambda r: r[0])
print("| A | B | scenario @ rate each | A/B median | 95 % CI | quartiles | rounds | A µs/req | B µs/req | generator A/B | other CPU (max) |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for _, d in rows:
    if "ratio_median" not in d:
        print(f"| {d['a']} | {d['b']} | {d['scenario']} @ {d['rate_each']} | – | – | – | 0/{d['rounds']} | | | | |")
        continue
    other = max(r.get("foreign_busy", 0) for r in d["runs"])
    lo, hi = d["ratio_ci95"]
    print(f"| {d['a']} | {d['b']} | {d['scenario']} @ {d['rate_each']} | **{d['ratio_median']:.3f}** | "
          f"{lo:.3f}-{hi:.3f} | {d['ratio_q1']:.3f}-{d['ratio_q3']:.3f} | {d['kept']}/{d['rounds']} | "
          f"{d['a_us_per_req_median']:.2f} | {d['b_us_per_req_median']:.2f} | "
          f"{d.get('load_ratio_median', float('nan')):.3f} | {other:.0%} |")
