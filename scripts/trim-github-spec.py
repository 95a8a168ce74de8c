#!/usr/bin/env python3
"""Trim GitHub's official OpenAPI description to the paths this project calls.

Usage: trim-github-spec.py INPUT.json OUTPUT.json

Keeps `openapi`, `info`, `servers`, the paths listed in KEEP_PATHS (all their
methods) and every `#/components/...` entry they reach transitively through
`$ref`. Everything else (notably the top-level `webhooks` / `x-webhooks`, on
which Prism dies) is dropped. The full spec makes Prism start in 8-18 s and use
~300 MB; the trimmed one starts in ~1 s.

Some of GitHub's own response examples lack properties their schema marks as
required (e.g. `full-repository` has no `language`, `pull-request`'s
`requested_teams[]` no `type`). Prism started with `--errors` validates the
example it returns and answers 500 instead, so the kept examples are repaired:
each missing required property is added (null when nullable, else the first
enum value, else an empty value of its type). Every repair is printed.
"""

import json
import os
import sys

KEEP_PATHS = [
    "/repos/{owner}/{repo}/check-runs",
    "/repos/{owner}/{repo}/check-runs/{check_run_id}",
    "/repos/{owner}/{repo}/statuses/{sha}",
    "/repos/{owner}/{repo}/deployments",
    "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
    "/repos/{owner}/{repo}/commits/{ref}/check-runs",
    "/repos/{owner}/{repo}/pulls/{pull_number}",
    "/repos/{owner}/{repo}",
]

KEEP_TOP_LEVEL = ["openapi", "info", "servers"]


def unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def component_key(ref):
    """`#/components/schemas/foo/properties/x` -> ("schemas", "foo")."""
    if not ref.startswith("#/components/"):
        raise SystemExit(f"trim-github-spec: unsupported $ref (not local to components): {ref}")
    parts = [unescape(p) for p in ref[len("#/components/"):].split("/")]
    if len(parts) < 2:
        raise SystemExit(f"trim-github-spec: $ref too short: {ref}")
    return parts[0], parts[1]


def collect_refs(node, out):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.append(ref)
        for value in node.values():
            collect_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            collect_refs(value, out)


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        section, name = component_key(node["$ref"])
        node = spec["components"][section][name]
    return node


def placeholder(spec, schema):
    schema = resolve(spec, schema)
    if schema.get("nullable"):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        value = {}
        fill_required(spec, schema, value, "", [])
        return value
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": []}.get(kind)


def fill_required(spec, schema, example, where, repairs):
    """Add missing required properties to `example` (in place), recursively."""
    schema = resolve(spec, schema)
    if not isinstance(schema, dict) or example is None:
        return
    for sub in schema.get("allOf", []):
        fill_required(spec, sub, example, where, repairs)
    if isinstance(example, list) and "items" in schema:
        for i, item in enumerate(example):
            fill_required(spec, schema["items"], item, f"{where}[{i}]", repairs)
        return
    if not isinstance(example, dict):
        return
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in example and name in props:
            example[name] = placeholder(spec, props[name])
            repairs.append(f"{where}.{name}={json.dumps(example[name])}")
    for name, value in example.items():
        if name in props:
            fill_required(spec, props[name], value, f"{where}.{name}", repairs)


def repair_examples(spec, paths):
    """Make the kept response examples satisfy their schemas' `required` lists."""
    for path, ops in paths.items():
        for method, op in ops.items():
            if not isinstance(op, dict):
                continue
            for code, response in op.get("responses", {}).items():
                response = resolve(spec, response)
                for media in response.get("content", {}).values():
                    if "schema" not in media:
                        continue
                    for example in media.get("examples", {}).values():
                        ref = example.get("$ref", "inline")
                        example = resolve(spec, example)
                        repairs = []
                        fill_required(spec, media["schema"], example.get("value"), "", repairs)
                        for r in repairs:
                            print(f"trim-github-spec: repaired {ref} ({method.upper()} {path} {code}): {r}",
                                  file=sys.stderr)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    with open(src, encoding="utf-8") as f:
        spec = json.load(f)

    paths = spec.get("paths", {})
    missing = [p for p in KEEP_PATHS if p not in paths]
    if missing:
        raise SystemExit(f"trim-github-spec: paths not in {src}: {missing}")

    out = {k: spec[k] for k in KEEP_TOP_LEVEL if k in spec}
    out["paths"] = {p: paths[p] for p in KEEP_PATHS}
    # Repairs happen in the loaded spec before components are copied, so the
    # copied examples carry them.
    repair_examples(spec, out["paths"])

    components = spec.get("components", {})
    kept = {}
    pending = []
    collect_refs(out["paths"], pending)
    while pending:
        section, name = component_key(pending.pop())
        if name in kept.get(section, {}):
            continue
        try:
            value = components[section][name]
        except KeyError:
            raise SystemExit(f"trim-github-spec: dangling $ref #/components/{section}/{name}")
        kept.setdefault(section, {})[name] = value
        collect_refs(value, pending)

    # Keep the spec's own section order for a stable, diffable output.
    out["components"] = {
        section: {n: kept[section][n] for n in components[section] if n in kept[section]}
        for section in components
        if section in kept
    }

    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, dst)
    count = sum(len(v) for v in out["components"].values())
    print(f"trim-github-spec: {len(KEEP_PATHS)} paths, {count} components -> {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
