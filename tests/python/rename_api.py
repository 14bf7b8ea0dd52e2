"""Renames a job, sets its next build number and reads a queued item's parameters through
python-jenkins, as scripts in the wild do.

Usage: rename_api.py URL USER TOKEN
No node is online: builds stay queued. Exits non-zero with the failing check on stderr;
prints one line per check passed.
"""
import sys

import jenkins
import requests

url, user, token = sys.argv[1:4]
server = jenkins.Jenkins(url, username=user, password=token, timeout=20)

JOB = """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition><name>BRANCH</name><defaultValue>main</defaultValue></hudson.model.StringParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <builders><hudson.tasks.Shell><command>true</command></hudson.tasks.Shell></builders>
</project>
"""


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED {name}: {detail}")
    print(f"ok {name}")


server.create_job("before", JOB)
server.rename_job("before", "after")
check("renamed", server.job_exists("after") and not server.job_exists("before"))

server.set_next_build_number("after", 42)
info = server.get_job_info("after")
check("next build number", info["nextBuildNumber"] == 42, info.get("nextBuildNumber"))
try:
    server.set_next_build_number("after", 3)
    check("a lower number is refused", False, "accepted")
except requests.exceptions.HTTPError as e:
    answer = e.response.text
    check("a lower number is refused", e.response.status_code == 400 and "at least 42" in answer, answer)

server.build_job("after", {"BRANCH": "a=b&c=d"})
queue = server.get_queue_info()
check("queued", len(queue) == 1, queue)
check("params unquoted", queue[0]["params"] == "\nBRANCH=a=b&c=d", repr(queue[0]["params"]))

print("all checks passed")
