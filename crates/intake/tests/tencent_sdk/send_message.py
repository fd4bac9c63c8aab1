"""Send one CKafka DataHub SendMessage through the official Tencent Cloud SDK.

Usage: send_message.py HOST:PORT DATAHUB_ID BODY[:KEY] ...
Prints the SDK's parsed response, or {"sdk_error": CODE, "message": MSG},
as one JSON line. Needs `pip install tencentcloud-sdk-python-common`.
"""
import json
import sys

from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

endpoint, datahub_id, *messages = sys.argv[1:]
profile = ClientProfile(
    httpProfile=HttpProfile(endpoint=endpoint, protocol="http", reqMethod="POST")
)
client = CommonClient(
    "ckafka",
    "2019-08-19",
    credential.Credential("AKIDintaketest", "intake-test-secret"),
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
