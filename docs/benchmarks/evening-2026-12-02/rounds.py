import json,sys,statistics as st
from collections import defaultdict
d=json.load(open(sys.argv[1]))
ref=sys.argv[2]; key=sys.argv[3] if len(sys.argv)>3 else 'server_proc_us_per_req'
by=defaultdict(dict)
for x in [y for y in d["runs"] if isinstance(y["round"], int)]:
    by[(x['scenario'],x['round'])][x['server']]=x
for s in sorted({k[0] for k in by}):
    rounds=sorted(k[1] for k in by if k[0]==s)
    servers=sorted({sv for k in by if k[0]==s for sv in by[k]})
    print(s, key)
    for sv in servers:
        vals=[by[(s,r)][sv][key] for r in rounds if sv in by[(s,r)]]
        rat=[by[(s,r)][sv][key]/by[(s,r)][ref][key] for r in rounds if sv in by[(s,r)] and ref in by[(s,r)]]
        fb=[by[(s,r)][sv].get('foreign_busy',0) for r in rounds if sv in by[(s,r)]]
        print(f"  {sv:16s} {' '.join(f'{v:6.2f}' for v in vals)}  /{ref} {' '.join(f'{v:.2f}' for v in rat)} median {st.median(rat):.2f}  other {max(fb)*100:.0f}%")
