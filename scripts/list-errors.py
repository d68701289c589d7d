#!/usr/bin/env python3
"""list-errors.py — prints every error message format in core/, compiler/, runtime/ and kernels/ (the
first argument of qp_error_set / fprintf(stderr) / the files' local fail helpers, string
literals joined) as a Markdown list grouped by source file: the appendix of docs/errors.md.
Usage: scripts/list-errors.py > /tmp/list.md, then paste over the appendix. A developer
script; no test needs it."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALL = re.compile(r'\b(qp_error_set|fprintf|bad|fail)\s*\(')
STR = re.compile(r'"((?:[^"\\]|\\.)*)"')


def calls(src):
    for m in CALL.finditer(src):
        i = j = m.end()
        depth = 1
        while j < len(src) and depth:
            c = src[j]
            if c == '"':
                j += 1
                while src[j] != '"':
                    j += 2 if src[j] == '\\' else 1
            elif c == '(':
                depth += 1
            elif c == ')':
                depth -= 1
            j += 1
        yield m.group(1), src[i:j - 1], src.count('\n', 0, m.start()) + 1


def main():
    pats = ['core/*.c', 'compiler/*.c', 'runtime/*.c', 'runtime/cuda/*.cu', 'kernels/*.c', 'kernels/cpu/*.c',
            'kernels/cuda/*.cu']
    files = sorted(f for p in pats for f in glob.glob(os.path.join(ROOT, p)))
    for f in files:
        src = open(f, encoding='utf-8').read()
        out = []
        for fn, args, line in calls(src):
            if fn == 'fprintf' and not args.lstrip().startswith('stderr'):
                continue
            s = ''.join(STR.findall(args))
            if not s or s.startswith('usage:') or len(s) < 8:
                continue
            s = s.replace('\\n', ' ').replace('%" PRId64 "', '%').strip()
            out.append((line, s))
        if out:
            print(f'\n### {os.path.relpath(f, ROOT)}\n')
            for line, s in out:
                print(f'- `{s}` (line {line})'.replace('``', '`'))


if __name__ == '__main__':
    main()
