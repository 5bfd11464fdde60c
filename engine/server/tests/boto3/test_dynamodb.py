"""The DynamoDB API through boto3, the client most users have.

Runs against weftkit-kv (WEFTKIT_TEST_ENDPOINT, SigV4 with WEFTKIT_TEST_ACCESS_KEY /
WEFTKIT_TEST_SECRET_KEY) and, as a reference for DynamoDB's behaviour, against moto's DynamoDB
(MOTO_ENDPOINT) when it is set: the same assertions hold for both.
"""

import os
import time
import unittest
import uuid
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError


def error_code(context):
    return context.exception.response["Error"]["Code"]


class DynamoDBContract:
    """Assertions every DynamoDB-compatible endpoint must pass."""

    endpoint = None
    access_key = "test"
    secret_key = "test-secret"

    @classmethod
    def setUpClass(cls):
        session = boto3.session.Session(
            aws_access_key_id=cls.access_key,
            aws_secret_access_key=cls.secret_key,
            region_name="us-east-1",
        )
        cls.client = session.client("dynamodb", endpoint_url=cls.endpoint)
        cls.resource = session.resource("dynamodb", endpoint_url=cls.endpoint)

    def table(self, range_key=None, range_type="N"):
        name = f"t-{uuid.uuid4().hex[:12]}"
        schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
        definitions = [{"AttributeName": "pk", "AttributeType": "S"}]
        if range_key:
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
            definitions.append({"AttributeName": range_key, "AttributeType": range_type})
        table = self.resource.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=definitions,
            BillingMode="PAY_PER_REQUEST",
        )
        table.wait_until_exists()
        self.addCleanup(lambda: self.client.delete_table(TableName=name))
        return table

    def test_tables(self):
        table = self.table("sk")
        description = self.client.describe_table(TableName=table.name)["Table"]
        self.assertEqual(description["TableStatus"], "ACTIVE")
        self.assertEqual([k["KeyType"] for k in description["KeySchema"]], ["HASH", "RANGE"])
        self.assertIn(table.name, self.client.list_tables(Limit=100)["TableNames"])
        with self.assertRaises(ClientError) as raised:
            self.client.describe_table(TableName="no-such-table-" + uuid.uuid4().hex[:8])
        self.assertEqual(error_code(raised), "ResourceNotFoundException")
        with self.assertRaises(ClientError) as raised:
            self.client.create_table(
                TableName=table.name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        self.assertEqual(error_code(raised), "ResourceInUseException")

    def test_items_with_conditions_and_return_values(self):
        table = self.table()
        item = {
            "pk": "a",
            "n": Decimal("12.5"),
            "b": b"\x00\x01",
            "flag": True,
            "none": None,
            "l": ["x", Decimal(1)],
            "m": {"inner": "y"},
            "ss": {"p", "q"},
            "ns": {Decimal(1), Decimal(2)},
        }
        table.put_item(Item=item)
        got = table.get_item(Key={"pk": "a"})["Item"]
        self.assertEqual(got["n"], Decimal("12.5"))
        self.assertEqual(got["b"].value, b"\x00\x01")
        self.assertEqual(got["ss"], {"p", "q"})
        self.assertEqual(got["m"], {"inner": "y"})
        self.assertIsNone(got["none"])
        with self.assertRaises(ClientError) as raised:
            table.put_item(Item={"pk": "a"}, ConditionExpression=Attr("pk").not_exists())
        self.assertEqual(error_code(raised), "ConditionalCheckFailedException")
        old = table.put_item(
            Item={"pk": "a", "v": 2},
            ConditionExpression=Attr("n").eq(Decimal("12.5")) & Attr("ss").contains("p"),
            ReturnValues="ALL_OLD",
        )["Attributes"]
        self.assertEqual(old["flag"], True)
        with self.assertRaises(ClientError) as raised:
            table.delete_item(Key={"pk": "a"}, ConditionExpression=Attr("v").gt(5))
        self.assertEqual(error_code(raised), "ConditionalCheckFailedException")
        deleted = table.delete_item(Key={"pk": "a"}, ReturnValues="ALL_OLD")["Attributes"]
        self.assertEqual(deleted["v"], 2)
        self.assertNotIn("Item", table.get_item(Key={"pk": "a"}))

    def test_bad_input_is_a_validation_error(self):
        table = self.table()
        cases = [
            lambda: table.put_item(Item={"pk": 1}),
            lambda: table.put_item(Item={"other": "x"}),
            lambda: table.put_item(Item={"pk": "big", "blob": b"x" * (401 * 1024)}),
            lambda: table.update_item(Key={"pk": "a"}, UpdateExpression="SET pk = :v", ExpressionAttributeValues={":v": "b"}),
            lambda: table.update_item(Key={"pk": "a"}, UpdateExpression="SET a = :missing"),
            lambda: table.get_item(Key={"pk": "a", "extra": "b"}),
        ]
        for case in cases:
            with self.assertRaises(ClientError) as raised:
                case()
            self.assertEqual(error_code(raised), "ValidationException")
        self.assertEqual(table.scan()["Count"], 0)

    def test_update_expressions(self):
        table = self.table()
        new = table.update_item(
            Key={"pk": "c"},
            UpdateExpression="SET hits = if_not_exists(hits, :zero) + :one, tags = :tags, hist = :empty",
            ExpressionAttributeValues={":zero": 0, ":one": 1, ":tags": {"a", "b"}, ":empty": []},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        self.assertEqual(new["hits"], 1)
        table.update_item(
            Key={"pk": "c"},
            UpdateExpression="SET hist = list_append(hist, :h), #s = :s ADD hits :ten DELETE tags :a",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":h": ["first"], ":s": "on", ":ten": 10, ":a": {"a"}},
        )
        got = table.get_item(Key={"pk": "c"})["Item"]
        self.assertEqual((got["hits"], got["tags"], got["hist"], got["status"]), (11, {"b"}, ["first"], "on"))
        updated = table.update_item(
            Key={"pk": "c"},
            UpdateExpression="REMOVE #s SET hits = hits - :one",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )["Attributes"]
        self.assertEqual(updated, {"hits": 10})

    def test_query_and_pagination(self):
        table = self.table("sk")
        for sk in [-5, 0, 1, 2, 3, 10, 20, 100]:
            table.put_item(Item={"pk": "p", "sk": sk, "even": sk % 2 == 0})
        table.put_item(Item={"pk": "q", "sk": 1})
        everything = table.query(KeyConditionExpression=Key("pk").eq("p"))
        self.assertEqual([i["sk"] for i in everything["Items"]], [-5, 0, 1, 2, 3, 10, 20, 100])
        between = table.query(KeyConditionExpression=Key("pk").eq("p") & Key("sk").between(0, 3))
        self.assertEqual([i["sk"] for i in between["Items"]], [0, 1, 2, 3])
        backwards = table.query(KeyConditionExpression=Key("pk").eq("p") & Key("sk").gt(2), ScanIndexForward=False)
        self.assertEqual([i["sk"] for i in backwards["Items"]], [100, 20, 10, 3])
        seen, start = [], None
        while True:
            kwargs = {"KeyConditionExpression": Key("pk").eq("p"), "Limit": 3}
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = table.query(**kwargs)
            seen += [i["sk"] for i in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        self.assertEqual(seen, [-5, 0, 1, 2, 3, 10, 20, 100])
        filtered = table.query(KeyConditionExpression=Key("pk").eq("p"), FilterExpression=Attr("even").eq(True))
        self.assertEqual((filtered["Count"], filtered["ScannedCount"]), (5, 8))
        counted = table.query(KeyConditionExpression=Key("pk").eq("p"), Select="COUNT")
        self.assertEqual(counted["Count"], 8)
        self.assertNotIn("Items", counted)

    def test_scan_and_paginator(self):
        table = self.table()
        with table.batch_writer() as batch:
            for i in range(60):
                batch.put_item(Item={"pk": f"k{i:03}", "i": i})
        paginator = self.client.get_paginator("scan")
        pages = list(paginator.paginate(TableName=table.name, PaginationConfig={"PageSize": 25}))
        self.assertEqual(sum(p["Count"] for p in pages), 60)
        self.assertGreaterEqual(len(pages), 3)
        filtered = table.scan(FilterExpression=Attr("i").gte(50), ProjectionExpression="pk")
        self.assertEqual(sorted(i["pk"] for i in filtered["Items"]), [f"k{i:03}" for i in range(50, 60)])

    def test_batch_operations(self):
        table = self.table()
        requests = [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(25)]
        out = self.client.batch_write_item(RequestItems={table.name: requests})
        self.assertEqual(out["UnprocessedItems"], {})
        got = self.client.batch_get_item(RequestItems={table.name: {"Keys": [{"pk": {"S": f"k{i}"}} for i in range(0, 25, 5)]}})
        self.assertEqual(len(got["Responses"][table.name]), 5)
        self.assertEqual(got["UnprocessedKeys"], {})

    def test_transactions(self):
        table = self.table()
        table.put_item(Item={"pk": "alice", "balance": 100})
        table.put_item(Item={"pk": "bob", "balance": 0})

        def transfer(amount):
            self.client.transact_write_items(
                TransactItems=[
                    {"Update": {"TableName": table.name, "Key": {"pk": {"S": "alice"}},
                                "UpdateExpression": "SET balance = balance - :a",
                                "ConditionExpression": "balance >= :a",
                                "ExpressionAttributeValues": {":a": {"N": str(amount)}}}},
                    {"Update": {"TableName": table.name, "Key": {"pk": {"S": "bob"}},
                                "UpdateExpression": "SET balance = balance + :a",
                                "ExpressionAttributeValues": {":a": {"N": str(amount)}}}},
                ]
            )

        transfer(70)
        with self.assertRaises(ClientError) as raised:
            transfer(70)
        self.assertEqual(error_code(raised), "TransactionCanceledException")
        reasons = [r["Code"] for r in raised.exception.response["CancellationReasons"]]
        self.assertEqual(reasons, ["ConditionalCheckFailed", "None"])
        balances = self.client.transact_get_items(
            TransactItems=[{"Get": {"TableName": table.name, "Key": {"pk": {"S": who}}}} for who in ["alice", "bob"]]
        )["Responses"]
        self.assertEqual([r["Item"]["balance"]["N"] for r in balances], ["30", "70"])

    def test_numbers_at_the_edges_of_the_range_read_back_exactly(self):
        # boto3 reads numbers with a 38-digit context that traps any rounding: what the server
        # writes back must be exact text, not 126 digits of a plain 1E+125.
        table = self.table("sk")
        edges = ["1E+125", "-1E+125", "1E-130", "-1E-130", "9." + "9" * 37 + "E+125", "1" * 38, "0.5"]
        for i, text in enumerate(edges):
            table.put_item(Item={"pk": "p", "sk": i, "n": Decimal(text), "ns": {Decimal(text), Decimal(1)}})
        for i, text in enumerate(edges):
            item = table.get_item(Key={"pk": "p", "sk": i})["Item"]
            self.assertEqual(item["n"], Decimal(text))
            self.assertIn(Decimal(text), item["ns"])
        scanned = sorted(table.scan()["Items"], key=lambda item: item["sk"])
        self.assertEqual([item["n"] for item in scanned], [Decimal(t) for t in edges])

    def test_time_to_live(self):
        table = self.table()
        self.client.update_time_to_live(
            TableName=table.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
        )
        description = self.client.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
        self.assertEqual((description["TimeToLiveStatus"], description["AttributeName"]), ("ENABLED", "expires"))


@unittest.skipUnless(os.environ.get("WEFTKIT_TEST_ENDPOINT"), "WEFTKIT_TEST_ENDPOINT is not set")
class WeftKitKV(DynamoDBContract, unittest.TestCase):
    endpoint = os.environ.get("WEFTKIT_TEST_ENDPOINT")
    access_key = os.environ.get("WEFTKIT_TEST_ACCESS_KEY", "test")
    secret_key = os.environ.get("WEFTKIT_TEST_SECRET_KEY", "test-secret")

    def test_expired_items_are_not_returned(self):
        table = self.table()
        self.client.update_time_to_live(
            TableName=table.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
        )
        table.put_item(Item={"pk": "old", "expires": int(time.time()) - 60})
        table.put_item(Item={"pk": "new", "expires": int(time.time()) + 3600})
        self.assertNotIn("Item", table.get_item(Key={"pk": "old"}))
        self.assertEqual([i["pk"] for i in table.scan()["Items"]], ["new"])

    def test_numbers_outside_the_range_are_refused_and_store_nothing(self):
        # moto stores any number text; DynamoDB refuses these with these messages.
        table = self.table()
        cases = {
            "1E+126": "Number overflow",
            "1E-131": "Number underflow",
            "1" * 39: "Attempting to store more than 38 significant digits in a Number",
        }
        for text, message in cases.items():
            with self.assertRaises(ClientError) as raised:
                self.client.put_item(TableName=table.name, Item={"pk": {"S": "a"}, "n": {"N": text}})
            self.assertEqual(error_code(raised), "ValidationException")
            self.assertIn(message, raised.exception.response["Error"]["Message"])
        self.assertEqual(table.scan()["Count"], 0)

    def test_batch_write_limit(self):
        # DynamoDB refuses more than 25 writes a batch; moto does not check it.
        table = self.table()
        requests = [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(26)]
        with self.assertRaises(ClientError) as raised:
            self.client.batch_write_item(RequestItems={table.name: requests})
        self.assertEqual(error_code(raised), "ValidationException")
        self.assertEqual(table.scan()["Count"], 0)

    def test_wrong_secret_is_refused(self):
        session = boto3.session.Session(
            aws_access_key_id=self.access_key, aws_secret_access_key="wrong", region_name="us-east-1"
        )
        client = session.client("dynamodb", endpoint_url=self.endpoint)
        with self.assertRaises(ClientError) as raised:
            client.list_tables()
        self.assertEqual(error_code(raised), "InvalidSignatureException")


@unittest.skipUnless(os.environ.get("MOTO_ENDPOINT"), "MOTO_ENDPOINT is not set")
class MotoReference(DynamoDBContract, unittest.TestCase):
    endpoint = os.environ.get("MOTO_ENDPOINT")


if __name__ == "__main__":
    unittest.main()
