#!/usr/bin/env python3
"""Independent WKP-1 reference for the test vectors, written from protocol/SPEC.md alone.

It shares no code with the Rust crate: when both agree with the vector files, an author in
any language can trust the vectors. Only the standard library is needed for signing; segment
checks also need the `zstandard` package (pip install zstandard).

    reference.py check      verify signing.json and segments.json (exit 1 on any mismatch)
    reference.py generate   rewrite both files (only when the spec deliberately changes)
    reference.py sign|verify|segment
                            one case on stdin, the answer on stdout: the programs
                            `wkp1-conformance vectors check` runs (an example in Python)
"""
import base64
import hashlib
import hmac
import json
import pathlib
import struct
import sys
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
ALGORITHM = "WKP1-HMAC-SHA256"
TOLERANCE = 300
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


# --- AUTH-2: the canonical request -------------------------------------------------------
def percent_decode(text):
    """Decodes %XX; '+' stays a plus. A '%' without two hex digits, or bytes that are not
    UTF-8, raise ValueError (the request is invalid)."""
    out, i, raw = bytearray(), 0, text.encode()
    while i < len(raw):
        if raw[i:i + 1] == b"%":
            digits = raw[i + 1:i + 3]
            if len(digits) != 2 or any(c not in b"0123456789abcdefABCDEF" for c in digits):
                raise ValueError("bad percent-encoding")
            out.append(int(digits, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8")  # strict: raises UnicodeDecodeError, a ValueError


def canonical_query(raw):
    pairs = []
    for piece in raw.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        enc = lambda s: urllib.parse.quote(percent_decode(s), safe=UNRESERVED)
        pairs.append((enc(name), enc(value)))
    # Sorted after re-encoding: the encoded text is ASCII, so this is byte order.
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_request(method, path, query, headers):
    lines = [ALGORITHM, method.upper(), path, canonical_query(query)]
    signed = sorted(
        (name.lower(), value.strip(" \t"))
        for name, value in headers.items()
        if name.lower().startswith("wkp-") and name.lower() != "wkp-signature"
    )
    lines += [f"{n}:{v}" for n, v in signed]
    return "\n".join(lines)


def signature(secret_b64, canonical):
    key = base64.b64decode(secret_b64, validate=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def verify(request, keys, now):
    """Returns None when the request is authentic, else the WKP error code."""
    headers = {k.lower(): v.strip() for k, v in request["headers"].items()}
    version = headers.get("wkp-version")
    if version is None:
        return "invalid_request"
    if version.split(".")[0] != "1":
        return "unsupported_version"
    for required in ("wkp-key-id", "wkp-timestamp", "wkp-content-sha256", "wkp-signature"):
        if required not in headers:
            return "missing_authentication"
    if headers["wkp-key-id"] not in keys:
        return "unknown_key"
    timestamp = headers["wkp-timestamp"]
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20):
        return "invalid_request"
    if abs(int(timestamp) - now) > TOLERANCE:
        return "timestamp_out_of_range"
    declared = headers["wkp-content-sha256"]
    if len(declared) != 64 or any(c not in "0123456789abcdef" for c in declared):
        return "invalid_request"
    try:
        canonical = canonical_request(request["method"], request["path"], request["query"], request["headers"])
    except ValueError:
        return "invalid_request"
    expected = signature(keys[headers["wkp-key-id"]], canonical)
    if not hmac.compare_digest(expected, headers["wkp-signature"]):
        return "signature_mismatch"
    body = bytes.fromhex(request["body_hex"])
    if hashlib.sha256(body).hexdigest() != declared:
        return "content_hash_mismatch"
    return None


# --- SEG-1..SEG-7: segments ---------------------------------------------------------------
MAGIC = b"WKP1SEG\0"
KINDS = {"snapshot": 1, "delta": 2}


def encode_header(kind, base_seq, first_seq, last_seq, version=1, compression=1, flags=0):
    return MAGIC + struct.pack(">HBBIQQQ", version, kind, compression, flags, base_seq, first_seq, last_seq)


def seal(header_and_payload):
    trailer = hashlib.sha256(header_and_payload).digest()
    return header_and_payload + trailer


def check_segment(data):
    """Returns (fields, payload, id) or raises ValueError(reason) with the spec's reason name."""
    import zstandard

    # SEG-8 (1.0.1): fewer bytes than a header and a trailer is truncated, whatever they hold.
    if len(data) < 40 + 32:
        raise ValueError("truncated")
    if data[:8] != MAGIC:
        raise ValueError("bad_magic")
    version, kind, compression, flags, base, first, last = struct.unpack(">HBBIQQQ", data[8:40])
    if version != 1:
        raise ValueError("unsupported_version")
    if kind not in (1, 2):
        raise ValueError("bad_kind")
    if compression != 1:
        raise ValueError("bad_compression")
    if flags != 0:
        raise ValueError("reserved_flags")
    if kind == 1 and (base != 0 or first != 0):
        raise ValueError("bad_sequence")
    if kind == 2 and (first != base + 1 or last < first):
        raise ValueError("bad_sequence")
    if len(data) < 40 + 4 + 32:
        raise ValueError("truncated")
    payload = data[40:-32]
    if payload[:4] != b"\x28\xb5\x2f\xfd":
        raise ValueError("not_zstd")
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        raise ValueError("trailer_mismatch")
    # The payload region must be one or more complete zstd frames and nothing else.
    plain, rest = b"", payload
    try:
        while rest:
            if rest[:4] != b"\x28\xb5\x2f\xfd":
                raise ValueError("corrupt_payload")
            frame = zstandard.ZstdDecompressor().decompressobj()
            plain += frame.decompress(rest)
            if not frame.eof:
                raise ValueError("corrupt_payload")
            rest = frame.unused_data
    except zstandard.ZstdError as exc:
        raise ValueError("corrupt_payload") from exc
    fields = {"kind": {1: "snapshot", 2: "delta"}[kind], "base_seq": base, "first_seq": first, "last_seq": last}
    return fields, plain, hashlib.sha256(data).hexdigest()


# --- the vector files ---------------------------------------------------------------------
SECRET_A = base64.b64encode(bytes(range(32))).decode()
SECRET_B = base64.b64encode(hashlib.sha256(b"wkp1 rotation key").digest()).decode()
KEYS = {"k2026a": SECRET_A, "k2025b": SECRET_B}
NOW = 1767225600  # 2026-01-01T00:00:00Z
EMPTY = hashlib.sha256(b"").hexdigest()


def signed(method, path, query, body, key_id="k2026a", extra=None, timestamp=NOW):
    headers = {
        "wkp-version": "1.0",
        "wkp-key-id": key_id,
        "wkp-timestamp": str(timestamp),
        "wkp-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    headers.update(extra or {})
    canonical = canonical_request(method, path, query, headers)
    headers["wkp-signature"] = signature(KEYS[key_id], canonical)
    request = {"method": method, "path": path, "query": query, "headers": headers, "body_hex": body.hex()}
    return request, canonical


def generate_signing():
    seg_id = hashlib.sha256(b"example segment").hexdigest()
    body = b"WKP1SEG\0 example body bytes"
    positive = []

    def case(name, why, request_canonical, now=NOW, key_id="k2026a"):
        request, canonical = request_canonical
        positive.append({
            "name": name, "why": why, "key_id": request["headers"]["wkp-key-id"],
            "secret_base64": KEYS[request["headers"]["wkp-key-id"]], "now": now,
            "request": request, "canonical_request": canonical,
            "signature": request["headers"]["wkp-signature"],
        })

    case("restore_plan", "GET with no query and an empty body",
         signed("GET", "/v1/restore/kv/orders/replica-0", "", b""))
    case("restore_claim", "claiming a generation is part of the signed query",
         signed("GET", "/v1/restore/kv/orders/replica-0", "claim=true", b""))
    case("persist_inline", "body hash, generation and request id are all signed",
         signed("POST", "/v1/persist/kv/orders/replica-0", "", body,
                extra={"wkp-generation": "3", "wkp-request-id": "req-0001"}))
    case("persist_part_query_sorted", "query parameters are sorted in the canonical form",
         signed("POST", "/v1/persist/kv/orders/replica-0", f"segment={seg_id}&offset=4500000", body[:8],
                extra={"wkp-generation": "3"}))
    case("query_percent_encoding", "names and values are decoded, re-encoded with upper-case %XX, then sorted",
         signed("GET", "/v1/restore/kv/orders/replica-0", "b=2&a=x%2fy&a=%41+&c", b""))
    case("query_sorted_after_encoding",
         "pairs sort by their encoded bytes: %2F and %C3%A9 before '.', '~' last (decoded order differs)",
         signed("GET", "/v1/restore/kv/orders/replica-0", "x=.&x=%2f&x=~&x=%C3%A9", b""))
    case("header_case_and_spaces", "header names are lower-cased and values trimmed",
         signed("POST", "/v1/flush/kv/orders/replica-0", "", b"",
                extra={"WKP-Generation": "  3 ", "Content-Type": "application/vnd.wkp1.segment"}))
    case("rotated_key", "a second key id in the ring verifies its own signatures",
         signed("GET", "/v1/restore/kv/orders/replica-1", "", b"", key_id="k2025b"))
    case("timestamp_at_tolerance", "exactly 300 s old is still accepted",
         signed("GET", "/v1/restore/kv/orders/replica-0", "", b""), now=NOW + 300)

    negative = []

    def bad(name, why, request, expected, now=NOW):
        assert verify(request, KEYS, now) == expected, (name, verify(request, KEYS, now))
        negative.append({"name": name, "why": why, "now": now, "request": request, "expected_error": expected})

    def tamper(request, **changes):
        out = json.loads(json.dumps(request))
        for key, value in changes.items():
            if key == "headers":
                out["headers"].update(value)
            else:
                out[key] = value
        return out

    good, _ = signed("POST", "/v1/persist/kv/orders/replica-0", "", body, extra={"wkp-generation": "3"})
    bad("stale_timestamp", "301 s old", good, "timestamp_out_of_range", now=NOW + 301)
    bad("future_timestamp", "301 s ahead", good, "timestamp_out_of_range", now=NOW - 301)
    bad("unknown_key", "the key id is not in the ring",
        tamper(good, headers={"wkp-key-id": "k1999"}), "unknown_key")
    bad("tampered_method", "signed as POST, sent as PUT (the verifier alone: a function routes first "
        "and answers 405 method_not_allowed, ERR-5)", tamper(good, method="PUT"), "signature_mismatch")
    bad("tampered_path", "one byte of the replica changed",
        tamper(good, path="/v1/persist/kv/orders/replica-1"), "signature_mismatch")
    bad("tampered_query", "a parameter added after signing", tamper(good, query="claim=true"), "signature_mismatch")
    bad("tampered_header", "the generation changed after signing",
        tamper(good, headers={"wkp-generation": "4"}), "signature_mismatch")
    bad("added_header", "an extra wkp- header is covered by the signature too",
        tamper(good, headers={"wkp-request-id": "x"}), "signature_mismatch")
    bad("tampered_body", "the body no longer matches wkp-content-sha256",
        tamper(good, body_hex=(b"X" + body[1:]).hex()), "content_hash_mismatch")
    sig = good["headers"]["wkp-signature"]
    bad("uppercase_signature", "only lower-case hex is a signature",
        tamper(good, headers={"wkp-signature": sig.upper()}), "signature_mismatch")
    bad("signature_from_other_key", "signed with k2025b's secret but naming k2026a",
        tamper(good, headers={"wkp-signature": signature(SECRET_B, canonical_request(
            good["method"], good["path"], good["query"], good["headers"]))}), "signature_mismatch")
    missing_sig = tamper(good)
    del missing_sig["headers"]["wkp-signature"]
    bad("missing_signature", "no wkp-signature header", missing_sig, "missing_authentication")
    missing_ts = tamper(good)
    del missing_ts["headers"]["wkp-timestamp"]
    bad("missing_timestamp", "no wkp-timestamp header", missing_ts, "missing_authentication")
    bad("unsupported_major_version", "wkp-version 2.0 on a v1 path",
        tamper(good, headers={"wkp-version": "2.0"}), "unsupported_version")
    bad("malformed_key_id", "a key id outside its grammar is simply not in the ring",
        tamper(good, headers={"wkp-key-id": "k/2026a"}), "unknown_key")
    bad("malformed_timestamp", "wkp-timestamp must be decimal digits",
        tamper(good, headers={"wkp-timestamp": "1767225600.5"}), "invalid_request")
    bad("query_bad_percent_encoding", "a '%' must be followed by two hex digits",
        tamper(signed("GET", "/v1/restore/kv/orders/replica-0", "a=1", b"")[0], query="a=%G1"),
        "invalid_request")
    bad("query_not_utf8", "decoded query bytes must be UTF-8",
        tamper(signed("GET", "/v1/restore/kv/orders/replica-0", "a=1", b"")[0], query="a=%FF"),
        "invalid_request")
    bad("malformed_content_hash", "wkp-content-sha256 must be 64 lower-case hex digits",
        tamper(good, headers={"wkp-content-sha256": "ABC"}), "invalid_request")

    return {
        "description": "WKP-1 request signing vectors (SPEC.md AUTH-1..AUTH-8). Secrets are standard "
        "base64. A positive case's canonical_request must be rebuilt exactly from request, and its "
        "signature is lower-case hex HMAC-SHA256(secret, canonical_request). A negative case must "
        "be refused with expected_error by a verifier whose ring holds every key in 'keys', at "
        "clock 'now'.",
        "algorithm": ALGORITHM,
        "timestamp_tolerance_seconds": TOLERANCE,
        "keys": KEYS,
        "positive": positive,
        "negative": negative,
    }


def generate_segments():
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3)
    positive, negative = [], []

    def make(kind, base, first, last, payload, frames=None):
        header = encode_header(KINDS[kind], base, first, last)
        body = b"".join(cctx.compress(f) for f in (frames or [payload]))
        return seal(header + body)

    def pos(name, why, kind, base, first, last, payload, frames=None):
        data = make(kind, base, first, last, payload, frames)
        fields, plain, seg_id = check_segment(data)
        assert plain == payload
        positive.append({
            "name": name, "why": why,
            "header": {"kind": kind, "base_seq": base, "first_seq": first, "last_seq": last},
            "header_hex": data[:40].hex(), "payload_hex": payload.hex(),
            "segment_hex": data.hex(), "trailer_hex": data[-32:].hex(), "segment_id": seg_id,
        })

    pos("empty_snapshot", "the state of an empty database", "snapshot", 0, 0, 0, b"")
    pos("small_delta", "a delta from state 100 to 250", "delta", 100, 101, 250, b"put orders/1 {\"qty\":3}\n" * 4)
    pos("two_frames", "a payload may be several concatenated zstd frames", "delta", 7, 8, 9,
        b"first frame|second frame", frames=[b"first frame|", b"second frame"])
    pos("large_sequence_numbers", "sequence numbers are full u64", "snapshot", 0, 0, 2**64 - 2, bytes(range(256)))

    good = make("delta", 100, 101, 250, b"payload")

    def neg(name, why, data, expected, needs_decompression=False):
        try:
            check_segment(data)
            raise AssertionError(f"{name} was accepted")
        except ValueError as exc:
            assert str(exc) == expected, (name, str(exc))
        negative.append({"name": name, "why": why, "segment_hex": data.hex(),
                         "expected_error": expected, "needs_decompression": needs_decompression})

    def resealed(data):
        return seal(data[:-32])

    neg("bad_magic", "first byte changed", resealed(b"X" + good[1:]), "bad_magic")
    neg("version_2", "format version 2 is unknown to a version 1 reader",
        resealed(good[:8] + b"\x00\x02" + good[10:]), "unsupported_version")
    neg("kind_3", "kind must be 1 or 2", resealed(good[:10] + b"\x03" + good[11:]), "bad_kind")
    neg("compression_2", "only zstd (1) is defined", resealed(good[:11] + b"\x02" + good[12:]), "bad_compression")
    neg("flags_set", "reserved flags must be zero", resealed(good[:15] + b"\x01" + good[16:]), "reserved_flags")
    neg("snapshot_with_base", "a snapshot starts from nothing",
        make("snapshot", 5, 0, 9, b"x"), "bad_sequence")
    neg("delta_first_not_base_plus_one", "first_seq must be base_seq + 1",
        make("delta", 100, 102, 250, b"x"), "bad_sequence")
    neg("delta_last_before_first", "an empty delta is not a segment",
        make("delta", 100, 101, 100, b"x"), "bad_sequence")
    neg("truncated_trailer", "the last byte is missing", good[:-1], "trailer_mismatch")
    neg("header_only", "no payload, no trailer", good[:40], "truncated")
    neg("empty", "no bytes at all", b"", "truncated")
    neg("short_garbage", "fewer than 72 bytes is truncated before anything else is looked at",
        b"not a segment at all, and too short to be one", "truncated")
    neg("one_byte_short", "71 bytes: a header and one byte short of a trailer", good[:71], "truncated")
    neg("payload_of_three_bytes", "a valid header and trailer around 3 payload bytes: too short for "
        "the zstd magic", seal(good[:40] + b"\x28\xb5\x2f"), "truncated")
    neg("flipped_payload_byte", "one payload bit flipped, trailer kept",
        good[:45] + bytes([good[45] ^ 1]) + good[46:], "trailer_mismatch")
    neg("payload_not_zstd", "payload must start with the zstd frame magic",
        seal(good[:40] + b"plain text payload"), "not_zstd")
    neg("garbage_after_frame", "bytes after the last frame that are not a frame",
        seal(good[:-32] + b"junk"), "corrupt_payload", needs_decompression=True)

    return {
        "description": "WKP-1 segment vectors (SPEC.md SEG-1..SEG-7). segment_hex is a complete "
        "segment; segment_id is SHA-256 of all its bytes. A positive case decodes to header and "
        "payload_hex. Compressed bytes depend on the zstd version and level, so an encoder is "
        "checked by header_hex and by round trip, not by comparing segment_hex. A negative case "
        "must be refused with expected_error; those with needs_decompression are only detectable "
        "by a reader that decompresses.",
        "positive": positive,
        "negative": negative,
    }


def check():
    failures = 0
    signing = json.loads((HERE / "signing.json").read_text())
    for case in signing["positive"]:
        r = case["request"]
        canonical = canonical_request(r["method"], r["path"], r["query"], r["headers"])
        if canonical != case["canonical_request"]:
            print(f"FAIL signing/{case['name']}: canonical request differs"); failures += 1
        if signature(case["secret_base64"], canonical) != case["signature"]:
            print(f"FAIL signing/{case['name']}: signature differs"); failures += 1
        if verify(r, signing["keys"], case["now"]) is not None:
            print(f"FAIL signing/{case['name']}: refused"); failures += 1
    for case in signing["negative"]:
        got = verify(case["request"], signing["keys"], case["now"])
        if got != case["expected_error"]:
            print(f"FAIL signing/{case['name']}: got {got}, want {case['expected_error']}"); failures += 1
    segments = json.loads((HERE / "segments.json").read_text())
    for case in segments["positive"]:
        fields, plain, seg_id = check_segment(bytes.fromhex(case["segment_hex"]))
        ok = fields == case["header"] and plain.hex() == case["payload_hex"] and seg_id == case["segment_id"]
        ok = ok and encode_header(KINDS[fields["kind"]], fields["base_seq"], fields["first_seq"],
                                  fields["last_seq"]).hex() == case["header_hex"]
        if not ok:
            print(f"FAIL segments/{case['name']}"); failures += 1
    for case in segments["negative"]:
        try:
            check_segment(bytes.fromhex(case["segment_hex"]))
            got = None
        except ValueError as exc:
            got = str(exc)
        if got != case["expected_error"]:
            print(f"FAIL segments/{case['name']}: got {got}, want {case['expected_error']}"); failures += 1
    total = sum(len(d[k]) for d in (signing, segments) for k in ("positive", "negative"))
    print(f"reference.py: {total - failures}/{total} vector cases agree with the independent reference")
    return 1 if failures else 0


# --- adapters for `wkp1-conformance vectors check`: one case on stdin, the answer on stdout ----
def adapter(kind):
    case = json.load(sys.stdin)
    if kind == "sign":
        r = case["request"]
        canonical = canonical_request(r["method"], r["path"], r["query"], r["headers"])
        answer = {"canonical_request": canonical, "signature": signature(case["secret_base64"], canonical)}
    elif kind == "verify":
        answer = {"error": verify(case["request"], case["keys"], case["now"])}
    else:
        try:
            fields, plain, seg_id = check_segment(bytes.fromhex(case["segment_hex"]))
            answer = {"error": None, "header": fields, "payload_hex": plain.hex(), "segment_id": seg_id}
        except ValueError as exc:
            answer = {"error": str(exc)}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in ("sign", "verify", "segment"):
        sys.exit(adapter(sys.argv[1]))
    if sys.argv[1:] == ["generate"]:
        (HERE / "signing.json").write_text(json.dumps(generate_signing(), indent=2) + "\n")
        (HERE / "segments.json").write_text(json.dumps(generate_segments(), indent=2) + "\n")
        sys.exit(check())
    if sys.argv[1:] == ["check"]:
        sys.exit(check())
    print(__doc__)
    sys.exit(2)
