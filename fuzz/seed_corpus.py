#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from the test vectors and hand-written
examples of each input format: python3 fuzz/seed_corpus.py. Seeds are named seed-*; what a
fuzzer run adds lives in fuzz/work/ and is not committed."""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "protocol", "test-vectors")


def add(target, name, data):
    path = os.path.join(HERE, "corpus", target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def vectors(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


def request_text(method, path, query, headers, body=b""):
    head = f"{method}\n{path}\n{query}\n" + "".join(f"{k}: {v}\n" for k, v in headers.items())
    return head.encode() + b"\n" + body


def wkp_request():
    signing = vectors("signing.json")
    for case in signing["positive"] + signing["negative"]:
        r = case["request"]
        add("wkp_request", case["name"],
            request_text(r["method"], r["path"], r["query"], r["headers"], bytes.fromhex(r["body_hex"])))


def identifiers():
    for i, text in enumerate([
        "kv", "orders-2026_a", "Kv", "-kv", "a" * 70, "kv/orders/replica-0", "kv/orders",
        "kv//replica-0", "/v1/persist/kv/orders/replica-0", "/v1/restore/kv/orders/replica-0/x",
        "/v2/flush/a/b/c", "/v1/persist/kv/%2e%2e/replica-0", '"kv"',
        '{"engine":"kv","instance":"orders","replica":"r0"}',
    ]):
        add("identifiers", str(i), text)


def segment():
    segments = vectors("segments.json")
    for case in segments["positive"] + segments["negative"]:
        add("segment", case["name"], bytes.fromhex(case["segment_hex"]))


def chain():
    def rec(kind, base, last):
        return bytes([kind]) + struct.pack(">QQ", base, last)
    for name, records in {
        "snapshot-then-deltas": [rec(0, 0, 100), rec(1, 100, 250), rec(1, 250, 300)],
        "deltas-from-empty": [rec(1, 0, 5), rec(1, 5, 6)],
        "gap": [rec(0, 0, 10), rec(1, 11, 12)],
        "overlap": [rec(0, 0, 10), rec(1, 9, 12)],
        "max": [rec(1, 2**64 - 2, 2**64 - 1), rec(3, 2**64 - 1, 2**64 - 1)],
    }.items():
        add("chain", name, b"".join(records))


def manifest():
    seg = lambda kind, base, first, last, size: {
        "id": "ab" * 32, "kind": kind, "base_seq": base, "first_seq": first, "last_seq": last, "size": size}
    entry = lambda s: dict(s, parts=[s["size"]], generation=3, committed_at=1767225600)
    add("manifest", "manifest", json.dumps({
        "wkp_version": "1.0", "version": 7, "generation": 3, "writer_closed": False, "last_seq": 250,
        "chain": [entry(seg("snapshot", 0, 0, 100, 4096)), entry(seg("delta", 100, 101, 250, 512))],
        "created_at": 1767225600, "put_id": "p-1"}))
    add("manifest", "commit", json.dumps({"segment": seg("delta", 1, 2, 2, 10), "parts": [4, 6]}))
    limits = {"max_inline_bytes": 1, "max_response_bytes": 1, "max_segment_bytes": 1, "max_parts": 1,
              "presign_upload": True, "presign_download": True}
    add("manifest", "plan", json.dumps({
        "wkp_version": "1.0", "subtree": {"engine": "kv", "instance": "orders", "replica": "r0"},
        "manifest_version": 7, "generation": 4, "claimed": True, "previous_writer_closed": False,
        "last_seq": 250, "chain": [dict(seg("snapshot", 0, 0, 250, 4096), generation=3, download=[
            {"offset": 0, "length": 4096, "method": "GET", "url": "https://s3/x", "headers": {"a": "b"},
             "expires_at": 1}])],
        "superseded": [dict(seg("delta", 250, 251, 260, 9), parts=[9], generation=2, endpoint="persist",
                            kept_at=5)],
        "limits": limits, "retention": {"grace_seconds": 900}, "valid_until": 1767226500}))
    add("manifest", "persisted", json.dumps({
        "wkp_version": "1.0", "outcome": "committed", "manifest_version": 8, "generation": 3,
        "last_seq": 260, "chain_length": 2, "chain_bytes": 4608, "snapshot_advised": False,
        "writer_closed": False, "limits": limits}))
    add("manifest", "error", json.dumps({"error": {"code": "chain_gap", "message": "m", "requirement": "CHAIN-2"}}))


OPERATIONS = ["CreateTable", "DescribeTable", "ListTables", "DeleteTable", "UpdateTimeToLive",
              "DescribeTimeToLive", "PutItem", "GetItem", "DeleteItem", "UpdateItem", "Query", "Scan",
              "BatchWriteItem", "BatchGetItem", "TransactWriteItems", "TransactGetItems"]


def dynamo_request():
    def req(op, body):
        return bytes([OPERATIONS.index(op)]) + json.dumps(body).encode()
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"N": "12.5"}, "l": {"L": [{"S": "x"}]},
            "m": {"M": {"k": {"NS": ["1", "2"]}}}, "b": {"B": "AAE="}, "ss": {"SS": ["p"]}}
    key = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    bodies = {
        "CreateTable": {"TableName": "xyz", "BillingMode": "PAY_PER_REQUEST",
                        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "B"}],
                        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}]},
        "DescribeTable": {"TableName": "tab"},
        "ListTables": {"Limit": 1},
        "DeleteTable": {"TableName": "xyz"},
        "UpdateTimeToLive": {"TableName": "tab", "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "n"}},
        "DescribeTimeToLive": {"TableName": "tab"},
        "PutItem": {"TableName": "tab", "Item": item, "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValues": "ALL_OLD"},
        "GetItem": {"TableName": "tab", "Key": key, "ProjectionExpression": "#n, l[0], m.k",
                    "ExpressionAttributeNames": {"#n": "n"}},
        "DeleteItem": {"TableName": "tab", "Key": key, "ConditionExpression": "n > :v",
                       "ExpressionAttributeValues": {":v": {"N": "1"}}},
        "UpdateItem": {"TableName": "tab", "Key": key,
                       "UpdateExpression": "SET n = n + :v, l = list_append(l, :l) ADD c :v REMOVE m.k",
                       "ExpressionAttributeValues": {":v": {"N": "1E+3"}, ":l": {"L": [{"N": "2"}]}},
                       "ReturnValues": "ALL_NEW"},
        "Query": {"TableName": "tab", "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
                  "ExpressionAttributeValues": {":p": {"S": "a"}, ":a": {"N": "-1"}, ":b": {"N": "10"}},
                  "ScanIndexForward": False, "Limit": 2},
        "Scan": {"TableName": "tab", "FilterExpression": "size(l) > :z",
                 "ExpressionAttributeValues": {":z": {"N": "0"}}, "Segment": 0, "TotalSegments": 2},
        "BatchWriteItem": {"RequestItems": {"tab": [{"PutRequest": {"Item": item}},
                                                  {"DeleteRequest": {"Key": {"pk": {"S": "b"}, "sk": {"N": "2"}}}}]}},
        "BatchGetItem": {"RequestItems": {"tab": {"Keys": [key], "ProjectionExpression": "pk"}}},
        "TransactWriteItems": {"ClientRequestToken": "tok", "TransactItems": [
            {"Put": {"TableName": "kvs", "Item": {"pk": {"S": "z"}, "v": {"N": "0.001"}}}},
            {"Update": {"TableName": "tab", "Key": key, "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"BOOL": True}}}},
            {"ConditionCheck": {"TableName": "tab", "Key": key, "ConditionExpression": "attribute_exists(pk)"}}]},
        "TransactGetItems": {"TransactItems": [{"Get": {"TableName": "tab", "Key": key}}]},
    }
    for op, body in bodies.items():
        add("dynamo_request", op, req(op, body))
    add("dynamo_request", "sequence", b"\0".join([
        req("PutItem", {"TableName": "kvs", "Item": {"pk": {"S": "q"}, "n": {"N": "9.9999999999999999999999999999999999999E+125"}}}),
        req("UpdateItem", {"TableName": "kvs", "Key": {"pk": {"S": "q"}}, "UpdateExpression": "SET n = n + n"}),
        req("Scan", {"TableName": "kvs"})]))


def expression():
    for i, (kind, text) in enumerate([
        (0, "attribute_exists(#p) AND NOT (n < :n OR s = :s)"),
        (0, "begins_with(s, :s) AND contains(ss, :s) AND size(l) >= :n"),
        (0, "n BETWEEN :neg AND :big"),
        (0, "#m.b.c IN (:s, :z) OR attribute_type(l[2][0], :s)"),
        (0, "((((n = :n))))"),
        (1, "SET n = n + :n, #l = list_append(#l, :l), m.b.c = if_not_exists(m.x, :s) REMOVE l[0] ADD ns :ns DELETE ss :ss"),
        (1, "SET n = :big + :big"),
        (1, "SET n = :tiny - :n"),
        (1, "ADD n :big"),
        (2, "pk, l[1], m.b, #s"),
        (2, "l[0][0], m.a"),
    ]):
        add("expression", str(i), bytes([kind]) + text.encode())


def number():
    for i, text in enumerate([
        "0", "-0.000", "12.50\n12.5", "1E+125\n9.9999999999999999999999999999999999999E+125",
        "1E-130\n-1E-130", "1E+126", "1E-131", "12345678901234567890123456789012345678",
        "123456789012345678901234567890123456789", "-1e5\n-99999", "+.5\n0.5", "1e9999999999999999999",
    ]):
        add("number", str(i), text)


def sigv4():
    add("sigv4", "vanilla", request_text("GET", "/", "", {
        "host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                         "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"}))
    add("sigv4", "dynamo", request_text("POST", "/", "a=1&b", {
        "host": "localhost:8000", "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.ListTables", "x-amz-date": "20150830T123600Z",
        "x-amz-content-sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target, Signature=00"}, b"{}"))


# engine/src/codec.rs and transfer.rs layouts.
def field16(b):
    return struct.pack(">H", len(b)) + b


def field32(b):
    return struct.pack(">I", len(b)) + b


def change(seq, ops):
    out = struct.pack(">QI", seq, len(ops))
    for tag, family, key, value in ops:
        out += bytes([tag]) + field16(family) + field32(key) + field32(value)
    return out


FAMILY_OPTIONS = json.dumps({"compaction": {"kind": "leveled"}, "bloom_bits_per_key": 10.0,
                             "default_ttl_seconds": None, "merge_operator": None}).encode()
ADDER_OPTIONS = json.dumps({"compaction": {"kind": "leveled"}, "bloom_bits_per_key": 10.0,
                            "default_ttl_seconds": 60, "merge_operator": "int_add"}).encode()
CHANGES = [
    change(1, [(4, b"f", b"", FAMILY_OPTIONS), (4, b"sum", b"", ADDER_OPTIONS)]),
    change(2, [(1, b"f", b"k", b"v"), (2, b"f", b"j", b""), (3, b"sum", b"n", struct.pack(">q", 5))]),
    change(3, [(5, b"f", b"", b"")]),
]


def change_record():
    for i, record in enumerate(CHANGES):
        add("change_record", str(i), record)


def engine_import():
    # Stored values: kind 1 (a value), flags 0 (no expiry, no seq), the payload: codec::encode_value.
    snapshot = b"WKVS\x01" + b"\x01" + field16(b"f") + field32(FAMILY_OPTIONS) \
        + b"\x01" + field16(b"sum") + field32(ADDER_OPTIONS) \
        + b"\x02" + field16(b"f") + field32(b"k") + field32(b"\x01\x00value") \
        + b"\x00" + struct.pack(">QQ", 7, 3)
    delta = b"WKVD\x01" + b"".join(b"\x01" + field32(c) for c in CHANGES) + b"\x00" + struct.pack(">Q", 3)
    for name, flags in (("lsm", 0), ("btree", 2)):
        add("engine_import", "snapshot-" + name, bytes([flags | 1]) + struct.pack(">Q", 7) + snapshot)
        add("engine_import", "delta-" + name, bytes([flags]) + struct.pack(">Q", 3) + delta)


for make in (wkp_request, identifiers, segment, chain, manifest, dynamo_request, expression, number,
             sigv4, change_record, engine_import):
    make()
