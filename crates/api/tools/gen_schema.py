#!/usr/bin/env python3
"""Generates crates/api/src/schema/generated.rs: every Kubernetes API type as data — its
fields' protobuf numbers, JSON names and types, and the merge metadata upstream declares on
the Go types (`+patchStrategy`, `+patchMergeKey`, `+listType`, `+listMapKey`, `+mapType`,
`+structType`). The protobuf codec, strategic merge patch and server-side apply all read it.

Inputs: the k8s-pb crate's generated prost source (field numbers and types; from the cargo
registry) and the OpenAPI v3 schemas a running `rkube server` serves (JSON field names, from
k8s-openapi). Run by hand when k8s-pb or k8s-openapi changes:

    python3 crates/api/tools/gen_schema.py K8S_PB_SRC_DIR OPENAPI_DIR > crates/api/src/schema/generated.rs

where OPENAPI_DIR holds the JSON documents of /openapi/v3/<group-version>.
"""
import json
import os
import re
import sys

src, openapi_dir = sys.argv[1], sys.argv[2]

# JSON property names of every schema, by schema name.
props = {}
for f in os.listdir(openapi_dir):
    doc = json.load(open(os.path.join(openapi_dir, f)))
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        props[name.lower()] = list(schema.get("properties", {}).keys())

# Field names of types no served OpenAPI document describes (camel case loses Go's
# initialisms there).
JSON_NAMES = {
    "client_cidr": "clientCIDR",
    "server_address_by_client_cid_rs": "serverAddressByClientCIDRs",
    "u_id": "uid",
    "pod_uid": "podUID",
    "service_account_uid": "serviceAccountUID",
    "node_id": "nodeID",
    "api_server_id": "apiServerID",
    "share_id": "shareID",
}

def schema_name(module):
    m = module.replace("apiextensions_apiserver", "apiextensions-apiserver").replace("kube_aggregator", "kube-aggregator")
    return "io.k8s." + m

def norm(s):
    return re.sub(r"[^a-z0-9]", "", s.lower())

def camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])

def resolve(module, path):
    """Absolute dotted message name of a Rust type path seen in `module`."""
    parts = module.split(".")
    segs = path.split("::")
    while segs and segs[0] == "super":
        segs.pop(0)
        parts.pop()
    return ".".join(parts + segs)

messages = {}
struct_atomic = {}
field_re = re.compile(r'#\[prost\((.*?)tag = "(\d+)"\)\]')
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(root, f), src)
        module = os.path.dirname(rel).replace(os.sep, ".")
        if f != "mod.rs":
            module = (module + "." if module else "") + f[:-3]
        raw_lines = open(os.path.join(root, f)).read().split("\n")
        # Join field declarations rustfmt split over several lines (long generic types).
        lines = []
        for line in raw_lines:
            last = lines[-1].strip() if lines else ""
            if last.startswith("pub ") and not last.startswith("pub struct") and (last.count("<") > last.count(">") or last.endswith(":")):
                lines[-1] = lines[-1].rstrip() + (" " if last.endswith(":") else "") + line.strip()
            else:
                lines.append(line)
        current = None
        pending = None
        markers = {}
        for line in lines:
            s = line.strip()
            m = re.match(r"/// \+(patchStrategy|patchMergeKey|listType|listMapKey|mapType|structType)=(\S+)$", s)
            if m:
                markers.setdefault(m.group(1), []).append(m.group(2))
                continue
            if s.startswith("#[prost(") or s.startswith("pub ") or s.startswith("}"):
                pass
            elif not s.startswith("///") and not s.startswith("#["):
                markers = {}
            m = re.match(r"pub struct (\w+) \{", s)
            if m:
                current = (module + "." + m.group(1), [])
                struct_atomic[current[0]] = markers.get("structType") == ["atomic"]
                markers = {}
                continue
            if current is None:
                continue
            if s == "}":
                messages[current[0]] = current[1]
                current = None
                continue
            m = field_re.search(s)
            if m:
                pending = (m.group(1).strip().rstrip(","), int(m.group(2)), markers)
                markers = {}
                continue
            m = re.match(r"pub (r#)?(\w+): (.*),$", s)
            if m and pending:
                attrs, tag, field_markers = pending
                pending = None
                rust_name, rust_type = m.group(2), m.group(3)
                repeated = "repeated" in attrs
                if attrs.startswith("btree_map"):
                    key, value = re.search(r'btree_map = "(\w+), (\w+)"', attrs).groups()
                    kind = "map"
                    target = None
                    if value == "message":
                        inner = re.search(r"BTreeMap<[^,]+,\s*([^,>]+),?\s*>$", rust_type).group(1).strip()
                        target = resolve(module, inner)
                    value_kind = value
                else:
                    kind = attrs.split(",")[0].split(" ")[0].strip()
                    value_kind = None
                    target = None
                    if kind == "message":
                        inner = re.search(r"<([^<>,]*),?\s*>+$", rust_type).group(1).strip()
                        target = resolve(module, inner)
                current[1].append((tag, rust_name, kind, repeated, target, value_kind, field_markers))

