#!/usr/bin/env python3
"""One-off check of JSON mode's outputs with the `jsonschema` PyPI package (format checks on).

    EDGEAI_JSON_DUMP=/tmp/json.jsonl swift test -c release --filter JSONModeModelTests
    python3 Tests/json-mode-check.py /tmp/json.jsonl

Each line of the dump is {"case", "temperature", "schema" (null for json_object), "output"}.
Prints one line per output and the validity rate; exits 1 when any output is invalid.
"""
import json
import sys

import jsonschema


def main(path):
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    total = valid = 0
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        rec = json.loads(line)
        schema = rec["schema"] if rec["schema"] is not None else {"type": "object"}
        total += 1
        errors = list(jsonschema.Draft202012Validator(schema, format_checker=checker).iter_errors(rec["output"]))
        ok = not errors
        valid += ok
        print(f"{'ok ' if ok else 'BAD'} {rec['case']:<12} t={rec['temperature']:<4} {json.dumps(rec['output'])[:100]}")
        for e in errors:
            print("    ", e.message)
    print(f"valid: {valid}/{total}")
    return 0 if valid == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
