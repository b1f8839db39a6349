#!/usr/bin/env python3
"""File-level `crate::` import graph of one crate (lib.rs re-exports resolved to the
module that defines the name; comments and `#[cfg(test)]` tails ignored). Prints the
cycles (strongly connected components); `-a` prints every edge, `-v` the names behind
each edge of a cycle. Usage: benches/scripts/module-layers.py net|runtime [-a] [-v]"""
import os,re,sys
root=sys.argv[1]; verbose='-v' in sys.argv
files={}
for d,_,fs in os.walk(root+'/src'):
    for f in fs:
        if f.endswith('.rs'):
            p=os.path.join(d,f); rel=os.path.relpath(p,root+'/src')[:-3]
            parts=rel.split('/')
            if parts[-1] in('mod','lib'): parts=parts[:-1]
            files['::'.join(parts)]=p
def body(p):
    out=[]
    for l in open(p):
        s=l.strip()
        if s.startswith('#[cfg(test)]'): break
        if s.startswith('//'): continue
        out.append(re.sub(r'//.*','',l))
    return ''.join(out)
# re-exports at the crate root: name -> module
reexp={}
libtxt=body(files['']) if '' in files else ''
for r in re.finditer(r'pub use ([a-z_0-9:]+)::\{([^}]*)\};',libtxt,re.S):
    for n in r.group(2).split(','):
        n=n.strip().split(' as ')[-1].strip()
        if n: reexp[n]=r.group(1)
for r in re.finditer(r'pub use ([a-z_0-9:]+)::([A-Za-z_0-9]+);',libtxt):
    reexp[r.group(2)]=r.group(1)
def resolve(d):
    segs=d.split('::')
    if len(segs)==1 and segs[0] in reexp: segs=reexp[segs[0]].split('::')+segs
    for i in range(len(segs),0,-1):
        c='::'.join(segs[:i])
        if c in files: return c
    return None
g={}; why={}
for m,p in files.items():
    if m=='' or m.endswith('tests') or '::tests' in m: continue
    txt=body(p)
    isdir=p.endswith('mod.rs'); base=m if isdir else (m.rsplit('::',1)[0] if '::' in m else '')
    refs=[r.group(1) for r in re.finditer(r'crate::((?:[a-z_0-9]+::)*[a-zA-Z_0-9]+)(?!::\{)',txt)]
    for r in re.finditer(r'crate::((?:[a-z_0-9]+::)*)\{([^;]*?)\}',txt,re.S):
        pre=r.group(1)
        for it in re.split(r',',re.sub(r'\{[^}]*\}','',r.group(2))):
            it=it.strip()
            if it: refs.append(pre+it.split(' as ')[0].strip())
    refs+=[(base+'::' if base else '')+r.group(1) for r in re.finditer(r'(?<![a-z_:])self::((?:[a-z_0-9]+::)*[a-zA-Z_0-9]+)',txt)]
    refs+=[((base.rsplit('::',1)[0]+'::') if '::' in base else '')+r.group(1) for r in re.finditer(r'(?<![a-z_:])super::((?:[a-z_0-9]+::)*[a-zA-Z_0-9]+)',txt)]
    for d in refs:
        b=resolve(d)
        if b is not None and b!='' and b!=m and not m.startswith(b+'::'):
            g.setdefault(m,set()).add(b); why.setdefault((m,b),set()).add(d)
idx={};low={};st=[];on=set();res=[];c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in g.get(v,()):
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: res.append(sorted(comp))
for v in list(g):
    if v not in idx: sc(v)
if '-a' in sys.argv:
    for a in sorted(g): print(a,'->',' '.join(sorted(g[a])))
for comp in res:
    print("cycle:",' '.join(comp))
    for a in comp:
        for b in sorted(x for x in g[a] if x in comp):
            print("   ",a,'->',b, ('  '+', '.join(sorted(why[(a,b)]))) if verbose else '')
print(len(res),"cycle(s)")
