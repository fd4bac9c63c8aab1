"""Send one CKafka DataHub SendMessage through the official Tencent Cloud SDK.

Usage: send_message.py HOST:PORT DATAHUB_ID BODY[:KEY] ...
Prints the SDK's parsed response, or {"sdk_error": CODE, "message": MSG},
as one JSON line. Signs with TC_SECRET_ID and TC_SECRET_KEY (test values
by default), on a clock TC_CLOCK_OFFSET_S seconds off (0 by default). Needs
`pip install tencentcloud-sdk-python-common`.
"""
import json
import os
import sys
import time

from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

endpoint, datahub_id, *messages = sys.argv[1:]
clock_offset = int(os.environ.get("TC_CLOCK_OFFSET_S", "0"))
if clock_offset:
    real_time = time.time
    time.time = lambda: real_time() + clock_offset
profile = ClientProfile(
    httpProfile=HttpProfile(endpoint=endpoint, protocol="http", reqMethod="POST")
)
client = CommonClient(
    "ckafka",
    "2019-08-19",
    credential.Credential(
        os.environ.get("TC_SECRET_ID", "AKIDintaketest"),
        os.environ.get("TC_SECRET_KEY", "intake-test-secret"),
    ),
    "ap-guangzhou",
    profile,
)
message = []
for item in messages:
    body, _, key = item.partition(":")
    message.append({"Body": body, "Key": key} if key else {"Body": body})
try:
    response = client.call_json(
        "SendMessage", {"DataHubId": datahub_id, "Message": message}
    )
    print(json.dumps(response))
except TencentCloudSDKException as error:
    print(json.dumps({"sdk_error": error.get_code(), "message": error.get_message()}))
