"""The main job, end to end, on a local directory store.

Starts the self-hosted WKP-1 function on a directory and the weftkit-kv engine in serverless mode
against it; loads sample data through boto3; persists; stops the engine with SIGTERM (final
flush); starts a new engine on an empty volume, as a fresh container would; checks every item came
back; prints a summary. Called by scripts/demo.sh with the release binaries.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import boto3

ACCESS_KEY, SECRET_KEY = "AKIDDEMO", "weftkit-demo-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, process, what, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{what} was not ready after {seconds}s")


def admin(url, method="GET"):
    request = urllib.request.Request(f"{url}/_admin/persist", method=method)
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.load(r)


class Demo:
    def __init__(self, bin_dir, work):
        self.bin, self.work = Path(bin_dir), Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        secret = base64.b64encode(os.urandom(32)).decode()
        (self.work / "keys").write_text(f"demo {secret}\n")
        self.secret = secret
        self.function_port = free_port()
        self.processes = []

    def start_function(self):
        log = open(self.work / "function.log", "ab")
        process = subprocess.Popen(
            [self.bin / "wkp1-selfhosted", "--listen", f"127.0.0.1:{self.function_port}",
             "--store", f"file://{self.work / 'store'}", "--keys-file", self.work / "keys"],
            stdout=log, stderr=log)
        self.processes.append(process)
        wait_ready(f"http://127.0.0.1:{self.function_port}/healthz", process, "the function")

    def start_engine(self, volume):
        port = free_port()
        env = dict(os.environ,
                   WEFTKIT_ACCESS_KEY_ID=ACCESS_KEY, WEFTKIT_SECRET_ACCESS_KEY=SECRET_KEY,
                   WEFTKIT_PERSIST_MODE="serverless",
                   WEFTKIT_PERSIST_URL=f"http://127.0.0.1:{self.function_port}",
                   WEFTKIT_PERSIST_KEY_ID="demo", WEFTKIT_PERSIST_SECRET=self.secret,
                   WEFTKIT_PERSIST_INSTANCE="demo", WEFTKIT_PERSIST_FLUSH_BUDGET="30s")
        log = open(self.work / f"engine-{volume}.log", "ab")
        started = time.time()
        process = subprocess.Popen(
            [self.bin / "weftkit-kv", "serve", "--listen", f"127.0.0.1:{port}",
             "--data", self.work / volume], env=env, stdout=log, stderr=log)
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/ready", process, "the engine")
        return process, url, time.time() - started

    def stop(self):
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
                p.wait()


def client(url):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def sample_orders(count):
    rng = random.Random(7)
    products = ["tea", "coffee", "cocoa", "matcha", "chai", "mate"]
    for i in range(count):
        yield {
            "customer": f"customer-{i % 500:04}",
            "order": i,
            "placed": f"2026-{1 + i % 12:02}-{1 + i % 28:02}T{i % 24:02}:00:00Z",
            "total": Decimal(f"{rng.randint(100, 99999) / 100:.2f}"),
            "lines": [{"product": rng.choice(products), "qty": rng.randint(1, 9)} for _ in range(1 + i % 4)],
            "status": rng.choice(["placed", "paid", "shipped", "delivered"]),
            "tags": {rng.choice(products), "demo"},
        }


def table_digest(url):
    """Every item of the table, as a digest and a count."""
    digest, count = hashlib.sha256(), 0
    items = []
    for page in client(url).get_paginator("scan").paginate(TableName="orders"):
        items += page["Items"]
    for item in sorted(items, key=lambda i: (i["customer"]["S"], int(i["order"]["N"]))):
        if "tags" in item:  # a string set's order is not part of its value
            item["tags"]["SS"].sort()
        digest.update(json.dumps(item, sort_keys=True).encode())
        count += 1
    return digest.hexdigest(), count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--items", type=int, default=20000)
    args = parser.parse_args()
    demo = Demo(args.bin, args.work)
    try:
        demo.start_function()
        engine, url, _ = demo.start_engine("volume-1")
        dynamodb = boto3.resource("dynamodb", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        table = dynamodb.create_table(
            TableName="orders", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"},
                       {"AttributeName": "order", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                                  {"AttributeName": "order", "AttributeType": "N"}])
        started = time.time()
        with table.batch_writer() as batch:
            for order in sample_orders(args.items):
                batch.put_item(Item=order)
        load_seconds = time.time() - started

        started = time.time()
        pushed = admin(url, "POST")["pushed"]
        tick_seconds = time.time() - started

        # Work after the tick: the final flush must carry it.
        for order in range(args.items, args.items + 100):
            table.update_item(Key={"customer": "customer-late", "order": order},
                              UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":s": "placed"})
        before, count = table_digest(url)
        status = admin(url)
        unflushed = status["last_seq"] - status["persisted_seq"]

        started = time.time()
        engine.send_signal(signal.SIGTERM)
        exit_code = engine.wait(timeout=60)
        flush_seconds = time.time() - started
        if exit_code != 0:
            sys.exit(f"the engine exited with {exit_code} after SIGTERM; see {demo.work}/engine-volume-1.log")

        restored_engine, url2, restore_seconds = demo.start_engine("volume-2")
        after, restored = table_digest(url2)
        store_bytes = sum(f.stat().st_size for f in (demo.work / "store").rglob("*") if f.is_file())
        ratio = pushed["payload_bytes"] / max(pushed["bytes"], 1)
        print()
        print("WeftKitKV + WKP-1, self-hosted function on a local directory")
        print(f"  loaded     {args.items} items through boto3 into volume-1 in {load_seconds:.2f} s")
        print(f"  persisted  delta of change-log entries {pushed['first_seq']}..={pushed['last_seq']}: "
              f"{pushed['payload_bytes'] / 1e6:.2f} MB -> {pushed['bytes'] / 1e6:.2f} MB "
              f"(compression {ratio:.1f}x) in {tick_seconds:.2f} s")
        print(f"  SIGTERM    final flush of {unflushed} later updates, exit {exit_code}, in {flush_seconds:.2f} s")
        print(f"  restored   empty volume-2 ready in {restore_seconds:.2f} s with {restored} items, "
              f"{'identical' if after == before else 'DIFFERENT'} to what was written")
        print(f"  store      {store_bytes / 1e6:.2f} MB in {demo.work / 'store'}")
        if after != before or restored != count:
            sys.exit("the restored data differs from what was written")
        restored_engine.send_signal(signal.SIGTERM)
        restored_engine.wait(timeout=60)
    finally:
        demo.stop()


if __name__ == "__main__":
    main()
