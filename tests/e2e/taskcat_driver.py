"""Run taskcat's own test API (``taskcat.testing.CFNTest``) for one test and region; run with .venv-taskcat.

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT .venv-taskcat/bin/python tests/e2e/taskcat_driver.py PROJECT TEST REGION

Prints one JSON line: {"stacks": [{"name", "status_on_create"}], "deleted": [...]}; exit 1 when a stack failed.
(taskcat's CLI report step downloads CSS from the internet, so the CLI itself is not usable offline.)
"""

import json
import sys

import boto3
from taskcat.testing import CFNTest


def main(project_root: str, test_name: str, region: str) -> int:
    test = CFNTest.from_file(project_root=project_root, regions=region, enable_sig_v2=True)
    test.test_names = test_name
    test.dont_wait_for_delete = False
    seen = []
    with test as stacks:  # __enter__ uploads, creates and waits; __exit__ deletes
        for stack in test.test_definition.stacks:
            seen.append({"name": stack.name, "id": stack.id, "status_on_create": stack.status})
    for item in seen:
        cfn = boto3.client("cloudformation", region_name=item["id"].split(":")[3])
        item["status_after_delete"] = cfn.describe_stacks(StackName=item["id"])["Stacks"][0]["StackStatus"]
    print(json.dumps({"stacks": seen}))
    return 0 if seen and all(s["status_on_create"] == "CREATE_COMPLETE" for s in seen) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
