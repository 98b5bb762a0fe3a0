"""Bucket chores on the test's S3 server (AWS_ENDPOINT_URL and the AWS_* keys), with boto3.

usage: s3_bucket.py create BUCKET       -- creates it
       s3_bucket.py drop BUCKET         -- empties and deletes it (as an outage would)
       s3_bucket.py list BUCKET         -- prints every key, one a line
       s3_bucket.py get BUCKET KEY      -- prints the object KEY
"""
import os
import sys
import time

import boto3

action, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                  aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                  region_name=os.environ["AWS_REGION"])


def keys():
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


if action == "create":
    s3.create_bucket(Bucket=bucket)
elif action == "list":
    print("\n".join(keys()))
elif action == "get":
    sys.stdout.write(s3.get_object(Bucket=bucket, Key=sys.argv[3])["Body"].read().decode())
elif action == "drop":
    # An upload may land between emptying and deleting: empty again until the delete holds.
    for _ in range(20):
        for key in keys():
            s3.delete_object(Bucket=bucket, Key=key)
        try:
            s3.delete_bucket(Bucket=bucket)
            break
        except s3.exceptions.ClientError:
            time.sleep(0.1)
    else:
        sys.exit(f"could not delete {bucket}")
else:
    sys.exit(f"unknown action {action}")
