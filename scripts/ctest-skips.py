#!/usr/bin/env python3
"""ctest-skips.py — prints each skipped test of ctest JUnit files with its reason.

  scripts/ctest-skips.py STAGE=FILE.xml ...   (files from ctest --output-junit)

ctest prints a test's output only when it fails; a skipped test (exit 77) says why in its
output. The reason shown is the output's first line that starts with "skip" (any case), else
its last non-empty line. scripts/test.sh runs this at the end of every run. Missing files are
passed over (a stage that did not run).
"""
import os
import sys
import xml.etree.ElementTree as ET


def reason(output):
    lines = [l.strip() for l in (output or '').splitlines() if l.strip()]
    for l in lines:
        if l.lower().startswith('skip'):
            return l
    return lines[-1] if lines else '(the test printed no reason)'


def main():
    skips = []
    for arg in sys.argv[1:]:
        stage, _, path = arg.rpartition('=')
        if not os.path.exists(path):
            continue
        for case in ET.parse(path).getroot().iter('testcase'):
            if case.get('status') == 'notrun' or case.find('skipped') is not None:
                skips.append((stage, case.get('name'), reason(case.findtext('system-out'))))
    if not skips:
        print('skipped tests: none')
        return
    print(f'skipped tests ({len(skips)}) and why:')
    width = max(len(name) for _, name, _ in skips)
    for stage, name, why in skips:
        print(f'  {name:<{width}}  {why}' + (f'  [{stage}]' if stage else ''))


if __name__ == '__main__':
    main()