out = []
out.append("//! Generated by `crates/api/tools/gen_schema.py`: every Kubernetes API type (field numbers")
out.append("//! and merge markers from k8s-pb, JSON names from k8s-openapi). Do not edit.")
out.append("")
out.append("use super::{Field, Kind, ListType, Message, Strategy};")
out.append("")
out.append("/// Every message, sorted by name.")
out.append("pub static MESSAGES: &[Message] = &[")
# Go structs embedded with `json:",inline"` (Volume's VolumeSource, Probe's handler, ...)
# are fields of their own on the wire but spread among the parent's JSON properties, and
# have no OpenAPI schema of their own: their JSON names come from the parent's.
inline = set()          # (message, tag) of inline fields
inherited = {}          # inline message -> JSON property names of a parent
for name, fields in messages.items():
    names = props.get(schema_name(name).lower(), [])
    if not names:
        continue
    parent = {norm(p) for p in names}
    for tag, rust_name, kind, repeated, target, value_kind, mk in fields:
        if kind != "message" or repeated or norm(rust_name) in parent or target not in messages:
            continue
        inner = [f[1] for f in messages[target]]
        if inner and sum(norm(n) in parent for n in inner) * 2 >= len(inner):
            inline.add((name, tag))
            inherited.setdefault(target, []).extend(names)

for name in sorted(messages):
    fields = messages[name]
    if fields is None:
        continue
    names = props.get(schema_name(name).lower(), []) or inherited.get(name, [])
    by_norm = {norm(p): p for p in names}
    entries = []
    for tag, rust_name, kind, repeated, target, value_kind, mk in fields:
        json_name = by_norm.get(norm(rust_name)) or JSON_NAMES.get(rust_name) or camel(rust_name)
        if kind == "map":
            if value_kind == "message":
                k = f'Kind::Map(&Kind::Message("{target}"))'
            else:
                k = {"string": "Kind::Map(&Kind::String)", "bytes": "Kind::Map(&Kind::Bytes)"}[value_kind]
        elif kind == "message":
            k = f'Kind::Message("{target}")'
        else:
            k = {"string": "Kind::String", "bytes": "Kind::Bytes", "bool": "Kind::Bool", "int32": "Kind::Int32",
                 "int64": "Kind::Int64", "double": "Kind::Double", "float": "Kind::Float"}[kind]
        extra = ""
        strategy = mk.get("patchStrategy", [None])[-1]
        if strategy:
            variant = {"merge": "Merge", "replace": "Replace", "retainKeys": "RetainKeys", "merge,retainKeys": "MergeRetainKeys"}[strategy]
            extra += f", strategy: Strategy::{variant}"
        if "patchMergeKey" in mk:
            extra += f', merge_key: Some("{mk["patchMergeKey"][-1]}")'
        list_type = mk.get("listType", [None])[-1]
        if list_type:
            extra += f", list_type: ListType::{list_type.capitalize()}"
        if "listMapKey" in mk:
            extra += ", map_keys: &[" + ", ".join(f'"{k}"' for k in mk["listMapKey"]) + "]"
        if mk.get("mapType") == ["atomic"]:
            extra += ", atomic: true"
        if (name, tag) in inline:
            extra += ", inline: true"
        entries.append(f'Field {{ tag: {tag}, json: "{json_name}", kind: {k}, repeated: {"true" if repeated else "false"}{extra}, ..Field::PLAIN }}')
    atomic = "true" if struct_atomic.get(name) else "false"
    out.append(f'    Message {{ name: "{name}", atomic: {atomic}, fields: &[' + ", ".join(entries) + "] },")
out.append("];")
print("\n".join(out))
