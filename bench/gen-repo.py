#!/usr/bin/env python3
"""Generates a git repository for the sync-check benchmark with `git fast-import`:
FILES files, COMMITS commits on main (each changes one file), and a branch `feat` that forks
BEHIND commits before main's tip and adds AHEAD commits of its own (touching other files, so the
merge is clean). Usage: gen-repo.py DIR [COMMITS FILES BEHIND AHEAD]"""
import os
import subprocess
import sys

out = sys.argv[1]
commits = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
files = int(sys.argv[3]) if len(sys.argv) > 3 else 5_000
behind = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000
ahead = int(sys.argv[5]) if len(sys.argv) > 5 else 20

subprocess.run(["git", "init", "-q", "-b", "main", out], check=True)
p = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=out, stdin=subprocess.PIPE)
w = p.stdin.write
t = 1_700_000_000


def commit(ref, mark, parent, msg, changes):
    global t
    t += 60
    msg = msg.encode()
    w(f"commit {ref}\nmark :{mark}\ncommitter Bench <bench@example.com> {t} +0000\n".encode())
    w(f"data {len(msg)}\n".encode() + msg + b"\n")
    if parent:
        w(f"from :{parent}\n".encode())
    for path, data in changes:
        data = data.encode()
        w(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")


commit("refs/heads/main", 1, None, "initial", [(f"src/{i // 100}/f{i}.txt", f"file {i}\nline 2\nline 3\n") for i in range(files)])
fork = commits - behind
for c in range(2, commits + 1):
    i = c % (files // 2)  # main touches the first half of the files
    commit("refs/heads/main", c, c - 1, f"main change {c}", [(f"src/{i // 100}/f{i}.txt", f"file {i}\nchange {c}\nline 3\n")])
parent = fork
for k in range(ahead):
    i = files // 2 + k  # feat touches the second half: a clean merge
    mark = commits + 1 + k
    commit("refs/heads/feat", mark, parent, f"feat change {k}", [(f"src/{i // 100}/f{i}.txt", f"file {i}\nfeat {k}\nline 3\n")])
    parent = mark
p.stdin.close()
if p.wait() != 0:
    sys.exit("git fast-import failed")
subprocess.run(["git", "checkout", "-q", "-f", "feat"], cwd=out, check=True)
print(f"{out}: {commits + ahead} commits, {files} files; feat is {ahead} ahead and {behind} behind main")
